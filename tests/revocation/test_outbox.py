"""The transactional outbox: an order and its deliveries commit together, before any
adapter is called; entries are claimed with a lease and their states drive the order's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from revocation import Action, Mode, Status, TargetKind, store
from revocation.order import RevocationOrder
from revocation.routing import Route, Routing
from revocation.store import outbox
from revocation.tables import alerts, orders
from revocation.tables import outbox as outbox_table
from revocation.txn import writing
from tests.revocation.fakes import routing
from tests.revocation.helpers import at, chain, order, rows, scalar

NOW = at(1000)


def entries(engine: sa.Engine) -> dict[str, tuple[str, str]]:
    return {
        r.id: (r.adapter, r.state)
        for r in rows(engine, sa.select(outbox_table).order_by(outbox_table.c.id))
    }


def record(engine: sa.Engine, *os: RevocationOrder, r: Routing | None = None) -> list[Any]:
    with writing(engine) as conn:
        return store.record_orders(conn, orders=list(os), now=NOW, routing=r or routing("redis"))


def test_the_order_and_one_entry_per_adapter_commit_together(engine: sa.Engine) -> None:
    o = order(TargetKind.FAMILY, "fam-1")
    (new,) = record(engine, o, r=routing("redis", "idp", "hook"))
    assert new.id == o.id
    assert entries(engine) == {
        f"{o.id}/hook": ("hook", "pending"),
        f"{o.id}/idp": ("idp", "pending"),
        f"{o.id}/redis": ("redis", "pending"),
        f"{o.id}/store": ("store", "pending"),
    }
    (row,) = rows(engine, sa.select(orders))
    assert row.status == "pending"


def test_a_failing_transaction_leaves_neither_the_order_nor_its_entries(engine: sa.Engine) -> None:
    o = order(TargetKind.FAMILY, "fam-1")

    def crash_before_commit() -> None:
        with writing(engine) as conn:
            store.record_orders(conn, orders=[o], now=NOW, routing=routing("redis"))
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError, match="crash"):
        crash_before_commit()
    assert scalar(engine, sa.select(sa.func.count()).select_from(orders)) == 0
    assert entries(engine) == {}
    assert scalar(engine, sa.select(sa.func.count()).select_from(alerts)) == 0


def test_a_duplicate_order_adds_no_entries(engine: sa.Engine) -> None:
    o = order(TargetKind.FAMILY, "fam-1")
    record(engine, o)
    assert record(engine, o) == []
    assert len(entries(engine)) == 2


def test_dry_run_orders_only_reach_the_store(engine: sa.Engine) -> None:
    dry = order(TargetKind.FAMILY, "fam-1", mode=Mode.DRY_RUN)
    record(engine, dry, r=routing("redis", "hook"))
    assert entries(engine) == {f"{dry.id}/store": ("store", "pending")}


def test_adapters_take_only_their_actions_and_tenants(engine: sa.Engine) -> None:
    r = Routing(
        routes=(
            Route("idp", frozenset({Action.REVOKE}), tenants=frozenset({"acme"})),
            Route("redis", frozenset({Action.REVOKE, Action.KILL_SWITCH})),
        )
    )
    revoke = order(TargetKind.FAMILY, "fam-1")
    other_tenant = order(TargetKind.FAMILY, "fam-1", tenant="globex")
    kill = order(TargetKind.USER, "jane", action=Action.KILL_SWITCH)
    note = order(TargetKind.USER, "bob", action=Action.ALERT_ONLY)
    record(engine, revoke, other_tenant, kill, note, r=r)
    got = {(id_.split("/")[0], adapter) for id_, (adapter, _) in entries(engine).items()}
    assert got == {
        (revoke.id, "store"),
        (revoke.id, "idp"),
        (revoke.id, "redis"),
        (other_tenant.id, "store"),
        (other_tenant.id, "redis"),
        (kill.id, "store"),
        (kill.id, "redis"),
        (note.id, "store"),
    }


def test_routing_refuses_a_configured_store_and_repeated_names() -> None:
    with pytest.raises(ValueError, match="always enabled"):
        Routing(routes=(Route("store", frozenset(Action)),))
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        Routing(routes=(Route("a", frozenset(Action)), Route("a", frozenset(Action))))


def test_claims_are_leased_and_an_expired_lease_is_claimed_again(engine: sa.Engine) -> None:
    o = order(TargetKind.FAMILY, "fam-1")
    record(engine, o, r=routing("redis", grace=5))
    lease = timedelta(seconds=30)
    with writing(engine) as conn:
        first = outbox.claim(
            conn, limits={"redis": 10, "store": 10}, now=NOW, lease=lease, owner="a"
        )
    # the store entry waits out its grace (the pipeline applies it synchronously)
    assert [(c.adapter, c.attempts) for c in first] == [("redis", 1)]
    with writing(engine) as conn:
        again = outbox.claim(
            conn, limits={"redis": 10}, now=NOW + timedelta(seconds=29), lease=lease, owner="b"
        )
        assert again == []
        # the claimer died: after the lease, someone else takes it
        later = outbox.claim(
            conn, limits={"redis": 10}, now=NOW + timedelta(seconds=31), lease=lease, owner="b"
        )
    assert [(c.id, c.attempts) for c in later] == [(f"{o.id}/redis", 2)]
    (row,) = rows(engine, sa.select(outbox_table).where(outbox_table.c.adapter == "redis"))
    assert (row.state, row.claimed_by, row.first_attempt_at) == ("delivering", "b", NOW)


def test_entry_states_drive_the_order_status(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        store.record_tokens(conn, events=chain("fam-1", 2), now=at(500))
    o = order(TargetKind.FAMILY, "fam-1")
    (out,) = store.execute_orders(engine, orders=[o], now=NOW, routing=routing("redis", "hook"))
    assert out.status == Status.EXECUTING  # the store applied, two adapters to go
    ids = {"redis": f"{o.id}/redis", "hook": f"{o.id}/hook"}
    lease = timedelta(seconds=30)

    def status() -> str:
        with engine.connect() as conn:
            view = store.get_order(conn, order_id=o.id)
        assert view is not None
        return view.status.value

    with writing(engine) as conn:
        outbox.claim(conn, limits={"redis": 5, "hook": 5}, now=NOW, lease=lease, owner="t")
        outbox.mark_failed(
            conn, failures={ids["hook"]: ("503", NOW + timedelta(seconds=5))}, now=NOW
        )
        outbox.mark_delivered(conn, results={ids["redis"]: {"families": 1}}, now=NOW)
        outbox.refresh_status(conn, order_ids=[o.id], now=NOW)
    assert status() == "failed"
    with writing(engine) as conn:
        later = NOW + timedelta(seconds=6)
        (c,) = outbox.claim(conn, limits={"hook": 5}, now=later, lease=lease, owner="t")
        assert c.attempts == 2
        assert outbox.mark_delivered(conn, results={c.id: {"status": 200}}, now=later) == {c.id}
        # delivering it again changes nothing
        assert outbox.mark_delivered(conn, results={c.id: {"status": 200}}, now=later) == set()
        outbox.refresh_status(conn, order_ids=[o.id], now=later)
    assert status() == "done"
    with engine.connect() as conn:
        views = {d.adapter: d for d in store.deliveries(conn, order_id=o.id)}
        depth = outbox.depth(conn)
    assert views["hook"].result == {"status": 200}
    assert views["hook"].last_error is None
    assert views["redis"].result == {"families": 1}
    assert depth == {}


def test_status_of_entry_states() -> None:
    assert outbox.status_of([]) == Status.DONE
    assert outbox.status_of(["delivered", "delivered"]) == Status.DONE
    assert outbox.status_of(["pending", "pending"]) == Status.PENDING
    assert outbox.status_of(["delivered", "pending"]) == Status.EXECUTING
    assert outbox.status_of(["delivering"]) == Status.EXECUTING
    assert outbox.status_of(["delivered", "failed"]) == Status.FAILED


def test_old_pending_orders_get_their_store_entry_when_migrating(bare_engine: sa.Engine) -> None:
    from tokenwarden.db import upgrade

    upgrade(bare_engine, "0002")
    o = order(TargetKind.FAMILY, "fam-1")
    with bare_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO orders (id, idempotency_key, tenant, target_kind, target_value, "
                "action, mode, status, reason, rule, detection_ids, created_at) VALUES "
                "(:id, :key, 'acme', 'family', 'fam-1', 'revoke', 'enforce', 'pending', 'r', "
                "'rule', '[]', :at)"
            ),
            {"id": o.id, "key": o.idempotency_key, "at": NOW.replace(tzinfo=None)},
        )
    upgrade(bare_engine)
    assert entries(bare_engine) == {f"{o.id}/store": ("store", "pending")}
    (out,) = store.retry_pending(bare_engine, now=at(2000))
    assert (out.order_id, out.status, out.families) == (o.id, Status.DONE, 1)
