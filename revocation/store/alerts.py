"""On-call alerts: opened with the orders, deduplicated per entity, rate-limited per tenant.

``open_alerts`` runs in the transaction that records the orders. For each new enforced
order the ``AlertPolicy`` wants:

* an alert for the same entity (the order's target) opened within the cool-down absorbs
  it: ``count`` + 1, ``last_order_id``/``last_at`` move — one alert per entity per
  cool-down, with a count, however many orders a storm produces;
* otherwise a new alert opens. If the tenant already opened ``max_per_cooldown`` alerts
  within the cool-down it is recorded ``rate_limited`` (visible in the API, not sent; the
  next alert sent for the tenant says how many were held back); else it is ``open`` and
  one outbox entry per sink carries it to on-call.

Acknowledging records who and when, and is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, bindparam, func, insert, select, update

from revocation.alerts import AlertContext
from revocation.order import Action, RevocationOrder
from revocation.routing import AlertPolicy
from revocation.sqltypes import UTCDateTime
from revocation.statements import per_dialect
from revocation.store.audit import append_audit, audit_row
from revocation.tables import alerts

OPEN = "open"
RATE_LIMITED = "rate_limited"


class AlertView(BaseModel):
    """One alert row."""

    model_config = ConfigDict(frozen=True)

    id: str
    tenant: str
    entity: str
    order_id: str
    last_order_id: str
    rule: str
    status: str
    count: int
    opened_at: datetime
    last_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_note: str | None


def alert_id_for(order: RevocationOrder) -> str:
    return "al-" + order.id.removeprefix("ord-")


def open_alerts(
    conn: Connection,
    *,
    orders: Sequence[RevocationOrder],
    policy: AlertPolicy,
    now: datetime,
    audit: list[dict[str, Any]],
) -> list[tuple[str, str]]:
    """Open or fold alerts for newly recorded ``orders``; return the (alert id, order id)
    pairs to send. Three statements at most, plus one per folded entity."""
    wanted = [o for o in orders if policy.wants(o)]
    if not wanted:
        return []
    since = now - policy.cooldown
    stmts = _statements(conn)
    entities = sorted({o.target.key() for o in wanted})
    latest: dict[str, Any] = {}
    for row in conn.execute(stmts.recent, {"p_entities": entities, "p_since": since}):
        latest[row.entity] = row  # the newest alert in the window wins
    tenants = sorted({o.target.tenant for o in wanted})
    budget = {
        t: policy.max_per_cooldown - int(n)
        for t, n in conn.execute(stmts.spent, {"p_tenants": tenants, "p_since": since})
    }
    new_rows: list[dict[str, Any]] = []
    folded: dict[str, list[RevocationOrder]] = {}
    opened: dict[str, str] = {}  # entity -> alert id opened in this call
    send: list[tuple[str, str]] = []
    for order in wanted:
        entity, tenant = order.target.key(), order.target.tenant
        target_alert = opened.get(entity) or (latest[entity].id if entity in latest else None)
        if target_alert is not None:
            folded.setdefault(target_alert, []).append(order)
            continue
        left = budget.get(tenant, policy.max_per_cooldown)
        status = OPEN if left > 0 else RATE_LIMITED
        budget[tenant] = left - 1
        aid = alert_id_for(order)
        opened[entity] = aid
        new_rows.append(
            {
                "id": aid,
                "tenant": tenant,
                "entity": entity,
                "order_id": order.id,
                "last_order_id": order.id,
                "rule": order.rule or "manual",
                "status": status,
                "count": 1,
                "opened_at": now,
                "last_at": now,
            }
        )
        audit.append(
            audit_row(
                at=now,
                actor="alerts",
                kind="alert.opened" if status == OPEN else "alert.rate_limited",
                ref=aid,
                data={"order_id": order.id, "entity": entity},
            )
        )
        if status == OPEN:
            send.append((aid, order.id))
    if new_rows:
        conn.execute(stmts.insert, new_rows)
    new_ids = {r["id"] for r in new_rows}
    fold_rows: list[dict[str, Any]] = []
    for aid, extra in folded.items():
        fold_rows.append({"p_id": aid, "p_add": len(extra), "p_last": extra[-1].id})
        for order in extra:
            audit.append(
                audit_row(
                    at=now,
                    actor="alerts",
                    kind="alert.folded",
                    ref=aid,
                    data={"order_id": order.id, "new": aid in new_ids},
                )
            )
    if fold_rows:
        conn.execute(stmts.fold, [{**r, "p_now": now} for r in fold_rows])
    return send


@dataclass(frozen=True, slots=True)
class _Statements:
    recent: Any
    spent: Any
    insert: Any
    fold: Any


@per_dialect
def _statements(dialect: str) -> _Statements:
    since = bindparam("p_since", type_=UTCDateTime())
    return _Statements(
        recent=select(alerts.c.id, alerts.c.entity, alerts.c.opened_at)
        .where(
            alerts.c.entity.in_(bindparam("p_entities", expanding=True)), alerts.c.opened_at > since
        )
        .order_by(alerts.c.opened_at),
        spent=select(alerts.c.tenant, func.count())
        .where(
            alerts.c.tenant.in_(bindparam("p_tenants", expanding=True)),
            alerts.c.opened_at > since,
            alerts.c.status == OPEN,
        )
        .group_by(alerts.c.tenant),
        insert=insert(alerts),
        fold=update(alerts)
        .where(alerts.c.id == bindparam("p_id"))
        .values(
            count=alerts.c.count + bindparam("p_add"),
            last_order_id=bindparam("p_last"),
            last_at=bindparam("p_now", type_=UTCDateTime()),
        ),
    )


def list_alerts(
    conn: Connection,
    *,
    tenant: str | None = None,
    unacknowledged: bool = False,
    limit: int = 100,
) -> list[AlertView]:
    """Alerts, newest first."""
    query = select(alerts).order_by(alerts.c.opened_at.desc(), alerts.c.id.desc()).limit(limit)
    if tenant is not None:
        query = query.where(alerts.c.tenant == tenant)
    if unacknowledged:
        query = query.where(alerts.c.acknowledged_at.is_(None))
    return [AlertView.model_validate(r._mapping) for r in conn.execute(query)]


def alerts_of_order(conn: Connection, *, order_id: str) -> list[AlertView]:
    """The alert an order opened, or the one it was last folded into."""
    rows = conn.execute(
        select(alerts)
        .where((alerts.c.order_id == order_id) | (alerts.c.last_order_id == order_id))
        .order_by(alerts.c.opened_at)
    )
    return [AlertView.model_validate(r._mapping) for r in rows]


def get_alert(conn: Connection, *, alert_id: str) -> AlertView | None:
    row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
    return AlertView.model_validate(row._mapping) if row is not None else None


def acknowledge(
    conn: Connection, *, alert_id: str, actor: str, now: datetime, note: str | None = None
) -> AlertView | None:
    """Acknowledge an alert (the first acknowledgement stands; acknowledging again is a
    no-op). ``None`` when there is no such alert."""
    if not actor.strip():
        raise ValueError("acknowledging an alert needs an actor (who acknowledges)")
    n = conn.execute(
        update(alerts)
        .where(alerts.c.id == alert_id, alerts.c.acknowledged_at.is_(None))
        .values(acknowledged_at=now, acknowledged_by=actor, ack_note=note)
    ).rowcount
    if n:
        append_audit(
            conn, at=now, actor=actor, kind="alert.acknowledged", ref=alert_id, data={"note": note}
        )
    return get_alert(conn, alert_id=alert_id)


def previous_alert(conn: Connection, *, alert: AlertView) -> AlertView | None:
    """The entity's alert before this one."""
    row = conn.execute(
        select(alerts)
        .where(alerts.c.entity == alert.entity, alerts.c.opened_at < alert.opened_at)
        .order_by(alerts.c.opened_at.desc())
        .limit(1)
    ).first()
    return AlertView.model_validate(row._mapping) if row is not None else None


