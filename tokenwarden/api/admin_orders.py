"""Admin API of the executor: orders with their deliveries, manual orders, kill switches,
alerts, the audit trail, and ``/metrics``.

Reads need the ``viewer`` role; revoking, throwing and releasing kill switches and
acknowledging alerts need ``responder`` (``tokenwarden.auth``). A principal sees and acts on
its own tenant only: another tenant's order, switch or alert is 404. The audit trail names
the authenticated principal (``key:<id>`` or ``bearer:<sub>``); an ``actor`` field or
``X-Tokenwarden-Actor`` header — say, the human behind a shared gateway key — is recorded
after it (``key:ab12… as alice``). ``Idempotency-Key`` makes a retried manual request the
same order. ``/metrics`` needs the ``metrics`` scope (or the ``admin`` role).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from revocation import store
from revocation.manual import ManualOrderError, manual_order, release_order
from revocation.order import Action, Mode, TargetKind
from revocation.store.alerts import alert_context, alerts_of_order
from revocation.store.outbox import DeliveryView
from revocation.txn import writing
from tokenwarden.api.deps import ConnDep, ServicesDep
from tokenwarden.api.errors import ApiError
from tokenwarden.api.paging import aware
from tokenwarden.auth.deps import (
    MetricsReader,
    Responder,
    Viewer,
    forbidden,
    not_found,
    tenant_filter,
    visible,
)
from tokenwarden.auth.principal import Principal
from tokenwarden.revocation_runtime import RevocationRuntime

router = APIRouter(tags=["revocation"])

ACTOR_HEADER = "X-Tokenwarden-Actor"
ActorHeader = Annotated[str | None, Header(alias=ACTOR_HEADER, max_length=256)]
IdempotencyHeader = Annotated[str | None, Header(alias="Idempotency-Key", max_length=256)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Tenant = Annotated[str | None, Query(max_length=128)]

_STATUS = {"not_found": 404, "already_released": 409, "invalid": 422}


def _runtime(request: Request) -> RevocationRuntime:
    runtime: RevocationRuntime | None = getattr(request.app.state, "revocation", None)
    if runtime is None:
        raise ApiError(503, "unavailable", "the revocation executor is not running")
    return runtime


def _actor(principal: Principal, body_actor: str | None, header: str | None) -> str:
    """The audit trail's actor: the authenticated principal, then who it says acts."""
    stated = (body_actor or header or "").strip()
    return f"{principal.actor} as {stated}" if stated else principal.actor


def _manual_error(exc: ManualOrderError) -> ApiError:
    return ApiError(_STATUS.get(exc.code, 422), exc.code, str(exc))


def _order_document(conn: Any, order_id: str, principal: Principal) -> dict[str, Any]:
    order = store.get_order(conn, order_id=order_id)
    visible(principal, order.target.tenant if order else None, f"order {order_id!r}")
    assert order is not None
    deliveries = store.deliveries(conn, order_id=order_id)
    doc = order.model_dump(mode="json")
    doc["deliveries"] = [_delivery(d, order.affected) for d in deliveries]
    doc["alerts"] = [a.model_dump(mode="json") for a in alerts_of_order(conn, order_id=order_id)]
    doc["audit"] = [a.model_dump(mode="json") for a in store.list_audit(conn, ref=order_id)]
    if order.action == Action.KILL_SWITCH:
        switch = store.get_switch(conn, kill_switch_id=order.kill_switch_thrown)
        doc["kill_switch"] = _switch(switch) if switch is not None else None
    return doc


def _delivery(d: DeliveryView, affected: dict[str, int] | None) -> dict[str, Any]:
    doc = d.model_dump(mode="json")
    if d.adapter == "store" and doc["result"] is None and d.state == "delivered":
        doc["result"] = affected
    return doc


def _switch(s: Any) -> dict[str, Any]:
    return {
        "id": s.id,
        "tenant": s.tenant,
        "kind": s.kind,
        "value": s.value,
        "order_id": s.order_id,
        "reason": s.reason,
        "thrown_at": s.thrown_at.isoformat(),
        "released_at": s.released_at.isoformat() if s.released_at else None,
    }


# -- orders -----------------------------------------------------------------------------


@router.get("/v1/orders/summary")
def orders_summary(
    conn: ConnDep,
    principal: Viewer,
    mode: Literal["dry_run", "enforce"] = "dry_run",
    tenant: Tenant = None,
    since: datetime | None = None,
) -> dict[str, Any]:
    """What the orders of a mode did — for ``dry_run``: "would have revoked N families"
    (and tokens, and thrown M kill switches), in total and per rule."""
    s = store.summarize(
        conn, mode=Mode(mode), tenant=tenant_filter(principal, tenant), since=aware(since)
    )
    verb = "would have revoked" if mode == "dry_run" else "revoked"
    return {
        "mode": mode,
        "orders": s.orders,
        "families": s.families,
        "tokens": s.tokens,
        "kill_switches": s.kill_switches,
        "by_rule": s.by_rule,
        "summary": f"{s.orders} {mode} orders {verb} {s.families} families ({s.tokens} tokens)"
        + (
            f" and {'would have thrown' if mode == 'dry_run' else 'threw'} "
            f"{s.kill_switches} kill switches"
            if s.kill_switches
            else ""
        ),
    }


