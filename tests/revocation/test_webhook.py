"""The ``webhook`` adapter: a signed POST with an idempotency key, against a real receiver;
status codes become retryable or permanent failures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from revocation import TargetKind, store
from revocation.adapters.webhook import PLUGIN, WebhookAdapter, WebhookConfig
from revocation.delivery import (
    AdapterConfigError,
    AdapterDeps,
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    Scope,
    TokenRef,
)
from revocation.signing import REPLAY_WINDOW, SignatureError, sign, verify_signature
from tests.revocation.fakes import Clock, dispatcher, routing
from tests.revocation.helpers import chain, order
from tests.revocation.receiver import receiving

SECRET = "webhook-secret-0123456789"


def delivery() -> Delivery:
    o = order(TargetKind.FAMILY, "fam-1")
    tok = TokenRef("fam-1-t0", "fam-1", "refresh_token", o.created_at, None)
    return Delivery(
        id=f"{o.id}/hook", adapter="hook", attempt=1, order=o, scope=Scope(tokens=(tok,))
    )


def adapter(handler: Any, **cfg: Any) -> tuple[WebhookAdapter, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    config = WebhookConfig.model_validate(
        {"url": "https://broker.example/revoke", "secret": SECRET, **cfg}
    )
    return WebhookAdapter("hook", config, http), http


def test_the_post_is_signed_over_timestamp_and_body_with_an_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

    async def run() -> Any:
        a, http = adapter(handler, headers={"X-Tenant-Route": "eu"})
        async with http:
            return await a.deliver(delivery(), now=now)

    assert asyncio.run(run()) == {"status": 202}
    (req,) = seen
    d = delivery()
    assert req.headers["idempotency-key"] == d.id
    assert req.headers["x-tenant-route"] == "eu"
    assert req.headers["content-type"] == "application/json"
    ts = verify_signature(
        SECRET.encode(), req.headers["tokenwarden-signature"], req.content, now=now.timestamp()
    )
    assert ts == int(now.timestamp())
    body = orjson.loads(req.content)
    assert body["type"] == "tokenwarden.revocation"
    assert body["order"]["target"] == {"kind": "family", "tenant": "acme", "value": "fam-1"}
    assert body["tokens"] == [
        {"token_id": "fam-1-t0", "family_id": "fam-1", "type": "refresh_token"}
    ]


def test_the_receiver_side_refuses_forgeries_and_replays() -> None:
    body = b'{"x": 1}'
    header = sign(b"k" * 16, timestamp=1_000_000, body=body)
    assert verify_signature(b"k" * 16, header, body, now=1_000_000 + REPLAY_WINDOW) == 1_000_000
    with pytest.raises(SignatureError, match="replay window"):
        verify_signature(b"k" * 16, header, body, now=1_000_000 + REPLAY_WINDOW + 1)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(b"k" * 16, header, b'{"x": 2}', now=1_000_000)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(b"j" * 16, header, body, now=1_000_000)
    with pytest.raises(SignatureError, match="malformed"):
        verify_signature(b"k" * 16, "v1=abc", body, now=1_000_000)
    with pytest.raises(SignatureError, match="missing"):
        verify_signature(b"k" * 16, None, body, now=1_000_000)


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after"),
    [
        (503, {"retry-after": "7"}, DeliveryError, 7.0),
        (429, {}, DeliveryError, None),
        (500, {}, DeliveryError, None),
        (400, {}, PermanentDeliveryError, None),
        (401, {}, PermanentDeliveryError, None),
    ],
)
def test_statuses_become_retryable_or_permanent_failures(
    status: int, headers: dict[str, str], error: type[Exception], retry_after: float | None
) -> None:
    async def run() -> None:
        a, http = adapter(lambda r: httpx.Response(status, headers=headers, text="nope"))
        async with http:
            await a.deliver(delivery(), now=datetime.now(UTC))

    with pytest.raises(error, match=f"answered {status}: nope") as info:
        asyncio.run(run())
    assert getattr(info.value, "retry_after", None) == retry_after
    if error is DeliveryError:
        assert not isinstance(info.value, PermanentDeliveryError)


def test_a_network_failure_is_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async def run() -> None:
        a, http = adapter(handler)
        async with http:
            await a.deliver(delivery(), now=datetime.now(UTC))

    with pytest.raises(DeliveryError, match="unreachable: ConnectError"):
        asyncio.run(run())


def test_config_errors_name_the_adapter_and_field() -> None:
    deps = AdapterDeps(db=sa.create_engine("sqlite://"), http=httpx.AsyncClient())
    with pytest.raises(AdapterConfigError, match=r"adapter 'hook': secret: .*at least 16 bytes"):
        PLUGIN.build("hook", {"url": "https://x.example", "secret": "short"}, deps)
    with pytest.raises(AdapterConfigError, match=r"adapter 'hook': url: "):
        PLUGIN.build("hook", {"url": "ftp://x", "secret": SECRET}, deps)
    with pytest.raises(AdapterConfigError, match=r"bogus: Extra inputs"):
        PLUGIN.build("hook", {"url": "https://x.example", "secret": SECRET, "bogus": 1}, deps)


def test_redeliveries_reach_a_real_receiver_once_in_effect(engine: sa.Engine) -> None:
    """The receiver answers 500 once after applying: the redelivery carries the same key."""
    clock = Clock(now=datetime.now(UTC))
    with engine.begin() as conn:
        store.record_tokens(conn, events=chain("fam-1", 3), now=clock.now)
    o = order(TargetKind.FAMILY, "fam-1")
    store.execute_orders(engine, orders=[o], now=clock.now, routing=routing("hook"))
    with receiving(SECRET.encode(), status=500) as rx:

        async def run() -> Any:
            async with httpx.AsyncClient() as http:
                config = WebhookConfig.model_validate({"url": rx.url, "secret": SECRET})
                d = dispatcher(engine, clock, WebhookAdapter("hook", config, http))
                first = await d.run_once()
                rx.status = 200
                clock.advance(5)
                return first, await d.run_once()

        first, second = asyncio.run(run())
    assert list(first.failed) == [f"{o.id}/hook"]
    assert second.delivered == [f"{o.id}/hook"]
    assert [r["key"] for r in rx.requests] == [f"{o.id}/hook"] * 2
    assert list(rx.effects) == [f"{o.id}/hook"]
    assert rx.refused == []
    assert {t["token_id"] for t in rx.effects[f"{o.id}/hook"]["tokens"]} == {
        "fam-1-t0",
        "fam-1-t1",
        "fam-1-t2",
    }