def rate_limited_before(conn: Connection, *, alert: AlertView) -> int:
    """Alerts of the tenant held back (``rate_limited``) since its previous alert sent."""
    last_open = conn.execute(
        select(func.max(alerts.c.opened_at)).where(
            alerts.c.tenant == alert.tenant,
            alerts.c.status == OPEN,
            alerts.c.opened_at < alert.opened_at,
        )
    ).scalar_one_or_none()
    query = select(func.count()).where(
        alerts.c.tenant == alert.tenant,
        alerts.c.status == RATE_LIMITED,
        alerts.c.opened_at <= alert.opened_at,
        alerts.c.id != alert.id,
    )
    if last_open is not None:
        # held back in the same instant as the last alert sent count too: they came after it
        query = query.where(alerts.c.opened_at >= last_open)
    return int(conn.execute(query).scalar_one())


def alert_context(conn: Connection, *, alert_id: str) -> AlertContext | None:
    """What the alert says, as of now (``revocation.alerts``); ``None`` if it is gone."""
    from revocation.store.orders import get_order
    from revocation.store.records import get_detections
    from revocation.store.scope import get_switch

    alert = get_alert(conn, alert_id=alert_id)
    if alert is None:
        return None
    order = get_order(conn, order_id=alert.order_id)
    if order is None:
        return None
    switch = (
        get_switch(conn, kill_switch_id=order.kill_switch_thrown)
        if order.action == Action.KILL_SWITCH
        else None
    )
    previous = previous_alert(conn, alert=alert)
    return AlertContext(
        alert_id=alert.id,
        tenant=alert.tenant,
        entity=alert.entity,
        opened_at=alert.opened_at,
        count=alert.count,
        order=order,
        affected=order.affected,
        detections=get_detections(conn, ids=order.detection_ids),
        kill_switch=switch,
        previous_count=previous.count if previous is not None else None,
        rate_limited_before=rate_limited_before(conn, alert=alert),
        acknowledged_by=alert.acknowledged_by,
    )
