"""Read side: detections, orders (paged), token families with their rotation chain, and
rejected records. Every route needs the ``viewer`` role and shows the principal's tenant
only (``tokenwarden.auth.deps``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from detectors import Detection, Severity
from revocation import store
from revocation.order import Mode, Status
from revocation.store.families import FamilyView
from revocation.store.orders import OrderView, page_orders
from revocation.store.records import page_detections
from tokenwarden.api.deps import ConnDep, ServicesDep
from tokenwarden.api.paging import Cursor, PageLimit, aware, decode_cursor, page
from tokenwarden.auth.deps import Viewer, not_found, tenant_filter, visible

router = APIRouter(prefix="/v1", tags=["queries"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Tenant = Annotated[str | None, Query(max_length=128)]
_SEVERITY_ORDER = [s.value for s in Severity]


class Page(BaseModel):
    """One page of a list: the items, and the cursor of the next page (``null``: last)."""

    items: list[dict[str, Any]]
    next_cursor: str | None


def detection_item(d: Detection) -> dict[str, Any]:
    """A detection as the API lists it: the stored document plus ``entity_key``."""
    return {**d.model_dump(mode="json"), "entity_key": d.entity}


@router.get("/detections", response_model=Page)
def list_detections(
    conn: ConnDep,
    principal: Viewer,
    tenant: Tenant = None,
    entity: Annotated[str | None, Query(max_length=2048, description="entity key")] = None,
    detector: Annotated[str | None, Query(max_length=100)] = None,
    severity: Annotated[Severity | None, Query(description="exactly this severity")] = None,
    min_severity: Annotated[Severity | None, Query(description="this severity or above")] = None,
    family_id: Annotated[str | None, Query(max_length=512)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Cursor = None,
    limit: PageLimit = 100,
) -> dict[str, Any]:
    """Detections, newest first, filtered by tenant, entity, detector, severity, family and
    time (``since`` inclusive, ``until`` exclusive); ``next_cursor`` fetches the next page."""
    severities: list[str] | None = None
    if severity is not None:
        severities = [severity.value]
    if min_severity is not None:
        above = _SEVERITY_ORDER[_SEVERITY_ORDER.index(min_severity.value) :]
        severities = [s for s in (severities or above) if s in above]
    found = page_detections(
        conn,
        tenant=tenant_filter(principal, tenant),
        entity=entity,
        detector=detector,
        severities=severities,
        family_id=family_id,
        since=aware(since),
        until=aware(until),
        before=decode_cursor(cursor),
        limit=limit + 1,
    )
    items, nxt = page(found, limit, lambda d: (d.time, d.id))
    return {"items": [detection_item(d) for d in items], "next_cursor": nxt}


@router.get("/detections/{detection_id}")
def get_detection(conn: ConnDep, principal: Viewer, detection_id: str) -> dict[str, Any]:
    """One detection with its evidence."""
    from revocation.store.records import get_detections

    found = get_detections(conn, ids=[detection_id])
    visible(principal, found[0].tenant if found else None, f"detection {detection_id!r}")
    return detection_item(found[0])


def order_item(conn: Any, order: OrderView) -> dict[str, Any]:
    """An order as listed: the order and its per-adapter deliveries."""
    doc = order.model_dump(mode="json")
    doc["tenant"] = order.target.tenant
    doc["deliveries"] = [
        d.model_dump(mode="json") for d in store.deliveries(conn, order_id=order.id)
    ]
    return doc


@router.get("/orders", response_model=Page)
def list_orders(
    conn: ConnDep,
    principal: Viewer,
    tenant: Tenant = None,
    mode: Literal["enforce", "dry_run"] | None = None,
    status: Annotated[Status | None, Query()] = None,
    rule: Annotated[str | None, Query(max_length=200)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Cursor = None,
    limit: PageLimit = 50,
) -> dict[str, Any]:
    """Revocation orders, newest first, each with its status, target and per-adapter
    deliveries; ``next_cursor`` fetches the next page."""
    found = page_orders(
        conn,
        tenant=tenant_filter(principal, tenant),
        mode=Mode(mode) if mode else None,
        status=status,
        rule=rule,
        since=aware(since),
        until=aware(until),
        before=decode_cursor(cursor),
        limit=limit + 1,
    )
    items, nxt = page(found, limit, lambda o: (o.created_at, o.id))
    return {"items": [order_item(conn, o) for o in items], "next_cursor": nxt}


def rotation_chain(family: FamilyView, reused: set[str]) -> list[dict[str, Any]]:
    """The family's tokens in issue order, each with when it was consumed (the first
    rotation that presented it as the parent) and whether it was presented again after
    that (``reused``: named by a refresh-reuse detection of the family)."""
    consumed: dict[str, datetime] = {}
    for tok in family.tokens:
        if tok.parent_id is not None:
            first = consumed.get(tok.parent_id)
            if first is None or tok.issued_at < first:
                consumed[tok.parent_id] = tok.issued_at
    return [
        {
            "token_id": tok.token_id,
            "parent_id": tok.parent_id,
            "type": tok.type,
            "issued_at": tok.issued_at.isoformat(),
            "consumed_at": consumed[tok.token_id].isoformat() if tok.token_id in consumed else None,
            "revoked_at": tok.revoked_at.isoformat() if tok.revoked_at else None,
            "reused": tok.token_id in reused,
        }
        for tok in family.tokens
    ]


@router.get("/families/{family_id:path}")
def get_family(
    conn: ConnDep, principal: Viewer, family_id: str, tenant: Tenant = None
) -> dict[str, Any]:
    """A token family: who holds it, its tokens in issue order, its rotation ``chain``
    (which token was reused), its state (``active`` or ``revoked``), and the detections
    and orders about it."""
    family = store.get_family(conn, tenant=tenant_filter(principal, tenant), family_id=family_id)
    if family is None:
        raise not_found(f"family {family_id!r}")
    visible(principal, family.tenant, f"family {family_id!r}")
    detections = page_detections(conn, tenant=family.tenant, family_id=family_id, limit=100)
    reused = {
        str(d.evidence["presented_token"])
        for d in detections
        if d.detector == "refresh_reuse" and d.evidence.get("presented_token")
    }
    doc = family.model_dump(mode="json")
    doc["state"] = "revoked" if family.revoked_at is not None else "active"
    doc["chain"] = rotation_chain(family, reused)
    doc["detections"] = [detection_item(d) for d in detections]
    orders = page_orders(conn, tenant=family.tenant, target=("family", family_id), limit=100)
    doc["orders"] = [o.model_dump(mode="json") for o in orders]
    return doc


@router.get("/rejected")
def list_rejected(
    services: ServicesDep,
    principal: Viewer,
    source: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    """The last rejected records (bounded, newest first) with their reasons and an excerpt,
    and how many were rejected since start. A tenant's principal sees its tenant's only."""
    records = services.rejected.list(limit=1000 if principal.tenant else limit, source=source)
    if principal.tenant is not None:
        records = [r for r in records if r.get("tenant") == principal.tenant][:limit]
        return {"total": len(records), "records": records}
    return {"total": services.rejected.total, "records": records}
