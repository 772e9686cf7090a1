"""The transactional outbox: delivery entries, committed with the order they carry.

``enqueue`` runs in the transaction that records the orders, so an order and its entries
— one per adapter that wants it, one per alert sink for an alert it opened — become
durable together, before any adapter is called. The dispatcher then:

1. ``claim``\\s due entries (``pending``/``failed`` whose ``next_attempt_at`` has come, or
   ``delivering`` whose lease ran out because the claimer died): state ``delivering``,
   ``lease_until`` = now + lease, ``attempts`` + 1. On PostgreSQL the candidates are read
   ``FOR UPDATE SKIP LOCKED``, so concurrent dispatchers split the work; SQLite has one
   writer at a time.
2. calls the adapter, and
3. marks the entry ``delivered`` (with the adapter's result) or ``failed`` (with the error
   and the next attempt's time), and recomputes the order's status.

A dispatcher killed between 2 and 3 leaves the entry ``delivering``; once its lease runs
out the entry is claimed again and redelivered. Adapters are idempotent in effect (keyed
by the entry id / the order's idempotency key), so the redelivery changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, and_, bindparam, case, func, insert, or_, select, update

from revocation.order import RevocationOrder, Status
from revocation.routing import ALERT, REVOKE, STORE, Routing
from revocation.sqltypes import UTCDateTime
from revocation.statements import per_dialect
from revocation.tables import orders as orders_table
from revocation.tables import outbox

PENDING = "pending"
DELIVERING = "delivering"
DELIVERED = "delivered"
FAILED = "failed"
STATES = (PENDING, DELIVERING, DELIVERED, FAILED)

_MAX_ERROR = 2000


def entry_id(ref: str, adapter: str) -> str:
    """The entry's id: also the idempotency key adapters pass on (webhook header, …)."""
    return f"{ref}/{adapter}"


class DeliveryView(BaseModel):
    """One outbox entry as the API shows it."""

    model_config = ConfigDict(frozen=True)

    id: str
    adapter: str
    purpose: str
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    first_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    result: dict[str, Any] | None
    alert_id: str | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """An entry the caller now holds until ``lease_until``."""

    id: str
    order_id: str
    alert_id: str | None
    adapter: str
    purpose: str
    attempts: int
    created_at: datetime


def enqueue(
    conn: Connection,
    *,
    orders: Sequence[RevocationOrder],
    routing: Routing,
    now: datetime,
    alerts: Sequence[tuple[str, str]] = (),
    handoff: list[Claimed] | None = None,
) -> int:
    """Insert the entries for newly recorded ``orders`` and opened ``alerts`` ((alert id,
    order id) pairs); one statement. Return how many.

    With ``routing.preclaim`` and a ``handoff`` list, the entries of adapters outside the
    database (and of alert sinks) are inserted claimed by the preclaim's owner and appended
    to ``handoff`` for the caller to pass to that dispatcher after the commit."""
    rows: list[dict[str, Any]] = []
    grace = now + routing.store_grace
    for order in orders:
        for adapter in routing.destinations(order):
            rows.append(
                _row(
                    entry_id(order.id, adapter),
                    order.id,
                    adapter,
                    REVOKE,
                    now,
                    grace if adapter == STORE else now,
                )
            )
    for alert_id, order_id in alerts:
        for sink in routing.alerts.sinks:
            row = _row(entry_id(alert_id, sink), order_id, sink, ALERT, now, now)
            rows.append({**row, "alert_id": alert_id})
    pre = routing.preclaim if handoff is not None else None
    if pre is not None and handoff is not None:
        for row in rows:
            if row["adapter"] == STORE:
                continue
            row.update(
                state=DELIVERING,
                attempts=1,
                first_attempt_at=now,
                lease_until=now + pre.lease,
                claimed_by=pre.owner,
            )
            handoff.append(
                Claimed(
                    id=row["id"],
                    order_id=row["order_id"],
                    alert_id=row["alert_id"],
                    adapter=row["adapter"],
                    purpose=row["purpose"],
                    attempts=1,
                    created_at=now,
                )
            )
    if rows:
        conn.execute(_insert_entries(conn), rows)
    return len(rows)


@per_dialect
def _insert_entries(dialect: str) -> Any:
    return insert(outbox)


