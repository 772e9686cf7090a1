"""The RFC 8936 poll client against a real transmitter on 127.0.0.1.

The transmitter serves a SET until it is acknowledged or reported in ``setErrs``, so what the
client sends in ``ack`` / ``setErrs`` decides what it is served next. Waiting goes through an
injected ``sleep`` that records the delays: no test sleeps for real between polls.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from ssf import (
    ERROR_CODES,
    Backoff,
    ForgettingJtiStore,
    InvalidRequest,
    JwksCache,
    MemoryJtiStore,
    PollClient,
    PollResult,
    SetVerifier,
    StreamError,
    TransmitterPolicy,
    TransmitterRegistry,
    VerifiedSet,
)
from tests.ssf.helpers import AUDIENCE, NOW, claims, ec_signer, run
from tests.ssf.transmitter import MGMT_TOKEN, FakeTransmitter

STREAM = "s-poll"


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False)


def _poller(
    transmitter: FakeTransmitter,
    client: httpx.AsyncClient,
    accept: Callable[[VerifiedSet], Awaitable[None]],
    **kwargs: Any,
) -> PollClient:
    registry = TransmitterRegistry()
    registry.add(
        TransmitterPolicy(issuer=transmitter.issuer, audience=AUDIENCE),
        JwksCache(jwks_uri=transmitter.jwks_url, client=client),
    )
    kwargs.setdefault("jti_store", MemoryJtiStore())
    kwargs.setdefault("return_immediately", True)
    kwargs.setdefault("token", MGMT_TOKEN)
    endpoint = kwargs.pop("endpoint", transmitter.poll_url(STREAM))
    return PollClient(
        endpoint,
        client=client,
        verifier=SetVerifier(registry),
        accept=accept,
        issuer=transmitter.issuer,
        **kwargs,
    )


class Recorder:
    """``accept`` that records, and fails the first ``fail`` calls for the jtis named."""

    def __init__(self, transmitter: FakeTransmitter, fail: dict[str, int] | None = None) -> None:
        self.transmitter = transmitter
        self.fail = dict(fail or {})
        self.calls: list[str] = []
        self.accepted: list[str] = []
        self.acked_when_called: list[bool] = []

    async def __call__(self, verified: VerifiedSet) -> None:
        self.calls.append(verified.jti)
        self.acked_when_called.append(verified.jti in self.transmitter.acked)
        if self.fail.get(verified.jti, 0) > 0:
            self.fail[verified.jti] -= 1
            raise RuntimeError("database is down")
        self.accepted.append(verified.jti)


class FakeSleep:
    """Records every requested delay; sets ``stop`` once ``stop_after`` delays were asked."""

    def __init__(self, stop: asyncio.Event, stop_after: int) -> None:
        self.stop = stop
        self.stop_after = stop_after
        self.delays: list[float] = []
        self.hooks: dict[int, Callable[[], None]] = {}

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        hook = self.hooks.get(len(self.delays))
        if hook is not None:
            hook()
        if len(self.delays) >= self.stop_after:
            self.stop.set()
        await asyncio.sleep(0)


def test_a_set_is_acked_only_in_the_request_after_accept_returned(
    transmitter: FakeTransmitter,
) -> None:
    transmitter.publish(STREAM, "jti-1")
    transmitter.publish(STREAM, "jti-2")

    async def main(accept: Recorder) -> tuple[PollResult, PollResult, Any]:
        async with _client() as client:
            poller = _poller(transmitter, client, accept)
            first = await poller.poll_once(now=NOW)
            outstanding = poller.outstanding
            assert transmitter.acked == []  # accepted, not yet acknowledged
            second = await poller.poll_once(now=NOW)
            assert poller.outstanding == ((), {})
            return first, second, outstanding

    accept = Recorder(transmitter)
    first, second, outstanding = run(main(accept))
    assert accept.calls == ["jti-1", "jti-2"]
    assert accept.acked_when_called == [False, False]
    assert first.received == first.accepted == ("jti-1", "jti-2")
    assert first.duplicates == first.failed == () and not first.errors
    assert outstanding[0] == ("jti-1", "jti-2")
    assert transmitter.polls[0] == {
        "maxEvents": 100,
        "returnImmediately": True,
        "ack": [],
        "setErrs": {},
    }
    assert transmitter.polls[1]["ack"] == ["jti-1", "jti-2"]
    assert transmitter.acked == ["jti-1", "jti-2"]
    assert second.received == ()  # acknowledged: not served again
    polls = [r for r in transmitter.requests if r.path == f"/ssf/poll/{STREAM}"]
    assert len(polls) == 2
    assert all(r.authorization == f"Bearer {MGMT_TOKEN}" for r in polls)


def test_accept_failure_is_neither_acked_nor_reported_and_comes_back(
    transmitter: FakeTransmitter,
) -> None:
    transmitter.publish(STREAM, "jti-1")
    accept = Recorder(transmitter, fail={"jti-1": 1})

    async def main() -> list[PollResult]:
        async with _client() as client:
            poller = _poller(transmitter, client, accept)
            return [await poller.poll_once(now=NOW) for _ in range(3)]

    first, second, third = run(main())
    assert first.failed == ("jti-1",) and first.accepted == () and not first.errors
    assert transmitter.polls[1]["ack"] == [] and transmitter.polls[1]["setErrs"] == {}
    assert second.received == ("jti-1",)  # redelivered because it was not acknowledged
    assert second.accepted == ("jti-1",) and second.duplicates == ()
    assert accept.calls == ["jti-1", "jti-1"]  # taken again, not mistaken for a duplicate
    assert transmitter.polls[2]["ack"] == ["jti-1"]
    assert transmitter.acked == ["jti-1"] and transmitter.set_errs == {}
    assert third.received == ()


class ForgetfulStore(MemoryJtiStore):
    """A store with ``forget``: what a durable store does so a restart re-accepts."""

    def __init__(self) -> None:
        super().__init__()
        self.forgotten: list[tuple[str, str]] = []

    async def forget(self, issuer: str, jti: str) -> None:
        self.forgotten.append((issuer, jti))
        self._expiry.pop((issuer, jti), None)


def test_a_failed_accept_is_forgotten_by_a_store_that_can(transmitter: FakeTransmitter) -> None:
    transmitter.publish(STREAM, "jti-1")
    store = ForgetfulStore()
    assert isinstance(store, ForgettingJtiStore)
    accept = Recorder(transmitter, fail={"jti-1": 1})

    async def main() -> PollResult:
        async with _client() as client:
            await _poller(transmitter, client, accept, jti_store=store).poll_once(now=NOW)
            # a new client (a restarted process) with the same store
            return await _poller(transmitter, client, accept, jti_store=store).poll_once(now=NOW)

    second = run(main())
    assert store.forgotten == [(transmitter.issuer, "jti-1")]
    assert second.accepted == ("jti-1",)
    assert accept.accepted == ["jti-1"]


def test_refused_sets_are_reported_in_set_errs_with_rfc8935_codes(
    transmitter: FakeTransmitter,
) -> None:
    impostor = ec_signer("ec-1")  # the transmitter's kid, another key
    transmitter.publish(STREAM, "good")
    transmitter.publish(STREAM, "wrong-aud", transmitter.sign("wrong-aud", aud="https://x/"))
    transmitter.publish(
        STREAM, "bad-sig", impostor.sign(claims(iss=transmitter.issuer, jti="bad-sig"))
    )
    transmitter.publish(
        STREAM, "stranger", impostor.sign(claims(iss="https://stranger/", jti="stranger"))
    )
    transmitter.publish(STREAM, "garbage", "not-a-jws")
    transmitter.publish(STREAM, "renamed", transmitter.sign("the-real-jti"))
    untyped = transmitter.signer.sign(claims(iss=transmitter.issuer, jti="no-typ"), typ=None)
    transmitter.publish(STREAM, "no-typ", untyped)
    accept = Recorder(transmitter)

    async def main() -> tuple[PollResult, PollResult]:
        async with _client() as client:
            poller = _poller(transmitter, client, accept)
            return await poller.poll_once(now=NOW), await poller.poll_once(now=NOW)

    first, second = run(main())
    expected = {
        "wrong-aud": "invalid_audience",
        "bad-sig": "invalid_key",
        "stranger": "invalid_issuer",
        "garbage": "invalid_request",
        "renamed": "invalid_request",
        "no-typ": "invalid_request",
    }
    assert {jti: e.err for jti, e in first.errors.items()} == expected
    assert first.accepted == ("good",)
    assert accept.calls == ["good"]  # nothing refused reached accept
    reported = transmitter.polls[1]["setErrs"]
    assert {jti: e["err"] for jti, e in reported.items()} == expected
    assert all(set(e) == {"err", "description"} and e["description"] for e in reported.values())
    assert {e["err"] for e in reported.values()} <= ERROR_CODES
    assert "is not its name in sets" in reported["renamed"]["description"]
    assert transmitter.polls[1]["ack"] == ["good"]
    assert second.received == ()  # reported SETs are not served again


def test_accept_refusing_with_an_ssf_error_reports_the_set(transmitter: FakeTransmitter) -> None:
    transmitter.publish(STREAM, "critical")

    async def accept(verified: VerifiedSet) -> None:
        raise InvalidRequest("subject has a critical member we cannot process (SSF 1.0 §3)")

    async def main() -> tuple[PollResult, PollResult]:
        async with _client() as client:
            poller = _poller(transmitter, client, accept)
            return await poller.poll_once(now=NOW), await poller.poll_once(now=NOW)

    first, second = run(main())
    assert first.errors["critical"].err == "invalid_request"
    assert first.failed == () and first.accepted == ()
    assert transmitter.set_errs["critical"] == {
        "err": "invalid_request",
        "description": "subject has a critical member we cannot process (SSF 1.0 §3)",
    }
    assert transmitter.acked == [] and second.received == ()


def test_a_redelivered_jti_is_acked_again_without_accepting_again(
    transmitter: FakeTransmitter,
) -> None:
    transmitter.publish(STREAM, "jti-1")
    accept = Recorder(transmitter)

    async def main() -> list[PollResult]:
        async with _client() as client:
            poller = _poller(transmitter, client, accept)
            results = [await poller.poll_once(now=NOW), await poller.poll_once(now=NOW)]
            transmitter.publish(STREAM, "jti-1")  # the transmitter delivers it once more
            results.append(await poller.poll_once(now=NOW))
            results.append(await poller.poll_once(now=NOW))
            return results

    results = run(main())
    assert results[0].accepted == ("jti-1",)
    assert results[2].received == ("jti-1",)
    assert results[2].duplicates == ("jti-1",) and results[2].accepted == ()
    assert accept.calls == ["jti-1"]
    assert transmitter.polls[3]["ack"] == ["jti-1"]
    assert transmitter.acked == ["jti-1", "jti-1"]


def test_more_available_is_drained_without_pausing(transmitter: FakeTransmitter) -> None:
    jtis = [f"jti-{n}" for n in range(1, 6)]
    for jti in jtis:
        transmitter.publish(STREAM, jti)
    accept = Recorder(transmitter)

    async def main() -> FakeSleep:
        stop = asyncio.Event()
        sleep = FakeSleep(stop, stop_after=1)
        async with _client() as client:
            poller = _poller(transmitter, client, accept, max_events=2, interval=30.0)
            await poller.run(stop=stop, clock=lambda: NOW, sleep=sleep)
        return sleep

    sleep = run(main())
    assert [a["moreAvailable"] for a in transmitter.poll_answers[:3]] == [True, True, False]
    assert [len(a["sets"]) for a in transmitter.poll_answers[:3]] == [2, 2, 1]
    assert sleep.delays == [30.0]  # one pause, after the queue was drained
    assert [p["maxEvents"] for p in transmitter.polls[:3]] == [2, 2, 2]
    assert accept.calls == jtis
    assert transmitter.acked == jtis
    # stopping sends the outstanding acknowledgement in an acknowledge-only request
    assert transmitter.polls[-1] == {
        "maxEvents": 0,
        "returnImmediately": True,
        "ack": ["jti-5"],
        "setErrs": {},
    }


def test_outstanding_acks_and_errors_are_sent_when_stopping(transmitter: FakeTransmitter) -> None:
    transmitter.publish(STREAM, "jti-1")
    transmitter.publish(STREAM, "bad", transmitter.sign("bad", aud="https://x/"))
    stop = asyncio.Event()

    async def accept(verified: VerifiedSet) -> None:
        stop.set()  # asked to stop while the round is being processed

    async def main() -> FakeSleep:
        sleep = FakeSleep(stop, stop_after=100)
        async with _client() as client:
            poller = _poller(transmitter, client, accept)
            await poller.run(stop=stop, clock=lambda: NOW, sleep=sleep)
            assert poller.outstanding == ((), {})
        return sleep

    run(main())
    assert len(transmitter.polls) == 2
    final = transmitter.polls[1]
    assert final["maxEvents"] == 0 and final["returnImmediately"] is True
    assert final["ack"] == ["jti-1"]
    assert final["setErrs"]["bad"]["err"] == "invalid_audience"
    assert transmitter.acked == ["jti-1"] and set(transmitter.set_errs) == {"bad"}


def test_backoff_on_server_errors_grows_with_jitter_is_capped_and_resets(
    transmitter: FakeTransmitter,
) -> None:
    transmitter.publish(STREAM, "jti-1")
    transmitter.fail_polls = [500, 503, 500, 502, 500, 500]
    accept = Recorder(transmitter)
    backoff = Backoff(initial=1.0, maximum=8.0, multiplier=2.0, jitter=0.25)

    async def main() -> FakeSleep:
        stop = asyncio.Event()
        sleep = FakeSleep(stop, stop_after=9)
        # 7th pause is the short-poll interval after the first success; fail once more then
        sleep.hooks[7] = lambda: transmitter.fail_polls.append(500)
        async with _client() as client:
            poller = _poller(
                transmitter, client, accept, backoff=backoff, interval=5.0, rng=random.Random(7)
            )
            await poller.run(stop=stop, clock=lambda: NOW, sleep=sleep)
        return sleep

    sleep = run(main())
    errors, interval, after_reset = sleep.delays[:6], sleep.delays[6], sleep.delays[7]
    for delay, base in zip(errors, [1, 2, 4, 8, 8, 8], strict=True):
        assert base * 0.75 <= delay <= base
    assert errors[0] < errors[1] < errors[2] < errors[3]  # exponential
    assert max(errors) <= 8.0  # capped
    assert interval == 5.0
    assert 0.75 <= after_reset <= 1.0  # a success resets the backoff
    assert accept.calls == ["jti-1"]
    assert "jti-1" in transmitter.acked  # acks survived the failures and were delivered


def test_no_answer_at_all_also_backs_off() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}/ssf/poll/{STREAM}"

    async def accept(verified: VerifiedSet) -> None:
        raise AssertionError("nothing to accept")

    async def main() -> FakeSleep:
        stop = asyncio.Event()
        sleep = FakeSleep(stop, stop_after=3)
        async with _client() as client:
            poller = PollClient(
                endpoint,
                client=client,
                verifier=SetVerifier(TransmitterRegistry()),
                accept=accept,
                jti_store=MemoryJtiStore(),
                backoff=Backoff(initial=0.5, maximum=10.0, jitter=0.0),
            )
            with pytest.raises(StreamError) as caught:
                await poller.poll_once(now=NOW)
            assert caught.value.status is None and caught.value.retryable
            await poller.run(stop=stop, clock=lambda: NOW, sleep=sleep)
        return sleep

    assert run(main()).delays == [0.5, 1.0, 2.0]


def test_a_failing_token_source_backs_off_instead_of_crashing(
    transmitter: FakeTransmitter,
) -> None:
    attempts: list[int] = []

    async def token() -> str:
        attempts.append(1)
        if len(attempts) <= 2:
            raise httpx.ConnectError("token endpoint down")
        return MGMT_TOKEN

    async def accept(verified: VerifiedSet) -> None:
        pass

    async def main() -> FakeSleep:
        stop = asyncio.Event()
        sleep = FakeSleep(stop, stop_after=3)
        async with _client() as client:
            poller = _poller(transmitter, client, accept, backoff=Backoff(jitter=0.0), interval=7.0)
            poller._token = token
            await poller.run(stop=stop, clock=lambda: NOW, sleep=sleep)
        return sleep

    assert run(main()).delays == [1.0, 2.0, 7.0]
    assert len(transmitter.polls) == 1  # the third attempt got a token and polled


def test_a_long_poll_may_outlast_the_plain_timeout(transmitter: FakeTransmitter) -> None:
    transmitter.long_poll_wait = 0.6

    async def accept(verified: VerifiedSet) -> None:
        pass

    async def main() -> PollResult:
        async with _client() as client:
            poller = _poller(
                transmitter,
                client,
                accept,
                return_immediately=False,
                long_poll_seconds=1.0,
                timeout=0.3,
            )
            assert poller.timeout.read == pytest.approx(1.3)
            assert poller.timeout.connect == pytest.approx(0.3)
            return await poller.poll_once(now=NOW)

    started = time.monotonic()
    result = run(main())
    assert time.monotonic() - started >= 0.5  # the transmitter held the request
    assert result.received == () and not result.more_available
    assert transmitter.polls[0]["returnImmediately"] is False


def test_stop_interrupts_a_long_poll_in_flight_and_flushes_acks(
    transmitter: FakeTransmitter,
) -> None:
    transmitter.long_poll_wait = 30.0
    transmitter.publish(STREAM, "jti-1")
    accept = Recorder(transmitter)

    async def main() -> float:
        stop = asyncio.Event()
        sleep = FakeSleep(stop, stop_after=100)
        async with _client() as client:
            poller = _poller(
                transmitter, client, accept, return_immediately=False, long_poll_seconds=30.0
            )
            runner = asyncio.create_task(poller.run(stop=stop, clock=lambda: NOW, sleep=sleep))
            while len(transmitter.polls) < 2:  # the second poll is being held
                await asyncio.sleep(0.01)
            started = time.monotonic()
            stop.set()
            await asyncio.wait_for(runner, timeout=5)
            assert sleep.delays == []
            return time.monotonic() - started

    took = run(main())
    assert took < 2.0  # not the 30 s the transmitter would have held the poll
    assert transmitter.polls[1]["returnImmediately"] is False
    assert transmitter.polls[1]["ack"] == ["jti-1"]
    # the held request's answer never came, so the ack is sent again, acknowledge-only
    assert transmitter.polls[-1]["maxEvents"] == 0
    assert transmitter.polls[-1]["ack"] == ["jti-1"]
    assert accept.calls == ["jti-1"]


def test_a_failed_exchange_keeps_the_outstanding_acks(transmitter: FakeTransmitter) -> None:
    transmitter.publish(STREAM, "jti-1")
    accept = Recorder(transmitter)

    async def main() -> None:
        async with _client() as client:
            poller = _poller(transmitter, client, accept)
            await poller.poll_once(now=NOW)
            transmitter.fail_polls = [503]
            with pytest.raises(StreamError) as caught:
                await poller.poll_once(now=NOW)
            assert caught.value.status == 503 and caught.value.retryable
            assert "temporarily unavailable" in caught.value.body
            assert poller.outstanding[0] == ("jti-1",)  # not known to have arrived
            result = await poller.poll_once(now=NOW)
            assert result.received == ()
            assert poller.outstanding == ((), {})

    run(main())
    assert [p["ack"] for p in transmitter.polls] == [[], ["jti-1"], ["jti-1"]]
    assert accept.calls == ["jti-1"]


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"sets": []}', b'{"sets": {}, "moreAvailable": "yes"}', b"not json"],
)
def test_malformed_poll_responses_raise_invalid_request(body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    async def accept(verified: VerifiedSet) -> None:
        pass

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            poller = PollClient(
                "https://tr.example.com/poll",
                client=client,
                verifier=SetVerifier(TransmitterRegistry()),
                accept=accept,
                jti_store=MemoryJtiStore(),
            )
            await poller.poll_once(now=NOW)

    with pytest.raises(InvalidRequest):
        run(main())


def test_backoff_parameters_are_checked() -> None:
    for bad in (
        {"initial": 0.0},
        {"initial": 5.0, "maximum": 1.0},
        {"multiplier": 0.5},
        {"jitter": 1.0},
    ):
        with pytest.raises(ValueError, match="backoff"):
            Backoff(**bad)  # type: ignore[arg-type]
    huge = Backoff(initial=1.0, maximum=60.0, jitter=0.0)
    assert huge.delay(10_000, random.Random(1)) == 60.0  # no overflow far out


def test_poll_endpoint_must_use_tls() -> None:
    async def accept(verified: VerifiedSet) -> None:
        pass

    async def main() -> None:
        async with _client() as client:
            PollClient(
                "http://tr.example.com/poll",
                client=client,
                verifier=SetVerifier(TransmitterRegistry()),
                accept=accept,
                jti_store=MemoryJtiStore(),
            )

    with pytest.raises(ValueError, match="does not use https"):
        run(main())


def test_sets_are_verified_at_the_time_the_clock_gives(transmitter: FakeTransmitter) -> None:
    transmitter.publish(STREAM, "jti-1")
    accept = Recorder(transmitter)
    early: datetime = NOW - timedelta(hours=1)  # the SET's iat is an hour in the future then

    async def main() -> PollResult:
        async with _client() as client:
            return await _poller(transmitter, client, accept).poll_once(now=early)

    result = run(main())
    assert result.errors["jti-1"].err == "invalid_request"
    assert "in the future" in result.errors["jti-1"].description
    assert accept.calls == []
