"""Entities: the usage detectors' ``tenant/user/agent/audience`` (DESIGN.md, "Entity key").

``GET /v1/entities`` lists the entities the detectors keep state for (``q`` matches any
part of the key); ``GET /v1/entities/{entity_key}`` shows one: its risk (the engine's,
decayed to now), the baselines the detectors learned (volume rate and windows, scopes,
networks, destinations), the observed and baseline call rate per minute, the scopes and
networks seen, its recent events (anomalous ones marked; ``tokenwarden.recent``) and its
detections. The entity key is the path's rest: slashes need no escaping. ``viewer``;
another tenant's entity is 404.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request

from detectors.features import DESTINATION, SCOPE, VOLUME
from detectors.records import ENTITY_PREFIX, to_json
from revocation.store.records import page_detections
from revocation.tables import detector_state
from tokenwarden.api.deps import ConnDep, ServicesDep
from tokenwarden.api.queries import detection_item
from tokenwarden.auth.deps import Viewer, not_found, tenant_filter
from tokenwarden.recent import RecentEvents
from tokenwarden.services import Services

router = APIRouter(prefix="/v1", tags=["entities"])

#: The usage detectors' per-entity state: volume, scope drift and destination in one record
#: (``detectors.features``), and the engine's risk.
PREFIXES = (ENTITY_PREFIX, "eng/")
_VOLUME_BASELINE_SECONDS = 86400.0


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _recent(request: Request) -> RecentEvents | None:
    recent: RecentEvents | None = getattr(request.app.state, "recent", None)
    return recent


def _split(entity_key: str) -> dict[str, str | None]:
    parts = entity_key.split("/", 3)
    parts += [""] * (4 - len(parts))
    tenant, user, agent, audience = parts
    return {
        "tenant": tenant,
        "user": None if user == "-" else user,
        "agent": None if agent == "-" else agent,
        "audience": None if audience in ("-", "") else audience,
    }


@router.get("/entities")
def list_entities(
    conn: ConnDep,
    request: Request,
    principal: Viewer,
    tenant: Annotated[str | None, Query(max_length=128)] = None,
    q: Annotated[str | None, Query(max_length=200, description="part of the entity key")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Entities with learned state (and recent events), sorted by key."""
    own = tenant_filter(principal, tenant)
    keys: set[str] = set()
    for prefix in PREFIXES:
        start = prefix + (f"{own}/" if own is not None else "")
        query = sa.select(detector_state.c.key).where(
            detector_state.c.key.like(_like(start) + "%", escape="\\")
        )
        if q:
            query = query.where(detector_state.c.key.like(f"%{_like(q)}%", escape="\\"))
        keys.update(k[len(prefix) :] for k in conn.scalars(query.limit(limit * 4)))
    recent = _recent(request)
    if recent is not None:
        keys.update(
            k
            for k in recent.entities(prefix=f"{own}/" if own is not None else "")
            if not q or q in k
        )
    found = sorted(keys)[:limit]
    return {
        "items": [{"entity_key": k, **_split(k)} for k in found],
        "next_cursor": None,
    }


def _state(services: Services, conn: sa.Connection, key: str) -> Any:
    """A state record as stored (JSON): the running pipeline's (freshest), else the last
    saved snapshot."""
    value = services.stages.state.get(key)
    if value is not None:
        return to_json(value)
    return conn.execute(
        sa.select(detector_state.c.value).where(detector_state.c.key == key)
    ).scalar_one_or_none()


def _parts(rec: Any) -> tuple[Any, Any, Any]:
    """The volume, scope drift and destination parts of an entity record (``None`` each
    when missing)."""
    if not isinstance(rec, list) or len(rec) <= DESTINATION:
        return None, None, None
    return rec[VOLUME], rec[SCOPE], rec[DESTINATION]


def _iso(epoch: Any) -> str | None:
    if not isinstance(epoch, int | float):
        return None
    return datetime.fromtimestamp(float(epoch), UTC).isoformat()


