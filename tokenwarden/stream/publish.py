"""The API's Kafka mode (``serve --broker``): accepted events go to ``tokenwarden.audit``.

``KafkaPipeline`` stands where the ``EmbeddedPipeline`` stands in the app (same ``submit``,
``start``, ``stop``, ``depth`` and counters), so the events, HEC and SSF endpoints need no
change: every accepted event — a forwarder's batch, a verified SET's security events — is
grouped by the partition of its principal key (the topic's partitioner,
``tokenwarden.stream.keys``) and travels in micro-batches (``tokenwarden.stream.codec``): a
partition's events are cut into a message at ``batch_events`` events, or after
``linger_ms`` when fewer are waiting, so one SET push shares a message with its neighbours
and a 10,000-event POST becomes a few messages. The refresh events also go straight to the
family topic, grouped by the partition of their family (their audit messages say so in a
header, and the audit stage does not relay them again): the refresh-reuse stage gets them
one hop sooner, and a replayed token no longer waits first for the audit stage's take in
flight (tens of ms under load) on its way to a revocation.

A submission's future resolves when every message holding its events (on both topics) is
acknowledged by the broker (``acks=all``) and its extra writes are committed — the SSF
receiver's jti record, so a SET is acknowledged once it is durably in Kafka, never before.
Detections and orders are the workers' business: the ``BatchResult`` carries none. More than
``max_pending_events`` waiting for the broker: ``QueueFull`` (429 with Retry-After).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
import structlog
from aiokafka import AIOKafkaProducer

from ingest import AuditEvent
from revocation.txn import writing
from tokenwarden.pipeline import BatchResult, Extra, QueueFull
from tokenwarden.stream import codec
from tokenwarden.stream.keys import Partitioner, family_key, principal_key, wants_family_stage
from tokenwarden.stream.settings import KafkaSettings

log = structlog.get_logger("tokenwarden.stream.publish")


@dataclass(slots=True)
class _Submission:
    events: list[AuditEvent]
    done: asyncio.Future[BatchResult]
    extras: list[Extra]
    parts: int = 0
    failed: BaseException | None = None


@dataclass(slots=True)
class _Buffer:
    key: str
    #: the audit topic's buffers count toward ``depth``; the family topic's hold copies
    audit: bool = True
    events: list[AuditEvent] = field(default_factory=list)
    owners: list[_Submission] = field(default_factory=list)


class KafkaPipeline:
    """Publishes accepted events to the audit topic in micro-batches (module docstring)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        db: sa.Engine,
        mac_key: bytes | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kafka = kafka
        self.db = db
        #: signs each micro-batch (``codec.batch_key``), so the workers need not validate
        #: the events again; None: unsigned, the workers validate them
        self.mac_key = mac_key
        self.clock = clock
        self.partitioner = Partitioner(kafka.partitions)
        self._buffers: dict[int, _Buffer] = {}
        self._family: dict[int, _Buffer] = {}
        self._pending = 0
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._closing = False
        self.processed_events = 0
        self.processed_batches = 0
        self.failed_batches = 0
        self.store_retries = 0

    @property
    def depth(self) -> int:
        """Events accepted and not yet acknowledged by the broker."""
        return self._pending

    async def start(self) -> None:
        from tokenwarden.stream.topics import provision

        await asyncio.to_thread(provision, self.kafka)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.kafka.bootstrap_servers(),
            client_id=f"{self.kafka.app_id}-api",
            acks="all",
            linger_ms=0,
            max_request_size=max(1_048_576, self.kafka.batch_bytes * 2),
            enable_idempotence=False,
        )
        await self._producer.start()
        self._task = asyncio.create_task(self._run(), name="tokenwarden-kafka-publisher")

    async def stop(self) -> None:
        """Publish everything accepted, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def submit(
        self, events: list[AuditEvent], *, extras: Sequence[Extra] = ()
    ) -> asyncio.Future[BatchResult]:
        """Queue ``events`` for the audit topic; the future resolves once they are all
        acknowledged by the broker and ``extras`` are committed."""
        if self._task is None or self._task.done() or self._closing:
            raise RuntimeError("the Kafka publisher is not running")
        if self._pending and self._pending + len(events) > self.kafka.max_pending_events:
            raise QueueFull(
                f"{self._pending} events are waiting for the broker "
                f"(limit {self.kafka.max_pending_events})"
            )
        done: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_consume_exception)
        sub = _Submission(list(events), done, list(extras))
        if not events:
            self._finish_soon(sub)
            return done
        self._pending += len(events)
        for partition, (key, group) in self.partitioner.group(events, principal_key).items():
            buf = self._buffers.get(partition)
            if buf is None:
                buf = self._buffers[partition] = _Buffer(key)
            buf.events += group
            buf.owners.append(sub)
            sub.parts += 1
        relay = [e for e in events if wants_family_stage(e)]
        for partition, (key, group) in self.partitioner.group(relay, family_key).items():
            buf = self._family.get(partition)
            if buf is None:
                buf = self._family[partition] = _Buffer(key, audit=False)
            buf.events += group
            buf.owners.append(sub)
            sub.parts += 1
        self._wake.set()
        return done

    async def _run(self) -> None:
        linger = self.kafka.linger_ms / 1000.0
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._buffers and not self._family:
                if self._closing:
                    return
                continue
            full = any(
                len(b.events) >= self.kafka.batch_events
                for b in (*self._buffers.values(), *self._family.values())
            )
            if linger and not full and not self._closing:
                await asyncio.sleep(linger)
            family, self._family = self._family, {}
            buffers, self._buffers = self._buffers, {}
            sends = [(self.kafka.family_topic, p, b) for p, b in family.items()]
            sends += [(self.kafka.audit_topic, p, b) for p, b in buffers.items()]
            for topic, partition, buf in sends:
                task = asyncio.create_task(self._send(topic, partition, buf))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)

    async def _send(self, topic: str, partition: int, buf: _Buffer) -> None:
        assert self._producer is not None
        error: BaseException | None = None
        try:
            futures = []
            for value, _ in codec.chunks(
                buf.events, max_events=self.kafka.batch_events, max_bytes=self.kafka.batch_bytes
            ):
                futures.append(
                    await self._producer.send(
                        topic,
                        value,
                        key=buf.key.encode(),
                        partition=partition,
                        # the audit stage need not relay what the family topic has already
                        headers=codec.batch_headers(value, key=self.mac_key, family_sent=buf.audit),
                    )
                )
            await asyncio.gather(*futures)
            self.processed_batches += len(futures)
        except Exception as exc:
            error = exc
            self.failed_batches += 1
            log.exception("publishing a micro-batch failed", topic=topic, partition=partition)
        if buf.audit:
            self._pending -= len(buf.events)
        for sub in buf.owners:
            if error is not None and sub.failed is None:
                sub.failed = error
            sub.parts -= 1
            if sub.parts == 0:
                self._finish_soon(sub)

    def _finish_soon(self, sub: _Submission) -> None:
        task = asyncio.create_task(self._finish(sub))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _finish(self, sub: _Submission) -> None:
        if sub.done.done():
            return
        if sub.failed is not None:
            sub.done.set_exception(sub.failed)
            return
        try:
            if sub.extras:
                await asyncio.to_thread(self._commit_extras, sub.extras)
        except Exception as exc:
            self.store_retries += 1
            sub.done.set_exception(exc)
            return
        self.processed_events += len(sub.events)
        sub.done.set_result(BatchResult(events=sub.events))

    def _commit_extras(self, extras: Sequence[Extra]) -> None:
        with writing(self.db) as conn:
            for extra in extras:
                extra(conn)


def _consume_exception(future: asyncio.Future[BatchResult]) -> None:
    if not future.cancelled():
        future.exception()


__all__ = ["KafkaPipeline"]
