"""check(): revoked tokens and families, and kill switches on every kind of target."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from revocation import Action, TargetKind, store
from revocation.store import CheckResult
from revocation.tables import tokens
from tests.revocation.helpers import TENANT, at, chain, count_statements, order, rows

NOW = at(1000)
LATER = at(5000)


def record(engine: sa.Engine, events: list[Any], seconds: float = 500) -> None:
    with engine.begin() as conn:
        store.record_tokens(conn, events=events, now=at(seconds))


def check(engine: sa.Engine, **kw: Any) -> CheckResult:
    kw.setdefault("tenant", TENANT)
    with engine.connect() as conn:
        return store.check(conn, now=LATER, **kw)


def kill(engine: sa.Engine, kind: TargetKind, value: str, tenant: str = TENANT) -> str:
    o = order(kind, value, action=Action.KILL_SWITCH, tenant=tenant, reason="agent went rogue")
    store.execute_orders(engine, orders=[o], now=NOW)
    return "ks-" + o.id.removeprefix("ord-")


def test_nothing_known_is_allowed(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 2))
    result = check(engine, token_id="fam-1-t1", family_id="fam-1", user="jane@acme.example")
    assert result == CheckResult(allow=True, reason="no revocation or kill switch applies")
    assert check(engine, token_id="never-seen").allow is True
    assert check(engine, tenant=None, user="nobody").allow is True


def test_a_token_of_a_revoked_family_is_denied_with_the_order_and_reason(
    engine: sa.Engine,
) -> None:
    record(engine, chain("fam-1", 3) + chain("fam-2", 1))
    o = order(TargetKind.FAMILY, "fam-1")
    store.execute_orders(engine, orders=[o], now=NOW)

    result = check(engine, token_id="fam-1-t0")
    assert result.allow is False
    assert result.order_id == o.id
    assert result.kill_switch_id is None
    assert result.reason == (
        f"token fam-1-t0 revoked: family fam-1 revoked by order {o.id} "
        "(refresh token reuse: token t0 presented again)"
    )
    assert check(engine, family_id="fam-1").reason.startswith(
        f"family fam-1 revoked by order {o.id}"
    )
    assert check(engine, tenant=None, token_id="fam-1-t2").allow is False
    assert check(engine, token_id="fam-2-t0").allow is True
    # the same ids in another tenant are someone else's
    assert check(engine, tenant="globex", token_id="fam-1-t0").allow is True
    assert check(engine, tenant="globex", family_id="fam-1").allow is True


def test_a_family_revoked_before_it_was_ever_seen_is_denied(engine: sa.Engine) -> None:
    o = order(TargetKind.FAMILY, "fam-x")
    (out,) = store.execute_orders(engine, orders=[o], now=NOW)
    assert (out.families, out.tokens) == (1, 0)
    assert check(engine, family_id="fam-x").order_id == o.id


def test_a_token_first_seen_after_its_family_was_revoked_is_revoked(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 2))
    o = order(TargetKind.FAMILY, "fam-1")
    store.execute_orders(engine, orders=[o], now=NOW)
    # the attacker's refresh, logged after the revocation, shows a brand-new token
    record(engine, chain("fam-1", 4)[2:], seconds=2000)

    new = {t.token_id: t.revoked_at for t in rows(engine, sa.select(tokens))}
    assert new == {f"fam-1-t{i}": (NOW if i < 2 else at(2000)) for i in range(4)}
    result = check(engine, token_id="fam-1-t3")
    assert (result.allow, result.order_id) == (False, o.id)


def test_an_unknown_token_revoked_by_id_is_denied(engine: sa.Engine) -> None:
    store.execute_orders(engine, orders=[order(TargetKind.TOKEN, "ghost")], now=NOW)
    assert check(engine, token_id="ghost") == CheckResult(allow=False, reason="token ghost revoked")


@pytest.mark.parametrize(
    ("kind", "value", "ask"),
    [
        (TargetKind.USER, "jane@acme.example", {"user": "jane@acme.example"}),
        (TargetKind.AGENT, "crm-followup", {"agent": "crm-followup"}),
        (TargetKind.CLIENT, "agent-crm", {"client_id": "agent-crm"}),
        (TargetKind.SESSION, "sess-1", {"session_id": "sess-1"}),
        (TargetKind.TENANT, TENANT, {}),
        (TargetKind.FAMILY, "fam-1", {"family_id": "fam-1"}),
        (TargetKind.TOKEN, "fam-1-t0", {"token_id": "fam-1-t0"}),
    ],
)
def test_a_kill_switch_denies_what_it_names_given_or_implied(
    engine: sa.Engine, kind: TargetKind, value: str, ask: dict[str, str]
) -> None:
    record(
        engine,
        chain("fam-1", 2, session="sess-1")
        + chain("fam-2", 1, user="bob", agent="a2", client_id="c2"),
    )
    ks = kill(engine, kind, value)

    direct = check(engine, **ask)
    assert (direct.allow, direct.kill_switch_id) == (False, ks)
    assert direct.reason == f"kill switch {ks} on {kind.value} {value} (agent went rogue)"
    assert direct.order_id is not None
    # implied by the token's family row
    assert check(engine, token_id="fam-1-t0").kill_switch_id == ks
    # a switch on one user/agent/... leaves the others alone (a tenant switch covers all)
    assert check(engine, token_id="fam-2-t0").allow is (kind != TargetKind.TENANT)


def test_a_user_kill_switch_covers_families_first_seen_after_it(engine: sa.Engine) -> None:
    ks = kill(engine, TargetKind.USER, "jane@acme.example")
    record(engine, chain("fam-new", 2), seconds=3000)  # jane's agent gets a new grant
    result = check(engine, token_id="fam-new-t1")
    assert (result.allow, result.kill_switch_id) == (False, ks)
    assert check(engine, family_id="fam-new").kill_switch_id == ks
    # the family is denied by the switch, not revoked
    assert all(t.revoked_at is None for t in rows(engine, sa.select(tokens)))


def test_kill_switches_do_not_cross_tenants(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 1, tenant="globex"))
    kill(engine, TargetKind.USER, "jane@acme.example", tenant=TENANT)
    assert check(engine, tenant="globex", user="jane@acme.example").allow is True
    assert check(engine, tenant="globex", token_id="fam-1-t0").allow is True
    # without a tenant the caller asks about the user anywhere: fail closed
    assert check(engine, tenant=None, user="jane@acme.example").allow is False


def test_a_released_kill_switch_no_longer_denies(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 1))
    ks = kill(engine, TargetKind.AGENT, "crm-followup")
    with engine.begin() as conn:
        assert store.release_kill_switch(
            conn, kill_switch_id=ks, now=at(4000), actor="oncall", reason="false positive"
        )
        assert not store.release_kill_switch(
            conn, kill_switch_id=ks, now=at(4001), actor="oncall", reason="again"
        )
    assert check(engine, agent="crm-followup").allow is True
    with engine.connect() as conn:
        # a check "before" the release (clock skew) still sees the switch: fail closed
        early = store.check(conn, tenant=TENANT, agent="crm-followup", now=at(3999))
        (o,) = store.list_orders(conn)
        trail = [a.kind for a in store.list_audit(conn, ref=ks)]
    assert early.allow is False
    assert o.status == "released"
    assert trail == ["kill_switch.released", "kill_switch.thrown"]


def test_check_costs_at_most_three_queries(engine: sa.Engine) -> None:
    record(engine, chain("fam-1", 50))
    kill(engine, TargetKind.AGENT, "someone-else")
    with engine.connect() as conn, count_statements(engine) as log:
        result = store.check(
            conn,
            tenant=TENANT,
            token_id="fam-1-t7",
            family_id="fam-1",
            user="jane@acme.example",
            agent="crm-followup",
            now=LATER,
        )
    assert result.allow is True
    assert len([s for s in log.statements if s.lstrip().upper().startswith("SELECT")]) == 3
