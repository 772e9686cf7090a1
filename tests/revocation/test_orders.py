"""execute_orders / retry_pending: durable first, then applied once, in constant statements."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from revocation import Action, Mode, Status, TargetKind, store
from revocation.store import orders as orders_module
from revocation.tables import audit_log, families, kill_switches, orders, outbox, tokens
from tests.revocation.helpers import (
    TENANT,
    at,
    chain,
    count_statements,
    order,
    rows,
    scalar,
    snapshot,
)

NOW = at(1000)
ALL = (families, tokens, orders, kill_switches, audit_log)


def record(engine: sa.Engine, events: list[Any]) -> None:
    with engine.begin() as conn:
        store.record_tokens(conn, events=events, now=at(500))


def revoked_tokens(engine: sa.Engine, family: str) -> int:
    return int(
        scalar(
            engine,
            sa.select(sa.func.count()).where(
                tokens.c.family_id == family, tokens.c.revoked_at.is_not(None)
            ),
        )
    )


def test_revoking_a_family_revokes_it_and_all_its_tokens(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 5) + chain("fam-2", 3))
    o = order(TargetKind.FAMILY, "fam-1")
    (outcome,) = store.execute_orders(engine, orders=[o], now=NOW)

    assert outcome == store.OrderOutcome(
        order_id=o.id, duplicate=False, status=Status.DONE, families=1, tokens=5
    )
    fam = {f.family_id: f for f in rows(engine, sa.select(families))}
    assert fam["fam-1"].revoked_at == NOW
    assert fam["fam-1"].revoked_by_order == o.id
    assert fam["fam-1"].revoke_reason == o.reason
    assert fam["fam-2"].revoked_at is None
    assert revoked_tokens(engine, "fam-1") == 5
    assert revoked_tokens(engine, "fam-2") == 0
    (row,) = rows(engine, sa.select(orders))
    assert (row.status, row.executed_at, row.affected) == (
        "done",
        NOW,
        {"families": 1, "tokens": 5},
    )
    kinds = [a.kind for a in rows(engine, sa.select(audit_log).order_by(audit_log.c.seq))]
    assert kinds == ["order.recorded", "alert.opened", "order.executed"]


def test_the_same_order_twice_changes_nothing_the_second_time(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 3))
    o = order(TargetKind.FAMILY, "fam-1")
    (first,) = store.execute_orders(engine, orders=[o], now=NOW)
    before = snapshot(engine, *ALL)
    (again,) = store.execute_orders(engine, orders=[o], now=at(2000))
    assert snapshot(engine, *ALL) == before
    assert first.duplicate is False
    assert again == store.OrderOutcome(
        order_id=o.id, duplicate=True, status=Status.DONE, families=1, tokens=3
    )


def test_a_second_order_on_a_revoked_family_affects_nothing(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 3))
    first = order(TargetKind.FAMILY, "fam-1", cause="refresh_reuse")
    second = order(TargetKind.FAMILY, "fam-1", cause="signal")
    assert first.idempotency_key != second.idempotency_key
    store.execute_orders(engine, orders=[first], now=NOW)
    (outcome,) = store.execute_orders(engine, orders=[second], now=at(2000))
    assert (outcome.duplicate, outcome.status, outcome.families, outcome.tokens) == (
        False,
        Status.DONE,
        0,
        0,
    )
    (fam,) = rows(engine, sa.select(families))
    assert (fam.revoked_at, fam.revoked_by_order) == (NOW, first.id)


def test_duplicates_within_one_call_are_recorded_once(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 2))
    o = order(TargetKind.FAMILY, "fam-1")
    outcomes = store.execute_orders(engine, orders=[o, o], now=NOW)
    assert [x.duplicate for x in outcomes] == [False, True]
    assert [x.order_id for x in outcomes] == [o.id, o.id]
    assert outcomes[1].tokens == 2
    assert scalar(engine, sa.select(sa.func.count()).select_from(orders)) == 1
    # recorded, its alert opened, executed: once each
    assert scalar(engine, sa.select(sa.func.count()).select_from(audit_log)) == 3


def test_statements_per_order_do_not_grow_with_the_family(engine: sa.Engine) -> None:
    record(engine, chain("fam-small", 1) + chain("fam-big", 500))
    with count_statements(engine) as small:
        (a,) = store.execute_orders(engine, orders=[order(TargetKind.FAMILY, "fam-small")], now=NOW)
    with count_statements(engine) as big:
        (b,) = store.execute_orders(engine, orders=[order(TargetKind.FAMILY, "fam-big")], now=NOW)
    assert (a.tokens, b.tokens) == (1, 500)
    assert revoked_tokens(engine, "fam-big") == 500
    assert len(small) == len(big)
    assert len(big) < 30


def test_dry_run_counts_what_it_would_revoke_and_changes_nothing(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 4))
    before = snapshot(engine, families, tokens, kill_switches)
    dry = order(TargetKind.FAMILY, "fam-1", mode=Mode.DRY_RUN)
    dry_ks = order(
        TargetKind.USER, "jane@acme.example", action=Action.KILL_SWITCH, mode=Mode.DRY_RUN
    )
    out, out_ks = store.execute_orders(engine, orders=[dry, dry_ks], now=NOW)

    assert snapshot(engine, families, tokens, kill_switches) == before
    assert (out.status, out.families, out.tokens) == (Status.DONE, 1, 4)
    assert (out_ks.status, out_ks.families, out_ks.tokens) == (Status.DONE, 1, 4)
    stored = {r.id: r for r in rows(engine, sa.select(orders))}
    assert stored[dry.id].affected == {"families": 1, "tokens": 4}
    assert stored[dry.id].mode == "dry_run"
    assert "order.dry_run" in {a.kind for a in rows(engine, sa.select(audit_log))}
    # and the enforce order reports exactly what the dry run predicted
    (real,) = store.execute_orders(engine, orders=[order(TargetKind.FAMILY, "fam-1")], now=NOW)
    assert (real.families, real.tokens) == (out.families, out.tokens)


def test_revoking_a_token_revokes_its_family(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 3))
    (out,) = store.execute_orders(engine, orders=[order(TargetKind.TOKEN, "fam-1-t1")], now=NOW)
    assert (out.families, out.tokens) == (1, 3)
    assert revoked_tokens(engine, "fam-1") == 3


def test_revoking_an_unknown_token_records_it_revoked(engine: sa.Engine) -> None:
    (out,) = store.execute_orders(engine, orders=[order(TargetKind.TOKEN, "ghost")], now=NOW)
    assert (out.families, out.tokens) == (0, 1)
    (tok,) = rows(engine, sa.select(tokens))
    assert (tok.token_id, tok.family_id, tok.revoked_at) == ("ghost", None, NOW)


def test_revoking_a_user_revokes_the_families_it_holds_now(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 2) + chain("fam-2", 3) + chain("fam-bob", 2, user="bob"))
    (out,) = store.execute_orders(
        engine, orders=[order(TargetKind.USER, "jane@acme.example")], now=NOW
    )
    assert (out.families, out.tokens) == (2, 5)
    assert revoked_tokens(engine, "fam-bob") == 0
    record(engine, chain("fam-3", 1))  # first seen after the order: not covered
    assert revoked_tokens(engine, "fam-3") == 0


def test_kill_switch_order_throws_a_switch(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 2))
    o = order(TargetKind.AGENT, "crm-followup", action=Action.KILL_SWITCH)
    (out,) = store.execute_orders(engine, orders=[o], now=NOW)
    (ks,) = rows(engine, sa.select(kill_switches))
    assert ks.id == "ks-" + o.id.removeprefix("ord-")
    assert (ks.tenant, ks.kind, ks.value, ks.order_id, ks.thrown_at, ks.thrown_by) == (
        TENANT,
        "agent",
        "crm-followup",
        o.id,
        NOW,
        "policy",
    )
    assert ks.released_at is None
    assert (out.families, out.tokens) == (1, 2)
    assert revoked_tokens(engine, "fam-1") == 0  # a switch denies; it does not revoke


def test_orders_are_durable_before_they_are_applied(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(engine, chain("fam-1", 2))

    def crash(*args: Any, **kwargs: Any) -> list[store.OrderOutcome]:
        raise RuntimeError("process died between recording and applying")

    monkeypatch.setattr(orders_module, "_apply_all", crash)
    o = order(TargetKind.FAMILY, "fam-1")
    with pytest.raises(RuntimeError):
        store.execute_orders(engine, orders=[o], now=NOW)
    (row,) = rows(engine, sa.select(orders))
    assert (row.id, row.status) == (o.id, "pending")
    assert revoked_tokens(engine, "fam-1") == 0

    monkeypatch.undo()
    (out,) = store.retry_pending(engine, now=at(1100))
    assert (out.order_id, out.status, out.families, out.tokens) == (o.id, Status.DONE, 1, 2)
    assert revoked_tokens(engine, "fam-1") == 2


def test_a_failing_apply_marks_the_order_failed_until_retry(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 3) + chain("fam-2", 2))

    def fail_on_tokens_update(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE TOKENS") and "fam-1" in str(args[0]):
            raise RuntimeError("disk full")

    sa.event.listen(engine, "before_cursor_execute", fail_on_tokens_update)
    bad, good = order(TargetKind.FAMILY, "fam-1"), order(TargetKind.FAMILY, "fam-2")
    try:
        out_bad, out_good = store.execute_orders(engine, orders=[bad, good], now=NOW)
    finally:
        sa.event.remove(engine, "before_cursor_execute", fail_on_tokens_update)

    assert out_bad.status == Status.FAILED
    assert out_bad.error is not None
    assert "disk full" in out_bad.error
    assert (out_good.status, out_good.tokens) == (Status.DONE, 2)  # not held back by the other
    status = {r.id: r.status for r in rows(engine, sa.select(orders))}
    assert status == {bad.id: "failed", good.id: "done"}
    (entry,) = rows(engine, sa.select(outbox).where(outbox.c.order_id == bad.id))
    assert (entry.state, entry.attempts) == ("failed", 1)
    assert NOW < entry.next_attempt_at <= at(1001)  # the first backoff: 0.25-0.5 s
    assert "disk full" in entry.last_error
    # the failed order's partial work (the family upsert) was rolled back with its savepoint
    fam = {f.family_id: f for f in rows(engine, sa.select(families))}
    assert fam["fam-1"].revoked_at is None
    assert revoked_tokens(engine, "fam-1") == 0
    failed = rows(engine, sa.select(audit_log).where(audit_log.c.kind == "order.failed"))
    assert [(a.ref, "disk full" in a.data["error"]) for a in failed] == [(bad.id, True)]

    (retried,) = store.retry_pending(engine, now=at(1100))
    assert (retried.order_id, retried.status, retried.tokens) == (bad.id, Status.DONE, 3)
    assert revoked_tokens(engine, "fam-1") == 3
    assert store.retry_pending(engine, now=at(1200)) == []


def test_applying_an_already_applied_order_does_nothing(engine: sa.Engine) -> None:
    """retry_pending racing execute_orders: the order is claimed, so it is counted once."""
    record(engine, chain("fam-1", 2))
    o = order(TargetKind.FAMILY, "fam-1")
    store.execute_orders(engine, orders=[o], now=NOW)
    before = snapshot(engine, *ALL)
    with engine.begin() as conn:
        out = orders_module._apply_one(conn, o, now=at(2000), audit=[], backoff=None)
    assert snapshot(engine, *ALL) == before
    assert (out.status, out.families, out.tokens, out.duplicate) == (Status.DONE, 1, 2, False)


def test_list_orders_is_newest_first_with_status_and_effect(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 2))
    old = order(TargetKind.FAMILY, "fam-1", seconds=10)
    new = order(TargetKind.FAMILY, "fam-9", seconds=20, tenant="globex")
    store.execute_orders(engine, orders=[old, new], now=NOW)
    with engine.connect() as conn:
        listed = store.list_orders(conn)
        acme = store.list_orders(conn, tenant=TENANT)
    assert [o.id for o in listed] == [new.id, old.id]
    assert [o.id for o in acme] == [old.id]
    view = acme[0]
    assert (view.status, view.executed_at, view.affected) == (
        Status.DONE,
        NOW,
        {"families": 1, "tokens": 2},
    )
    assert view.model_dump(
        exclude={"status", "executed_at", "affected", "updated_at"}
    ) == old.model_dump(exclude={"status"})
