"""``/healthz`` (liveness) and ``/readyz`` (readiness): open, no credentials needed.

``/healthz``: the process answers; the pipeline's queue depth and counters, and whether
the database answers. ``/readyz``: 200 when every dependency the service is configured
with answers — the database, each Redis of a ``redis`` adapter, the Kafka brokers — else
503; each component is only ``ok`` or ``fail`` (no addresses, no error text: the log has
those).
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
import sqlalchemy as sa
import structlog
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from revocation.adapters import redis_denylist
from tokenwarden.api.deps import PipelineDep, ServicesDep
from tokenwarden.services import Services

router = APIRouter(tags=["health"])
log = structlog.get_logger("tokenwarden.health")

TIMEOUT_SECONDS = 2.0


def _database_ok(services: Services) -> bool:
    try:
        with services.db.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError as exc:
        log.warning("readiness: database unreachable", error=type(exc).__name__)
        return False


@router.get("/healthz")
def healthz(services: ServicesDep, pipeline: PipelineDep) -> dict[str, Any]:
    """Liveness plus the pipeline's queue depth and the database's reachability."""
    database = "ok" if _database_ok(services) else "error"
    return {
        "status": "ok" if database == "ok" else "degraded",
        "database": database,
        "queue_depth": pipeline.depth,
        "processed_events": pipeline.processed_events,
        "processed_batches": pipeline.processed_batches,
        "store_retries": pipeline.store_retries,
    }


async def _redis_ok(url: str) -> bool:
    client = aioredis.Redis.from_url(
        url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
    )
    try:
        return bool(await client.ping())
    except Exception as exc:  # any failure is "not ready"
        log.warning("readiness: redis unreachable", error=type(exc).__name__)
        return False
    finally:
        await client.aclose()


async def _kafka_ok(servers: list[str]) -> bool:
    """Whether one of the bootstrap brokers (``HOST:PORT``) accepts a connection."""
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), timeout=TIMEOUT_SECONDS
            )
        except (OSError, TimeoutError) as exc:
            log.warning("readiness: kafka broker unreachable", error=type(exc).__name__)
            continue
        writer.close()
        return True
    return False


@router.get("/readyz", responses={503: {"description": "a dependency does not answer"}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready when the database — and Redis and Kafka, when configured — answer."""
    checks: dict[str, bool] = {"database": await run_in_threadpool(_database_ok, services)}
    settings = services.settings
    for spec in settings.revocation.adapters:
        if spec.type == "redis":
            try:
                url = redis_denylist.config_of(spec.instance, spec.config).url
            except Exception:
                checks[f"redis:{spec.instance}"] = False
                continue
            checks[f"redis:{spec.instance}"] = await _redis_ok(url)
    if settings.kafka.broker:
        checks["kafka"] = await _kafka_ok(settings.kafka.bootstrap_servers())
    ready = all(checks.values())
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "checks": {k: "ok" if v else "fail" for k, v in checks.items()},
        },
        status_code=200 if ready else 503,
    )
