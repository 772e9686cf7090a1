"""Revocation orders against the SQL store: recorded with their outbox, then applied.

DESIGN.md, non-negotiables: "A revocation order is durable before it is acknowledged,
executed at least once, idempotent in effect, and visible with its evidence."

* ``record_orders`` inserts the orders (insert-or-ignore by idempotency key), opens their
  alerts and writes their outbox entries — one per adapter that wants each order
  (``revocation.routing``) — in the caller's transaction, with an audit row each. Once
  that commits, nothing is lost, and no adapter has been called yet.
* ``apply_orders`` delivers the orders to our own token store (the ``store`` adapter): in
  one transaction, a SAVEPOINT per order. The store entry is marked ``delivered`` in the
  same transaction as the effect, so the store applies an order exactly once however
  often it is retried. An order whose application fails is rolled back, its entry marked
  ``failed`` with a backoff, audited as ``order.failed``, reported in its outcome, and
  retried (``retry_pending``, or the dispatcher).
* Every other adapter is the dispatcher's (``revocation.dispatcher``). An order's status
  follows its entries (``revocation.store.outbox.status_of``).
* Each order costs a constant number of statements, whatever the size of the family or
  subject it revokes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    update,
)

from revocation.backoff import Backoff
from revocation.delivery import Scope, TokenRef
from revocation.order import Action, Mode, RevocationOrder, Status, Target, TargetKind
from revocation.routing import STORE, Routing
from revocation.sqltypes import UTCDateTime
from revocation.statements import per_dialect
from revocation.store import outbox
from revocation.store.alerts import open_alerts
from revocation.store.audit import append_audit_many, audit_row
from revocation.store.keyset import newest_first
from revocation.store.scope import family_ref, subject_filter, token_ref
from revocation.tables import families, kill_switches, tokens
from revocation.tables import orders as orders_table
from revocation.tables import outbox as outbox_table
from revocation.txn import writing
from revocation.upsert import Insert, dialect_insert, insert_for

log = logging.getLogger(__name__)

_MAX_ERROR = 1000


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """What became of one order. ``duplicate``: its idempotency key was already stored, and
    ``status``/``families``/``tokens`` are those of the stored order. ``error``: why applying
    to the store failed (the order is then ``failed`` and retried)."""

    order_id: str
    duplicate: bool
    status: Status
    families: int = 0
    tokens: int = 0
    error: str | None = None
    #: what applying the order changed in the store, as adapters see it (the family it
    #: revoked and that family's tokens, newest first) — handed to the in-process
    #: dispatcher so it need not read it back; ``None`` when not known
    scope: Scope | None = field(default=None, repr=False, compare=False)


class OrderView(RevocationOrder):
    """A stored order: the ``RevocationOrder`` plus when it ran and what it affected."""

    executed_at: datetime | None = None
    affected: dict[str, int] | None = None
    updated_at: datetime | None = None


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
        "actor": order.actor,
        "kill_switch_id": order.kill_switch_id,
        "updated_at": order.created_at,
    }


def view_of(row: Any) -> OrderView:
    """An ``OrderView`` from an ``orders`` row."""
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
        actor=row.actor or "policy",
        kill_switch_id=row.kill_switch_id,
        created_at=row.created_at,
        executed_at=row.executed_at,
        affected=row.affected,
        updated_at=row.updated_at,
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
    conn: Connection,
    *,
    tenant: str | None = None,
    limit: int = 100,
    mode: Mode | None = None,
    status: Status | None = None,
) -> list[OrderView]:
    """Orders, newest first."""
    query = (
        select(orders_table)
        .order_by(orders_table.c.created_at.desc(), orders_table.c.id.desc())
        .limit(limit)
    )
    if tenant is not None:
        query = query.where(orders_table.c.tenant == tenant)
    if mode is not None:
        query = query.where(orders_table.c.mode == mode.value)
    if status is not None:
        query = query.where(orders_table.c.status == status.value)
    return [view_of(row) for row in conn.execute(query)]


def page_orders(
    conn: Connection,
    *,
    tenant: str | None = None,
    mode: Mode | None = None,
    status: Status | None = None,
    rule: str | None = None,
    target: tuple[str, str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int = 100,
) -> list[OrderView]:
    """Orders, newest first, filtered; ``before`` is the keyset cursor ``(created_at, id)``
    of the last order of the previous page."""
    t = orders_table.c
    query = newest_first(
        select(orders_table),
        at=t.created_at,
        id_=t.id,
        since=since,
        until=until,
        before=before,
        limit=limit,
    )
    if tenant is not None:
        query = query.where(t.tenant == tenant)
    if mode is not None:
        query = query.where(t.mode == mode.value)
    if status is not None:
        query = query.where(t.status == status.value)
    if rule is not None:
        query = query.where(t.rule == rule)
    if target is not None:
        query = query.where(t.target_kind == target[0], t.target_value == target[1])
    return [view_of(row) for row in conn.execute(query)]


def get_order(conn: Connection, *, order_id: str) -> OrderView | None:
    row = conn.execute(select(orders_table).where(orders_table.c.id == order_id)).first()
    return view_of(row) if row is not None else None


def get_orders(conn: Connection, *, order_ids: Sequence[str]) -> list[OrderView]:
    """The stored orders with these ids, in the given order (missing ones left out)."""
    if not order_ids:
        return []
    rows = conn.execute(_orders_by_id(conn), {"p_ids": sorted(set(order_ids))})
    found = {row.id: view_of(row) for row in rows}
    return [found[i] for i in order_ids if i in found]


@per_dialect
def _orders_by_id(dialect: str) -> Any:
    return select(orders_table).where(orders_table.c.id.in_(bindparam("p_ids", expanding=True)))


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """What a set of orders did — or, for dry-run orders, would have done."""

    orders: int
    families: int
    tokens: int
    kill_switches: int
    by_rule: dict[str, dict[str, int]]


def summarize(
    conn: Connection,
    *,
    mode: Mode,
    tenant: str | None = None,
    since: datetime | None = None,
) -> OrderSummary:
    """Totals of ``affected`` over the orders of ``mode``: for ``dry_run``, "would have
    revoked N families" (and tokens, and thrown M kill switches), per rule and in total."""
    query = select(orders_table.c.rule, orders_table.c.affected).where(
        orders_table.c.mode == mode.value
    )
    if tenant is not None:
        query = query.where(orders_table.c.tenant == tenant)
    if since is not None:
        query = query.where(orders_table.c.created_at >= since)
    by_rule: dict[str, dict[str, int]] = {}
    for rule, affected in conn.execute(query):
        bucket = by_rule.setdefault(
            rule or "manual", {"orders": 0, "families": 0, "tokens": 0, "kill_switches": 0}
        )
        bucket["orders"] += 1
        for key in ("families", "tokens", "kill_switches"):
            bucket[key] += int((affected or {}).get(key, 0))
    total = {
        k: sum(b[k] for b in by_rule.values())
        for k in ("orders", "families", "tokens", "kill_switches")
    }
    return OrderSummary(by_rule=by_rule, **total)


