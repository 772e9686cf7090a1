"""Revocation orders against the SQL store: an outbox, then idempotent application.

DESIGN.md, non-negotiables: "A revocation order is durable before it is acknowledged,
executed at least once, idempotent in effect, and visible with its evidence."

* ``execute_orders`` first inserts the orders (insert-or-ignore by idempotency key) with
  an audit row each, and commits: from then on an order cannot be lost. Then, in a second
  transaction, it applies each new order inside its own SAVEPOINT; an order whose
  application fails is rolled back to ``pending``, audited as ``order.failed``, reported
  in its outcome, and left for ``retry_pending``.
* Applying is idempotent: every change is guarded by ``revoked_at IS NULL`` / insert-or-
  ignore, and an order is claimed (``pending`` → ``executing`` → ``done`` in the same
  transaction) so two appliers never both count it.
* Each order costs a constant number of statements, whatever the size of the family or
  subject it revokes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, literal, select, update

from revocation.order import Action, Mode, RevocationOrder, Status, Target, TargetKind
from revocation.store.audit import append_audit, append_audit_many
from revocation.tables import families, kill_switches, tokens
from revocation.tables import orders as orders_table
from revocation.upsert import Insert, dialect_insert

log = logging.getLogger(__name__)

_MAX_ERROR = 1000


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """What became of one order. ``duplicate``: its idempotency key was already stored, and
    ``status``/``families``/``tokens`` are those of the stored order. ``error``: why applying
    failed (the order then stays ``pending``)."""

    order_id: str
    duplicate: bool
    status: Status
    families: int = 0
    tokens: int = 0
    error: str | None = None


class OrderView(RevocationOrder):
    """A stored order: the ``RevocationOrder`` plus when it ran and what it affected."""

    executed_at: datetime | None = None
    affected: dict[str, int] | None = None


def _row(order: RevocationOrder) -> dict[str, Any]:
    return {
        "id": order.id,
        "idempotency_key": order.idempotency_key,
        "tenant": order.target.tenant,
        "target_kind": order.target.kind.value,
        "target_value": order.target.value,
        "action": order.action.value,
        "mode": order.mode.value,
        "status": Status.PENDING.value,
        "reason": order.reason,
        "rule": order.rule,
        "releases": list(order.releases) or None,
        "detection_ids": list(order.detection_ids),
        "created_at": order.created_at,
    }


def _view(row: Any) -> OrderView:
    return OrderView(
        id=row.id,
        target=Target(kind=row.target_kind, tenant=row.tenant, value=row.target_value),
        action=row.action,
        reason=row.reason,
        detection_ids=tuple(row.detection_ids),
        idempotency_key=row.idempotency_key,
        mode=row.mode,
        status=row.status,
        rule=row.rule,
        releases=tuple(row.releases or ()),
        created_at=row.created_at,
        executed_at=row.executed_at,
        affected=row.affected,
    )


def _stored_outcome(row: Any, *, duplicate: bool) -> OrderOutcome:
    affected = row.affected or {}
    return OrderOutcome(
        order_id=row.id,
        duplicate=duplicate,
        status=Status(row.status),
        families=int(affected.get("families", 0)),
        tokens=int(affected.get("tokens", 0)),
    )


def list_orders(
    conn: Connection, *, tenant: str | None = None, limit: int = 100
) -> list[OrderView]:
    """Orders, newest first."""
    query = (
        select(orders_table)
        .order_by(orders_table.c.created_at.desc(), orders_table.c.id.desc())
        .limit(limit)
    )
    if tenant is not None:
        query = query.where(orders_table.c.tenant == tenant)
    return [_view(row) for row in conn.execute(query)]


def record_orders(
    conn: Connection,
    *,
    orders: Sequence[RevocationOrder],
    now: datetime,
    actor: str = "policy",
) -> list[RevocationOrder]:
    """Insert-or-ignore the orders (status ``pending``) in the caller's transaction and
    audit the new ones; return the new ones, first occurrence of each key, in order.

    Committing this together with the detections that caused the orders makes them
    durable before anything is applied or acknowledged; ``apply_orders`` then applies.
    """
    if not orders:
        return []
    first: dict[str, RevocationOrder] = {}
    for order in orders:
        first.setdefault(order.idempotency_key, order)
    new_keys = _record(conn, list(first.values()), now=now, actor=actor)
    return [o for k, o in first.items() if k in new_keys]


def apply_orders(
    engine: Engine,
    *,
    orders: Sequence[RevocationOrder],
    now: datetime,
    actor: str = "policy",
) -> list[OrderOutcome]:
    """Apply recorded ``pending`` orders in one transaction (a SAVEPOINT each): an order
    that fails stays ``pending`` with its error and the others still apply."""
    return _apply_all(engine, orders, now=now, actor=actor)


def execute_orders(
    engine: Engine,
    *,
    orders: Sequence[RevocationOrder],
    now: datetime,
    actor: str = "policy",
) -> list[OrderOutcome]:
    """Record the orders durably, then apply the new ones; one outcome per order, in order.

    Owns its transactions (takes the engine): transaction 1 records, transaction 2 applies.
    An order whose idempotency key is already stored (earlier, or earlier in ``orders``) is
    a duplicate and changes nothing. Dry-run orders are recorded and marked ``done`` with
    ``affected`` counting what they would have changed.

    An order whose application raises is reported ``pending`` with ``error``; the others
    still apply. If the applying transaction as a whole fails (database gone), the
    exception propagates — the orders are already durable and stay ``pending``: something
    must call ``retry_pending`` periodically (a retried call sees them as duplicates).
    """
    if not orders:
        return []
    first: dict[str, RevocationOrder] = {}
    for order in orders:
        first.setdefault(order.idempotency_key, order)

    with engine.begin() as conn:
        new_keys = _record(conn, list(first.values()), now=now, actor=actor)
        dup_keys = sorted(set(first) - new_keys)
        stored: dict[str, Any] = {}
        if dup_keys:
            found = conn.execute(
                select(orders_table).where(orders_table.c.idempotency_key.in_(dup_keys))
            )
            stored = {row.idempotency_key: row for row in found}

    fresh = [o for k, o in first.items() if k in new_keys]
    applied = {
        o.id: out
        for o, out in zip(fresh, _apply_all(engine, fresh, now=now, actor=actor), strict=True)
    }

    outcomes: list[OrderOutcome] = []
    reported: set[str] = set()
    for order in orders:
        key = order.idempotency_key
        if key not in new_keys:
            outcomes.append(_stored_outcome(stored[key], duplicate=True))
            continue
        outcome = applied[first[key].id]
        # a repeat of an order recorded earlier in this same call is a duplicate of it
        outcomes.append(replace(outcome, duplicate=True) if key in reported else outcome)
        reported.add(key)
    return outcomes


def _record(
    conn: Connection, batch: list[RevocationOrder], *, now: datetime, actor: str
) -> set[str]:
    """Insert-or-ignore the orders and audit the new ones; return the new keys."""
    ins = dialect_insert(conn, orders_table)
    stmt = ins.on_conflict_do_nothing(index_elements=[orders_table.c.idempotency_key]).returning(
        orders_table.c.idempotency_key
    )
    new_keys = set(conn.scalars(stmt, [_row(o) for o in batch]).all())
    append_audit_many(
        conn,
        rows=[
            {
                "at": now,
                "actor": actor,
                "kind": "order.recorded",
                "ref": o.id,
                "data": {
                    "target": o.target.model_dump(mode="json"),
                    "action": o.action.value,
                    "mode": o.mode.value,
                    "rule": o.rule,
                    "reason": o.reason,
                    "detection_ids": list(o.detection_ids),
                },
            }
            for o in batch
            if o.idempotency_key in new_keys
        ],
    )
    return new_keys


def retry_pending(
    engine: Engine, *, now: datetime, actor: str = "executor", limit: int = 100
) -> list[OrderOutcome]:
    """Apply the oldest ``limit`` orders still ``pending`` (recorded, never applied, or whose
    application failed). Safe to run concurrently with ``execute_orders``: applying is
    idempotent and each order is claimed before it is applied. Owns its transactions."""
    with engine.begin() as conn:
        rows = conn.execute(
            select(orders_table)
            .where(orders_table.c.status == Status.PENDING.value)
            .order_by(orders_table.c.created_at, orders_table.c.id)
            .limit(limit)
        ).all()
    return _apply_all(engine, [_view(r) for r in rows], now=now, actor=actor)


def _apply_all(
    engine: Engine, batch: Sequence[RevocationOrder], *, now: datetime, actor: str
) -> list[OrderOutcome]:
    if not batch:
        return []
    with engine.begin() as conn:
        return [_apply_one(conn, order, now=now, actor=actor) for order in batch]


def _apply_one(
    conn: Connection, order: RevocationOrder, *, now: datetime, actor: str
) -> OrderOutcome:
    affected: dict[str, int] = {}
    try:
        with conn.begin_nested():
            claimed = conn.execute(
                update(orders_table)
                .where(orders_table.c.id == order.id, orders_table.c.status == Status.PENDING.value)
                .values(status=Status.EXECUTING.value)
            ).rowcount
            if claimed:
                affected = _effect(conn, order, now=now, actor=actor)
                conn.execute(
                    update(orders_table)
                    .where(orders_table.c.id == order.id)
                    .values(status=Status.DONE.value, executed_at=now, affected=affected)
                )
                kind = "order.executed" if order.mode == Mode.ENFORCE else "order.dry_run"
                append_audit(
                    conn, at=now, actor=actor, kind=kind, ref=order.id, data={"affected": affected}
                )
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]
        log.exception("applying order %s failed; it stays pending", order.id)
        append_audit(
            conn, at=now, actor=actor, kind="order.failed", ref=order.id, data={"error": error}
        )
        return OrderOutcome(order_id=order.id, duplicate=False, status=Status.PENDING, error=error)
    if claimed:
        return OrderOutcome(
            order_id=order.id,
            duplicate=False,
            status=Status.DONE,
            families=affected["families"],
            tokens=affected["tokens"],
        )
    # someone else applied it meanwhile: report what is stored
    row = conn.execute(select(orders_table).where(orders_table.c.id == order.id)).one()
    return _stored_outcome(row, duplicate=False)


# -- effects: each a constant number of statements ---------------------------------------

_SUBJECT_COLUMNS = {
    TargetKind.USER: families.c.user,
    TargetKind.AGENT: families.c.agent,
    TargetKind.CLIENT: families.c.client_id,
    TargetKind.SESSION: families.c.session_id,
    TargetKind.DEVICE: families.c.device_id,
}


def _effect(
    conn: Connection, order: RevocationOrder, *, now: datetime, actor: str
) -> dict[str, int]:
    """Apply (enforce) or count (dry run) one order; return ``affected``."""
    enforce = order.mode == Mode.ENFORCE
    target = order.target
    if order.action == Action.REVOKE:
        if target.kind == TargetKind.FAMILY:
            return _revoke_family(conn, order, target.value, now=now, enforce=enforce)
        if target.kind == TargetKind.TOKEN:
            return _revoke_token(conn, order, now=now, enforce=enforce)
        return _revoke_subject(conn, order, now=now, enforce=enforce)
    if order.action == Action.KILL_SWITCH:
        covered = _covered(conn, target)
        thrown = 1
        if enforce:
            ins = dialect_insert(conn, kill_switches).values(
                id="ks-" + order.id.removeprefix("ord-"),
                tenant=target.tenant,
                kind=target.kind.value,
                value=target.value,
                order_id=order.id,
                reason=order.reason,
                thrown_at=now,
                thrown_by=actor,
            )
            thrown = _inserted(
                conn, ins.on_conflict_do_nothing(index_elements=[kill_switches.c.id])
            )
        return {**covered, "kill_switches": thrown}
    if order.action == Action.RELEASE:
        return {
            "families": 0,
            "tokens": 0,
            "kill_switches": _release(conn, order, now=now, enforce=enforce),
        }
    return {"families": 0, "tokens": 0}


def _release(conn: Connection, order: RevocationOrder, *, now: datetime, enforce: bool) -> int:
    """Release the active kill switches on the order's target that orders of the rules in
    ``order.releases`` threw — never one a human or another rule threw. Two statements."""
    if not order.releases:
        return 0
    target = order.target
    throwers = select(orders_table.c.id).where(orders_table.c.rule.in_(order.releases))
    active = (
        kill_switches.c.tenant == target.tenant,
        kill_switches.c.kind == target.kind.value,
        kill_switches.c.value == target.value,
        kill_switches.c.released_at.is_(None),
        kill_switches.c.order_id.in_(throwers),
    )
    if not enforce:
        return int(
            conn.execute(
                select(func.count()).select_from(kill_switches).where(*active)
            ).scalar_one()
        )
    released = (
        conn.execute(
            update(kill_switches)
            .where(*active)
            .values(released_at=now, released_by=f"order:{order.id}", release_reason=order.reason)
            .returning(kill_switches.c.order_id)
        )
        .scalars()
        .all()
    )
    if released:
        conn.execute(
            update(orders_table)
            .where(orders_table.c.id.in_(released), orders_table.c.status == Status.DONE.value)
            .values(status=Status.RELEASED.value)
        )
    return len(released)


def _inserted(conn: Connection, stmt: Insert) -> int:
    """Rows an ``INSERT … ON CONFLICT`` inserted or updated (``rowcount`` is unreliable for
    INSERT across drivers, so count the RETURNING rows)."""
    return len(conn.execute(stmt.returning(literal(1))).all())


def _family_counts(conn: Connection, tenant: str, family_id: str) -> dict[str, int]:
    """What revoking the family would change: the family unless already revoked, and its
    unrevoked tokens."""
    live_tokens = (
        select(func.count())
        .select_from(tokens)
        .where(
            tokens.c.tenant == tenant,
            tokens.c.family_id == family_id,
            tokens.c.revoked_at.is_(None),
        )
        .scalar_subquery()
    )
    revoked = (
        select(func.count())
        .select_from(families)
        .where(
            families.c.tenant == tenant,
            families.c.family_id == family_id,
            families.c.revoked_at.is_not(None),
        )
        .scalar_subquery()
    )
    n_tokens, n_revoked = conn.execute(select(live_tokens, revoked)).one()
    return {"families": 0 if n_revoked else 1, "tokens": int(n_tokens)}


def _revoke_family(
    conn: Connection, order: RevocationOrder, family_id: str, *, now: datetime, enforce: bool
) -> dict[str, int]:
    """Revoke a family and every token in it (RFC 9700 §4.14.2); two statements. A family
    never seen is inserted revoked, so its tokens are revoked when they show up."""
    tenant = order.target.tenant
    if not enforce:
        return _family_counts(conn, tenant, family_id)
    ins = dialect_insert(conn, families).values(
        tenant=tenant,
        family_id=family_id,
        created_at=now,
        last_seen_at=now,
        revoked_at=now,
        revoked_by_order=order.id,
        revoke_reason=order.reason,
    )
    n_families = _inserted(
        conn,
        ins.on_conflict_do_update(
            index_elements=[families.c.tenant, families.c.family_id],
            set_={
                "revoked_at": ins.excluded.revoked_at,
                "revoked_by_order": ins.excluded.revoked_by_order,
                "revoke_reason": ins.excluded.revoke_reason,
            },
            where=families.c.revoked_at.is_(None),
        ),
    )
    n_tokens = conn.execute(
        update(tokens)
        .where(
            tokens.c.tenant == tenant,
            tokens.c.family_id == family_id,
            tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    ).rowcount
    return {"families": n_families, "tokens": n_tokens}


def _revoke_token(
    conn: Connection, order: RevocationOrder, *, now: datetime, enforce: bool
) -> dict[str, int]:
    """Revoke the token's family; a token with no known family is itself recorded revoked."""
    tenant, token_id = order.target.tenant, order.target.value
    family_id = conn.execute(
        select(tokens.c.family_id).where(tokens.c.tenant == tenant, tokens.c.token_id == token_id)
    ).scalar_one_or_none()
    if family_id is not None:
        return _revoke_family(conn, order, family_id, now=now, enforce=enforce)
    if not enforce:
        live = conn.execute(
            select(func.count())
            .select_from(tokens)
            .where(
                tokens.c.tenant == tenant,
                tokens.c.token_id == token_id,
                tokens.c.revoked_at.is_not(None),
            )
        ).scalar_one()
        return {"families": 0, "tokens": 0 if live else 1}
    ins = dialect_insert(conn, tokens).values(
        tenant=tenant, token_id=token_id, family_id=None, issued_at=now, revoked_at=now
    )
    n_tokens = _inserted(
        conn,
        ins.on_conflict_do_update(
            index_elements=[tokens.c.tenant, tokens.c.token_id],
            set_={"revoked_at": ins.excluded.revoked_at},
            where=tokens.c.revoked_at.is_(None),
        ),
    )
    return {"families": 0, "tokens": n_tokens}


