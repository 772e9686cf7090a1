"""The stream management client (SSF 1.0 §8) against a real transmitter on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ssf import (
    SUPPORTED_EVENTS,
    EmailSubject,
    InvalidAudience,
    InvalidIssuer,
    InvalidRequest,
    JwksCache,
    MemoryJtiStore,
    PollClient,
    PollDelivery,
    PushDelivery,
    SetVerifier,
    StreamClient,
    StreamConfiguration,
    StreamError,
    StreamPending,
    StreamStatus,
    TransmitterConfig,
    TransmitterPolicy,
    TransmitterRegistry,
    VerifiedSet,
    confirm_verification,
    discover,
    stream_updated,
    verification_state,
)
from ssf.events import EVENT_TYPES
from tests.ssf.helpers import AUDIENCE, NOW, Signer, claims, run, verifier_for
from tests.ssf.transmitter import (
    EVENTS_SUPPORTED,
    MGMT_TOKEN,
    POLL,
    PUSH,
    STREAM_UPDATED,
    FakeTransmitter,
    Recorded,
)

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False)


async def _connect(
    transmitter: FakeTransmitter,
    client: httpx.AsyncClient,
    *,
    token: Any = MGMT_TOKEN,
    audience: str | None = AUDIENCE,
) -> StreamClient:
    config = await discover(transmitter.issuer, client=client)
    return StreamClient(config, client=client, token=token, audience=audience)


def _last(transmitter: FakeTransmitter, method: str, path: str) -> Recorded:
    return [r for r in transmitter.requests if r.method == method and r.path == path][-1]


def test_supported_events_are_the_current_catalogue_uris() -> None:
    assert len(SUPPORTED_EVENTS) == len(set(SUPPORTED_EVENTS))
    for uri in SUPPORTED_EVENTS:
        assert not EVENT_TYPES[uri].legacy
    names = {EVENT_TYPES[uri].name for uri in SUPPORTED_EVENTS}
    assert {
        "session_revoked",
        "credential_compromise",
        "account_disabled",
        "account_enabled",
        "account_purged",
        "credential_change",
        "token_claims_change",
        "device_compliance_change",
        "verification",
        "stream_updated",
    } <= names
    assert "sessions_revoked" not in names  # RISC 1.0 deprecates it


def test_stream_crud_status_and_subjects_round_trip(transmitter: FakeTransmitter) -> None:
    push = PushDelivery(
        endpoint_url="https://receiver.example.com/ssf/events",
        authorization_header="Bearer push-secret",
    )
    subject = EmailSubject(email="jane@acme.example")

    async def main() -> None:
        async with _client() as client:
            streams = await _connect(transmitter, client)

            created = await streams.create(push, SUPPORTED_EVENTS, description="tokenwarden")
            post = _last(transmitter, "POST", "/ssf/stream")
            assert post.authorization == f"Bearer {MGMT_TOKEN}"
            assert post.body == {
                "delivery": {
                    "method": PUSH,
                    "endpoint_url": "https://receiver.example.com/ssf/events",
                    "authorization_header": "Bearer push-secret",
                },
                "events_requested": list(SUPPORTED_EVENTS),
                "description": "tokenwarden",
            }
            assert created.iss == transmitter.issuer
            assert created.aud == (AUDIENCE,)
            assert created.delivery == push
            assert created.events_requested == SUPPORTED_EVENTS
            assert created.events_delivered == tuple(EVENTS_SUPPORTED)
            assert created.description == "tokenwarden"
            assert "push-secret" not in repr(created)
            sid = created.stream_id

            assert await streams.get(sid) == created
            assert _last(transmitter, "GET", "/ssf/stream").query == {"stream_id": [sid]}
            assert await streams.get() == (created,)

            updated = await streams.update(sid, description="renamed")
            assert _last(transmitter, "PATCH", "/ssf/stream").body == {
                "stream_id": sid,
                "description": "renamed",
            }
            assert updated.description == "renamed"
            assert updated.events_requested == SUPPORTED_EVENTS  # PATCH leaves the rest

            replaced = await streams.replace(
                updated.model_copy(
                    update={"events_requested": (SESSION_REVOKED,), "description": None}
                )
            )
            put = _last(transmitter, "PUT", "/ssf/stream").body
            assert put["stream_id"] == sid
            assert put["events_requested"] == [SESSION_REVOKED]
            assert put["delivery"]["authorization_header"] == "Bearer push-secret"
            assert "description" not in put
            assert replaced.description is None  # PUT: a missing member is deleted
            assert replaced.events_requested == (SESSION_REVOKED,)
            assert replaced.events_delivered == (SESSION_REVOKED,)

            assert await streams.get_status(sid) == StreamStatus(stream_id=sid, status="enabled")
            paused = await streams.update_status(sid, "paused", reason="maintenance")
            assert paused == StreamStatus(stream_id=sid, status="paused", reason="maintenance")
            assert _last(transmitter, "POST", "/ssf/status").body == {
                "stream_id": sid,
                "status": "paused",
                "reason": "maintenance",
            }
            assert (await streams.get_status(sid)).status == "paused"

            await streams.add_subject(sid, subject, verified=True)
            assert _last(transmitter, "POST", "/ssf/subjects:add").body == {
                "stream_id": sid,
                "subject": {"format": "email", "email": "jane@acme.example"},
                "verified": True,
            }
            assert transmitter.subjects[sid] == [{"format": "email", "email": "jane@acme.example"}]
            await streams.remove_subject(sid, {"format": "email", "email": "jane@acme.example"})
            assert transmitter.subjects[sid] == []
            with pytest.raises(StreamError) as gone:
                await streams.remove_subject(sid, subject)
            assert gone.value.status == 404

            await streams.delete(sid)
            assert _last(transmitter, "DELETE", "/ssf/stream").query == {"stream_id": [sid]}
            with pytest.raises(StreamError) as caught:
                await streams.get(sid)
            assert caught.value.status == 404
            assert "no such stream" in caught.value.body
            assert await streams.get() == ()

    run(main())


def test_poll_stream_gets_the_transmitters_endpoint(transmitter: FakeTransmitter) -> None:
    async def main() -> None:
        async with _client() as client:
            streams = await _connect(transmitter, client)
            created = await streams.create(PollDelivery(), [SESSION_REVOKED])
            assert _last(transmitter, "POST", "/ssf/stream").body["delivery"] == {"method": POLL}
            assert isinstance(created.delivery, PollDelivery)
            assert created.delivery.endpoint_url == transmitter.poll_url(created.stream_id)
            assert created.description is None

    run(main())


def test_wrong_token_is_a_401_and_the_token_is_not_in_the_error(
    transmitter: FakeTransmitter,
) -> None:
    async def main() -> None:
        async with _client() as client:
            streams = await _connect(transmitter, client, token="wrong-token-value")
            await streams.get()

    with pytest.raises(StreamError) as caught:
        run(main())
    assert caught.value.status == 401
    assert not caught.value.retryable
    assert "invalid_token" in caught.value.body
    assert "wrong-token-value" not in str(caught.value)


def test_token_source_may_be_an_async_callable(transmitter: FakeTransmitter) -> None:
    calls: list[int] = []

    async def token() -> str:
        calls.append(1)
        return MGMT_TOKEN

    async def main() -> None:
        async with _client() as client:
            streams = await _connect(transmitter, client, token=token)
            await streams.create(PollDelivery(), [SESSION_REVOKED])
            await streams.get()

    run(main())
    assert len(calls) == 2  # asked for each request: a refreshed token is picked up


def test_a_stream_with_another_iss_is_refused(transmitter: FakeTransmitter) -> None:
    async def main() -> None:
        async with _client() as client:
            streams = await _connect(transmitter, client)
            transmitter.iss_override = "https://evil.example"
            with pytest.raises(InvalidIssuer, match=r"evil\.example"):
                await streams.create(PollDelivery(), [SESSION_REVOKED])
            with pytest.raises(InvalidIssuer):
                await streams.get()

    run(main())


def test_a_stream_without_our_audience_is_refused(transmitter: FakeTransmitter) -> None:
    async def main() -> None:
        async with _client() as client:
            streams = await _connect(transmitter, client, audience="https://someone-else/")
            await streams.create(PollDelivery(), [SESSION_REVOKED])

    with pytest.raises(InvalidAudience):
        run(main())


def test_202_on_update_is_pending_and_a_later_try_succeeds(transmitter: FakeTransmitter) -> None:
    async def main() -> None:
        async with _client() as client:
            streams = await _connect(transmitter, client)
            sid = (await streams.create(PollDelivery(), [SESSION_REVOKED])).stream_id
            transmitter.pending_next = True
            with pytest.raises(StreamPending) as caught:
                await streams.update(sid, description="later")
            assert caught.value.status == 202
            assert (await streams.update(sid, description="later")).description == "later"

    run(main())


def test_transmitter_refusal_carries_status_and_body(transmitter: FakeTransmitter) -> None:
    async def main() -> None:
        async with _client() as client:
            streams = await _connect(transmitter, client)
            sid = (await streams.create(PollDelivery(), [SESSION_REVOKED])).stream_id
            with pytest.raises(StreamError) as caught:
                await streams.update(sid, events_delivered=["urn:example:not-ours"])
            assert caught.value.status == 400
            assert "events_delivered does not match" in caught.value.body
            assert caught.value.method == "PATCH"

    run(main())


def test_202_is_success_where_no_answer_is_needed_and_pending_where_one_is() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return httpx.Response(202)

    config = TransmitterConfig(
        issuer="https://tr.example.com",
        configuration_endpoint="https://tr.example.com/stream",
        status_endpoint="https://tr.example.com/status",
        add_subject_endpoint="https://tr.example.com/add",
        remove_subject_endpoint="https://tr.example.com/remove",
        verification_endpoint="https://tr.example.com/verify",
    )
    subject = {"format": "opaque", "id": "u1"}

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            streams = StreamClient(config, client=client, token="t")
            await streams.request_verification("s1", "state")
            await streams.add_subject("s1", subject)
            await streams.remove_subject("s1", subject)
            await streams.delete("s1")
            with pytest.raises(StreamPending):
                await streams.update_status("s1", "paused")
            with pytest.raises(StreamPending):
                await streams.replace(
                    StreamConfiguration(stream_id="s1", iss=config.issuer, delivery=PollDelivery())
                )

    run(main())
    assert [path for _, path in seen] == [
        "/verify",
        "/add",
        "/remove",
        "/stream",
        "/status",
        "/stream",
    ]


def test_an_endpoint_the_transmitter_does_not_publish_is_a_clear_error() -> None:
    config = TransmitterConfig(issuer="https://tr.example.com")

    async def main() -> None:
        async with _client() as client:
            await StreamClient(config, client=client, token="t").get_status("s1")

    with pytest.raises(ValueError, match="publishes no status_endpoint"):
        run(main())


def test_verification_state_round_trips_through_the_stream(transmitter: FakeTransmitter) -> None:
    received: list[VerifiedSet] = []

    async def accept(verified: VerifiedSet) -> None:
        received.append(verified)

    async def main() -> str:
        async with _client() as client:
            streams = await _connect(transmitter, client)
            created = await streams.create(PollDelivery(), [SESSION_REVOKED])
            assert isinstance(created.delivery, PollDelivery)
            assert created.delivery.endpoint_url is not None
            state = verification_state()
            await streams.request_verification(created.stream_id, state)
            assert transmitter.verifications == [{"stream_id": created.stream_id, "state": state}]

            registry = TransmitterRegistry()
            registry.add(
                TransmitterPolicy(issuer=transmitter.issuer, audience=AUDIENCE),
                JwksCache(jwks_uri=transmitter.jwks_url, client=client),
            )
            poller = PollClient(
                created.delivery.endpoint_url,
                client=client,
                verifier=SetVerifier(registry),
                accept=accept,
                jti_store=MemoryJtiStore(),
                token=MGMT_TOKEN,
                issuer=created.iss,
                return_immediately=True,
            )
            result = await poller.poll_once(now=NOW)
            assert len(result.accepted) == 1 and not result.errors
            assert await poller.flush()
            return created.stream_id

    stream_id = run(main())
    (verified,) = received
    assert confirm_verification(transmitter.verifications[0]["state"], verified)
    assert confirm_verification(
        transmitter.verifications[0]["state"], verified, stream_id=stream_id
    )
    assert not confirm_verification("another-state", verified)
    assert not confirm_verification(
        transmitter.verifications[0]["state"], verified, stream_id="another-stream"
    )
    assert stream_updated(verified) is None
    assert transmitter.acked == [verified.jti]


def test_verification_states_are_fresh_and_unguessable() -> None:
    states = {verification_state() for _ in range(200)}
    assert len(states) == 200
    assert min(len(s) for s in states) >= 43  # 256 bits, base64url


def _verified(signer: Signer, **overrides: Any) -> VerifiedSet:
    return run(verifier_for(signer).verify(signer.sign(claims(**overrides)), now=NOW))


def test_a_verification_without_state_does_not_confirm(ec_key: Signer) -> None:
    verified = _verified(
        ec_key,
        sub_id={"format": "opaque", "id": "s1"},
        events={"https://schemas.openid.net/secevent/ssf/event-type/verification": {}},
    )
    assert not confirm_verification("expected", verified)


def test_a_session_revoked_set_is_not_a_verification(ec_key: Signer) -> None:
    assert not confirm_verification("x", _verified(ec_key))


def test_stream_updated_event_gives_the_new_status(ec_key: Signer) -> None:
    verified = _verified(
        ec_key,
        sub_id={"format": "opaque", "id": "f67e39a0a4d34d56b3aa1bc4cff0069f"},
        events={STREAM_UPDATED: {"status": "paused", "reason": "Internal error"}},
    )
    assert stream_updated(verified) == StreamStatus(
        stream_id="f67e39a0a4d34d56b3aa1bc4cff0069f", status="paused", reason="Internal error"
    )
    assert not confirm_verification("x", verified)


@pytest.mark.parametrize(
    ("sub_id", "event"),
    [
        ({"format": "email", "email": "jane@acme.example"}, {"status": "paused"}),
        ({"format": "opaque", "id": "s1"}, {"status": "sleeping"}),
        ({"format": "opaque", "id": "s1"}, {}),
    ],
)
def test_a_malformed_stream_updated_event_is_refused(
    ec_key: Signer, sub_id: dict[str, str], event: dict[str, str]
) -> None:
    verified = _verified(ec_key, sub_id=sub_id, events={STREAM_UPDATED: event})
    with pytest.raises(InvalidRequest):
        stream_updated(verified)
