"""The SSF push endpoint end to end: signed SETs over HTTP act through the one pipeline;
every bad SET gets its RFC 8935 error and changes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revocation.tables import detections, kill_switches, orders, ssf_jti
from tests.credentials import authorize
from tests.ssf.conftest import JwksServer
from tests.ssf.helpers import Signer, b64, ec_signer, rsa_signer
from tokenwarden.app import create_app
from tokenwarden.settings import Settings, SsfSettings, TransmitterSettings

ISSUER = "https://idp.acme.example/"
AUDIENCE = "https://tokenwarden.acme.example/"
AUTH = "Bearer push-secret-for-tests"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SSF = "https://schemas.openid.net/secevent/ssf/event-type/"
HEADERS = {"authorization": AUTH, "content-type": "application/secevent+jwt"}


@pytest.fixture(scope="module")
def key() -> Signer:
    return rsa_signer("k1")


@pytest.fixture
def jwks(key: Signer) -> Iterator[JwksServer]:
    with JwksServer() as server:
        server.serve({"keys": [key.jwk]})
        yield server


@pytest.fixture
def client(tmp_path: Path, jwks: JwksServer) -> Iterator[TestClient]:
    transmitter = TransmitterSettings(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_uri=jwks.url,
        authorization_header=AUTH,  # type: ignore[arg-type]
        tenant="acme",
    )
    cfg = Settings(
        database_url=f"sqlite:///{tmp_path / 'ssf.db'}",
        ssf=SsfSettings(transmitters=[transmitter], jwks_min_refresh_seconds=0),
    )
    with TestClient(create_app(cfg)) as c:
        authorize(c)
        yield c


_jti = iter(range(1_000_000))


def set_claims(
    event_uri: str, event: dict[str, Any], subject: dict[str, Any], **over: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": f"jti-{next(_jti)}",
        "iat": int(time.time()) - 1,
        "txn": "txn-1",
        "sub_id": subject,
        "events": {event_uri: event},
    }
    payload.update(over)
    return payload


def push(client: TestClient, token: str | bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        "/ssf/events", content=token, headers=HEADERS if headers is None else headers
    )


def post_events(client: TestClient, events: list[dict[str, Any]]) -> None:
    r = client.post("/v1/events?wait=true", json=events)
    assert r.status_code == 202, r.text


def family(
    fid: str,
    *,
    user: str = "jane@acme.example",
    session: str | None = None,
    device: str | None = None,
    at: int = 1_800_000_000,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if session:
        attrs["session_id"] = session
    if device:
        attrs["device_id"] = device
    return {
        "time": at,
        "tenant": "acme",
        "action": "token.issued",
        "user": user,
        "agent": "crm-followup",
        "client_id": "agent-crm",
        "token": {"id": f"{fid}-rt0", "family_id": fid, "type": "refresh_token"},
        "attributes": attrs,
    }


def allowed(client: TestClient, **query: str) -> bool:
    r = client.post("/v1/check", json={"tenant": "acme", **query})
    assert r.status_code == 200
    return bool(r.json()["allow"])


def counts(client: TestClient) -> tuple[int, ...]:
    db = client.app.state.services.db  # type: ignore[attr-defined]
    with db.connect() as conn:
        return tuple(
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (detections, orders, kill_switches, ssf_jti)
        )


# -- acting on signals ---------------------------------------------------------------------


def test_session_revoked_revokes_that_sessions_families(client: TestClient, key: Signer) -> None:
    post_events(client, [family("f-s1", session="sess-1"), family("f-s2", session="sess-2")])
    subject = {
        "format": "complex",
        "user": {"format": "email", "email": "jane@acme.example"},
        "session": {"format": "opaque", "id": "sess-1"},
    }
    r = push(client, key.sign(set_claims(CAEP + "session-revoked", {}, subject)))
    assert r.status_code == 202
    assert r.content == b""
    assert not allowed(client, family_id="f-s1")
    assert not allowed(client, token_id="f-s1-rt0")
    assert allowed(client, family_id="f-s2")
    [order] = client.get("/v1/orders").json()["items"]
    assert order["target"] == {"kind": "session", "tenant": "acme", "value": "sess-1"}
    assert order["rule"] == "caep-session-revoked-revokes-families"
    [det] = client.get("/v1/detections").json()["items"]
    assert det["detector"] == "signal"
    assert det["evidence"]["issuer"] == ISSUER
    assert "session-revoked" in det["reason"]


def test_session_revoked_without_a_session_revokes_the_users_families(
    client: TestClient, key: Signer
) -> None:
    post_events(client, [family("f-1"), family("f-2"), family("f-bob", user="bob@acme.example")])
    subject = {"format": "email", "email": "jane@acme.example"}
    assert (
        push(client, key.sign(set_claims(CAEP + "session-revoked", {}, subject))).status_code == 202
    )
    assert not allowed(client, family_id="f-1")
    assert not allowed(client, family_id="f-2")
    assert allowed(client, family_id="f-bob")


def test_account_disabled_then_enabled_throws_and_releases_the_kill_switch(
    client: TestClient, key: Signer
) -> None:
    jane = {"format": "email", "email": "jane@acme.example"}
    post_events(client, [family("f-1")])
    assert (
        push(
            client, key.sign(set_claims(RISC + "account-disabled", {"reason": "hijacking"}, jane))
        ).status_code
        == 202
    )
    assert not allowed(client, user="jane@acme.example")
    # a family first seen after the switch is covered too
    post_events(client, [family("f-new", at=1_800_000_100)])
    assert not allowed(client, family_id="f-new")
    assert push(client, key.sign(set_claims(RISC + "account-enabled", {}, jane))).status_code == 202
    assert allowed(client, user="jane@acme.example")
    assert allowed(client, family_id="f-new")
    # disabled again: a new cause, a new kill switch
    assert (
        push(client, key.sign(set_claims(RISC + "account-disabled", {}, jane))).status_code == 202
    )
    assert not allowed(client, user="jane@acme.example")


def test_account_enabled_never_releases_a_compromise_kill_switch(
    client: TestClient, key: Signer
) -> None:
    jane = {"format": "email", "email": "jane@acme.example"}
    assert (
        push(
            client,
            key.sign(
                set_claims(RISC + "credential-compromise", {"credential_type": "password"}, jane)
            ),
        ).status_code
        == 202
    )
    assert not allowed(client, user="jane@acme.example")
    assert push(client, key.sign(set_claims(RISC + "account-enabled", {}, jane))).status_code == 202
    assert not allowed(client, user="jane@acme.example")


def test_token_claims_change_on_a_jwt_id_revokes_that_tokens_family(
    client: TestClient, key: Signer
) -> None:
    post_events(client, [family("f-1"), family("f-2")])
    subject = {"format": "jwt_id", "iss": ISSUER, "jti": "f-1-rt0"}
    token = key.sign(set_claims(CAEP + "token-claims-change", {"claims": {"role": "ro"}}, subject))
    assert push(client, token).status_code == 202
    assert not allowed(client, family_id="f-1")
    assert allowed(client, family_id="f-2")


def test_device_not_compliant_revokes_the_families_used_from_it(
    client: TestClient, key: Signer
) -> None:
    post_events(client, [family("f-d1", device="dev-1"), family("f-d2", device="dev-2")])
    subject = {
        "format": "complex",
        "device": {"format": "opaque", "id": "dev-1"},
        "user": {"format": "email", "email": "jane@acme.example"},
    }
    compliant = set_claims(
        CAEP + "device-compliance-change",
        {"previous_status": "not-compliant", "current_status": "compliant"},
        subject,
    )
    assert push(client, key.sign(compliant)).status_code == 202
    assert allowed(client, family_id="f-d1")
    bad = set_claims(
        CAEP + "device-compliance-change",
        {"previous_status": "compliant", "current_status": "not-compliant"},
        subject,
    )
    assert push(client, key.sign(bad)).status_code == 202
    assert not allowed(client, family_id="f-d1")
    assert allowed(client, family_id="f-d2")


def test_a_redelivered_jti_is_answered_202_and_acted_on_once(
    client: TestClient, key: Signer
) -> None:
    post_events(client, [family("f-1")])
    token = key.sign(
        set_claims(CAEP + "session-revoked", {}, {"format": "email", "email": "jane@acme.example"})
    )
    assert push(client, token).status_code == 202
    before = counts(client)
    again = push(client, token)
    assert again.status_code == 202
    assert again.content == b""
    assert counts(client) == before
    assert before[:2] == (1, 1)


def test_verification_event_confirms_the_requested_state(client: TestClient, key: Signer) -> None:
    from datetime import UTC, datetime

    from tokenwarden import ssf_streams

    db = client.app.state.services.db  # type: ignore[attr-defined]
    with db.begin() as conn:
        ssf_streams.request_verification(conn, issuer=ISSUER, state="st-42", now=datetime.now(UTC))
    stream = {"format": "opaque", "id": "stream-1"}
    assert (
        push(
            client, key.sign(set_claims(SSF + "verification", {"state": "wrong"}, stream))
        ).status_code
        == 202
    )
    with db.connect() as conn:
        assert ssf_streams.get_stream(conn, issuer=ISSUER).verified_at is None
    assert (
        push(
            client, key.sign(set_claims(SSF + "verification", {"state": "st-42"}, stream))
        ).status_code
        == 202
    )
    with db.connect() as conn:
        assert ssf_streams.get_stream(conn, issuer=ISSUER).verified_at is not None
    assert counts(client)[:2] == (0, 0)  # no action


def test_stream_disabled_by_stream_updated_refuses_with_access_denied(
    client: TestClient, key: Signer
) -> None:
    stream = {"format": "opaque", "id": "stream-1"}
    updated = set_claims(SSF + "stream-updated", {"status": "disabled", "reason": "admin"}, stream)
    assert push(client, key.sign(updated)).status_code == 202
    r = push(
        client,
        key.sign(
            set_claims(
                CAEP + "session-revoked", {}, {"format": "email", "email": "jane@acme.example"}
            )
        ),
    )
    assert r.status_code == 403
    assert r.json()["err"] == "access_denied"


# -- refusals: exact status and err, nothing changed ----------------------------------------


def refused(
    client: TestClient,
    token: str | bytes,
    status: int,
    err: str,
    headers: dict[str, str] | None = None,
) -> None:
    before = counts(client)
    r = push(client, token, headers)
    assert r.status_code == status, r.text
    assert r.json()["err"] == err
    assert r.json()["description"]
    assert counts(client) == before


def good(**over: Any) -> dict[str, Any]:
    return set_claims(
        RISC + "account-disabled", {}, {"format": "email", "email": "jane@acme.example"}, **over
    )


def test_tampered_payload(client: TestClient, key: Signer) -> None:
    h, _, s = key.sign(good()).split(".")
    forged = b64(orjson.dumps(good(sub_id={"format": "email", "email": "ceo@acme.example"})))
    refused(client, f"{h}.{forged}.{s}", 400, "invalid_key")


def test_signature_by_an_unknown_key(client: TestClient) -> None:
    refused(client, rsa_signer("k1").sign(good()), 400, "invalid_key")


def test_alg_none(client: TestClient, key: Signer) -> None:
    header = b64(orjson.dumps({"alg": "none", "typ": "secevent+jwt", "kid": "k1"}))
    refused(client, f"{header}.{b64(orjson.dumps(good()))}.", 400, "invalid_key")


def test_hs256_signed_with_the_public_key(client: TestClient, key: Signer) -> None:
    import hashlib
    import hmac

    secret = orjson.dumps(key.jwk)
    header = b64(orjson.dumps({"alg": "HS256", "typ": "secevent+jwt", "kid": "k1"}))
    body = b64(orjson.dumps(good()))
    sig = b64(hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
    refused(client, f"{header}.{body}.{sig}", 400, "invalid_key")


def test_rotated_key_is_fetched_and_a_never_published_kid_refused(
    client: TestClient, key: Signer, jwks: JwksServer
) -> None:
    new = ec_signer("k2")
    jwks.serve({"keys": [key.jwk, new.jwk]})  # the transmitter rotates
    assert push(client, new.sign(good())).status_code == 202
    refused(client, ec_signer("k3").sign(good()), 400, "invalid_key")


def test_wrong_issuer(client: TestClient, key: Signer) -> None:
    refused(client, key.sign(good(iss="https://evil.example/")), 400, "invalid_issuer")


def test_wrong_audience(client: TestClient, key: Signer) -> None:
    refused(client, key.sign(good(aud="https://someone-else.example/")), 400, "invalid_audience")


def test_iat_in_the_future(client: TestClient, key: Signer) -> None:
    refused(client, key.sign(good(iat=int(time.time()) + 3600)), 400, "invalid_request")


def test_two_events_under_strict_mode(client: TestClient, key: Signer) -> None:
    claims = good()
    claims["events"][CAEP + "session-revoked"] = {}
    refused(client, key.sign(claims), 400, "invalid_request")


def test_body_over_the_limit(client: TestClient, key: Signer) -> None:
    claims = good()
    claims["padding"] = "x" * 70_000
    refused(client, key.sign(claims), 400, "invalid_request")


@pytest.mark.parametrize("body", [b"hello", b'{"iss": 1}', b"a.b", b"", "é".encode()])
def test_non_jwt_bodies(client: TestClient, body: bytes) -> None:
    refused(client, body, 400, "invalid_request")


def test_truncated_jws(client: TestClient, key: Signer) -> None:
    token = key.sign(good())
    refused(client, token[: len(token) - 20], 400, "invalid_key")
    refused(client, token.rsplit(".", 1)[0], 400, "invalid_request")


def test_missing_and_wrong_authorization(client: TestClient, key: Signer) -> None:
    token = key.sign(good())
    refused(
        client,
        token,
        401,
        "authentication_failed",
        headers={"content-type": "application/secevent+jwt"},
    )
    refused(
        client,
        token,
        401,
        "authentication_failed",
        headers={"authorization": "Bearer guess", "content-type": "application/secevent+jwt"},
    )


def test_wrong_content_type_is_tolerated(client: TestClient, key: Signer) -> None:
    r = push(
        client, key.sign(good()), headers={"authorization": AUTH, "content-type": "text/plain"}
    )
    assert r.status_code == 202


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=2048))
def test_arbitrary_bytes_never_get_a_5xx(client: TestClient, body: bytes) -> None:
    assert push(client, body).status_code < 500


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    extra=st.dictionaries(
        st.sampled_from(["iss", "aud", "jti", "iat", "events", "sub_id", "txn", "sub", "exp", "x"]),
        json_values,
        max_size=5,
    )
)
def test_arbitrary_signed_claims_never_get_a_5xx(
    client: TestClient, key: Signer, extra: dict[str, Any]
) -> None:
    claims = {**good(), **extra}
    assert push(client, key.sign(claims)).status_code < 500
