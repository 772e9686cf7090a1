"""``check``: may this token / family / subject / agent / client / session still be used?

Gateways and token brokers ask this on every call (DESIGN.md, users: "in well under a
millisecond"), so it is at most three indexed queries: the token, the families, the kill
switches. Every identifier given must be clear for ``allow``; identifiers implied by the
token's family (its tenant, user, agent, client, session) are checked too, so a kill switch
on a user covers every family of that user, including families first seen after the switch
was thrown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, or_, select, tuple_

from revocation.order import TargetKind
from revocation.sqltypes import UTCDateTime
from revocation.statements import per_dialect
from revocation.tables import families, kill_switches, tokens

ALLOW_REASON = "no revocation or kill switch applies"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The answer, with the order or kill switch behind a denial."""

    allow: bool
    reason: str
    order_id: str | None = None
    kill_switch_id: str | None = None


def _family_denial(fam: Any) -> CheckResult:
    reason = f"family {fam.family_id} revoked"
    if fam.revoked_by_order:
        reason += f" by order {fam.revoked_by_order}"
    if fam.revoke_reason:
        reason += f" ({fam.revoke_reason})"
    return CheckResult(allow=False, reason=reason, order_id=fam.revoked_by_order)


def check(
    conn: Connection,
    *,
    tenant: str | None,
    token_id: str | None = None,
    family_id: str | None = None,
    user: str | None = None,
    agent: str | None = None,
    client_id: str | None = None,
    session_id: str | None = None,
    device_id: str | None = None,
    now: datetime,
) -> CheckResult:
    """Deny when the token or its family is revoked, the family is revoked, or an active
    kill switch (not released, or released after ``now``) matches the tenant or any given
    or implied identifier. ``tenant=None`` matches the identifiers in every tenant.
    """
    if tenant is not None:
        return _check_in_tenant(
            conn,
            tenant=tenant,
            given={
                TargetKind.TOKEN: token_id,
                TargetKind.FAMILY: family_id,
                TargetKind.USER: user,
                TargetKind.AGENT: agent,
                TargetKind.CLIENT: client_id,
                TargetKind.SESSION: session_id,
                TargetKind.DEVICE: device_id,
            },
            now=now,
        )
    token_rows: list[Any] = []
    if token_id is not None:
        q = select(tokens.c.tenant, tokens.c.family_id, tokens.c.revoked_at).where(
            tokens.c.token_id == token_id
        )
        if tenant is not None:
            q = q.where(tokens.c.tenant == tenant)
        token_rows = list(conn.execute(q.order_by(tokens.c.tenant)))

    wanted: list[ColumnElement[bool]] = [
        and_(families.c.tenant == t.tenant, families.c.family_id == t.family_id)
        for t in token_rows
        if t.family_id is not None
    ]
    if family_id is not None:
        by_id = families.c.family_id == family_id
        wanted.append(by_id if tenant is None else and_(by_id, families.c.tenant == tenant))
    fam_rows: dict[tuple[str, str], Any] = {}
    if wanted:
        q = select(families).where(or_(*wanted)).order_by(families.c.tenant)
        fam_rows = {(f.tenant, f.family_id): f for f in conn.execute(q)}

    for t in token_rows:
        fam = fam_rows.get((t.tenant, t.family_id))
        if fam is not None and fam.revoked_at is not None:
            denial = _family_denial(fam)
            return CheckResult(
                allow=False,
                reason=f"token {token_id} revoked: {denial.reason}",
                order_id=denial.order_id,
            )
        if t.revoked_at is not None:
            return CheckResult(allow=False, reason=f"token {token_id} revoked")
    for fam in fam_rows.values():
        if fam.revoked_at is not None:
            return _family_denial(fam)

    # (tenant or None for "any tenant", kind, value) a kill switch may name
    targets: set[tuple[str | None, str, str]] = set()
    given = {
        TargetKind.TOKEN: token_id,
        TargetKind.FAMILY: family_id,
        TargetKind.USER: user,
        TargetKind.AGENT: agent,
        TargetKind.CLIENT: client_id,
        TargetKind.SESSION: session_id,
        TargetKind.DEVICE: device_id,
    }
    for kind, value in given.items():
        if value is not None:
            targets.add((tenant, kind.value, value))
    if tenant is not None:
        targets.add((tenant, TargetKind.TENANT.value, tenant))
    for t in token_rows:
        targets.add((t.tenant, TargetKind.TENANT.value, t.tenant))
        targets.add((t.tenant, TargetKind.TOKEN.value, token_id or ""))
    for fam in fam_rows.values():
        implied = {
            TargetKind.TENANT: fam.tenant,
            TargetKind.FAMILY: fam.family_id,
            TargetKind.USER: fam.user,
            TargetKind.AGENT: fam.agent,
            TargetKind.CLIENT: fam.client_id,
            TargetKind.SESSION: fam.session_id,
            TargetKind.DEVICE: fam.device_id,
        }
        for kind, value in implied.items():
            if value is not None:
                targets.add((fam.tenant, kind.value, value))
    if not targets:
        return CheckResult(allow=True, reason=ALLOW_REASON)

    ks = kill_switches.c
    matches: list[ColumnElement[bool]] = []
    for t_tenant, t_kind, t_value in sorted(targets, key=lambda x: (x[0] or "", x[1], x[2])):
        cond = and_(ks.kind == t_kind, ks.value == t_value)
        matches.append(cond if t_tenant is None else and_(cond, ks.tenant == t_tenant))
    q = (
        select(ks.id, ks.kind, ks.value, ks.reason, ks.order_id)
        .where(or_(ks.released_at.is_(None), ks.released_at > now), or_(*matches))
        .order_by(ks.thrown_at, ks.id)
        .limit(1)
    )
    hit = conn.execute(q).first()
    if hit is None:
        return CheckResult(allow=True, reason=ALLOW_REASON)
    reason = f"kill switch {hit.id} on {hit.kind} {hit.value}"
    if hit.reason:
        reason += f" ({hit.reason})"
    return CheckResult(allow=False, reason=reason, order_id=hit.order_id, kill_switch_id=hit.id)