def record_orders(
    conn: Connection,
    *,
    orders: Sequence[RevocationOrder],
    now: datetime,
    routing: Routing | None = None,
    audit: list[dict[str, Any]] | None = None,
    handoff: list[outbox.Claimed] | None = None,
) -> list[RevocationOrder]:
    """Insert-or-ignore the orders (status ``pending``) in the caller's transaction, open
    their alerts and write their outbox entries; audit the new ones. Return the new ones,
    first occurrence of each key, in order.

    Committing this together with the detections that caused the orders makes them
    durable — with every delivery they need — before anything is applied or acknowledged.
    With ``audit`` given, the audit rows are appended to it for the caller to write at
    the end of its transaction; otherwise they are written here.
    """
    if not orders:
        return []
    routing = routing or Routing()
    first: dict[str, RevocationOrder] = {}
    for order in orders:
        first.setdefault(order.idempotency_key, order)
    rows: list[dict[str, Any]] = [] if audit is None else audit
    new_keys = _record(conn, list(first.values()), now=now, audit=rows)
    fresh = [o for k, o in first.items() if k in new_keys]
    to_send = open_alerts(conn, orders=fresh, policy=routing.alerts, now=now, audit=rows)
    outbox.enqueue(conn, orders=fresh, routing=routing, now=now, alerts=to_send, handoff=handoff)
    if audit is None:
        append_audit_many(conn, rows=rows)
    return fresh


