"""The embedded service with the Redis adapter, against the real Redis: a detected reuse
reaches the denylist and its channel within moments, ``/v1/check`` answers from Redis
first, and falls back to the store on a miss or when Redis is gone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from revocation.adapters.redis_denylist import DenylistKeys
from tests.credentials import authorize
from tests.revocation.conftest import REDIS_URL, redis_prefix
from tokenwarden.app import create_app
from tokenwarden.settings import Settings

pytestmark = pytest.mark.integration
__all__ = ["redis_prefix"]  # the fixture


def refreshed(parent: str, child: str, at: int, asn: int = 64500) -> dict[str, Any]:
    return {
        "id": f"evt-{parent}-{child}",
        "time": int(time.time()) - 1000 + at,
        "tenant": "acme",
        "action": "token.refreshed",
        "user": "jane@acme.example",
        "agent": "crm-followup",
        "client_id": "agent-crm",
        "token": {"parent_id": parent, "id": child, "family_id": "fam-1", "type": "refresh_token"},
        "source": {"ip": "203.0.113.5", "asn": asn},
    }


REUSE = [
    refreshed("rt-0", "rt-1", 0),
    refreshed("rt-1", "rt-2", 600),
    refreshed("rt-1", "rt-x", 900, 64999),
]


def settings(tmp_path: Path, url: str, prefix: str) -> Settings:
    return Settings.model_validate(
        {
            "database_url": f"sqlite:///{tmp_path / 'tw.db'}",
            "revocation": {
                "adapters": [{"type": "redis", "url": url, "prefix": prefix}],
                "delivery": {"poll_interval_seconds": 0.05, "backoff_base_seconds": 0.05},
            },
        }
    )


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_detected_reuse_reaches_the_denylist_and_check_reads_it_first(
    tmp_path: Path, redis_prefix: str
) -> None:
    keys = DenylistKeys(redis_prefix)
    r = redis.Redis.from_url(REDIS_URL)
    pubsub = r.pubsub()
    pubsub.subscribe(keys.channel)
    assert pubsub.get_message(timeout=5) is not None
    try:
        with TestClient(create_app(settings(tmp_path, REDIS_URL, redis_prefix))) as client:
            authorize(client)
            assert client.post("/v1/events?wait=true", json=REUSE).json()["orders"] == 1
            msg = pubsub.get_message(timeout=10)
            assert msg is not None
            announced = orjson.loads(msg["data"])
            assert (announced["type"], announced["families"]) == ("revoked", ["fam-1"])
            assert r.exists(keys.family("acme", "fam-1")) == 1
            [order] = client.get("/v1/orders").json()["items"]
            wait_for(lambda: client.get(f"/v1/orders/{order['id']}").json()["status"] == "done")
            deliveries = {
                d["adapter"]: d
                for d in client.get(f"/v1/orders/{order['id']}").json()["deliveries"]
            }
            assert deliveries["redis"]["state"] == "delivered"
            assert deliveries["redis"]["result"]["families"] == 1

            hit = client.post("/v1/check", json={"tenant": "acme", "family_id": "fam-1"}).json()
            assert (hit["allow"], hit["source"], hit["order_id"]) == (False, "redis", order["id"])
            tok = client.post("/v1/check", json={"tenant": "acme", "token_id": "rt-2"}).json()
            assert (tok["allow"], tok["source"]) == (False, "redis")
            # a token the denylist never heard of: the store knows its family is revoked
            r.delete(keys.token("acme", "rt-x"))
            miss = client.post("/v1/check", json={"tenant": "acme", "token_id": "rt-x"}).json()
            assert (miss["allow"], miss["source"]) == (False, "database")
            clean = client.post("/v1/check", json={"tenant": "acme", "family_id": "fam-2"}).json()
            assert (clean["allow"], clean["source"]) == (True, "database")
            metrics = client.get("/metrics").text
            assert 'tokenwarden_checks_total{result="deny",source="redis"} 2.0' in metrics
            assert (
                'tokenwarden_order_to_delivery_seconds_count{adapter="redis",purpose="revoke"} 1.0'
                in metrics
            )
    finally:
        pubsub.close()
        r.close()


def test_a_kill_switch_and_its_release_reach_the_denylist(
    tmp_path: Path, redis_prefix: str
) -> None:
    keys = DenylistKeys(redis_prefix)
    r = redis.Redis.from_url(REDIS_URL)
    key = keys.kill("acme", "user", "jane@acme.example")
    try:
        with TestClient(create_app(settings(tmp_path, REDIS_URL, redis_prefix))) as client:
            authorize(client)
            body = {
                "action": "kill_switch",
                "target": {"kind": "user", "tenant": "acme", "value": "jane@acme.example"},
                "reason": "account takeover",
                "actor": "alice",
            }
            order = client.post("/v1/orders", json=body).json()
            wait_for(lambda: r.exists(key) == 1)
            hit = client.post(
                "/v1/check", json={"tenant": "acme", "user": "jane@acme.example"}
            ).json()
            assert (hit["allow"], hit["source"], hit["kill_switch_id"]) == (
                False,
                "redis",
                order["kill_switch"]["id"],
            )
            client.post(
                f"/v1/kill-switches/{order['kill_switch']['id']}/release",
                json={"reason": "owner verified", "actor": "bob"},
            )
            wait_for(lambda: r.exists(key) == 0)
            ok = client.post(
                "/v1/check", json={"tenant": "acme", "user": "jane@acme.example"}
            ).json()
            assert (ok["allow"], ok["source"]) == (True, "database")
    finally:
        r.close()


def test_check_falls_back_to_the_store_when_redis_is_gone(tmp_path: Path) -> None:
    """Fail closed: the denylist being unreachable never turns a denial into an allow."""
    dead = "redis://127.0.0.1:1/0"
    with TestClient(create_app(settings(tmp_path, dead, "tw:"))) as client:
        authorize(client)
        client.post("/v1/events?wait=true", json=REUSE)
        ans = client.post("/v1/check", json={"tenant": "acme", "family_id": "fam-1"}).json()
        assert (ans["allow"], ans["source"]) == (False, "database")
        [order] = client.get("/v1/orders").json()["items"]
        wait_for(
            lambda: any(
                d["adapter"] == "redis" and d["state"] == "failed"
                for d in client.get(f"/v1/orders/{order['id']}").json()["deliveries"]
            )
        )
        doc = client.get(f"/v1/orders/{order['id']}").json()
        assert doc["status"] == "failed"  # surfaced, and retried
        redis_delivery = next(d for d in doc["deliveries"] if d["adapter"] == "redis")
        assert "ConnectionError" in redis_delivery["last_error"]
        assert (
            'tokenwarden_adapter_failures_total{adapter="redis",purpose="revoke"}'
            in client.get("/metrics").text
        )
