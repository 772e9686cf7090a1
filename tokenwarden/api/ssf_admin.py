"""``GET /v1/ssf/transmitters``: the SSF transmitters we receive from and their streams.

Each configured (``[[ssf.transmitters]]``) or connected (``tokenwarden ssf connect``)
transmitter with its delivery, tenant and accepted algorithms, and its stream as last known
(status, reason, verification). Never a secret: no Authorization header, bearer token or
HMAC secret. ``viewer``; a tenant's principal sees its tenant's transmitters.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tokenwarden.api.deps import ConnDep, ServicesDep
from tokenwarden.auth.deps import Viewer
from tokenwarden.settings import TransmitterSettings
from tokenwarden.ssf_connect import stored_transmitters
from tokenwarden.ssf_streams import list_streams

router = APIRouter(prefix="/v1/ssf", tags=["ssf"])


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


@router.get("/transmitters")
def list_transmitters(
    conn: ConnDep, services: ServicesDep, principal: Viewer
) -> list[dict[str, Any]]:
    """Transmitters and their stream status."""
    configured: list[tuple[str, TransmitterSettings]] = [
        ("config", t) for t in services.settings.ssf.transmitters
    ]
    configured += [("connected", t) for t in stored_transmitters(services.db)]
    streams = {row.issuer: row for row in list_streams(conn)}
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for origin, t in configured:
        if t.issuer in seen or not principal.sees(t.tenant):
            continue
        seen.add(t.issuer)
        row = streams.get(t.issuer)
        out.append(
            {
                "issuer": t.issuer,
                "origin": origin,
                "audience": t.audience,
                "tenant": t.tenant,
                "delivery": t.delivery,
                "jwks_uri": t.jwks_uri,
                "algorithms": list(t.algorithms),
                "poll_endpoint": t.poll_endpoint,
                "stream": None
                if row is None
                else {
                    "stream_id": row.stream_id,
                    "status": row.status,
                    "reason": row.reason,
                    "verification_requested_at": _iso(row.verification_requested_at),
                    "verified_at": _iso(row.verified_at),
                    "updated_at": _iso(row.updated_at),
                },
            }
        )
    return out