def _row(
    id_: str, order_id: str, adapter: str, purpose: str, now: datetime, due: datetime
) -> dict[str, Any]:
    return {
        "id": id_,
        "order_id": order_id,
        "alert_id": None,
        "adapter": adapter,
        "purpose": purpose,
        "state": PENDING,
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": due,
        "first_attempt_at": None,
        "lease_until": None,
        "claimed_by": None,
    }


@dataclass(frozen=True, slots=True)
class _Statements:
    candidates: Any
    candidates_locked: Any
    claim: Any
    delivered: Any
    failed: Any
    states: Any
    set_status: Any


@per_dialect
def _statements(dialect: str) -> _Statements:
    oc = outbox.c
    now = bindparam("p_now", type_=UTCDateTime())
    due = or_(
        and_(oc.state.in_((PENDING, FAILED)), oc.next_attempt_at <= now),
        and_(oc.state == DELIVERING, oc.lease_until <= now),
    )
    candidates = (
        select(oc.id, oc.adapter)
        .where(oc.adapter.in_(bindparam("p_adapters", expanding=True)), due)
        .order_by(oc.next_attempt_at, oc.id)
        .limit(bindparam("p_limit"))
    )
    return _Statements(
        candidates=candidates,
        candidates_locked=candidates.with_for_update(skip_locked=True),
        claim=update(outbox)
        .where(oc.id.in_(bindparam("p_ids", expanding=True)), due)
        .values(
            state=DELIVERING,
            lease_until=bindparam("p_lease_until", type_=UTCDateTime()),
            claimed_by=bindparam("p_owner"),
            attempts=oc.attempts + 1,
            first_attempt_at=func.coalesce(oc.first_attempt_at, now),
        )
        .returning(
            oc.id, oc.order_id, oc.alert_id, oc.adapter, oc.purpose, oc.attempts, oc.created_at
        ),
        delivered=update(outbox)
        .where(oc.id == bindparam("p_id"), oc.state != DELIVERED)
        .values(
            state=DELIVERED,
            delivered_at=now,
            lease_until=None,
            last_error=None,
            result=bindparam("p_result", type_=oc.result.type),
        ),
        failed=update(outbox)
        .where(oc.id == bindparam("p_id"), oc.state != DELIVERED)
        .values(
            state=FAILED,
            lease_until=None,
            next_attempt_at=bindparam("p_retry_at", type_=UTCDateTime()),
            last_error=bindparam("p_error"),
        ),
        states=select(orders_table.c.id, orders_table.c.status, oc.state)
        .select_from(
            orders_table.outerjoin(
                outbox, and_(oc.order_id == orders_table.c.id, oc.purpose == REVOKE)
            )
        )
        .where(orders_table.c.id.in_(bindparam("p_ids", expanding=True))),
        set_status=update(orders_table)
        .where(orders_table.c.id == bindparam("p_id"))
        .values(status=bindparam("p_status"), updated_at=now),
    )


def claim(
    conn: Connection,
    *,
    limits: Mapping[str, int],
    now: datetime,
    lease: timedelta,
    owner: str,
) -> list[Claimed]:
    """Claim up to ``limits[adapter]`` due entries of each adapter named there, oldest due
    first. Two statements, however many adapters."""
    allowed = sorted(a for a, n in limits.items() if n > 0)
    if not allowed:
        return []
    stmts = _statements(conn)
    query = stmts.candidates_locked if conn.dialect.name == "postgresql" else stmts.candidates
    taken: dict[str, int] = {}
    ids: list[str] = []
    params = {"p_adapters": allowed, "p_now": now, "p_limit": sum(limits[a] for a in allowed)}
    for id_, adapter in conn.execute(query, params):
        if taken.get(adapter, 0) < limits[adapter]:
            taken[adapter] = taken.get(adapter, 0) + 1
            ids.append(id_)
    if not ids:
        return []
    rows = conn.execute(
        stmts.claim,
        {"p_ids": ids, "p_now": now, "p_lease_until": now + lease, "p_owner": owner},
    ).all()
    claimed = [Claimed(**row._mapping) for row in rows]
    claimed.sort(key=lambda c: (c.created_at, c.id))
    return claimed


def mark_delivered(
    conn: Connection, *, results: Mapping[str, Mapping[str, Any]], now: datetime
) -> set[str]:
    """Mark entries delivered with their results; return the ids that changed (an entry
    already delivered — by a racing redelivery or the store's own transaction — is left
    alone). One statement per entry."""
    stmt = _statements(conn).delivered
    changed: set[str] = set()
    for id_ in sorted(results):
        params = {"p_id": id_, "p_now": now, "p_result": dict(results[id_])}
        if conn.execute(stmt, params).rowcount:
            changed.add(id_)
    return changed