def record_and_apply(
    conn: Connection,
    *,
    orders: Sequence[RevocationOrder],
    now: datetime,
    routing: Routing | None = None,
    audit: list[dict[str, Any]] | None = None,
    handoff: list[outbox.Claimed] | None = None,
) -> tuple[list[RevocationOrder], list[OrderOutcome]]:
    """``record_orders`` and then the store's delivery of the new orders, in the caller's
    transaction (the pipeline's fast path): one commit makes the order, its outbox
    entries and its effect on the store durable together, so a gateway can never see an
    order recorded but its family not yet revoked. Each order applies in its own
    SAVEPOINT: one that fails is rolled back alone, stays recorded with its store entry
    ``failed`` and is retried; the other adapters' entries are untouched either way, and
    no adapter outside the database has been called when this commits. ``handoff``
    collects the entries pre-claimed for the in-process dispatcher
    (``revocation.routing.Preclaim``)."""
    routing = routing or Routing()
    rows: list[dict[str, Any]] = [] if audit is None else audit
    fresh = record_orders(
        conn, orders=orders, now=now, routing=routing, audit=rows, handoff=handoff
    )
    # applied here, the store is delivered and every other entry still pending
    expected = {
        o.id: Status.EXECUTING if len(routing.destinations(o)) > 1 else Status.DONE for o in fresh
    }
    outcomes = [
        _apply_one(
            conn, order, now=now, audit=rows, backoff=routing.backoff, status=expected[order.id]
        )
        for order in fresh
    ]
    failed = [o.order_id for o in outcomes if o.error is not None]
    statuses = {**expected, **outbox.refresh_status(conn, order_ids=failed, now=now)}
    if audit is None:
        append_audit_many(conn, rows=rows)
    return fresh, [replace(o, status=statuses.get(o.order_id, o.status)) for o in outcomes]


def apply_orders(
    engine: Engine,
    *,
    orders: Sequence[RevocationOrder],
    now: datetime,
    backoff: Backoff | None = None,
) -> list[OrderOutcome]:
    """Deliver recorded orders to the token store in one transaction (a SAVEPOINT each):
    an order that fails is marked ``failed`` with its error, retried after ``backoff``,
    and the others still apply."""
    return _apply_all(engine, orders, now=now, backoff=backoff or Backoff())


def apply_one_strict(engine: Engine, *, order: RevocationOrder, now: datetime) -> OrderOutcome:
    """Deliver one order to the token store, raising if that fails (the dispatcher then
    records the failure and schedules the retry)."""
    with writing(engine) as conn:
        audit: list[dict[str, Any]] = []
        outcome = _apply_one(conn, order, now=now, audit=audit, backoff=None)
        statuses = outbox.refresh_status(conn, order_ids=[order.id], now=now)
        append_audit_many(conn, rows=audit)
    return replace(outcome, status=statuses.get(order.id, outcome.status))


