"""``scope_of``: what an order covers in the store now, for the adapters.

At most four indexed queries per order (families, tokens, the switch thrown, the switches
active on the target), bounded by ``max_families``/``max_tokens``: a kill switch on a
tenant with a million families hands adapters the newest ones and says ``truncated`` —
the denylist entry on the tenant is what covers the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, select

from revocation.delivery import FamilyRef, Scope, SwitchRef, TokenRef
from revocation.order import Action, RevocationOrder, Target, TargetKind
from revocation.statements import per_dialect
from revocation.tables import families, kill_switches, tokens

_SUBJECT_COLUMNS = {
    TargetKind.USER: families.c.user,
    TargetKind.AGENT: families.c.agent,
    TargetKind.CLIENT: families.c.client_id,
    TargetKind.SESSION: families.c.session_id,
    TargetKind.DEVICE: families.c.device_id,
}


def subject_filter(target: Target) -> ColumnElement[bool]:
    """The families a subject/agent/client/session/tenant target names."""
    cond = families.c.tenant == target.tenant
    column = _SUBJECT_COLUMNS.get(target.kind)
    if column is not None:
        cond = cond & (column == target.value)
    elif target.kind == TargetKind.FAMILY:
        cond = cond & (families.c.family_id == target.value)
    elif target.kind == TargetKind.TOKEN:
        member = select(tokens.c.family_id).where(
            tokens.c.tenant == target.tenant, tokens.c.token_id == target.value
        )
        cond = cond & families.c.family_id.in_(member)
    return cond


def family_ref(row: Any) -> FamilyRef:
    """A ``families`` row (all its columns) as the adapters see it."""
    return FamilyRef(
        tenant=row.tenant,
        family_id=row.family_id,
        user=row.user,
        agent=row.agent,
        client_id=row.client_id,
        session_id=row.session_id,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        revoked_at=row.revoked_at,
        revoked_by_order=row.revoked_by_order,
    )


def token_ref(row: Any) -> TokenRef:
    """A ``tokens`` row (at least ``token_id``, ``family_id``, ``type``, ``issued_at``,
    ``revoked_at``) as the adapters see it."""
    return TokenRef(
        token_id=row.token_id,
        family_id=row.family_id,
        type=row.type,
        issued_at=row.issued_at,
        revoked_at=row.revoked_at,
    )


def _switch(row: Any) -> SwitchRef:
    return SwitchRef(
        id=row.id,
        tenant=row.tenant,
        kind=row.kind,
        value=row.value,
        order_id=row.order_id,
        reason=row.reason,
        thrown_at=row.thrown_at,
        released_at=row.released_at,
    )


@dataclass(frozen=True, slots=True)
class _Statements:
    switches: Any
    family: Any
    tokens: Any


@per_dialect
def _statements(dialect: str) -> _Statements:
    ks, fc, tc = kill_switches.c, families.c, tokens.c
    return _Statements(
        switches=select(kill_switches)
        .where(
            ks.tenant == bindparam("p_tenant"),
            ks.kind == bindparam("p_kind"),
            ks.value == bindparam("p_value"),
            ks.released_at.is_(None),
        )
        .order_by(ks.thrown_at, ks.id),
        family=select(families).where(
            fc.tenant == bindparam("p_tenant"), fc.family_id == bindparam("p_family")
        ),
        tokens=select(tokens)
        .where(
            tc.tenant == bindparam("p_tenant"),
            tc.family_id.in_(bindparam("p_families", expanding=True)),
        )
        .order_by(tc.issued_at.desc(), tc.token_id.desc())
        .limit(bindparam("p_limit")),
    )


def active_switches(conn: Connection, *, tenant: str, kind: str, value: str) -> list[SwitchRef]:
    """The kill switches not released on one entity, oldest first."""
    params = {"p_tenant": tenant, "p_kind": kind, "p_value": value}
    return [_switch(r) for r in conn.execute(_statements(conn).switches, params)]


def get_switch(conn: Connection, *, kill_switch_id: str) -> SwitchRef | None:
    row = conn.execute(select(kill_switches).where(kill_switches.c.id == kill_switch_id)).first()
    return _switch(row) if row is not None else None


def list_switches(
    conn: Connection, *, tenant: str | None = None, active: bool = True, limit: int = 100
) -> list[SwitchRef]:
    """Kill switches, newest first; only those not released when ``active``."""
    query = (
        select(kill_switches)
        .order_by(kill_switches.c.thrown_at.desc(), kill_switches.c.id.desc())
        .limit(limit)
    )
    if tenant is not None:
        query = query.where(kill_switches.c.tenant == tenant)
    if active:
        query = query.where(kill_switches.c.released_at.is_(None))
    return [_switch(r) for r in conn.execute(query)]


def scope_of(
    conn: Connection,
    order: RevocationOrder,
    *,
    max_families: int = 1000,
    max_tokens: int = 10_000,
) -> Scope:
    """The families and tokens ``order`` covers now (newest first) and the kill switches
    active on its target."""
    target = order.target
    switches: tuple[SwitchRef, ...] = ()
    if order.action in (Action.KILL_SWITCH, Action.RELEASE):
        switches = tuple(
            active_switches(conn, tenant=target.tenant, kind=target.kind.value, value=target.value)
        )
    if order.action not in (Action.REVOKE, Action.KILL_SWITCH):
        return Scope(switches=switches)

    fam_rows: list[Any] = []
    if target.kind == TargetKind.TOKEN:
        token_row = conn.execute(
            select(tokens).where(
                tokens.c.tenant == target.tenant, tokens.c.token_id == target.value
            )
        ).first()
        if token_row is None or token_row.family_id is None:
            found = (token_ref(token_row),) if token_row is not None else ()
            return Scope(tokens=found, switches=switches)
        params = {"p_tenant": target.tenant, "p_family": token_row.family_id}
        fam_rows = list(conn.execute(_statements(conn).family, params))
        family_ids = [token_row.family_id]
    elif target.kind == TargetKind.FAMILY:
        params = {"p_tenant": target.tenant, "p_family": target.value}
        fam_rows = list(conn.execute(_statements(conn).family, params))
        family_ids = [target.value]
    else:
        fam_rows = list(
            conn.execute(
                select(families)
                .where(subject_filter(target))
                .order_by(families.c.last_seen_at.desc(), families.c.family_id)
                .limit(max_families + 1)
            )
        )
        family_ids = [f.family_id for f in fam_rows[:max_families]]
    truncated = len(fam_rows) > max_families
    fam_rows = fam_rows[:max_families]
    token_rows: list[Any] = []
    if family_ids:
        params = {"p_tenant": target.tenant, "p_families": family_ids, "p_limit": max_tokens + 1}
        token_rows = list(conn.execute(_statements(conn).tokens, params))
    truncated = truncated or len(token_rows) > max_tokens
    return Scope(
        families=tuple(family_ref(f) for f in fam_rows),
        tokens=tuple(token_ref(t) for t in token_rows[:max_tokens]),
        switches=switches,
        truncated=truncated,
    )