def mark_failed(
    conn: Connection, *, failures: Mapping[str, tuple[str, datetime]], now: datetime
) -> set[str]:
    """Mark entries failed: ``failures[id] = (error, next attempt time)``. Entries delivered
    meanwhile are left alone; return the ids that changed."""
    stmt = _statements(conn).failed
    changed: set[str] = set()
    for id_ in sorted(failures):
        error, retry_at = failures[id_]
        params = {"p_id": id_, "p_retry_at": retry_at, "p_error": error[:_MAX_ERROR]}
        if conn.execute(stmt, params).rowcount:
            changed.add(id_)
    return changed


def postpone(conn: Connection, *, ids: Iterable[str], until: datetime) -> None:
    """Hand claimed entries back without counting an attempt (their adapter's circuit
    breaker opened before their turn): due again at ``until``."""
    ids = sorted(ids)
    if ids:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(ids), outbox.c.state == DELIVERING)
            .values(
                state=case((outbox.c.attempts > 1, FAILED), else_=PENDING),
                lease_until=None,
                next_attempt_at=until,
                attempts=outbox.c.attempts - 1,
            )
        )


def status_of(states: Iterable[str]) -> Status:
    """An order's status from its revocation entries' states."""
    seen = set(states)
    if not seen or seen == {DELIVERED}:
        return Status.DONE
    if FAILED in seen:
        return Status.FAILED
    if seen & {DELIVERED, DELIVERING}:
        return Status.EXECUTING
    return Status.PENDING


def refresh_status(
    conn: Connection, *, order_ids: Iterable[str], now: datetime
) -> dict[str, Status]:
    """Recompute the orders' statuses from their revocation entries (a ``released`` order
    stays released); return every order's status, updated where it changed."""
    ids = sorted(set(order_ids))
    if not ids:
        return {}
    states: dict[str, list[str]] = defaultdict(list)
    current: dict[str, str] = {}
    stmts = _statements(conn)
    for row in conn.execute(stmts.states, {"p_ids": ids}):
        current[row.id] = row.status
        if row.state is not None:
            states[row.id].append(row.state)
    changed: dict[str, Status] = {}
    result: dict[str, Status] = {}
    for order_id, status in current.items():
        result[order_id] = Status(status)
        if status == Status.RELEASED.value:
            continue
        new = status_of(states.get(order_id, ()))
        result[order_id] = new
        if new.value != status:
            changed[order_id] = new
    if changed:
        conn.execute(
            stmts.set_status,
            [{"p_id": k, "p_status": v.value, "p_now": now} for k, v in sorted(changed.items())],
        )
    return result


def deliveries(conn: Connection, *, order_id: str) -> list[DeliveryView]:
    """An order's entries (its adapters', then its alert's), oldest first."""
    rows = conn.execute(
        select(outbox)
        .where(outbox.c.order_id == order_id)
        .order_by(outbox.c.purpose.desc(), outbox.c.created_at, outbox.c.id)
    )
    return [DeliveryView.model_validate(row._mapping) for row in rows]


def depth(conn: Connection) -> dict[tuple[str, str], int]:
    """Undelivered entries per (adapter, state): the outbox depth."""
    rows = conn.execute(
        select(outbox.c.adapter, outbox.c.state, func.count())
        .where(outbox.c.state != DELIVERED)
        .group_by(outbox.c.adapter, outbox.c.state)
    )
    return {(a, s): int(n) for a, s, n in rows}


def next_due(conn: Connection, *, adapters: Iterable[str]) -> datetime | None:
    """When the earliest undelivered entry of these adapters falls due (or its lease ends)."""
    names = sorted(adapters)
    if not names:
        return None
    pending = select(func.min(outbox.c.next_attempt_at)).where(
        outbox.c.adapter.in_(names), outbox.c.state.in_((PENDING, FAILED))
    )
    leased = select(func.min(outbox.c.lease_until)).where(
        outbox.c.adapter.in_(names), outbox.c.state == DELIVERING
    )
    found = [t for t in (conn.scalar(pending), conn.scalar(leased)) if t is not None]
    return min(found) if found else None
