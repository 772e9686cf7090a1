"""Manual orders and kill switches: a human revokes, kills and releases through the same
outbox and audit trail; a switch covers families issued after it; a release needs a reason."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from revocation import Action, Status, TargetKind, store
from revocation.manual import ManualOrderError, manual_order, release_order
from revocation.tables import audit_log, kill_switches, outbox
from tests.revocation.fakes import routing
from tests.revocation.helpers import TENANT, at, chain, rows

NOW = at(1000)


def record(engine: sa.Engine, events: list[Any], seconds: float = 500) -> None:
    with engine.begin() as conn:
        store.record_tokens(conn, events=events, now=at(seconds))


def check(engine: sa.Engine, **kw: Any) -> store.CheckResult:
    with engine.connect() as conn:
        return store.check(conn, tenant=TENANT, now=at(9000), **kw)


def kill(engine: sa.Engine, kind: TargetKind, value: str, **kw: Any) -> str:
    o = manual_order(
        action=Action.KILL_SWITCH,
        kind=kind,
        value=value,
        tenant=TENANT,
        reason="agent exfiltrating leads",
        actor="cli:alice",
        now=NOW,
        **kw,
    )
    store.execute_orders(engine, orders=[o], now=NOW, routing=routing("redis"))
    return o.kill_switch_thrown


@pytest.mark.parametrize(
    ("kind", "value", "ask"),
    [
        (TargetKind.USER, "jane@acme.example", {"user": "jane@acme.example"}),
        (TargetKind.AGENT, "crm-followup", {"agent": "crm-followup"}),
        (TargetKind.CLIENT, "agent-crm", {"client_id": "agent-crm"}),
        (TargetKind.SESSION, "sess-1", {"session_id": "sess-1"}),
        (TargetKind.TENANT, TENANT, {}),
    ],
)
def test_a_manual_kill_switch_covers_families_issued_after_it(
    engine: sa.Engine, kind: TargetKind, value: str, ask: dict[str, str]
) -> None:
    ks = kill(engine, kind, value)
    # a grant issued after the switch was thrown
    record(engine, chain("fam-late", 2, session="sess-1"), seconds=3000)
    for query in (ask, {"token_id": "fam-late-t1"}, {"family_id": "fam-late"}):
        if not query:
            continue
        result = check(engine, **query)
        assert (result.allow, result.kill_switch_id) == (False, ks), query
    # someone else's grant is untouched (unless the whole tenant is cut off)
    record(engine, chain("fam-bob", 1, user="bob", agent="a2", client_id="c2"), seconds=3000)
    assert check(engine, token_id="fam-bob-t0").allow is (kind != TargetKind.TENANT)
    (row,) = rows(engine, sa.select(kill_switches))
    assert (row.thrown_by, row.reason) == ("cli:alice", "agent exfiltrating leads")


def test_manual_orders_are_audited_with_the_human_and_go_through_the_outbox(
    engine: sa.Engine,
) -> None:
    record(engine, chain("fam-1", 3))
    o = manual_order(
        action=Action.REVOKE,
        kind=TargetKind.FAMILY,
        value="fam-1",
        tenant=TENANT,
        reason="token seen in a paste site",
        actor="api:bob",
        now=NOW,
    )
    (out,) = store.execute_orders(engine, orders=[o], now=NOW, routing=routing("redis"))
    assert (out.status, out.families, out.tokens) == (Status.EXECUTING, 1, 3)
    assert {e.adapter for e in rows(engine, sa.select(outbox))} == {"store", "redis"}
    trail = rows(engine, sa.select(audit_log).where(audit_log.c.ref == o.id))
    recorded = next(a for a in trail if a.kind == "order.recorded")
    assert (recorded.actor, recorded.data["rule"], recorded.data["reason"]) == (
        "api:bob",
        "manual",
        "token seen in a paste site",
    )
    with engine.connect() as conn:
        view = store.get_order(conn, order_id=o.id)
    assert view is not None
    assert view.actor == "api:bob"


def test_the_same_request_id_is_the_same_order() -> None:
    def make(request_id: str | None) -> str:
        return manual_order(
            action=Action.REVOKE,
            kind=TargetKind.FAMILY,
            value="fam-1",
            tenant=TENANT,
            reason="r",
            actor="a",
            now=NOW,
            request_id=request_id,
        ).idempotency_key

    assert make("req-1") == make("req-1")
    assert make("req-1") != make("req-2")
    assert make(None) != make(None)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"reason": "  "}, "a reason is required"),
        ({"actor": ""}, "an actor"),
        ({"action": Action.KILL_SWITCH, "kind": TargetKind.FAMILY}, "cannot kill_switch a family"),
        ({"action": Action.RELEASE}, "revokes or kills"),
        ({"kind": TargetKind.TENANT, "value": "globex"}, "names its own tenant"),
    ],
)
def test_manual_orders_are_validated(kw: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "action": Action.REVOKE,
        "kind": TargetKind.FAMILY,
        "value": "fam-1",
        "tenant": TENANT,
        "reason": "why",
        "actor": "cli:alice",
        "now": NOW,
    }
    with pytest.raises(ManualOrderError, match=message):
        manual_order(**{**args, **kw})


def test_releasing_needs_a_reason_and_is_audited_with_who(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 2))
    ks = kill(engine, TargetKind.AGENT, "crm-followup")
    with engine.connect() as conn, pytest.raises(ManualOrderError, match="a reason"):
        release_order(conn, kill_switch_id=ks, reason="", actor="cli:alice", now=at(2000))
    with engine.connect() as conn:
        rel = release_order(
            conn,
            kill_switch_id=ks,
            reason="false positive: batch job",
            actor="cli:carol",
            now=at(2000),
        )
    assert (rel.action, rel.kill_switch_id, rel.target.kind) == (
        Action.RELEASE,
        ks,
        TargetKind.AGENT,
    )
    (out,) = store.execute_orders(engine, orders=[rel], now=at(2000), routing=routing("redis"))
    assert out.error is None
    assert check(engine, agent="crm-followup").allow is True
    (row,) = rows(engine, sa.select(kill_switches))
    assert (row.released_by, row.release_reason, row.released_at) == (
        "cli:carol",
        "false positive: batch job",
        at(2000),
    )
    released = rows(engine, sa.select(audit_log).where(audit_log.c.kind == "kill_switch.released"))
    assert [(a.ref, a.actor, a.data["reason"]) for a in released] == [
        (ks, "cli:carol", "false positive: batch job")
    ]
    with engine.connect() as conn:
        thrower = store.get_order(conn, order_id=row.order_id)
        redo = None
        with pytest.raises(ManualOrderError, match="was released at") as info:
            redo = release_order(conn, kill_switch_id=ks, reason="again", actor="x", now=at(3000))
        assert redo is None
        assert info.value.code == "already_released"
        with pytest.raises(ManualOrderError, match="no kill switch") as missing:
            release_order(conn, kill_switch_id="ks-nope", reason="r", actor="x", now=at(3000))
        assert missing.value.code == "not_found"
    assert thrower is not None
    assert thrower.status == Status.RELEASED
    # the release reaches the other adapters too
    assert {
        e.adapter for e in rows(engine, sa.select(outbox).where(outbox.c.order_id == rel.id))
    } == {
        "store",
        "redis",
    }


def test_a_release_only_releases_its_own_switch(engine: sa.Engine) -> None:
    first = kill(engine, TargetKind.USER, "jane@acme.example", request_id="a")
    second = kill(engine, TargetKind.USER, "jane@acme.example", request_id="b")
    with engine.connect() as conn:
        rel = release_order(conn, kill_switch_id=first, reason="ok", actor="x", now=at(2000))
    store.execute_orders(engine, orders=[rel], now=at(2000))
    result = check(engine, user="jane@acme.example")
    assert (result.allow, result.kill_switch_id) == (False, second)


def test_a_dry_run_summary_says_what_would_have_been_revoked(engine: sa.Engine) -> None:
    from revocation.order import Mode
    from tests.revocation.helpers import order

    record(engine, chain("fam-1", 3) + chain("fam-2", 2))
    dry = [
        order(TargetKind.FAMILY, "fam-1", mode=Mode.DRY_RUN),
        order(TargetKind.USER, "jane@acme.example", mode=Mode.DRY_RUN, cause="x"),
        order(TargetKind.AGENT, "crm-followup", action=Action.KILL_SWITCH, mode=Mode.DRY_RUN),
    ]
    store.execute_orders(engine, orders=dry, now=NOW)
    with engine.connect() as conn:
        s = store.summarize(conn, mode=Mode.DRY_RUN)
        enforced = store.summarize(conn, mode=Mode.ENFORCE)
    assert (s.orders, s.families, s.tokens, s.kill_switches) == (3, 1 + 2 + 2, 3 + 5 + 5, 1)
    assert s.by_rule["test-rule"]["orders"] == 3
    assert enforced.orders == 0
    # and nothing was revoked or thrown
    assert check(engine, family_id="fam-1").allow is True
    assert rows(engine, sa.select(kill_switches)) == []