@router.get("/v1/orders/{order_id}")
def get_order(conn: ConnDep, principal: Viewer, order_id: str) -> dict[str, Any]:
    """One order: status, what it affected, its delivery to each adapter (state, attempts,
    last error, next attempt), its alert and its audit trail."""
    return _order_document(conn, order_id, principal)


class TargetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: TargetKind
    tenant: str = Field(min_length=1, max_length=128)
    value: str = Field(min_length=1, max_length=512)


class ManualOrderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["revoke", "kill_switch"]
    target: TargetBody
    reason: str = Field(min_length=1, max_length=2000)
    actor: str | None = Field(default=None, max_length=256)


@router.post("/v1/orders", status_code=201)
def create_order(
    body: ManualOrderBody,
    request: Request,
    services: ServicesDep,
    principal: Responder,
    actor: ActorHeader = None,
    idempotency_key: IdempotencyHeader = None,
) -> JSONResponse:
    """A manual revoke or kill switch (``responder``). 201 with the order and its
    deliveries; 200 when the ``Idempotency-Key`` names an order made before."""
    return _manual(
        request,
        services,
        principal,
        action=Action(body.action),
        kind=body.target.kind,
        tenant=body.target.tenant,
        value=body.target.value,
        reason=body.reason,
        actor=_actor(principal, body.actor, actor),
        idempotency_key=idempotency_key,
    )


def _manual(
    request: Request,
    services: Any,
    principal: Principal,
    *,
    action: Action,
    kind: TargetKind,
    tenant: str,
    value: str,
    reason: str,
    actor: str,
    idempotency_key: str | None,
) -> JSONResponse:
    visible(principal, tenant, f"tenant {tenant!r}")
    runtime = _runtime(request)
    try:
        order = manual_order(
            action=action,
            kind=kind,
            value=value,
            tenant=tenant,
            reason=reason,
            actor=actor,
            now=datetime.now(UTC),
            request_id=idempotency_key,
        )
    except ManualOrderError as exc:
        raise _manual_error(exc) from None
    outcome = runtime.submit(services.db, order)
    with services.db.connect() as conn:
        doc = _order_document(conn, outcome.order_id, principal)
    return JSONResponse(doc, status_code=200 if outcome.duplicate else 201)


# -- kill switches ----------------------------------------------------------------------


@router.get("/v1/kill-switches")
def list_kill_switches(
    conn: ConnDep,
    principal: Viewer,
    tenant: Tenant = None,
    active: bool = True,
    limit: Limit = 100,
) -> list[dict[str, Any]]:
    """Kill switches, newest first (only the active ones unless ``active=false``)."""
    found = store.list_switches(
        conn, tenant=tenant_filter(principal, tenant), active=active, limit=limit
    )
    return [_switch(s) for s in found]


class ThrowBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["user", "agent", "client", "session", "tenant"]
    value: str = Field(min_length=1, max_length=512)
    tenant: str | None = Field(
        default=None, min_length=1, max_length=128, description="default: the caller's tenant"
    )
    reason: str = Field(min_length=1, max_length=2000)
    actor: str | None = Field(default=None, max_length=256)


@router.post("/v1/kill-switches", status_code=201)
def throw_kill_switch(
    body: ThrowBody,
    request: Request,
    services: ServicesDep,
    principal: Responder,
    actor: ActorHeader = None,
    idempotency_key: IdempotencyHeader = None,
) -> JSONResponse:
    """Throw a kill switch on a user, agent, client, session or a whole tenant
    (``responder``): everything of it is denied until released. Answers like
    ``POST /v1/orders``: the kill-switch order, with ``kill_switch`` once thrown."""
    tenant = body.tenant or principal.tenant
    if tenant is None:
        raise ApiError(422, "tenant_required", "name the tenant of the kill switch")
    return _manual(
        request,
        services,
        principal,
        action=Action.KILL_SWITCH,
        kind=TargetKind(body.kind),
        tenant=tenant,
        value=body.value,
        reason=body.reason,
        actor=_actor(principal, body.actor, actor),
        idempotency_key=idempotency_key,
    )


class ReleaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)
    actor: str | None = Field(default=None, max_length=256)


@router.post("/v1/kill-switches/{kill_switch_id}/release")
def release_kill_switch(
    kill_switch_id: str,
    body: ReleaseBody,
    request: Request,
    services: ServicesDep,
    principal: Responder,
    actor: ActorHeader = None,
    idempotency_key: IdempotencyHeader = None,
) -> dict[str, Any]:
    """Release a kill switch (``responder``; a reason is required; audited with the
    actor). The release is an order: it reaches the denylist and webhooks through the
    outbox."""
    who = _actor(principal, body.actor, actor)
    with services.db.connect() as conn:
        switch = store.get_switch(conn, kill_switch_id=kill_switch_id)
    visible(principal, switch.tenant if switch else None, f"kill switch {kill_switch_id!r}")
    runtime = _runtime(request)
    try:
        with services.db.connect() as conn:
            order = release_order(
                conn,
                kill_switch_id=kill_switch_id,
                reason=body.reason,
                actor=who,
                now=datetime.now(UTC),
                request_id=idempotency_key,
            )
    except ManualOrderError as exc:
        raise _manual_error(exc) from None
    outcome = runtime.submit(services.db, order)
    with services.db.connect() as conn:
        return _order_document(conn, outcome.order_id, principal)


