"""Workers end to end on a real Kafka-protocol broker (Tansu) and PostgreSQL: the API's
publish mode, direct topic ingest from forwarders, and the dead-letter queue."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from ingest import TokenHasher
from revocation import store
from tests.credentials import bearer, mint_key
from tests.stream.broker import Tansu
from tests.stream.cluster import (
    HASH_KEY,
    MAC_KEY,
    read_topic,
    stats_of,
    wait_consumed,
    wait_until,
)
from tests.stream.conftest import StartWorkers
from tokenwarden.app import create_app
from tokenwarden.server import running
from tokenwarden.settings import Settings
from tokenwarden.stream import codec
from tokenwarden.stream.keys import partition_of
from tokenwarden.stream.settings import KafkaSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.traffic import events as traffic

pytestmark = pytest.mark.integration


def orders(db: sa.Engine) -> dict[str, Any]:
    with db.connect() as conn:
        return {o.target.value: o for o in store.list_orders(conn, limit=10_000)}


def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    *,
    key: bytes | None = None,
    headers: list[list[tuple[str, bytes]]] | None = None,
) -> list[int]:
    """``values`` (with ``headers``, one list per value) to partition 0 of ``topic``, in
    order; their offsets (a worker may append its own messages to the same partition in
    between)."""
    import asyncio

    async def run() -> list[int]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            return [
                (
                    await producer.send_and_wait(
                        topic,
                        value,
                        key=key,
                        partition=0,
                        headers=headers[i] if headers else None,
                    )
                ).offset
                for i, value in enumerate(values)
            ]
        finally:
            await producer.stop()

    return asyncio.run(run())


def test_serve_with_a_broker_publishes_and_workers_revoke(
    kafka: KafkaSettings, db_url: str, db: sa.Engine, start_workers: StartWorkers
) -> None:
    """``serve --broker``: accepted events go to the audit topic in micro-batches grouped by
    partition; a worker detects the replayed refresh tokens and revokes their families."""
    worker = start_workers(kafka, 1)[0]
    settings = Settings(database_url=db_url, hash_key=HASH_KEY, kafka=kafka)
    raw = list(traffic(3000, families=60, replays=4))
    app = create_app(settings)
    with running(app) as base:
        headers = bearer(mint_key(app))
        for start in range(0, len(raw), 500):
            r = httpx.post(
                f"{base}/v1/events", json=raw[start : start + 500], headers=headers, timeout=30
            )
            assert r.status_code == 202, r.text
            assert r.json()["accepted"] == len(raw[start : start + 500])
        health = httpx.get(f"{base}/healthz").json()
        assert health["status"] == "ok"
    stolen = {e["token"]["family_id"] for e in raw if e["token"]["id"].startswith("stolen-")}
    assert len(stolen) == 4
    wait_until(lambda: set(orders(db)) >= stolen, 60, "the revoke orders")
    wait_consumed(kafka)
    found = orders(db)
    assert set(found) == stolen
    assert all(o.action == "revoke" and o.status == "done" for o in found.values())
    with db.connect() as conn:
        for family in stolen:
            fam = store.get_family(conn, tenant=found[family].target.tenant, family_id=family)
            assert fam is not None and fam.revoked_at is not None
            assert all(t.revoked_at is not None for t in fam.tokens)
    # what travelled: micro-batches, each in the partition of its events' principal key
    bootstrap = kafka.bootstrap_servers()[0]
    records = read_topic(bootstrap, kafka.audit_topic)
    assert 0 < len(records) < len(raw) / 20
    for r in records:
        assert codec.is_batch(r.headers)
        assert codec.family_sent(r.headers)
        # signed with the key the API derived from the hash key, as the worker derives it
        assert codec.signed(r.headers, r.value, key=MAC_KEY)
        for e in orjson.loads(r.value):
            assert partition_of(f"{e['tenant']}/u/{e['user']}", kafka.partitions) == r.partition
    # the refresh events went straight to the family topic, by family, each exactly once
    # (the audit stage did not relay them a second time)
    by_family = read_topic(bootstrap, kafka.family_topic)
    relayed = [e for r in by_family for e in orjson.loads(r.value)]
    refreshes = [e for e in raw if e["action"] == "token.refreshed"]
    assert sorted(e["id"] for e in relayed) == sorted(e["id"] for e in refreshes)
    for r in by_family:
        assert codec.is_batch(r.headers) and not codec.family_sent(r.headers)
        assert codec.signed(r.headers, r.value, key=MAC_KEY)
        for e in orjson.loads(r.value):
            key = f"{e['tenant']}/f/{e['token']['family_id']}"
            assert partition_of(key, kafka.partitions) == r.partition
    # the outputs
    out = [o for r in read_topic(bootstrap, kafka.orders_topic) for o in orjson.loads(r.value)]
    assert {o["target"]["value"] for o in out} == stolen
    detections = [
        d for r in read_topic(bootstrap, kafka.detections_topic) for d in orjson.loads(r.value)
    ]
    assert {d["family_id"] for d in detections if d["detector"] == "refresh_reuse"} == stolen
    # the worker verified every micro-batch and rebuilt it rather than validating it again
    worker.stop()
    stats = stats_of(worker)
    assert stats["signed"] == len(records) + len(by_family) == stats["messages"]


def _reuse_story(tenant: str, family: str) -> list[dict[str, Any]]:
    base = {"tenant": tenant, "user": "jane@acme.example", "client_id": "agent-crm"}
    net = {"ip": "203.0.113.5", "asn": 64500}
    return [
        {
            **base,
            "id": f"{family}-1",
            "time": "2026-11-23T08:00:00Z",
            "action": "token.refreshed",
            "source": net,
            "token": {
                "parent_id": f"{family}-rt1",
                "id": f"{family}-rt2",
                "family_id": family,
                "type": "refresh_token",
            },
        },
        {
            **base,
            "id": f"{family}-2",
            "time": "2026-11-23T08:10:00Z",
            "action": "token.refreshed",
            "source": net,
            "token": {
                "parent_id": f"{family}-rt2",
                "id": f"{family}-rt3",
                "family_id": family,
                "type": "refresh_token",
            },
        },
        {
            **base,
            "id": f"{family}-3",
            "time": "2026-11-23T08:11:00Z",
            "action": "token.refreshed",
            "source": {"ip": "198.51.100.7", "asn": 64999},
            "token": {
                "parent_id": f"{family}-rt1",
                "id": f"{family}-evil",
                "family_id": family,
                "type": "refresh_token",
            },
        },
    ]


def test_forwarded_records_on_the_topic_and_the_dead_letter_queue(
    kafka: KafkaSettings, db: sa.Engine, start_workers: StartWorkers
) -> None:
    """JSON and NDJSON values written straight to the audit topic are normalized and
    processed; each bad record goes to the DLQ with its error and source offset, and the
    records after it in the same partition are processed all the same."""
    start_workers(kafka, 1)
    bootstrap = kafka.bootstrap_servers()[0]
    first, second = _reuse_story("acme", "fam-a"), _reuse_story("acme", "fam-b")
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    values = [
        orjson.dumps(first[0]),  # one JSON object
        b"{not json at all",  # undecodable: the whole message to the DLQ
        b"\n".join(orjson.dumps(e) for e in first[1:]),  # NDJSON
        orjson.dumps([second[0], {"action": "token.bogus", "tenant": "acme", "token": jwt}]),
        orjson.dumps({"completely": "unknown", "shape": True}),  # no format recognises it
        b"\n".join(orjson.dumps(e) for e in second[1:]),
    ]
    # the worker re-publishes forwarded events onto this same topic, possibly in between
    offsets = produce(bootstrap, kafka.audit_topic, values)
    wait_until(lambda: {"fam-a", "fam-b"} <= set(orders(db)), 60, "both families revoked")
    wait_consumed(kafka)
    dead = [orjson.loads(r.value) for r in read_topic(bootstrap, kafka.dlq_topic)]
    assert len(dead) == 3, dead
    by_offset = {d["source"]["offset"]: d for d in dead}
    undecodable, mixed, unknown = offsets[1], offsets[3], offsets[4]
    assert set(by_offset) == {undecodable, mixed, unknown}
    assert all(d["source"]["topic"] == kafka.audit_topic for d in dead)
    error = by_offset[undecodable]["error"].lower()
    assert "malformed" in error or "json" in error
    assert by_offset[mixed]["source"]["index"] == 1
    assert "token.bogus" in by_offset[mixed]["error"]
    assert jwt not in by_offset[mixed]["record"]  # a raw token never reaches the DLQ
    assert "format" in by_offset[unknown]["error"]
    assert set(orders(db)) == {"fam-a", "fam-b"}


def test_a_micro_batch_with_a_forged_mac_is_validated_not_trusted(
    kafka: KafkaSettings, db: sa.Engine, start_workers: StartWorkers
) -> None:
    """Only a micro-batch whose MAC verifies under the key derived from the instance's hash
    key is rebuilt without validation. One signed with another key (a forwarder faking our
    headers), or carrying no MAC, is validated like a forwarder's record: its raw token is
    hashed before anything stores it."""
    [worker] = start_workers(kafka, 1)
    bootstrap = kafka.bootstrap_servers()[0]
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.Zm9yZ2VkLWJhdGNoLXNpZ25hdHVyZQ"

    def batch(family: str, token: str) -> bytes:
        event = {
            "id": f"{family}-1",
            "time": "2026-11-24T08:00:00Z",
            "tenant": "acme",
            "action": "token.used",
            "user": "mallory@acme.example",
            "agent": "agent-crm",
            "audience": "https://api.crm.example",
            "scopes": ["crm:read"],
            "token": {"id": token, "family_id": family, "type": "access_token"},
        }
        return orjson.dumps([event])

    other = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJldmUifQ.bm8tbWFjLWF0LWFsbC1zaWduYXR1cmU"
    forged, unsigned = batch("fam-forged", jwt), batch("fam-bare", other)
    genuine = batch("fam-ours", "tok-ours-1")
    produce(
        bootstrap,
        kafka.audit_topic,
        [forged, unsigned, genuine],
        key=b"acme/u/mallory@acme.example",
        headers=[
            codec.batch_headers(forged, key=b"k" * 32),  # a MAC under another key
            codec.batch_headers(unsigned),  # the batch header, no MAC
            codec.batch_headers(genuine, key=MAC_KEY),
        ],
    )
    wait_consumed(kafka)
    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT family_id, token_id FROM tokens")).all()
    stored = {family: token for family, token in rows}
    assert set(stored) == {"fam-forged", "fam-bare", "fam-ours"}
    hasher = TokenHasher(HASH_KEY.encode())
    # validated: the raw token hashed under the instance's key, as the API would have
    assert stored["fam-forged"] == hasher.hash(jwt) != jwt
    assert stored["fam-bare"] == hasher.hash(other) != other
    assert stored["fam-ours"] == "tok-ours-1"  # rebuilt as our publisher wrote it
    worker.stop()
    stats = stats_of(worker)
    assert stats["messages"] == 3 and stats["signed"] == 1


def test_a_configured_ingest_topic(
    tansu: Tansu, db: sa.Engine, start_workers: StartWorkers
) -> None:
    """``kafka.ingest_topics``: forwarders may write to their own topic as well."""
    from tests.stream.cluster import isolated_kafka
    from tokenwarden.stream.topics import provision

    kafka = isolated_kafka(tansu.url)
    kafka = kafka.model_copy(update={"ingest_topics": [f"{kafka.app_id}.forwarded"]})
    provision(kafka)
    start_workers(kafka, 1)
    story = _reuse_story("globex", "fam-g")
    produce(
        kafka.bootstrap_servers()[0],
        kafka.ingest_topics[0],
        [b"\n".join(orjson.dumps(e) for e in story)],
    )
    wait_until(lambda: "fam-g" in orders(db), 60, "the family revoked")
    time.sleep(0.5)
    assert set(orders(db)) == {"fam-g"}


def test_a_running_worker_applies_a_policy_put_through_the_api(
    kafka: KafkaSettings, db_url: str, db: sa.Engine, start_workers: StartWorkers
) -> None:
    """``PUT /v1/policy`` on the API (``serve --broker``) reaches workers already running
    within ``policy_refresh_seconds``: with the refresh-reuse rule switched to dry
    run, the next replay is recorded as what it would have done and revokes nothing."""
    (worker,) = start_workers(kafka, 1, TOKENWARDEN_POLICY_REFRESH_SECONDS="0.2")
    settings = Settings(database_url=db_url, hash_key=HASH_KEY, kafka=kafka)
    app = create_app(settings)
    with running(app) as base:
        headers = bearer(mint_key(app))
        r = httpx.put(
            f"{base}/v1/policy/rules/refresh-reuse-revokes-family/mode",
            json={"mode": "dry_run"},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        wait_until(lambda: "policy applied" in worker.text(), 30, "the worker's new policy")
        r = httpx.post(f"{base}/v1/events", json=_reuse_story("acme", "fam-p"), headers=headers)
        assert r.status_code == 202, r.text
    wait_until(lambda: "fam-p" in orders(db), 60, "the dry-run order")
    order = orders(db)["fam-p"]
    assert (order.rule, order.mode) == ("refresh-reuse-revokes-family", "dry_run")
    with db.connect() as conn:
        family = store.get_family(conn, tenant="acme", family_id="fam-p")
    assert family is not None and family.revoked_at is None