@dataclass(frozen=True, slots=True)
class _Statements:
    token: Any
    families: Any
    switch: Any


@per_dialect
def _statements(dialect: str) -> _Statements:
    """``check`` within one tenant: three statements built once (``revocation.statements``)."""
    ks, t, f = kill_switches.c, tokens.c, families.c
    return _Statements(
        token=select(t.family_id, t.revoked_at).where(
            t.tenant == bindparam("p_tenant"), t.token_id == bindparam("p_token")
        ),
        families=select(families).where(
            f.tenant == bindparam("p_tenant"),
            f.family_id.in_(bindparam("p_families", expanding=True)),
        ),
        switch=select(ks.id, ks.kind, ks.value, ks.reason, ks.order_id)
        .where(
            ks.tenant == bindparam("p_tenant"),
            tuple_(ks.kind, ks.value).in_(bindparam("p_targets", expanding=True)),
            or_(ks.released_at.is_(None), ks.released_at > bindparam("p_now", type_=UTCDateTime())),
        )
        .order_by(ks.thrown_at, ks.id)
        .limit(1),
    )


def _check_in_tenant(
    conn: Connection, *, tenant: str, given: dict[TargetKind, str | None], now: datetime
) -> CheckResult:
    """``check`` for a request naming its tenant (what gateways send): the same answers,
    from statements built once."""
    stmts = _statements(conn)
    token_id = given[TargetKind.TOKEN]
    token_row: Any = None
    if token_id is not None:
        token_row = conn.execute(stmts.token, {"p_tenant": tenant, "p_token": token_id}).first()
    wanted = sorted(
        {fid for fid in (given[TargetKind.FAMILY], token_row and token_row.family_id) if fid}
    )
    fam_rows: dict[str, Any] = {}
    if wanted:
        params = {"p_tenant": tenant, "p_families": wanted}
        fam_rows = {r.family_id: r for r in conn.execute(stmts.families, params)}
    if token_row is not None:
        fam = fam_rows.get(token_row.family_id) if token_row.family_id else None
        if fam is not None and fam.revoked_at is not None:
            denial = _family_denial(fam)
            return CheckResult(
                allow=False,
                reason=f"token {token_id} revoked: {denial.reason}",
                order_id=denial.order_id,
            )
        if token_row.revoked_at is not None:
            return CheckResult(allow=False, reason=f"token {token_id} revoked")
    for fam in fam_rows.values():
        if fam.revoked_at is not None:
            return _family_denial(fam)
    targets = {(kind.value, value) for kind, value in given.items() if value is not None}
    targets.add((TargetKind.TENANT.value, tenant))
    for fam in fam_rows.values():
        for kind, value in (
            (TargetKind.FAMILY, fam.family_id),
            (TargetKind.USER, fam.user),
            (TargetKind.AGENT, fam.agent),
            (TargetKind.CLIENT, fam.client_id),
            (TargetKind.SESSION, fam.session_id),
            (TargetKind.DEVICE, fam.device_id),
        ):
            if value is not None:
                targets.add((kind.value, value))
    switch_params: dict[str, Any] = {"p_tenant": tenant, "p_targets": sorted(targets), "p_now": now}
    hit = conn.execute(stmts.switch, switch_params).first()
    if hit is None:
        return CheckResult(allow=True, reason=ALLOW_REASON)
    reason = f"kill switch {hit.id} on {hit.kind} {hit.value}"
    if hit.reason:
        reason += f" ({hit.reason})"
    return CheckResult(allow=False, reason=reason, order_id=hit.order_id, kill_switch_id=hit.id)
