"""Takes: a worker handles many Kafka messages per store transaction, and loses none when
the group rebalances while takes are in flight (a worker joins, another leaves)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from ingest import AuditEvent
from tests.stream.cluster import Worker, stats_of, wait_consumed, wait_until
from tests.stream.conftest import StartWorkers
from tests.stream.test_faults import ev, executions, order_rows, publish, replay, rotation
from tokenwarden.stream.keys import Partitioner
from tokenwarden.stream.settings import KafkaSettings

pytestmark = pytest.mark.integration

TENANT = "bulk"


def bulk(n: int, start: int) -> list[AuditEvent]:
    """``n`` usage events, each of its own family: every one that is processed leaves a
    ``families`` row, so the rows count the audit messages that were handled."""
    return [
        ev(
            {
                "id": f"b{i}",
                "time": f"2026-11-23T08:{i // 60 % 60:02d}:{i % 60:02d}Z",
                "tenant": TENANT,
                "action": "token.used",
                "user": f"user{i % 89}@example.com",
                "agent": "crm",
                "audience": "https://api.crm.example",
                "scopes": ["leads:read"],
                "token": {"id": f"bt{i}", "family_id": f"bf{i}", "type": "access_token"},
                "source": {"ip": "203.0.113.5", "asn": 64500},
            }
        )
        for i in range(start, start + n)
    ]


def bulk_families(db: sa.Engine) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM families WHERE tenant = :t AND family_id LIKE 'bf%'"),
                {"t": TENANT},
            ).scalar_one()
        )


def test_takes_span_many_messages_and_lose_none_across_rebalances(
    kafka: KafkaSettings, db: sa.Engine, start_workers: StartWorkers
) -> None:
    """A backlog waits on the topic before the first worker starts, so its takes span many
    messages. While it works through small paced batches, a second worker joins (the first
    one's partitions are revoked with takes in flight) and then the first one leaves
    cleanly (its takes are finished or handed over). Every message is handled: each bulk
    event's family is recorded, each replayed refresh token ends in exactly one order,
    applied once."""
    families = [f"fam-{i}" for i in range(24)]
    partitions = Partitioner(kafka.partitions)
    assert len({partitions(f"acme/f/{f}") for f in families}) == kafka.partitions

    # the backlog: every family rotates once, then many small messages (one per submit
    # and partition)
    backlog: list[list[AuditEvent]] = [[rotation("acme", f, i) for i, f in enumerate(families)]]
    backlog += [bulk(8, 8 * i) for i in range(150)]
    publish(kafka, db, backlog)
    first = 8 * 150

    w0 = start_workers(kafka, 1)[0]
    # paced traffic with the replays spread over it; the second worker joins a third of the
    # way in and the first one leaves at two thirds, both while takes are being handled, so
    # some replays meet family state that moved with its partition
    paced: list[list[AuditEvent]] = [bulk(20, first + 20 * i) for i in range(3 * len(families))]
    for i, family in enumerate(families):
        paced[3 * i + 1].append(replay("acme", family))
    total = first + 20 * len(paced)
    joined: list[Worker] = []
    events: dict[str, threading.Event] = {"joined": threading.Event(), "left": threading.Event()}

    def rebalance(i: int) -> None:
        if i == len(paced) // 3:
            joined.extend(start_workers(kafka, 1, wait=False))
            events["joined"].set()
        if i == 2 * len(paced) // 3:
            wait_until(joined[0].ready, 90, "the second worker to join")
            threading.Thread(target=w0.stop, daemon=True).start()
            events["left"].set()

    publish(kafka, db, paced, pause=0.05, on_batch=rebalance)
    assert events["joined"].is_set() and events["left"].is_set()

    wait_until(lambda: w0.proc is None, 60, "the first worker to stop")
    wait_until(lambda: bulk_families(db) >= total, 120, "every bulk event recorded")
    wait_until(
        lambda: {o.target.value for o in order_rows(db)} >= set(families),
        90,
        "an order for every replayed family",
    )
    wait_consumed(kafka, timeout=90)

    assert bulk_families(db) == total  # no audit message was lost
    rows = order_rows(db)
    assert sorted(o.target.value for o in rows) == sorted(families)  # none lost, none extra
    assert all(o.status == "done" for o in rows)
    for o in rows:
        assert executions(db, o.id) == 1, f"{o.id} applied {executions(db, o.id)} times"

    stats: dict[str, Any] = stats_of(w0)
    assert stats["max_take"] > 1, stats  # takes spanned several messages
    assert stats["takes"] < stats["messages"], stats
    # the first worker's partitions moved at the join (revoked and assigned again)
    assert w0.text().count("partitions assigned") >= 2 * 2  # two stages, two assignments
    assert "partitions assigned" in joined[0].text()
