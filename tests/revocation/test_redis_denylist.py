"""The ``redis`` adapter against the real Redis at 127.0.0.1:6379: denylist keys with TTLs
matching token lifetimes, kill keys that follow the switches, one pub/sub message per
delivery, and the reader ``/v1/check`` asks first."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis
import sqlalchemy as sa

from revocation import Action, TargetKind, store
from revocation.adapters.redis_denylist import (
    DenylistKeys,
    DenylistReader,
    RedisConfig,
    RedisDenylist,
)
from revocation.manual import manual_order, release_order
from tests.revocation.conftest import REDIS_URL
from tests.revocation.fakes import Clock, StoreForTests, dispatcher, routing
from tests.revocation.helpers import TENANT, at, chain, order, token_event

pytestmark = pytest.mark.integration

HOUR, DAY = 3600, 86400


def config(prefix: str) -> RedisConfig:
    return RedisConfig(
        url=REDIS_URL,
        prefix=prefix,
        access_token_ttl_seconds=HOUR,
        refresh_token_ttl_seconds=30 * DAY,
    )


def run(engine: sa.Engine, clock: Clock, prefix: str, passes: int = 1) -> list[Any]:
    """Dispatcher passes with the real store and the real Redis adapter."""

    async def go() -> list[Any]:
        client = aioredis.Redis.from_url(REDIS_URL)
        d = dispatcher(
            engine, clock, StoreForTests(engine), RedisDenylist("redis", config(prefix), client)
        )
        try:
            return [await d.run_once() for _ in range(passes)]
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.fixture
def sync_redis() -> Any:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


def test_a_revoked_family_and_its_tokens_are_denied_with_ttls(
    engine: sa.Engine, redis_prefix: str, sync_redis: redis.Redis
) -> None:
    clock = Clock(now=at(10 * DAY))
    keys = DenylistKeys(redis_prefix)
    # refresh tokens issued 10 days ago; access tokens 10 days and 10 minutes ago
    with engine.begin() as conn:
        store.record_tokens(
            conn,
            events=[
                *chain("fam-1", 2),
                token_event("token.used", token_id="at-old", kind="access_token"),
                token_event(
                    "token.used", token_id="at-new", kind="access_token", seconds=10 * DAY - 600
                ),
            ],
            now=clock.now,
        )
    o = order(TargetKind.FAMILY, "fam-1")
    store.execute_orders(engine, orders=[o], now=clock.now, routing=routing("redis"))
    pubsub = sync_redis.pubsub()
    pubsub.subscribe(keys.channel)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]

    (report,) = run(engine, clock, redis_prefix)
    assert report.delivered == [f"{o.id}/redis"]

    fam_ttl = sync_redis.ttl(keys.family(TENANT, "fam-1"))
    assert 30 * DAY - 5 <= fam_ttl <= 30 * DAY
    value = orjson.loads(sync_redis.get(keys.family(TENANT, "fam-1")))  # type: ignore[arg-type]
    assert value == {"order": o.id, "reason": o.reason}
    # a refresh token lives 30 days from issue: 20 days are left
    rt_ttl = sync_redis.ttl(keys.token(TENANT, "fam-1-t0"))
    assert 20 * DAY - 5 <= rt_ttl <= 20 * DAY
    # an access token issued 10 minutes ago has 50 minutes left
    at_ttl = sync_redis.ttl(keys.token(TENANT, "at-new"))
    assert 3000 - 5 <= at_ttl <= 3000
    # one issued 10 days ago expired long ago: no entry needed
    assert sync_redis.exists(keys.token(TENANT, "at-old")) == 0

    msg = pubsub.get_message(timeout=5)
    assert msg is not None
    announced = orjson.loads(msg["data"])
    assert (announced["type"], announced["order_id"], announced["idempotency_key"]) == (
        "revoked",
        o.id,
        o.idempotency_key,
    )
    assert announced["families"] == ["fam-1"]
    assert set(announced["tokens"]) == {"fam-1-t0", "fam-1-t1", "at-new"}
    pubsub.close()


def test_a_family_revoked_before_it_was_seen_is_denied_too(
    engine: sa.Engine, redis_prefix: str, sync_redis: redis.Redis
) -> None:
    clock = Clock()
    o = order(TargetKind.FAMILY, "fam-ghost")
    store.execute_orders(engine, orders=[o], now=clock.now, routing=routing("redis"))
    run(engine, clock, redis_prefix)
    assert sync_redis.exists(DenylistKeys(redis_prefix).family(TENANT, "fam-ghost")) == 1


def test_kill_keys_follow_the_switches_active_on_the_entity(
    engine: sa.Engine, redis_prefix: str, sync_redis: redis.Redis
) -> None:
    clock = Clock()
    key = DenylistKeys(redis_prefix).kill(TENANT, "user", "jane@acme.example")

    def kill(request_id: str) -> str:
        o = manual_order(
            action=Action.KILL_SWITCH,
            kind=TargetKind.USER,
            value="jane@acme.example",
            tenant=TENANT,
            reason=f"kill {request_id}",
            actor="cli:alice",
            now=clock.now,
            request_id=request_id,
        )
        store.execute_orders(engine, orders=[o], now=clock.now, routing=routing("redis"))
        return o.kill_switch_thrown

    def release(ks: str) -> None:
        with engine.connect() as conn:
            o = release_order(conn, kill_switch_id=ks, reason="ok", actor="cli:bob", now=clock.now)
        store.execute_orders(engine, orders=[o], now=clock.now, routing=routing("redis"))

    first = kill("a")
    run(engine, clock, redis_prefix)
    assert sync_redis.ttl(key) == -1  # no TTL: until released
    assert orjson.loads(sync_redis.get(key))["kill_switch"] == first  # type: ignore[arg-type]
    clock.advance(1)
    second = kill("b")
    run(engine, clock, redis_prefix)
    release(first)
    run(engine, clock, redis_prefix)
    # one switch is still active: the key now names it
    assert orjson.loads(sync_redis.get(key))["kill_switch"] == second  # type: ignore[arg-type]
    release(second)
    run(engine, clock, redis_prefix)
    assert sync_redis.exists(key) == 0


def test_a_late_kill_delivery_after_its_release_sets_nothing(
    engine: sa.Engine, redis_prefix: str, sync_redis: redis.Redis
) -> None:
    """Deliveries read the switches as they are now, so out-of-order delivery converges."""
    clock = Clock()
    o = order(TargetKind.AGENT, "crm-followup", action=Action.KILL_SWITCH)
    store.execute_orders(engine, orders=[o], now=clock.now, routing=routing("redis"))
    with engine.begin() as conn:  # released before Redis heard of the kill
        store.release_kill_switch(
            conn, kill_switch_id=o.kill_switch_thrown, now=clock.now, actor="x", reason="oops"
        )
    run(engine, clock, redis_prefix)
    assert sync_redis.exists(DenylistKeys(redis_prefix).kill(TENANT, "agent", "crm-followup")) == 0


def test_the_reader_answers_hits_and_leaves_misses_to_the_store(
    engine: sa.Engine, redis_prefix: str
) -> None:
    clock = Clock()
    with engine.begin() as conn:
        store.record_tokens(conn, events=chain("fam-1", 2), now=clock.now)
    revoke = order(TargetKind.FAMILY, "fam-1")
    kill = order(TargetKind.CLIENT, "agent-crm", action=Action.KILL_SWITCH, tenant="globex")
    store.execute_orders(engine, orders=[revoke, kill], now=clock.now, routing=routing("redis"))
    run(engine, clock, redis_prefix)
    reader = DenylistReader(redis.Redis.from_url(REDIS_URL), DenylistKeys(redis_prefix))
    try:
        fam = reader.check(tenant=TENANT, family_id="fam-1")
        tok = reader.check(tenant=TENANT, token_id="fam-1-t1", user="jane@acme.example")
        killed = reader.check(tenant="globex", client_id="agent-crm", agent="x")
        miss = reader.check(tenant=TENANT, family_id="fam-2", user="bob")
        anywhere = reader.check(tenant=None, family_id="fam-1")
    finally:
        reader.client.close()
    assert fam is not None
    assert (fam.allow, fam.order_id) == (False, revoke.id)
    assert fam.reason == f"family fam-1 revoked by order {revoke.id} ({revoke.reason})"
    assert tok is not None
    assert tok.reason.startswith("token fam-1-t1 revoked")
    assert killed is not None
    assert (killed.allow, killed.kill_switch_id, killed.order_id) == (
        False,
        kill.kill_switch_thrown,
        kill.id,
    )
    assert killed.reason.startswith(f"kill switch {kill.kill_switch_thrown} on client agent-crm")
    assert miss is None
    assert anywhere is None


def test_key_parts_cannot_run_into_each_other() -> None:
    k = DenylistKeys("p:")
    assert k.family("a:b", "c") != k.family("a", "b:c")
    assert k.family("a:b", "c") == "p:family:a%3Ab:c"


def test_an_unreachable_redis_is_a_retryable_failure(engine: sa.Engine) -> None:
    clock = Clock()
    o = order(TargetKind.FAMILY, "fam-1")
    store.execute_orders(engine, orders=[o], now=clock.now, routing=routing("redis"))

    async def go() -> Any:
        client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        cfg = RedisConfig(url="redis://127.0.0.1:1/0")
        d = dispatcher(engine, clock, RedisDenylist("redis", cfg, client))
        try:
            return await d.run_once()
        finally:
            await client.aclose()

    report = asyncio.run(go())
    assert "redis redis://127.0.0.1:1/0: ConnectionError" in report.failed[f"{o.id}/redis"]