# -- alerts -----------------------------------------------------------------------------


@router.get("/v1/alerts")
def list_alerts(
    conn: ConnDep,
    principal: Viewer,
    tenant: Tenant = None,
    unacknowledged: bool = False,
    limit: Limit = 100,
) -> list[dict[str, Any]]:
    """Alerts, newest first."""
    found = store.list_alerts(
        conn,
        tenant=tenant_filter(principal, tenant),
        unacknowledged=unacknowledged,
        limit=limit,
    )
    return [a.model_dump(mode="json") for a in found]


@router.get("/v1/alerts/{alert_id}")
def get_alert(conn: ConnDep, principal: Viewer, alert_id: str) -> dict[str, Any]:
    """One alert as on-call receives it (the ``json`` format)."""
    from revocation.alerts import render_json

    alert = store.get_alert(conn, alert_id=alert_id)
    visible(principal, alert.tenant if alert else None, f"alert {alert_id!r}")
    ctx = alert_context(conn, alert_id=alert_id)
    if ctx is None or alert is None:
        raise not_found(f"alert {alert_id!r}")
    return {**render_json(ctx), "alert": alert.model_dump(mode="json")}


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: str | None = Field(default=None, max_length=256)
    note: str | None = Field(default=None, max_length=2000)


@router.post("/v1/alerts/{alert_id}/ack")
def acknowledge_alert(
    alert_id: str,
    services: ServicesDep,
    principal: Responder,
    body: AckBody | None = None,
    actor: ActorHeader = None,
) -> dict[str, Any]:
    """Acknowledge an alert (``responder``; audited with the actor)."""
    body = body or AckBody()
    who = _actor(principal, body.actor, actor)
    with services.db.connect() as conn:
        found = store.get_alert(conn, alert_id=alert_id)
    visible(principal, found.tenant if found else None, f"alert {alert_id!r}")
    with writing(services.db) as conn:
        alert = store.acknowledge(
            conn, alert_id=alert_id, actor=who, note=body.note, now=datetime.now(UTC)
        )
    if alert is None:
        raise ApiError(404, "not_found", f"no alert {alert_id!r}")
    return alert.model_dump(mode="json")


# -- audit trail ------------------------------------------------------------------------


@router.get("/v1/audit")
def list_audit(
    conn: ConnDep,
    principal: Viewer,
    ref: Annotated[str | None, Query(max_length=512)] = None,
    kind: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 100,
) -> list[dict[str, Any]]:
    """Audit rows, newest first (about ``ref`` — an order, switch, alert, detection or key
    id). A tenant's principal sees the rows about its tenant's objects only."""
    if principal.tenant is None:
        found = store.list_audit(conn, ref=ref, kind=kind, limit=limit)
    else:
        found = [
            a
            for a in store.list_audit(conn, ref=ref, kind=kind, limit=min(5000, limit * 10))
            if _audit_tenants(conn, [a]).get(a.seq) == principal.tenant
        ][:limit]
    return [a.model_dump(mode="json") for a in found]


def _audit_tenants(conn: Any, entries: list[Any]) -> dict[int, str | None]:
    """The tenant each audit row is about: its data's ``tenant``, else its ``ref``'s."""
    from sqlalchemy import select

    from revocation.tables import alerts, api_keys, detections, kill_switches, orders

    out: dict[int, str | None] = {}
    for a in entries:
        tenant = a.data.get("tenant") if isinstance(a.data, dict) else None
        if tenant is None and a.ref is not None:
            for table in (orders, kill_switches, alerts, detections, api_keys):
                tenant = conn.execute(
                    select(table.c.tenant).where(table.c.id == a.ref)
                ).scalar_one_or_none()
                if tenant is not None:
                    break
        out[a.seq] = tenant if isinstance(tenant, str) else None
    return out


@router.get("/v1/audit/verify")
def verify_audit(conn: ConnDep, principal: Viewer) -> dict[str, Any]:
    """Recompute the hash chain; name the first broken link. The chain spans every tenant:
    this needs a principal of every tenant."""
    if principal.tenant is not None:
        raise forbidden("the audit chain spans every tenant: verifying it needs a global key")
    report = store.verify_chain(conn)
    return {
        "ok": report.ok,
        "rows": report.rows,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "broken_seq": report.broken_seq,
        "problem": report.problem,
    }


# -- metrics ----------------------------------------------------------------------------


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, principal: MetricsReader) -> Response:
    """Prometheus exposition (``tokenwarden.metrics`` lists the series)."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(_runtime(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