@router.get("/entities/{entity_key:path}")
def get_entity(
    entity_key: str,
    conn: ConnDep,
    request: Request,
    services: ServicesDep,
    principal: Viewer,
    events: Annotated[int, Query(ge=0, le=1000, description="recent events to show")] = 200,
) -> dict[str, Any]:
    """One entity: risk, baselines, observed vs baseline rate, scopes and networks seen,
    recent events and detections."""
    parts = _split(entity_key)
    tenant = parts["tenant"] or ""
    if not tenant or not principal.sees(tenant):
        raise not_found(f"entity {entity_key!r}")
    now = datetime.now(UTC)
    rec = _state(services, conn, ENTITY_PREFIX + entity_key)
    vol, sd, dst = _parts(rec)
    eng = _state(services, conn, "eng/" + entity_key)
    recent = _recent(request)
    timeline = recent.events(entity_key) if recent is not None else []
    detections = page_detections(conn, tenant=tenant, entity=entity_key, limit=100)
    if not any((vol, sd, dst, eng, timeline, detections)):
        raise not_found(f"entity {entity_key!r}")

    risk = 0.0
    if isinstance(eng, list) and len(eng) >= 2:
        half_life = services.stages.engine.config.half_life_seconds
        dt = max(0.0, now.timestamp() - float(eng[1]))
        risk = round(float(eng[0]) * 2.0 ** (-dt / half_life), 4)

    baselines: dict[str, Any] = {}
    per_minute: float | None = None
    if isinstance(vol, list) and len(vol) >= 7:
        last, c0, c1, c2, long_count, n, first = vol[:7]
        age = float(last) - float(first)
        rate = float(long_count) / max(60.0, min(age, _VOLUME_BASELINE_SECONDS))
        per_minute = round(rate * 60.0, 4)
        baselines["volume"] = {
            "calls": n,
            "first_seen": _iso(first),
            "last_seen": _iso(last),
            "baseline_per_minute": per_minute,
            "decayed_calls": {"1m": round(c0, 3), "15m": round(c1, 3), "1h": round(c2, 3)},
        }
    if isinstance(sd, dict):
        baselines["scope_drift"] = {
            "calls": sd.get("n"),
            "first_seen": _iso(sd.get("f")),
            "last_seen": _iso(sd.get("t")),
            "scopes": dict(sd.get("s") or {}),
        }
    if isinstance(dst, dict):
        baselines["destination"] = {
            "calls": dst.get("c"),
            "last_seen": _iso(dst.get("t")),
            "networks": dict(dst.get("n") or {}),
            "destinations": sorted((dst.get("d") or {}).keys()),
            "last_network": dst.get("ln"),
            "network_switches_per_hour": round(float(dst.get("sw") or 0.0), 3),
        }

    # what the recent events show: last use of each scope and network, calls per minute
    scope_seen: dict[str, str] = {}
    net_seen: dict[str, str] = {}
    minutes: dict[datetime, int] = {}
    for at, ev in timeline:
        for scope in ev["scopes"]:
            scope_seen[scope] = ev["time"]
        src = ev.get("source") or {}
        net = f"as{src['asn']}" if src.get("asn") is not None else src.get("ip")
        if net:
            net_seen[str(net)] = ev["time"]
        minute = at.astimezone(UTC).replace(second=0, microsecond=0)
        minutes[minute] = minutes.get(minute, 0) + 1
    observed = [[m.isoformat(), c] for m, c in sorted(minutes.items())]
    baseline_series: list[list[Any]] = []
    if per_minute is not None and minutes:
        first_m, last_m = min(minutes), max(minutes)
        baseline_series = [[first_m.isoformat(), per_minute], [last_m.isoformat(), per_minute]]
        if last_m == first_m:
            baseline_series = [[first_m.isoformat(), per_minute]]
    scope_counts: dict[str, int] = dict((sd or {}).get("s") or {}) if isinstance(sd, dict) else {}
    for scope in scope_seen:
        scope_counts.setdefault(scope, 0)
    net_counts: dict[str, int] = dict((dst or {}).get("n") or {}) if isinstance(dst, dict) else {}
    for net in net_seen:
        net_counts.setdefault(net, 0)
    shown = timeline[-events:] if events else []
    return {
        "entity_key": entity_key,
        **parts,
        "risk": risk,
        "baselines": baselines,
        "rate": {"observed": observed, "baseline": baseline_series},
        "scopes": [
            {"scope": s, "count": c, "last_seen": scope_seen.get(s)}
            for s, c in sorted(scope_counts.items(), key=lambda x: (-x[1], x[0]))
        ],
        "networks": [
            {"network": n, "count": c, "last_seen": net_seen.get(n)}
            for n, c in sorted(net_counts.items(), key=lambda x: (-x[1], x[0]))
        ],
        "events": [ev for _, ev in reversed(shown)],
        "detections": [detection_item(d) for d in detections],
        "as_of": now.isoformat(),
    }
