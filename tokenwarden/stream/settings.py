"""Settings of the Kafka runner (``[kafka]``): the workers and the API's publish mode.

```toml
[kafka]
broker = "kafka://kafka-1:9092;kafka-2:9092"   # unset: the embedded runner
partitions = 8          # of every topic we provision (and of the state changelogs)
replication = 3
fetch_wait_ms = 500     # how long a fetch may wait for data (see the README: Tansu)
```

Environment: ``TOKENWARDEN_KAFKA__BROKER=kafka://127.0.0.1:9092`` and so on. This module
imports no Kafka client: the settings load everywhere, the clients only where they are used.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class KafkaSettings(BaseModel):
    """Topics, partitioning, micro-batching and consumer timing of the Kafka runner."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    broker: str | None = Field(
        default=None,
        description="kafka://HOST:PORT (several separated by ';'); unset = embedded runner",
    )
    app_id: str = Field(
        default="tokenwarden",
        min_length=1,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="consumer group of the workers and prefix of their state changelogs",
    )
    audit_topic: str = "tokenwarden.audit"
    dlq_topic: str = "tokenwarden.audit.dlq"
    family_topic: str = Field(
        default="tokenwarden.audit.by-family",
        description="the family-keyed repartition of refresh events (refresh-reuse state)",
    )
    detections_topic: str = "tokenwarden.detections"
    orders_topic: str = "tokenwarden.orders"
    ingest_topics: list[str] = Field(
        default_factory=list,
        description="more topics forwarders write raw JSON/NDJSON records to",
    )
    ingest_format: str | None = Field(
        default=None, description="format of forwarded records (default: detected per record)"
    )
    partitions: int = Field(default=8, ge=1, le=10_000)
    replication: int = Field(default=1, ge=1, le=32)
    fetch_wait_ms: int = Field(
        default=500,
        ge=1,
        le=60_000,
        description="consumer fetch_max_wait_ms (faust hardcodes 1500; we set this instead)",
    )
    batch_events: int = Field(default=1000, ge=1, le=100_000, description="events per message")
    batch_bytes: int = Field(
        default=512 * 1024, ge=1024, le=8 * 1024 * 1024, description="bytes per message"
    )
    take_messages: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="worker: most messages handled together (one store transaction)",
    )
    take_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=256 * 1024 * 1024,
        description="worker: most message bytes handled together",
    )
    linger_ms: float = Field(
        default=2.0, ge=0, le=1000, description="API: how long a partial micro-batch waits"
    )
    max_pending_events: int = Field(
        default=200_000, ge=1, description="API: events waiting for the broker before 429"
    )
    state_buckets: int = Field(
        default=0,
        ge=0,
        le=65_536,
        description="0: one table key per state key; N: state keys grouped in N per partition",
    )
    standby_replicas: int = Field(default=0, ge=0, le=8)
    commit_interval_seconds: float = Field(default=1.0, gt=0)
    session_timeout_seconds: float = Field(default=10.0, gt=0)
    rebalance_timeout_seconds: float = Field(default=10.0, gt=0)
    heartbeat_interval_seconds: float = Field(default=1.0, gt=0)
    web_port: int | None = Field(
        default=None, ge=0, le=65535, description="a worker's faust web port (health checks)"
    )
    datadir: str | None = Field(
        default=None, description="faust's data directory (default: a temporary one)"
    )

    @field_validator("broker")
    @classmethod
    def _kafka_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        hosts = _hosts(value)
        if (
            not value.startswith("kafka://")
            or not hosts
            or not all(h.rpartition(":")[0] and h.rpartition(":")[2].isdigit() for h in hosts)
        ):
            raise ValueError(f"broker {value!r} must look like kafka://HOST:PORT[;HOST:PORT]")
        return value

    def bootstrap_servers(self) -> list[str]:
        """``HOST:PORT`` of each broker in ``broker``."""
        if self.broker is None:
            raise ValueError("no Kafka broker is configured")
        return _hosts(self.broker)


def _hosts(broker: str) -> list[str]:
    """The ``HOST:PORT`` parts of ``kafka://HOST:PORT[;HOST:PORT]`` (``,`` also separates)."""
    hosts = broker.removeprefix("kafka://").replace(",", ";").split(";")
    return [h.strip().rstrip("/") for h in hosts if h.strip()]
