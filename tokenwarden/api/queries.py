"""Read side: detections, orders, families."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from revocation import store
from tokenwarden.api.deps import ConnDep, ServicesDep
from tokenwarden.api.errors import ApiError

router = APIRouter(prefix="/v1", tags=["queries"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Tenant = Annotated[str | None, Query(max_length=128)]


@router.get("/detections")
def list_detections(
    conn: ConnDep,
    tenant: Tenant = None,
    since: datetime | None = None,
    limit: Limit = 100,
) -> list[dict[str, Any]]:
    """Detections, newest first."""
    found = store.list_detections(conn, tenant=tenant, since=since, limit=limit)
    return [d.model_dump(mode="json") for d in found]


@router.get("/orders")
def list_orders(conn: ConnDep, tenant: Tenant = None, limit: Limit = 100) -> list[dict[str, Any]]:
    """Revocation orders with their status and what they affected, newest first."""
    return [o.model_dump(mode="json") for o in store.list_orders(conn, tenant=tenant, limit=limit)]


@router.get("/families/{family_id}")
def get_family(conn: ConnDep, family_id: str, tenant: Tenant = None) -> dict[str, Any]:
    """A token family: who holds it, its tokens in issue order, and whether it is revoked."""
    family = store.get_family(conn, tenant=tenant, family_id=family_id)
    if family is None:
        raise ApiError(404, "not_found", f"no family {family_id!r}")
    return family.model_dump(mode="json")


@router.get("/rejected")
def list_rejected(
    services: ServicesDep,
    source: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    """The last rejected records (bounded, newest first) with their reasons and an excerpt,
    and how many were rejected since start."""
    return {
        "total": services.rejected.total,
        "records": services.rejected.list(limit=limit, source=source),
    }
