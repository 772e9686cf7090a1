"""The FastAPI application factory. Nothing is built at import time."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest import AuditEvent
from tokenwarden import __version__, dashboard
from tokenwarden.api import (
    admin_orders,
    check,
    detector_models,
    entities,
    events,
    health,
    hec,
    keys,
    policy,
    queries,
    ssf,
    ssf_admin,
)
from tokenwarden.api.errors import (
    ApiError,
    api_error_handler,
    http_error_handler,
    validation_error_handler,
)
from tokenwarden.auth.api_keys import ApiKeyAuthenticator, IssuedKey, bootstrap_admin_key
from tokenwarden.auth.bearer import BearerVerifier
from tokenwarden.auth.deps import Authenticator
from tokenwarden.learned_models import prepare_fitting
from tokenwarden.pipeline import BatchResult, EmbeddedPipeline, Extra
from tokenwarden.recent import RecentEvents
from tokenwarden.revocation_runtime import start_revocation
from tokenwarden.services import Services, build_services, follow_policy_off_loop
from tokenwarden.settings import Settings
from tokenwarden.ssf_connect import stored_transmitters
from tokenwarden.ssf_poller import Pollers
from tokenwarden.ssf_receiver import SsfReceiver

if TYPE_CHECKING:
    from tokenwarden.stream.publish import KafkaPipeline


def print_admin_key(issued: IssuedKey) -> None:
    """Show the first-start admin key once, on stderr — never through the log."""
    sys.stderr.write(
        "\n  tokenwarden: no API keys existed, so an admin key for every tenant was made.\n"
        f"  It is shown this once (only its hash is stored):\n\n      {issued.key}\n\n"
        "  Use it as 'Authorization: Bearer <key>'; make narrower keys with "
        "'tokenwarden keys create'.\n\n"
    )
    sys.stderr.flush()


def create_app(
    settings: Settings,
    *,
    services: Services | None = None,
    on_admin_key: Callable[[IssuedKey], None] | None = None,
) -> FastAPI:
    """The embedded service: API plus the in-process pipeline, started by the lifespan.

    On the first start of a database without API keys an admin key of every tenant is
    made and handed to ``on_admin_key`` (default: ``print_admin_key``) — the only time
    the key exists outside the caller's hands; the store keeps its hash.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # with a broker the workers detect: no detector state or learned models here
        detecting = not settings.kafka.broker
        svc = services or build_services(settings, load_state=detecting, adopt_models=detecting)
        pipeline: EmbeddedPipeline | KafkaPipeline
        fits: ThreadPoolExecutor | None = None
        if settings.kafka.broker:  # scale-out: accepted events go to Kafka, workers detect
            from tokenwarden.stream.codec import batch_key
            from tokenwarden.stream.publish import KafkaPipeline

            # signed: the workers rebuild what the API validated instead of validating again
            key = batch_key(svc.hasher)
            pipeline = KafkaPipeline(settings.kafka, db=svc.db, mac_key=key)
        else:
            # the model detector's fits run in a thread of their own, not in the batch
            fits = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenwarden-fit")
            prepare_fitting(svc.stages.engine, fits)
            pipeline = EmbeddedPipeline(
                svc.stages,
                max_batches=settings.queue_batches,
                max_batch_events=settings.max_batch_events,
                sweep_interval=settings.sweep_interval_seconds,
                follow_policy=lambda: follow_policy_off_loop(svc),
                policy_refresh_seconds=settings.policy_refresh_seconds,
            )
        app.state.services = svc
        app.state.pipeline = pipeline
        http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        oidc = settings.auth.oidc
        app.state.auth = Authenticator(
            ApiKeyAuthenticator(svc.db, cache_seconds=settings.auth.key_cache_seconds),
            BearerVerifier(oidc, client=http) if oidc is not None else None,
        )
        issued = bootstrap_admin_key(svc.db, now=datetime.now(UTC))
        if issued is not None:
            (on_admin_key or print_admin_key)(issued)
        app.state.recent = recent = RecentEvents()
        if isinstance(pipeline, EmbeddedPipeline):
            pipeline.on_batch = lambda result: recent.add(result.events, result.detections)

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
            if fits is not None:
                fits.shutdown(wait=False, cancel_futures=True)
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
    app.add_middleware(check.CheckFastPath)  # the gateways' hot path, answered first
    app.include_router(check.router)  # and its route: errors, and the OpenAPI document
    app.include_router(health.router)
    app.include_router(keys.router)
    app.include_router(events.router)
    app.include_router(queries.router)
    app.include_router(ssf.router)
    app.include_router(admin_orders.router)
    app.include_router(entities.router)
    app.include_router(detector_models.router)
    app.include_router(policy.router)
    app.include_router(ssf_admin.router)
    app.include_router(hec.router)
    app.include_router(dashboard.router)  # the on-call dashboard at /

    return app