def execute_orders(
    engine: Engine,
    *,
    orders: Sequence[RevocationOrder],
    now: datetime,
    routing: Routing | None = None,
) -> list[OrderOutcome]:
    """Record the orders durably (with their outbox), then apply the new ones to the
    store; one outcome per order, in order.

    Owns its transactions (takes the engine): transaction 1 records, transaction 2 applies.
    An order whose idempotency key is already stored (earlier, or earlier in ``orders``) is
    a duplicate and changes nothing. Dry-run orders are recorded and marked ``done`` with
    ``affected`` counting what they would have changed.

    An order whose application raises is reported ``failed`` with ``error``; the others
    still apply. If the applying transaction as a whole fails (database gone), the
    exception propagates — the orders are already durable and their store entries stay
    pending: ``retry_pending`` or the dispatcher applies them later (a retried call sees
    them as duplicates).
    """
    if not orders:
        return []
    routing = routing or Routing()
    first: dict[str, RevocationOrder] = {}
    for order in orders:
        first.setdefault(order.idempotency_key, order)

    with writing(engine) as conn:
        fresh = record_orders(conn, orders=list(first.values()), now=now, routing=routing)
        new_keys = {o.idempotency_key for o in fresh}
        dup_keys = sorted(set(first) - new_keys)
        stored: dict[str, Any] = {}
        if dup_keys:
            found = conn.execute(
                select(orders_table).where(orders_table.c.idempotency_key.in_(dup_keys))
            )
            stored = {row.idempotency_key: row for row in found}

    applied = {
        o.id: out
        for o, out in zip(
            fresh, _apply_all(engine, fresh, now=now, backoff=routing.backoff), strict=True
        )
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
    conn: Connection, batch: list[RevocationOrder], *, now: datetime, audit: list[dict[str, Any]]
) -> set[str]:
    """Insert-or-ignore the orders and audit the new ones; return the new keys."""
    new_keys = set(conn.scalars(_statements(conn).insert_orders, [_row(o) for o in batch]).all())
    audit.extend(
        audit_row(
            at=now,
            actor=o.actor,
            kind="order.recorded",
            ref=o.id,
            data={
                "target": o.target.model_dump(mode="json"),
                "action": o.action.value,
                "mode": o.mode.value,
                "rule": o.rule,
                "reason": o.reason,
                "detection_ids": list(o.detection_ids),
                **({"kill_switch_id": o.kill_switch_id} if o.kill_switch_id else {}),
            },
        )
        for o in batch
        if o.idempotency_key in new_keys
    )
    return new_keys


def _store_due(now: datetime) -> ColumnElement[bool]:
    oc = outbox_table.c
    return and_(
        oc.adapter == STORE,
        or_(
            and_(oc.state.in_((outbox.PENDING, outbox.FAILED)), oc.next_attempt_at <= now),
            and_(oc.state == outbox.DELIVERING, oc.lease_until <= now),
        ),
    )


def retry_pending(
    engine: Engine, *, now: datetime, limit: int = 100, backoff: Backoff | None = None
) -> list[OrderOutcome]:
    """Apply to the store the oldest ``limit`` orders whose store entry is due (recorded,
    never applied — a crash —, or failed and due for its retry). Safe to run concurrently
    with anything else: the store applies an order once. Owns its transactions."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(orders_table)
            .join(outbox_table, outbox_table.c.order_id == orders_table.c.id)
            .where(_store_due(now))
            .order_by(orders_table.c.created_at, orders_table.c.id)
            .limit(limit)
        ).all()
    return _apply_all(engine, [view_of(r) for r in rows], now=now, backoff=backoff or Backoff())


def _apply_all(
    engine: Engine, batch: Sequence[RevocationOrder], *, now: datetime, backoff: Backoff
) -> list[OrderOutcome]:
    if not batch:
        return []
    with writing(engine) as conn:
        audit: list[dict[str, Any]] = []
        outcomes = [
            _apply_one(conn, order, now=now, audit=audit, backoff=backoff) for order in batch
        ]
        statuses = outbox.refresh_status(conn, order_ids=[o.id for o in batch], now=now)
        append_audit_many(conn, rows=audit)
    return [replace(o, status=statuses.get(o.order_id, o.status)) for o in outcomes]


@dataclass(frozen=True, slots=True)
class _Statements:
    insert_orders: Any
    claim_store: Any
    executed: Any
    executed_with_status: Any
    revoke_family: Any
    revoke_family_tokens: Any


@per_dialect
def _statements(dialect: str) -> _Statements:
    """The hot path's statements (``revocation.statements``)."""
    oc, fc, tc = outbox_table.c, families.c, tokens.c
    ins_orders = insert_for(dialect, orders_table)
    ins_family = insert_for(dialect, families).values(
        tenant=bindparam("p_tenant"),
        family_id=bindparam("p_family"),
        created_at=bindparam("p_now", type_=UTCDateTime()),
        last_seen_at=bindparam("p_now", type_=UTCDateTime()),
        revoked_at=bindparam("p_now", type_=UTCDateTime()),
        revoked_by_order=bindparam("p_order"),
        revoke_reason=bindparam("p_reason"),
    )
    executed = update(orders_table).where(orders_table.c.id == bindparam("p_id"))
    return _Statements(
        insert_orders=ins_orders.on_conflict_do_nothing(
            index_elements=[orders_table.c.idempotency_key]
        ).returning(orders_table.c.idempotency_key),
        claim_store=update(outbox_table)
        .where(oc.id == bindparam("p_id"), oc.state != outbox.DELIVERED)
        .values(
            state=outbox.DELIVERED,
            delivered_at=bindparam("p_now", type_=UTCDateTime()),
            lease_until=None,
            last_error=None,
            attempts=case((oc.state == outbox.DELIVERING, oc.attempts), else_=oc.attempts + 1),
            first_attempt_at=func.coalesce(
                oc.first_attempt_at, bindparam("p_now", type_=UTCDateTime())
            ),
        ),
        executed=executed.values(
            executed_at=bindparam("p_now", type_=UTCDateTime()),
            affected=bindparam("p_affected", type_=orders_table.c.affected.type),
            updated_at=bindparam("p_now", type_=UTCDateTime()),
        ),
        executed_with_status=executed.values(
            executed_at=bindparam("p_now", type_=UTCDateTime()),
            affected=bindparam("p_affected", type_=orders_table.c.affected.type),
            updated_at=bindparam("p_now", type_=UTCDateTime()),
            status=bindparam("p_status"),
        ),
        revoke_family=ins_family.on_conflict_do_update(
            index_elements=[fc.tenant, fc.family_id],
            set_={
                "revoked_at": ins_family.excluded.revoked_at,
                "revoked_by_order": ins_family.excluded.revoked_by_order,
                "revoke_reason": ins_family.excluded.revoke_reason,
            },
            where=fc.revoked_at.is_(None),
        ).returning(*families.c),
        revoke_family_tokens=update(tokens)
        .where(
            tc.tenant == bindparam("p_tenant"),
            tc.family_id == bindparam("p_family"),
            tc.revoked_at.is_(None),
        )
        .values(revoked_at=bindparam("p_now", type_=UTCDateTime()))
        .returning(tc.token_id, tc.family_id, tc.type, tc.issued_at, tc.revoked_at),
    )


