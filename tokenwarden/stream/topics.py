"""Topic provisioning with kafka-python's admin client, at the start of ``worker`` and of
``serve --broker``.

Missing topics are created with the configured partitions and replication; existing topics
are left alone — but the two the Tables are co-partitioned with (``tokenwarden.audit`` and
its family repartition) must have exactly ``partitions`` partitions, or the state of one key
would be looked for in the wrong partition: a mismatch stops the start with the numbers.
The workers' own internal topics (the Tables' changelogs, faust's assignor topic) are
declared by faust with the same partition count and replication.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from tokenwarden.stream.settings import KafkaSettings

log = structlog.get_logger("tokenwarden.stream.topics")

_DAY_MS = 86_400_000


class TopicMismatch(RuntimeError):
    """An existing topic's partition count differs from what the Tables need."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    configs: dict[str, str] = field(default_factory=dict)
    #: must have exactly ``partitions`` (a Table is co-partitioned with it)
    strict: bool = False


def topic_specs(kafka: KafkaSettings) -> list[TopicSpec]:
    p, r = kafka.partitions, kafka.replication
    specs = [
        TopicSpec(kafka.audit_topic, p, r, strict=True),
        TopicSpec(kafka.family_topic, p, r, strict=True),
        TopicSpec(kafka.dlq_topic, p, r, {"retention.ms": str(30 * _DAY_MS)}),
        TopicSpec(kafka.detections_topic, p, r),
        TopicSpec(kafka.orders_topic, p, r, {"retention.ms": str(30 * _DAY_MS)}),
    ]
    specs += [TopicSpec(t, p, r) for t in kafka.ingest_topics if t != kafka.audit_topic]
    return specs


@dataclass(slots=True)
class Provisioned:
    created: list[str] = field(default_factory=list)
    existing: dict[str, int] = field(default_factory=dict)


def _partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for topic in admin.describe_topics(names):
        if topic.get("error_code", 0) == 0 and topic.get("partitions"):
            out[str(topic["name"])] = len(topic["partitions"])
    return out


def provision(kafka: KafkaSettings, *, timeout: float = 60.0) -> Provisioned:
    """Create the missing topics; check the co-partitioned ones. Retries while the broker
    is not reachable yet (containers start in any order), up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            return _provision(kafka)
        except TopicMismatch:
            raise
        except (KafkaError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("broker not ready; retrying topic provisioning", error=str(exc))
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _provision(kafka: KafkaSettings) -> Provisioned:
    specs = topic_specs(kafka)
    admin = KafkaAdminClient(
        bootstrap_servers=kafka.bootstrap_servers(),
        client_id=f"{kafka.app_id}-admin",
        request_timeout_ms=15_000,
    )
    try:
        existing = set(admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        out = Provisioned()
        if missing:
            request: dict[str, Any] = {
                s.name: {
                    "num_partitions": s.partitions,
                    "replication_factor": s.replication,
                    "configs": s.configs,
                }
                for s in missing
            }
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was quicker
                admin.create_topics(request, raise_errors=False, wait_for_metadata=True)
            out.created = [s.name for s in missing]
            log.info("topics created", topics=out.created)
        counts = _partition_counts(admin, [s.name for s in specs])
        for s in specs:
            n = counts.get(s.name)
            if n is None:
                raise KafkaError(f"topic {s.name} is not visible on the broker yet")
            if s.name in existing:
                out.existing[s.name] = n
            if s.strict and n != s.partitions:
                raise TopicMismatch(
                    f"topic {s.name} has {n} partitions but kafka.partitions is {s.partitions}: "
                    "the state Tables are co-partitioned with it; set kafka.partitions to "
                    f"{n} or recreate the topic"
                )
        return out
    finally:
        admin.close()
