"""``GET /v1/models``: the ``model`` detector's fitted models the store holds, per tenant
(``revocation.store.detector_models``): when each was trained (event time), on how many
rows, its stored size and when it was saved. ``viewer``; a tenant's key sees its own."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from revocation import store
from tokenwarden.api.deps import ConnDep
from tokenwarden.auth.deps import Viewer, tenant_filter

router = APIRouter(prefix="/v1", tags=["detectors"])


@router.get("/models")
def list_models(
    conn: ConnDep,
    principal: Viewer,
    tenant: Annotated[str | None, Query(max_length=128)] = None,
) -> dict[str, Any]:
    """The stored models, by tenant."""
    own = tenant_filter(principal, tenant)
    items = [
        {
            "tenant": m.tenant,
            "trained_at": m.trained_at.isoformat(),
            "rows": m.rows,
            "bytes": m.size,
            "saved_at": m.saved_at.isoformat(),
        }
        for m in store.list_models(conn, tenant=own)
    ]
    return {"items": items}