def _apply_one(
    conn: Connection,
    order: RevocationOrder,
    *,
    now: datetime,
    audit: list[dict[str, Any]],
    backoff: Backoff | None,
    status: Status | None = None,
) -> OrderOutcome:
    """Apply one order to the store unless its store entry is delivered already. With
    ``backoff`` a failure is recorded on the entry; without, it propagates. ``status``:
    the order's status once applied, when the caller knows it (saves recomputing it)."""
    store_id = outbox.entry_id(order.id, STORE)
    oc = outbox_table.c
    stmts = _statements(conn)
    affected: dict[str, int] = {}
    changed: dict[str, Scope] = {}
    try:
        with conn.begin_nested():
            claimed = conn.execute(stmts.claim_store, {"p_id": store_id, "p_now": now}).rowcount
            if claimed:
                effect_audit: list[dict[str, Any]] = []
                affected = _effect(conn, order, now=now, audit=effect_audit, changed=changed)
                params: dict[str, Any] = {"p_id": order.id, "p_now": now, "p_affected": affected}
                if status is None:
                    conn.execute(stmts.executed, params)
                else:
                    conn.execute(stmts.executed_with_status, {**params, "p_status": status.value})
                kind = "order.executed" if order.mode == Mode.ENFORCE else "order.dry_run"
                audit.append(
                    audit_row(
                        at=now,
                        actor="store",
                        kind=kind,
                        ref=order.id,
                        data={"adapter": STORE, "affected": affected},
                    )
                )
                audit.extend(effect_audit)
    except Exception as exc:
        if backoff is None:
            raise
        error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]
        log.exception("applying order %s to the store failed; it will be retried", order.id)
        attempts = int(
            conn.execute(select(oc.attempts).where(oc.id == store_id)).scalar_one_or_none() or 0
        )
        retry_at = now + timedelta(seconds=backoff.delay(attempts + 1))
        conn.execute(
            update(outbox_table)
            .where(oc.id == store_id, oc.state != outbox.DELIVERED)
            .values(
                state=outbox.FAILED,
                attempts=attempts + 1,
                next_attempt_at=retry_at,
                last_error=error,
                lease_until=None,
                first_attempt_at=func.coalesce(oc.first_attempt_at, now),
            )
        )
        audit.append(
            audit_row(
                at=now,
                actor="store",
                kind="order.failed",
                ref=order.id,
                data={"adapter": STORE, "error": error, "retry_at": retry_at.isoformat()},
            )
        )
        return OrderOutcome(order_id=order.id, duplicate=False, status=Status.FAILED, error=error)
    if claimed:
        return OrderOutcome(
            order_id=order.id,
            duplicate=False,
            status=Status.DONE,
            families=affected["families"],
            tokens=affected["tokens"],
            scope=changed.get(order.id),
        )
    # applied already (a redelivery, or someone else meanwhile): report what is stored
    row = conn.execute(select(orders_table).where(orders_table.c.id == order.id)).one()
    return _stored_outcome(row, duplicate=False)


