"""Worker processes, a PostgreSQL schema per run, and waiting for the stream to settle:
shared by the stream tests and ``bench/kafka.py``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from ingest import TokenHasher
from tests.stream.broker import terminate
from tokenwarden.stream.codec import batch_key
from tokenwarden.stream.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]
PG_URLS = (
    os.environ.get(
        "TOKENWARDEN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
HASH_KEY = "stream-test-key-stream-test-key!"
#: the key the API signs its micro-batches with, as ``serve --broker`` derives it
MAC_KEY = batch_key(TokenHasher(HASH_KEY.encode()))


def postgres_admin_url() -> str | None:
    """The first PostgreSQL URL that answers, else None."""
    for url in PG_URLS:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return url
        except sa.exc.OperationalError:
            continue
        finally:
            engine.dispose()
    return None


@contextlib.contextmanager
def pg_schema(url: str) -> Iterator[str]:
    """A fresh schema; yields a URL whose connections use it (also in subprocesses)."""
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    schema = "tws_" + secrets.token_hex(5)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def isolated_kafka(broker_url: str, **overrides: Any) -> KafkaSettings:
    """Settings whose group and topics no other test uses (one broker serves many)."""
    tag = "t" + secrets.token_hex(3)
    base: dict[str, Any] = {
        "broker": broker_url,
        "app_id": tag,
        "audit_topic": f"{tag}.audit",
        "dlq_topic": f"{tag}.audit.dlq",
        "family_topic": f"{tag}.audit.by-family",
        "detections_topic": f"{tag}.detections",
        "orders_topic": f"{tag}.orders",
        "partitions": 4,
        "fetch_wait_ms": 5,
        "commit_interval_seconds": 0.2,
        "session_timeout_seconds": 6.0,
        "rebalance_timeout_seconds": 4.0,
        "heartbeat_interval_seconds": 0.5,
    }
    base.update(overrides)
    return KafkaSettings(**base)


def worker_env(kafka: KafkaSettings, db_url: str, **extra: str) -> dict[str, str]:
    """The environment of a ``tokenwarden worker`` subprocess for these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENWARDEN_")}
    env.update(
        PYTHONPATH=str(ROOT),
        TOKENWARDEN_DATABASE_URL=db_url,
        TOKENWARDEN_HASH_KEY=HASH_KEY,
        TOKENWARDEN_LOG_LEVEL="info",
    )
    for name, value in kafka.model_dump().items():
        if value is None:
            continue
        text = orjson.dumps(value).decode() if isinstance(value, list) else str(value)
        env[f"TOKENWARDEN_KAFKA__{name.upper()}"] = text
    env.update(extra)
    return env


class Worker:
    """One ``tokenwarden worker`` process with its log file."""

    def __init__(self, env: dict[str, str], log: Path, *, argv: list[str] | None = None) -> None:
        self.env = env
        self.log = log
        self.argv = argv or []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen(
            [sys.executable, *self.argv, "-m", "tokenwarden.cli", "worker"],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=self.log.parent,
        )
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace")[self._offset :]

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"worker exited ({self.proc.returncode}):\n{self.text()[-4000:]}")
        return "Worker ready" in self.text()

    def kill(self) -> None:
        """SIGKILL: no goodbye to the group, nothing flushed."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, grace=40)
        self.proc = None


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


def wait_ready(workers: list[Worker], timeout: float = 90.0, settle: float = 1.0) -> None:
    wait_until(lambda: all(w.ready() for w in workers), timeout, "the workers to be ready")
    time.sleep(settle)


class Progress:
    """How far the workers' committed offsets are from the end of the audit topic and the
    family repartition, read over one consumer and one admin connection kept open between
    polls: opening them for each poll cost ~8 ms of CPU, and a poll every 50 ms took a
    tenth of a core from the workers ``bench/kafka.py`` measures (now ~1 ms). A failed read
    (a broker restart) reconnects on the next poll."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self._consumer: Any = None
        self._admin: Any = None
        #: why the last poll could not read the offsets (for the timeout's message)
        self.error: Exception | None = None

    def _connect(self) -> None:
        from kafka import KafkaConsumer
        from kafka.admin import KafkaAdminClient

        bootstrap = self.kafka.bootstrap_servers()
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap)

    def consumed(self) -> bool:
        """Every message of the two topics is committed."""
        from kafka import TopicPartition

        try:
            if self._consumer is None:
                self._connect()
            consumer, group = self._consumer, self.kafka.app_id
            topics = (self.kafka.audit_topic, self.kafka.family_topic)
            tps = [
                TopicPartition(t, p)
                for t in topics
                for p in sorted(consumer.partitions_for_topic(t) or ())
            ]
            if {tp.topic for tp in tps} != set(topics):
                return False  # no metadata for a topic yet
            ends = consumer.end_offsets(tps)
            done = self._admin.list_group_offsets(group).get(group, {})
        except Exception as exc:
            self.error = exc
            self.close()
            return False
        self.error = None
        committed = {tp: int(o.offset) for tp, o in done.items()}
        return all(committed.get(tp, 0) >= end for tp, end in ends.items() if end > 0)

    def close(self) -> None:
        for client in (self._consumer, self._admin):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        self._consumer = self._admin = None


def wait_consumed(kafka: KafkaSettings, timeout: float = 120.0, stable: float = 0.6) -> float:
    """Wait until the workers committed everything, twice in a row ``stable`` seconds
    apart (the audit stage may still be relaying into the family topic). Returns the
    monotonic time it first held."""
    first: float | None = None
    deadline = time.monotonic() + timeout
    progress = Progress(kafka)
    try:
        while time.monotonic() < deadline:
            if progress.consumed():
                now = time.monotonic()
                first = first or now
                if now - first >= stable:
                    return first
            else:
                first = None
            time.sleep(0.05)
    finally:
        progress.close()
    why = f" (the last poll failed: {progress.error!r})" if progress.error else ""
    raise TimeoutError(f"the workers did not consume everything in time{why}")


def read_topic(bootstrap: str, topic: str, timeout: float = 5.0) -> list[Any]:
    """Every record of ``topic`` (aiokafka ConsumerRecords), from the beginning."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            if not tps:
                return []
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            out: list[Any] = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                    break
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    out.extend(records)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def stats_of(worker: Worker) -> dict[str, int]:
    """The counters of the worker's ``worker stopping`` log line (written at a clean stop)."""
    line = next(
        (ln for ln in reversed(worker.text().splitlines()) if "worker stopping" in ln), None
    )
    assert line is not None, "the worker logged no stats at its stop"
    return {k: int(v) for k, v in re.findall(r"\b(\w+)=(\d+)\b", line)}
