"""Prometheus metrics, served at ``GET /metrics``.

The registry is made by the composition root (``start_revocation``) and handed to
``Metrics``; domain code only sees the observer protocols it implements
(``revocation.dispatcher.DeliveryObserver``, ``tokenwarden.pipeline.PipelineObserver``).

* ``tokenwarden_detection_to_order_seconds`` (histogram): a batch's detections made →
  its orders committed with their outbox entries;
* ``tokenwarden_order_to_delivery_seconds{adapter, purpose}`` (histogram): order committed
  → delivered (first success) to each adapter or alert sink;
* ``tokenwarden_deliveries_total{adapter, purpose}``, ``tokenwarden_adapter_failures_total
  {adapter, purpose}`` (counters): successful deliveries, failed attempts;
* ``tokenwarden_circuit_breaker_state{adapter}`` (gauge): 0 closed, 1 half-open, 2 open;
* ``tokenwarden_outbox_depth{adapter, state}``, ``tokenwarden_outbox_oldest_seconds
  {adapter}`` (gauges, read from the store at scrape time): undelivered entries, the age
  of the oldest;
* ``tokenwarden_orders_recorded_total`` (counter): orders committed by the pipeline;
* ``tokenwarden_checks_total{result, source}`` (counter) and ``tokenwarden_check_seconds
  {source}`` (histogram): ``/v1/check`` answers and lookup time (redis or database).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from revocation.breaker import BreakerState
from revocation.tables import outbox

#: From 100 µs to 10 min: the fast path is milliseconds, a retried delivery minutes.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    600.0,
)
CHECK_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1)


class OutboxCollector(Collector):
    """Outbox depth per adapter and state, and the oldest entry's age, queried at scrape
    time (one grouped query), so every process reports the shared outbox truthfully."""

    def __init__(self, db: sa.Engine) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "tokenwarden_outbox_depth", "undelivered outbox entries", labels=["adapter", "state"]
        )
        oldest = GaugeMetricFamily(
            "tokenwarden_outbox_oldest_seconds",
            "age of the oldest undelivered outbox entry",
            labels=["adapter"],
        )
        now = datetime.now(UTC)
        try:
            with self.db.connect() as conn:
                rows = conn.execute(
                    select(
                        outbox.c.adapter,
                        outbox.c.state,
                        func.count(),
                        func.min(outbox.c.created_at),
                    )
                    .where(outbox.c.state != "delivered")
                    .group_by(outbox.c.adapter, outbox.c.state)
                ).all()
        except sa.exc.SQLAlchemyError:
            return
        ages: dict[str, float] = {}
        for adapter, state, n, first in rows:
            depth.add_metric([adapter, state], float(n))
            if first is not None:
                age = max(0.0, (now - first).total_seconds())
                ages[adapter] = max(ages.get(adapter, 0.0), age)
        for adapter, age in sorted(ages.items()):
            oldest.add_metric([adapter], age)
        yield depth
        yield oldest


class Metrics:
    """The service's metrics on one registry; implements the observer protocols."""

    def __init__(self, registry: CollectorRegistry, *, db: sa.Engine | None = None) -> None:
        self.registry = registry
        self.detection_to_order = Histogram(
            "tokenwarden_detection_to_order_seconds",
            "detections made -> their orders committed with their outbox entries",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.order_to_delivery = Histogram(
            "tokenwarden_order_to_delivery_seconds",
            "order committed -> delivered to an adapter or alert sink",
            ["adapter", "purpose"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.deliveries = Counter(
            "tokenwarden_deliveries",
            "successful deliveries",
            ["adapter", "purpose"],
            registry=registry,
        )
        self.failures = Counter(
            "tokenwarden_adapter_failures",
            "failed delivery attempts",
            ["adapter", "purpose"],
            registry=registry,
        )
        self.breaker_state = Gauge(
            "tokenwarden_circuit_breaker_state",
            "circuit breaker per adapter: 0 closed, 1 half-open, 2 open",
            ["adapter"],
            registry=registry,
        )
        self.orders = Counter(
            "tokenwarden_orders_recorded", "orders committed by the pipeline", registry=registry
        )
        self.checks = Counter(
            "tokenwarden_checks", "/v1/check answers", ["result", "source"], registry=registry
        )
        self.check_seconds = Histogram(
            "tokenwarden_check_seconds",
            "/v1/check lookup time",
            ["source"],
            buckets=CHECK_BUCKETS,
            registry=registry,
        )
        if db is not None:
            registry.register(OutboxCollector(db))

    # revocation.dispatcher.DeliveryObserver and tokenwarden.pipeline.PipelineObserver
    def delivered(self, adapter: str, purpose: str, seconds_since_order: float) -> None:
        self.order_to_delivery.labels(adapter, purpose).observe(seconds_since_order)
        self.deliveries.labels(adapter, purpose).inc()

    def failed(self, adapter: str, purpose: str) -> None:
        self.failures.labels(adapter, purpose).inc()

    def breaker(self, adapter: str, state: BreakerState) -> None:
        self.breaker_state.labels(adapter).set(state.gauge)

    def orders_recorded(self, count: int, seconds_since_detection: float) -> None:
        self.orders.inc(count)
        self.detection_to_order.observe(seconds_since_detection)

    def checked(self, *, allow: bool, source: str, seconds: float) -> None:
        self.checks.labels("allow" if allow else "deny", source).inc()
        self.check_seconds.labels(source).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