# -- effects: each a constant number of statements ---------------------------------------


def _effect(
    conn: Connection,
    order: RevocationOrder,
    *,
    now: datetime,
    audit: list[dict[str, Any]],
    changed: dict[str, Scope] | None = None,
) -> dict[str, int]:
    """Apply (enforce) or count (dry run) one order; return ``affected``. A revoked family
    goes into ``changed`` (``_revoke_family``)."""
    enforce = order.mode == Mode.ENFORCE
    target = order.target
    if order.action == Action.REVOKE:
        if target.kind == TargetKind.FAMILY:
            return _revoke_family(
                conn, order, target.value, now=now, enforce=enforce, changed=changed
            )
        if target.kind == TargetKind.TOKEN:
            return _revoke_token(conn, order, now=now, enforce=enforce, changed=changed)
        return _revoke_subject(conn, order, now=now, enforce=enforce)
    if order.action == Action.KILL_SWITCH:
        covered = _covered(conn, target)
        thrown = 1
        if enforce:
            ins = dialect_insert(conn, kill_switches).values(
                id=order.kill_switch_thrown,
                tenant=target.tenant,
                kind=target.kind.value,
                value=target.value,
                order_id=order.id,
                reason=order.reason,
                thrown_at=now,
                thrown_by=order.actor,
            )
            thrown = _inserted(
                conn, ins.on_conflict_do_nothing(index_elements=[kill_switches.c.id])
            )
            if thrown:
                audit.append(
                    audit_row(
                        at=now,
                        actor=order.actor,
                        kind="kill_switch.thrown",
                        ref=order.kill_switch_thrown,
                        data={
                            "order_id": order.id,
                            "target": target.model_dump(mode="json"),
                            "reason": order.reason,
                        },
                    )
                )
        return {**covered, "kill_switches": thrown}
    if order.action == Action.RELEASE:
        if order.kill_switch_id is not None:
            released = _release_one(
                conn,
                order.kill_switch_id,
                now=now,
                actor=order.actor,
                reason=order.reason,
                audit=audit,
                enforce=enforce,
            )
        else:
            released = _release(conn, order, now=now, enforce=enforce, audit=audit)
        return {"families": 0, "tokens": 0, "kill_switches": released}
    return {"families": 0, "tokens": 0}


def _release(
    conn: Connection,
    order: RevocationOrder,
    *,
    now: datetime,
    enforce: bool,
    audit: list[dict[str, Any]],
) -> int:
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
    released = conn.execute(
        update(kill_switches)
        .where(*active)
        .values(released_at=now, released_by=f"order:{order.id}", release_reason=order.reason)
        .returning(kill_switches.c.id, kill_switches.c.order_id)
    ).all()
    if released:
        conn.execute(
            update(orders_table)
            .where(
                orders_table.c.id.in_([r.order_id for r in released]),
                orders_table.c.status != Status.RELEASED.value,
            )
            .values(status=Status.RELEASED.value, updated_at=now)
        )
        audit.extend(
            audit_row(
                at=now,
                actor=order.actor,
                kind="kill_switch.released",
                ref=r.id,
                data={"reason": order.reason, "by_order": order.id},
            )
            for r in released
        )
    return len(released)


