"""Composition of the revocation executor: routing, adapters, dispatcher, denylist reader.

Built from ``Settings.revocation`` by the app's lifespan (``start_revocation``) and by the
CLI's manual commands; nothing here is built at import time. The Prometheus registry is
created here too (``tokenwarden.metrics``), never as a module-level singleton.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
import structlog

from revocation import store
from revocation.adapters import load_plugins, redis_denylist
from revocation.adapters.redis_denylist import DenylistReader
from revocation.alerts import AlertSink, AlertSinkConfig
from revocation.backoff import Backoff
from revocation.delivery import Adapter, AdapterConfigError, AdapterDeps, AdapterPlugin
from revocation.dispatcher import Dispatcher, DispatchSettings
from revocation.order import RevocationOrder
from revocation.routing import STORE, AlertPolicy, Preclaim, Route, Routing
from revocation.store.orders import OrderOutcome
from tokenwarden.metrics import Metrics
from tokenwarden.revocation_settings import RevocationSettings

log = structlog.get_logger("tokenwarden.revocation")


def build_routing(
    settings: RevocationSettings, plugins: Mapping[str, AdapterPlugin] | None = None
) -> Routing:
    """Where orders go, from the settings; an unknown adapter type is a clear error."""
    plugins = plugins if plugins is not None else load_plugins()
    routes = []
    for spec in settings.adapters:
        plugin = plugins.get(spec.type)
        if plugin is None:
            raise AdapterConfigError(
                f"adapter {spec.instance!r}: unknown type {spec.type!r}; installed types: "
                f"{', '.join(sorted(plugins))} (entry-point group tokenwarden.adapters)"
            )
        routes.append(
            Route(
                name=spec.instance,
                actions=plugin.actions,
                tenants=frozenset(spec.tenants) if spec.tenants is not None else None,
            )
        )
    delivery = settings.delivery
    return Routing(
        routes=tuple(routes),
        alerts=AlertPolicy(
            sinks=tuple(s.name for s in settings.alerts.sinks),
            cooldown=timedelta(seconds=settings.alerts.cooldown_seconds),
            max_per_cooldown=settings.alerts.max_per_cooldown,
        ),
        store_grace=timedelta(seconds=delivery.store_grace_seconds),
        backoff=backoff_of(settings),
    )


def backoff_of(settings: RevocationSettings) -> Backoff:
    return Backoff(
        base=settings.delivery.backoff_base_seconds,
        cap=settings.delivery.backoff_max_seconds,
        rng=random.Random(),
    )


def build_adapters(
    settings: RevocationSettings,
    *,
    db: sa.Engine,
    http: httpx.AsyncClient,
    plugins: Mapping[str, AdapterPlugin] | None = None,
) -> dict[str, Adapter]:
    """The store adapter plus every configured one, by instance name."""
    plugins = plugins if plugins is not None else load_plugins()
    deps = AdapterDeps(db=db, http=http)
    adapters: dict[str, Adapter] = {STORE: plugins[STORE].build(STORE, {}, deps)}
    for spec in settings.adapters:
        plugin = plugins.get(spec.type)
        if plugin is None:
            raise AdapterConfigError(f"adapter {spec.instance!r}: unknown type {spec.type!r}")
        adapters[spec.instance] = plugin.build(spec.instance, spec.config, deps)
    return adapters


def denylist_reader(settings: RevocationSettings) -> DenylistReader | None:
    """``/v1/check``'s Redis-first reader: the first ``redis`` adapter with ``check`` on."""
    for spec in settings.adapters:
        if spec.type == "redis":
            config = redis_denylist.config_of(spec.instance, spec.config)
            if config.check:
                return redis_denylist.build_reader(config)
    return None


def build_dispatcher(
    settings: RevocationSettings,
    *,
    db: sa.Engine,
    http: httpx.AsyncClient,
    metrics: Metrics | None = None,
    plugins: Mapping[str, AdapterPlugin] | None = None,
) -> Dispatcher:
    d = settings.delivery
    return Dispatcher(
        db=db,
        adapters=build_adapters(settings, db=db, http=http, plugins=plugins),
        sinks={
            s.name: AlertSink(AlertSinkConfig.model_validate(s.model_dump()), http)
            for s in settings.alerts.sinks
        },
        settings=DispatchSettings(
            lease=timedelta(seconds=d.lease_seconds),
            batch=d.batch,
            concurrency=d.concurrency,
            delivery_timeout=d.timeout_seconds,
            poll_interval=d.poll_interval_seconds,
            breaker_threshold=d.breaker_failures,
            breaker_reset=d.breaker_reset_seconds,
            max_families=d.max_families,
            max_tokens=d.max_tokens,
            record_delay=d.record_delay_seconds,
        ),
        backoff=backoff_of(settings),
        observer=metrics,
        owner=f"{socket.gethostname()}:{os.getpid()}",
    )


@dataclass(slots=True)
class RevocationRuntime:
    """What the service runs for revocation: the dispatcher task, the denylist reader,
    the metrics."""

    dispatcher: Dispatcher
    metrics: Metrics
    reader: DenylistReader | None = None
    routing: Routing = field(default_factory=Routing)
    stages: Any = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.dispatcher.run(self._stop), name="tw-dispatcher")

    async def stop(self) -> None:
        if self.stages is not None:  # the pipeline is stopped: unhook it
            self.stages.on_orders = None
            self.stages.piggyback = None
            self.stages.observer = None
            self.stages.routing = self.routing
        self._stop.set()
        if self._task is not None:
            self.dispatcher.wake()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.dispatcher.aclose()
        if self.reader is not None:
            await self.reader.aclose()

    def submit(self, db: sa.Engine, order: RevocationOrder) -> OrderOutcome:
        """Record a manual order with its outbox, apply it to the store, wake the
        dispatcher. Synchronous (the API calls it from a worker thread)."""
        (outcome,) = store.execute_orders(
            db, orders=[order], now=datetime.now(UTC), routing=self.routing
        )
        self.dispatcher.wake()
        return outcome


def start_revocation(
    *,
    settings: RevocationSettings,
    db: sa.Engine,
    http: httpx.AsyncClient,
    stages: Any,
) -> RevocationRuntime:
    """Build and start the dispatcher, wire the pipeline's stages to it and to the
    metrics (call from the app's lifespan; ``stop`` it there)."""
    from prometheus_client import CollectorRegistry

    plugins = load_plugins()
    metrics = Metrics(CollectorRegistry(), db=db)
    dispatcher = build_dispatcher(settings, db=db, http=http, metrics=metrics, plugins=plugins)
    runtime = RevocationRuntime(
        dispatcher=dispatcher,
        metrics=metrics,
        reader=denylist_reader(settings),
        routing=stages.routing,
        stages=stages,
    )
    # the pipeline claims its new entries for this dispatcher and hands them over
    stages.routing = replace(
        stages.routing,
        preclaim=Preclaim(owner=dispatcher.owner, lease=dispatcher.settings.lease),
    )
    stages.observer = metrics
    stages.on_orders = dispatcher.hand_off
    stages.piggyback = dispatcher.flush_into
    unknown = _unknown_adapters(db, set(runtime.dispatcher.breakers))
    if unknown:
        log.warning(
            "outbox entries wait for adapters that are not configured",
            adapters=sorted(unknown),
        )
    runtime.start()
    return runtime


def _unknown_adapters(db: sa.Engine, known: set[str]) -> set[str]:
    with db.connect() as conn:
        waiting = {adapter for adapter, _ in store.outbox.depth(conn)}
    return waiting - known
