"""Faults: a worker SIGKILLed mid-stream, and a broker restart."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from ingest import AuditEvent, TokenHasher
from revocation import store
from tests.stream.broker import Tansu
from tests.stream.cluster import HASH_KEY, MAC_KEY, wait_consumed, wait_until
from tests.stream.conftest import StartWorkers
from tokenwarden.stream.keys import Partitioner
from tokenwarden.stream.publish import KafkaPipeline
from tokenwarden.stream.settings import KafkaSettings
from tokenwarden.stream.topics import provision

pytestmark = pytest.mark.integration

HASHER = TokenHasher(HASH_KEY.encode())


def ev(data: dict[str, Any]) -> AuditEvent:
    return AuditEvent.model_validate(data, context={"hasher": HASHER})


def rotation(tenant: str, family: str, i: int) -> AuditEvent:
    return ev(
        {
            "id": f"{family}-rot",
            "time": f"2026-11-23T08:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "tenant": tenant,
            "action": "token.refreshed",
            "user": f"{family}@example.com",
            "client_id": "agent-crm",
            "source": {"ip": "203.0.113.5", "asn": 64500},
            "token": {
                "parent_id": f"{family}-rt0",
                "id": f"{family}-rt1",
                "family_id": family,
                "type": "refresh_token",
            },
        }
    )


def replay(tenant: str, family: str) -> AuditEvent:
    return ev(
        {
            "id": f"{family}-replay",
            "time": "2026-11-23T09:30:00Z",
            "tenant": tenant,
            "action": "token.refreshed",
            "user": f"{family}@example.com",
            "client_id": "agent-crm",
            "source": {"ip": "198.51.100.7", "asn": 64999},
            "token": {
                "parent_id": f"{family}-rt0",
                "id": f"{family}-evil",
                "family_id": family,
                "type": "refresh_token",
            },
        }
    )


def noise(n: int, start: int) -> list[AuditEvent]:
    return [
        ev(
            {
                "id": f"n{start + i}",
                "time": f"2026-11-23T08:{(start + i) // 60 % 60:02d}:{(start + i) % 60:02d}Z",
                "tenant": "acme",
                "action": "token.used",
                "user": f"user{(start + i) % 97}@example.com",
                "agent": "crm",
                "audience": "https://api.crm.example",
                "scopes": ["leads:read"],
                "token": {
                    "id": f"at{(start + i) % 97}",
                    "family_id": f"nf{(start + i) % 97}",
                    "type": "access_token",
                },
                "source": {"ip": "203.0.113.5", "asn": 64500},
            }
        )
        for i in range(n)
    ]


def publish(
    kafka: KafkaSettings,
    db: sa.Engine,
    batches: list[list[AuditEvent]],
    *,
    pause: float = 0.0,
    on_batch: Any = None,
) -> None:
    async def run() -> None:
        pipeline = KafkaPipeline(kafka, db=db, mac_key=MAC_KEY)
        await pipeline.start()
        try:
            for i, batch in enumerate(batches):
                await pipeline.submit(batch)
                if on_batch is not None:
                    on_batch(i)
                if pause:
                    await asyncio.sleep(pause)
        finally:
            await pipeline.stop()

    asyncio.run(run())


def order_rows(db: sa.Engine) -> list[Any]:
    with db.connect() as conn:
        return store.list_orders(conn, limit=10_000)


def executions(db: sa.Engine, order_id: str) -> int:
    with db.connect() as conn:
        return len(store.list_audit(conn, ref=order_id, kind="order.executed"))


def test_sigkill_one_of_two_workers_mid_stream(
    kafka: KafkaSettings, db: sa.Engine, start_workers: StartWorkers
) -> None:
    """Refresh tokens rotate before the kill; their replays arrive around and after it. The
    surviving worker takes over the killed one's partitions, recovers their state from the
    changelog (else a replay after the kill would not be seen as reuse), and every replay
    ends in exactly one order, applied exactly once."""
    workers = start_workers(kafka, 2)
    families = [f"fam-{i}" for i in range(40)]
    by_partition = Partitioner(kafka.partitions)
    assert len({by_partition(f"acme/f/{f}") for f in families}) == kafka.partitions

    # before: every family rotates once (state: rt0 consumed), with noise
    publish(kafka, db, [[rotation("acme", f, i) for i, f in enumerate(families)], noise(2000, 0)])
    wait_consumed(kafka)

    # during: noise and replays in small paced batches; the kill lands in the middle
    batches: list[list[AuditEvent]] = []
    for i, family in enumerate(families):
        batches.append([*noise(50, 2000 + 50 * i), replay("acme", family)])
    killed = threading.Event()

    def kill_midway(i: int) -> None:
        if i == len(batches) // 3 and not killed.is_set():
            workers[0].kill()
            killed.set()

    publish(kafka, db, batches, pause=0.05, on_batch=kill_midway)
    assert killed.is_set()
    wait_until(
        lambda: {o.target.value for o in order_rows(db)} >= set(families),
        90,
        "an order for every replayed family",
    )
    wait_consumed(kafka, timeout=90)
    rows = order_rows(db)
    assert sorted(o.target.value for o in rows) == sorted(families)  # none lost, none extra
    assert all(o.status == "done" for o in rows)
    for o in rows:
        assert executions(db, o.id) == 1, f"{o.id} applied {executions(db, o.id)} times"
    text = workers[1].text()
    assert "Restoring state from changelog topics" in text  # the survivor recovered them


def test_broker_restart_workers_reconnect_and_continue(
    tansu: Tansu, db: sa.Engine, start_workers: StartWorkers
) -> None:
    """The broker goes away and comes back (Tansu keeps nothing here: it comes back empty,
    like a fresh cluster; topics are provisioned again as at a deploy). The workers ride it
    out and process what arrives afterwards."""
    from tests.stream.cluster import isolated_kafka

    kafka = isolated_kafka(tansu.url)
    provision(kafka)
    start_workers(kafka, 1)
    publish(kafka, db, [[rotation("acme", "fam-before", 0), replay("acme", "fam-before")]])
    wait_until(lambda: len(order_rows(db)) == 1, 60, "the first order")

    tansu.restart(down_seconds=3.0)
    provision(kafka)
    time.sleep(1.0)
    publish(kafka, db, [[rotation("acme", "fam-after", 1), replay("acme", "fam-after")]])
    wait_until(
        lambda: {o.target.value for o in order_rows(db)} == {"fam-before", "fam-after"},
        120,
        "the order of the events sent after the restart",
    )
