"""The FastAPI application factory. Nothing is built at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest import AuditEvent
from tokenwarden import __version__
from tokenwarden.api import admin_orders, check, events, hec, queries, ssf
from tokenwarden.api.deps import PipelineDep, ServicesDep
from tokenwarden.api.errors import (
    ApiError,
    api_error_handler,
    http_error_handler,
    validation_error_handler,
)
from tokenwarden.pipeline import BatchResult, EmbeddedPipeline, Extra
from tokenwarden.revocation_runtime import start_revocation
from tokenwarden.services import Services, build_services
from tokenwarden.settings import Settings
from tokenwarden.ssf_connect import stored_transmitters
from tokenwarden.ssf_poller import Pollers
from tokenwarden.ssf_receiver import SsfReceiver


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    """The embedded service: API plus the in-process pipeline, started by the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = services or build_services(settings)
        pipeline = EmbeddedPipeline(
            svc.stages,
            max_batches=settings.queue_batches,
            max_batch_events=settings.max_batch_events,
            sweep_interval=settings.sweep_interval_seconds,
        )
        app.state.services = svc
        app.state.pipeline = pipeline
        http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)

        async def submit(events: list[AuditEvent], extras: Sequence[Extra]) -> BatchResult:
            return await pipeline.submit(events, extras=extras)

        app.state.ssf = receiver = SsfReceiver(
            settings.ssf,
            db=svc.db,
            hasher=svc.hasher,
            client=http,
            submit=submit,
            extra_transmitters=stored_transmitters(svc.db),
        )
        pollers = Pollers(receiver, client=http)
        app.state.revocation = revocation = start_revocation(
            settings=settings.revocation, db=svc.db, http=http, stages=svc.stages
        )
        await pipeline.start()
        pollers.start()
        try:
            yield
        finally:
            await pollers.stop()
            await pipeline.stop()
            await revocation.stop()
            await http.aclose()
            if services is None:
                svc.db.dispose()

    app = FastAPI(
        title="tokenwarden",
        version=__version__,
        description="Event-driven revocation and anomaly detection for agent OAuth tokens",
        lifespan=lifespan,
    )
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.include_router(events.router)
    app.include_router(queries.router)
    app.include_router(check.router)
    app.include_router(ssf.router)
    app.include_router(admin_orders.router)
    app.include_router(hec.router)

    @app.get("/healthz", tags=["health"])
    def healthz(services: ServicesDep, pipeline: PipelineDep) -> dict[str, Any]:
        """Liveness plus the pipeline's queue depth and the database's reachability."""
        try:
            with services.db.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            database = "ok"
        except sa.exc.SQLAlchemyError as exc:
            database = f"error: {type(exc).__name__}"
        return {
            "status": "ok" if database == "ok" else "degraded",
            "database": database,
            "queue_depth": pipeline.depth,
            "processed_events": pipeline.processed_events,
            "processed_batches": pipeline.processed_batches,
            "store_retries": pipeline.store_retries,
        }

    return app