def _release_one(
    conn: Connection,
    kill_switch_id: str,
    *,
    now: datetime,
    actor: str,
    reason: str,
    audit: list[dict[str, Any]],
    enforce: bool = True,
    by_order: str | None = None,
) -> int:
    """Release one active kill switch; its order, if any, becomes ``released``."""
    active = (kill_switches.c.id == kill_switch_id, kill_switches.c.released_at.is_(None))
    if not enforce:
        return int(
            conn.execute(
                select(func.count()).select_from(kill_switches).where(*active)
            ).scalar_one()
        )
    released = conn.execute(
        update(kill_switches)
        .where(*active)
        .values(released_at=now, released_by=actor, release_reason=reason)
    ).rowcount
    if not released:
        return 0
    thrower = select(kill_switches.c.order_id).where(kill_switches.c.id == kill_switch_id)
    conn.execute(
        update(orders_table)
        .where(
            orders_table.c.id.in_(thrower.scalar_subquery()),
            orders_table.c.status != Status.RELEASED.value,
        )
        .values(status=Status.RELEASED.value, updated_at=now)
    )
    data: dict[str, Any] = {"reason": reason}
    if by_order:
        data["by_order"] = by_order
    audit.append(
        audit_row(at=now, actor=actor, kind="kill_switch.released", ref=kill_switch_id, data=data)
    )
    return 1


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
    conn: Connection,
    order: RevocationOrder,
    family_id: str,
    *,
    now: datetime,
    enforce: bool,
    changed: dict[str, Scope] | None = None,
) -> dict[str, int]:
    """Revoke a family and every token in it (RFC 9700 §4.14.2); two statements. A family
    never seen is inserted revoked, so its tokens are revoked when they show up. A family
    this revokes goes into ``changed`` with its tokens (read back with ``RETURNING``)."""
    tenant = order.target.tenant
    if not enforce:
        return _family_counts(conn, tenant, family_id)
    stmts = _statements(conn)
    params = {
        "p_tenant": tenant,
        "p_family": family_id,
        "p_now": now,
        "p_order": order.id,
        "p_reason": order.reason,
    }
    fam_rows = conn.execute(stmts.revoke_family, params).all()
    tok_rows = conn.execute(stmts.revoke_family_tokens, params).all()
    if fam_rows and changed is not None:
        # newly revoked, so none of its tokens was revoked before: these are all of them
        toks = sorted(map(token_ref, tok_rows), key=_newest_first, reverse=True)
        changed[order.id] = Scope(families=(family_ref(fam_rows[0]),), tokens=tuple(toks))
    return {"families": len(fam_rows), "tokens": len(tok_rows)}


def _newest_first(tok: TokenRef) -> tuple[datetime, str]:
    return tok.issued_at, tok.token_id


def _revoke_token(
    conn: Connection,
    order: RevocationOrder,
    *,
    now: datetime,
    enforce: bool,
    changed: dict[str, Scope] | None = None,
) -> dict[str, int]:
    """Revoke the token's family; a token with no known family is itself recorded revoked."""
    tenant, token_id = order.target.tenant, order.target.value
    family_id = conn.execute(
        select(tokens.c.family_id).where(tokens.c.tenant == tenant, tokens.c.token_id == token_id)
    ).scalar_one_or_none()
    if family_id is not None:
        return _revoke_family(conn, order, family_id, now=now, enforce=enforce, changed=changed)
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


def _covered(conn: Connection, target: Target) -> dict[str, int]:
    """Unrevoked families the target names and their unrevoked tokens; one statement."""
    named = subject_filter(target)
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
    named = subject_filter(order.target)
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
    """Release an active kill switch directly, in the caller's transaction; False when
    there is no such active switch. Its order, if any, becomes ``released``. (The CLI and
    API release through a release order instead — ``revocation.manual.release`` — so the
    release reaches every adapter through the outbox.)"""
    if not reason.strip():
        raise ValueError("releasing a kill switch needs a reason")
    audit: list[dict[str, Any]] = []
    n = _release_one(conn, kill_switch_id, now=now, actor=actor, reason=reason, audit=audit)
    append_audit_many(conn, rows=audit)
    return bool(n)