def _subject_filter(target: Target) -> ColumnElement[bool]:
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


def _covered(conn: Connection, target: Target) -> dict[str, int]:
    """Unrevoked families the target names and their unrevoked tokens; one statement."""
    named = _subject_filter(target)
    live_families = (
        select(func.count()).select_from(families).where(named, families.c.revoked_at.is_(None))
    ).scalar_subquery()
    live_tokens = (
        select(func.count())
        .select_from(tokens)
        .where(
            tokens.c.tenant == target.tenant,
            tokens.c.revoked_at.is_(None),
            tokens.c.family_id.in_(select(families.c.family_id).where(named)),
        )
    ).scalar_subquery()
    n_families, n_tokens = conn.execute(select(live_families, live_tokens)).one()
    return {"families": int(n_families), "tokens": int(n_tokens)}


def _revoke_subject(
    conn: Connection, order: RevocationOrder, *, now: datetime, enforce: bool
) -> dict[str, int]:
    """Revoke every family (and token) the user / agent / client / session / tenant holds
    now; two statements. Unlike a kill switch this does not cover families seen later."""
    if not enforce:
        return _covered(conn, order.target)
    named = _subject_filter(order.target)
    n_families = conn.execute(
        update(families)
        .where(named, families.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by_order=order.id, revoke_reason=order.reason)
    ).rowcount
    n_tokens = conn.execute(
        update(tokens)
        .where(
            tokens.c.tenant == order.target.tenant,
            tokens.c.revoked_at.is_(None),
            tokens.c.family_id.in_(select(families.c.family_id).where(named)),
        )
        .values(revoked_at=now)
    ).rowcount
    return {"families": n_families, "tokens": n_tokens}


def release_kill_switch(
    conn: Connection, *, kill_switch_id: str, now: datetime, actor: str, reason: str
) -> bool:
    """Release an active kill switch (the on-call engineer's way back); False when there is
    no such active switch. Its order, if any, becomes ``released``."""
    released = conn.execute(
        update(kill_switches)
        .where(kill_switches.c.id == kill_switch_id, kill_switches.c.released_at.is_(None))
        .values(released_at=now, released_by=actor, release_reason=reason)
    ).rowcount
    if not released:
        return False
    order_id = select(kill_switches.c.order_id).where(kill_switches.c.id == kill_switch_id)
    conn.execute(
        update(orders_table)
        .where(orders_table.c.id.in_(order_id), orders_table.c.status == Status.DONE.value)
        .values(status=Status.RELEASED.value)
    )
    append_audit(
        conn,
        at=now,
        actor=actor,
        kind="kill_switch.released",
        ref=kill_switch_id,
        data={"reason": reason},
    )
    return True
