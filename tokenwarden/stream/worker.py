"""The Kafka runner: faust agents over the same stages as the embedded pipeline.

Topology (DESIGN.md, "Runners"; partitioning in ``tokenwarden.stream.keys``)::

    forwarders ─ raw JSON/NDJSON ─┐                         ┌─► tokenwarden.audit.dlq
    API (serve --broker) ─ batches┴─► tokenwarden.audit ────┤   (bad records + offsets)
        │                             keyed tenant/user     │
        │ refresh events              audit agent: usage +  ├─► tokenwarden.audit.by-family
        └───────────────────────────► signal detectors,     │   (refresh events, by family;
                                      Table "entity-state"  │   forwarded ones relayed)
                                                            │      family agent:
                                                            │      refresh_reuse, Table
                                                            │      "family-state"
                                                            ▼
             Policy → one store transaction (token facts, detections, orders + outbox)
             → the store applies the orders ─► tokenwarden.detections, tokenwarden.orders

Every Kafka message is a micro-batch (``tokenwarden.stream.codec``: up to ``batch_events``
events of one partition). An agent handles its messages in *takes* (``_consume``): all
that arrived while the previous take was being handled, up to ``take_messages`` messages
or ``take_bytes`` — so faust's framework cost (~85 µs), one store transaction, one output
produce and one changelog write per partition are paid per take, i.e. per many events
under load, and a lone message at low load waits for no timer. (One message at a time,
the previous design, capped a stage at a few dozen messages a second; at moderate load
the API's micro-batches are small, so the work queued up and a replayed token's order
took 10-20 s.) For each take, in this order:

0. after a rebalance, wait until faust has restored the Tables from their changelogs;
   changes an earlier failed attempt left pending in memory are dropped;
1. messages at or below their partition's watermark are skipped: a replay after a crash,
   whose outputs were durable before its state was written; a message *past*
   ``watermark + 1`` means the consumer skipped some (faust drops records fetched around
   a rebalance), and those are read with a side consumer and processed first — a timer
   does the same for a partition that stays behind its end (``_catch_up``);
2. micro-batches are decoded (a bad event or message goes to the DLQ with its error and
   source offset); forwarded records are normalized and re-keyed onto the audit topic;
3. (audit stage) refresh events of forwarded records are sent on to the family
   repartition, grouped by the partition of their family with the topic's partitioner
   (the API sends its own there itself: ``codec.family_sent``);
4. ``Stages.detect`` per partition, on that partition's state (if a detector raises, the
   partition's events are retried one by one and only the failing one is dead-lettered);
5. ``Stages.persist`` once for the batch: one transaction records token facts,
   detections, orders (with their outbox), then the store applies the orders — retried
   with backoff until it succeeds (fail closed: nothing is acknowledged past it);
6. the detections and orders are published; every message of 3, 5 and the DLQ is waited
   for until the broker acknowledged it;
7. each partition's changed state keys and its watermark are written to its Table
   (in-memory store + changelog, ``tokenwarden.stream.changelog``), acknowledged too.

Only then are the take's messages acknowledged (``stream.ack``; faust commits their
offsets every ``commit_interval_seconds``, and a rebalance waits for the take in flight).
At-least-once delivery plus idempotent outputs (deterministic detection ids, orders keyed
by their idempotency key) makes every order effectively once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import httpx
import orjson
import structlog

from detectors import Engine, upgrade_state
from ingest import AuditEvent, IngestError, Limits, UnknownFormat, decode
from tokenwarden.formats import normalize
from tokenwarden.learned_models import prepare_fitting, save_fitted
from tokenwarden.pipeline import BatchResult, Stages
from tokenwarden.services import Services, build_services, follow_policy_off_loop
from tokenwarden.settings import Settings
from tokenwarden.state import TrackedState
from tokenwarden.stream import codec
from tokenwarden.stream.changelog import ChangelogWriter
from tokenwarden.stream.codec import Source
from tokenwarden.stream.keys import (
    FAMILY_DETECTORS,
    Partitioner,
    family_key,
    principal_key,
    wants_family_stage,
)
from tokenwarden.stream.settings import KafkaSettings
from tokenwarden.stream.state import PartitionState, drop_partitions
from tokenwarden.stream.transport import StreamApp

log = structlog.get_logger("tokenwarden.stream")
_T = TypeVar("_T")

ENTITY_TABLE = "entity-state"
#: seconds a partition's state may stay behind its topic's end before the worker reads
#: the rest itself (``StreamWorker._catch_up``)
CATCH_UP_TICKS = 3
FAMILY_TABLE = "family-state"
#: how often a model whose fit ended after the audit stage's last take is saved
FITTED_SAVE_SECONDS = 5.0
#: takes of at most this many bytes are decoded and detected on the event loop
#: (``_off_loop``): ~100 events, a few ms of work
INLINE_BYTES = 32 * 1024
#: (record index or None for the whole message, error, the record or raw value)
Bad = tuple[int | None, str, Any]


def utcnow() -> datetime:
    return datetime.now(UTC)


def split_engine(engine: Engine) -> tuple[Engine, Engine]:
    """The Engine's detectors split by where their state lives: (audit stage, family stage).
    Both keep the Engine's configuration (risk combination, cool-down)."""
    config = engine.config
    principal = [d for d in engine.detectors if d.name not in FAMILY_DETECTORS]
    family = [d for d in engine.detectors if d.name in FAMILY_DETECTORS]
    return Engine(principal, config), Engine(family, config)


def build_app(kafka: KafkaSettings, *, datadir: str) -> StreamApp:
    """The faust App of the workers (nothing is started)."""
    if kafka.broker is None:
        raise ValueError("the worker needs kafka.broker (--broker kafka://HOST:PORT)")
    app = StreamApp(
        kafka.app_id,
        broker=kafka.broker,
        store="memory://",
        datadir=datadir,
        autodiscover=False,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication,
        table_standby_replicas=kafka.standby_replicas,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=kafka.commit_interval_seconds,
        broker_session_timeout=kafka.session_timeout_seconds,
        broker_rebalance_timeout=kafka.rebalance_timeout_seconds,
        broker_heartbeat_interval=kafka.heartbeat_interval_seconds,
        broker_request_timeout=max(90.0, kafka.session_timeout_seconds * 2),
        producer_linger=0.0005,
        producer_max_request_size=max(1_048_576, kafka.batch_bytes * 2),
        consumer_max_fetch_size=max(4 * 1_048_576, kafka.batch_bytes * 4),
        web_enabled=kafka.web_port is not None,
        web_port=kafka.web_port or 6066,
        web_bind="0.0.0.0",  # noqa: S104 - the health endpoint of a container
        processing_guarantee="at_least_once",
        # faust compares the changelog offset it read up to in an earlier recovery with
        # the topic's end offset, to catch a RocksDB store that outlived its topic. The
        # memory store outlives nothing; and the Tansu test broker reports the end of a
        # partition as the last record batch's base offset + 1, so after ChangelogWriter's
        # multi-record batches a partition recovered twice by one worker looked "ahead"
        # of its topic and the worker crashed (tests/stream/test_takes.py).
        recovery_consistency_check=False,
    )
    app.fetch_wait_ms = kafka.fetch_wait_ms
    return app


@dataclass(slots=True)
class WorkerStats:
    #: takes of the agents (``_consume``), and batches processed (a take, a gap read)
    takes: int = 0
    batches: int = 0
    messages: int = 0
    events: int = 0
    detections: int = 0
    orders: int = 0
    dead_letters: int = 0
    skipped: int = 0
    forwarded: int = 0
    #: micro-batches whose MAC verified: rebuilt, not validated again (``codec.signed``)
    signed: int = 0
    state_records: int = 0
    store_retries: int = 0
    retries: int = 0
    gap_messages: int = 0
    #: the most messages handled in one take (``_consume``)
    max_take: int = 0
    #: wall-clock seconds spent per phase of a batch (decode, detect, persist, …)
    seconds: dict[str, float] = field(default_factory=dict)

    def took(self, messages: int) -> None:
        self.takes += 1
        self.max_take = max(self.max_take, messages)

    def add(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - since
        return now

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: getattr(self, k) for k in self.__dataclass_fields__ if k != "seconds"
        }
        out["seconds"] = {k: round(v, 3) for k, v in self.seconds.items()}
        return out


@dataclass(slots=True)
class _Stage:
    """One detecting stage: its Stages (engine, policy, store), its Table, its partitions."""

    name: str
    topic: str
    stages: Stages
    table: Any
    buckets: int
    states: dict[int, PartitionState] = field(default_factory=dict)
    swept: dict[int, float] = field(default_factory=dict)
    #: partitions whose state is known to be in the current layout (``upgrade_state``)
    upgraded: set[int] = field(default_factory=set)
    #: the agent and the catch-up timer take turns
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: partition -> (watermark at the catch-up timer's last look, looks it stayed)
    idle: dict[int, tuple[int | None, int]] = field(default_factory=dict)

    def state(self, partition: int) -> PartitionState:
        s = self.states.get(partition)
        if s is None:
            s = self.states[partition] = PartitionState(
                self.table.data, partition, buckets=self.buckets
            )
        return s


class _Taker:
    """The buffer between a stream's reader task and its handler: ``put`` waits while
    ``max_messages`` messages or ``max_bytes`` bytes are waiting; ``take`` waits for the
    first message and returns everything waiting (``[]`` once the stream ended)."""

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._events: list[Any] = []
        self._bytes = 0
        self._changed = asyncio.Event()
        self._closed = False
        self._error: BaseException | None = None

    def _full(self) -> bool:
        return len(self._events) >= self.max_messages or self._bytes >= self.max_bytes

    async def put(self, event: Any) -> None:
        while self._full():
            self._changed.clear()
            await self._changed.wait()
        self._events.append(event)
        self._bytes += len(event.value or b"")
        self._changed.set()

    def close(self, error: BaseException | None) -> None:
        self._closed = True
        if error is not None and not isinstance(error, asyncio.CancelledError):
            self._error = error
        self._changed.set()

    async def take(self) -> list[Any]:
        while not self._events:
            if self._error is not None:
                raise self._error
            if self._closed:
                return []
            self._changed.clear()
            await self._changed.wait()
        events, self._events, self._bytes = self._events, [], 0
        self._changed.set()  # room for the reader
        return events


@dataclass(slots=True)
class _Message:
    source: Source
    value: bytes | None
    batch: bool
    events: list[AuditEvent] = field(default_factory=list)
    #: the broker's timestamp of the message (seconds since the epoch), for the lag log
    timestamp: float | None = None
    #: its family-stage events are on the family topic already (the API sent them there)
    family_sent: bool = False
    #: its headers, for the MAC check when it is decoded
    headers: Any = None
    #: its MAC verified: our own publisher wrote it (``codec.signed``; set by ``_decode``)
    trusted: bool = False


class _Batch:
    """What one agent batch accumulates: sends to wait for, dead letters, state writes."""

    def __init__(self) -> None:
        self.sends: list[Any] = []
        self.dead: list[tuple[Source, list[Bad]]] = []
        self.last: dict[int, int] = {}  # partition -> last offset taken
        self.changes: dict[int, tuple[dict[str, Any], set[str]]] = {}


class StreamWorker:
    """One worker process: the faust App, its topics, Tables and agents, over ``Services``."""

    def __init__(
        self,
        settings: Settings,
        *,
        datadir: str,
        services: Services | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.kafka = kafka = settings.kafka
        self.services = services or build_services(settings, load_state=False)
        #: the ``model`` detector's fits run here, not in the take that triggers them
        self._fits = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenwarden-fit")
        prepare_fitting(self.services.stages.engine, self._fits)
        #: verifies the micro-batches the API signed, signs the ones relayed here
        self.mac_key = codec.batch_key(self.services.hasher)
        self.clock = clock
        self.stats = WorkerStats()
        self.partitioner = Partitioner(kafka.partitions)
        self.limits = Limits(max_bytes=64 * 1024 * 1024, max_events=1_000_000)
        self.app = app = build_app(kafka, datadir=datadir)
        #: one changelog producer per Table: aiokafka sends one request at a time per
        #: broker connection, and the two stages' writes should not queue behind each other
        self._writers: dict[str, ChangelogWriter] = {}
        self._writer_lock = asyncio.Lock()
        self._reader: Any = None
        self._reader_lock = asyncio.Lock()

        def raw(*names: str) -> Any:
            return app.topic(*names, key_type=bytes, value_type=bytes, value_serializer="raw")

        ingest = [t for t in kafka.ingest_topics if t != kafka.audit_topic]
        base = self.services.stages
        principal_engine, family_engine = split_engine(base.engine)

        def stage(name: str, topic: str, engine: Engine, table: str) -> _Stage:
            stages = Stages(
                db=base.db,
                engine=engine,
                policy=base.policy,
                state=TrackedState(),
                routing=base.routing,
            )
            # keys through faust's json codec, as ChangelogWriter writes them; values kept
            # as their JSON bytes (``raw``: ``tokenwarden.stream.state``)
            t = app.Table(table, default=None, partitions=kafka.partitions, value_type=bytes)
            return _Stage(name, topic, stages, t, kafka.state_buckets)

        self.entity = stage("audit", kafka.audit_topic, principal_engine, ENTITY_TABLE)
        self.family = stage("family", kafka.family_topic, family_engine, FAMILY_TABLE)

        app.agent(raw(kafka.audit_topic), name="audit")(self._audit_agent)
        app.agent(raw(kafka.family_topic), name="family")(self._family_agent)
        if ingest:
            app.agent(raw(*ingest), name="ingest")(self._ingest_agent)
        app.task(self._revocation_task)
        app.timer(60.0)(self._log_stats)
        app.timer(1.0)(self._catch_up)
        app.timer(FITTED_SAVE_SECONDS)(self._save_fitted_tick)
        app.timer(settings.policy_refresh_seconds)(self._refresh_policy)
        app.on_before_shutdown.connect(self._on_shutdown)
        app.on_partitions_assigned.connect(self._on_assigned)

    # -- agents ---------------------------------------------------------------------------

    async def _audit_agent(self, stream: Any) -> None:
        await self._consume(
            stream, lambda events: self._detecting(self.entity, events), stage=self.entity
        )

    async def _family_agent(self, stream: Any) -> None:
        await self._consume(
            stream, lambda events: self._detecting(self.family, events), stage=self.family
        )

    async def _ingest_agent(self, stream: Any) -> None:
        await self._consume(stream, self._ingesting)

    async def _consume(
        self, stream: Any, handle: Callable[[list[Any]], Any], *, stage: _Stage | None = None
    ) -> None:
        """Handle the stream's messages in takes (``_Taker``): everything that arrived while
        the previous take was being handled, up to ``take_messages`` / ``take_bytes`` — so
        one store transaction, one output produce and one changelog write per partition
        cover many Kafka messages under load, and a lone message waits for nothing.

        faust's own acknowledgement is switched off for this stream (``enable_acks``) and
        each message is acknowledged with ``stream.ack`` only after its take has been
        handled: faust commits no offset past a message that is taken but not handled,
        and a rebalance (``wait_empty``) waits for the take in flight. A reader task keeps
        iterating the stream meanwhile, so the take in flight never waits for the next
        message (a take that needed one more message to finish could block the rebalance
        that cleared the stream's buffer). Messages faust itself drops around a rebalance
        (and acknowledges) are still found by the watermark check (``_fill_gap``,
        ``_catch_up``)."""
        stream.enable_acks = False
        taker = _Taker(self.kafka.take_messages, self.kafka.take_bytes)

        async def read() -> None:
            try:
                async for event in stream.events():
                    await taker.put(event)
            except BaseException as exc:
                taker.close(exc)
                raise
            taker.close(None)

        reader = asyncio.create_task(read(), name="tokenwarden-stream-reader")
        try:
            while True:
                events = await taker.take()
                if not events:
                    return  # the stream ended
                self.stats.took(len(events))
                await self._guarded(handle, events, stage)
                for event in events:
                    await stream.ack(event)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _guarded(
        self, handle: Callable[[list[Any]], Any], events: list[Any], stage: _Stage | None
    ) -> None:
        """Run ``handle`` until it succeeds: a fault of the broker or the store is waited
        out (fail closed, the partition waits); after repeated failures that are not
        (``ConnectionError``, Kafka errors), the messages go to the DLQ rather than
        block their partitions for ever."""
        delay = 0.1
        for attempt in range(1, 1_000_000):
            try:
                await handle(events)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.retries += 1
                transient = _transient(exc)
                log.exception(
                    "batch failed; retrying" if transient or attempt < 3 else "batch failed",
                    attempt=attempt,
                    messages=len(events),
                )
                if not transient and attempt >= 3:
                    if len(events) > 1:
                        # one bad message must not take its neighbours to the DLQ
                        for one in events:
                            await self._guarded(handle, [one], stage)
                        return
                    await self._dead_letter_all(events, exc, stage)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _dead_letter_all(
        self, events: list[Any], exc: Exception, stage: _Stage | None
    ) -> None:
        """The messages to the DLQ; in a stateful stage their offsets are also marked
        applied (with no state change), so a poison message is not fetched again as a
        gap by the next one."""
        batch = _Batch()
        for event in events:
            msg = event.message
            source = Source(msg.topic, msg.partition, msg.offset)
            batch.dead.append((source, [(None, f"processing failed: {exc}", event.value)]))
            batch.last[msg.partition] = max(batch.last.get(msg.partition, -1), msg.offset)
        await self._finish_sends(batch)
        if stage is not None:
            async with stage.lock:
                for partition in batch.last:
                    stage.state(partition).rollback(({}, set(), set()))
                await self._write_state(stage, batch)

    # -- the detecting stages -------------------------------------------------------------

    async def _settled(self) -> None:
        """Wait while faust restores Tables after a rebalance. A message fetched before the
        rebalance (or delivered while recovery runs) must not be processed against a
        partly restored partition state: it would miss the state a crashed worker left in
        the changelog. Recovery does not wait for the agents, so waiting here is safe."""
        app = self.app
        recovery = cast(Any, app.tables).recovery
        while app.in_recovery or recovery.signal_recovery_start.is_set():
            await asyncio.sleep(0.01)

    async def _fill_gap(self, tp: Any, start: int, end: int) -> list[_Message]:
        """The messages ``start`` .. ``end - 1`` of ``tp``, read with a side consumer.

        faust can skip messages around a rebalance: records fetched while the group
        rebalances carry the old generation and are dropped by the stream, and when the
        partition is sought back to its committed offset the consumer drops the re-fetched
        ones as already read (its read offset is past them) — so they would never be
        processed. The watermark says exactly which offsets this partition's state has
        seen, so a message past ``watermark + 1`` reveals the hole; it is read here and
        processed first, and faust is told the range is handled so its commits move on."""
        records = await self._read_range(tp.topic, tp.partition, start, end)
        self.stats.gap_messages += len(records)
        log.warning(
            "messages skipped by the consumer were read again",
            topic=tp.topic,
            partition=tp.partition,
            offsets=f"{start}..{end - 1}",
            found=len(records),
        )
        add_gap = getattr(self.app.consumer, "_add_gap", None)
        if add_gap is not None:
            await add_gap(tp, start, end - 1)
        return [
            self._message(Source(tp.topic, tp.partition, r.offset), r.value, r.headers)
            for r in records
        ]

    def _message(
        self, source: Source, value: bytes | None, headers: Any, *, timestamp: float | None = None
    ) -> _Message:
        """A record of a detecting stage's topic, its headers read (its MAC is checked by
        ``_decode``: HMAC over a take's megabytes is work for the decoding thread, not for
        the event loop)."""
        return _Message(
            source,
            value,
            codec.is_batch(headers),
            timestamp=timestamp,
            family_sent=codec.family_sent(headers),
            headers=headers,
        )

    async def _side_reader(self) -> Any:
        """An aiokafka consumer of our own (no group) for reading ranges and end offsets."""
        from aiokafka import AIOKafkaConsumer

        async with self._reader_lock:
            if self._reader is None:
                reader = AIOKafkaConsumer(
                    bootstrap_servers=self.kafka.bootstrap_servers(),
                    client_id=f"{self.kafka.app_id}-gap-reader",
                    enable_auto_commit=False,
                    fetch_max_wait_ms=self.kafka.fetch_wait_ms,
                    max_partition_fetch_bytes=max(4 * 1_048_576, self.kafka.batch_bytes * 4),
                )
                await reader.start()
                self._reader = reader
            return self._reader

    async def _read_range(self, topic: str, partition: int, start: int, end: int) -> list[Any]:
        from aiokafka import TopicPartition

        reader = await self._side_reader()
        async with self._reader_lock:
            tp = TopicPartition(topic, partition)
            reader.assign([tp])
            first = (await reader.beginning_offsets([tp]))[tp]
            reader.seek(tp, max(start, int(first)))
            out: list[Any] = []
            deadline = time.monotonic() + 30.0
            while await reader.position(tp) < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic}/{partition} {start}..{end - 1}")
                got = await reader.getmany(tp, timeout_ms=500)
                out += [r for r in got.get(tp, ()) if start <= r.offset < end]
            return out

    async def _detecting(self, stage: _Stage, events: list[Any]) -> None:
        messages = [
            self._message(
                Source(e.message.topic, e.message.partition, e.message.offset),
                e.value,
                e.message.headers,
                timestamp=e.message.timestamp,
            )
            for e in events
        ]
        await self._settled()
        async with stage.lock:
            await self._process(stage, messages)

    async def _catch_up(self) -> None:
        """Every second: a partition whose state is behind the end of its topic and has
        not moved for ``CATCH_UP_TICKS`` looks is read and processed here (the messages
        faust skipped around a rebalance, when no later message arrives to reveal the
        hole)."""
        if self.app.rebalancing or self.app.in_recovery:
            return
        try:
            await self._catch_up_once()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("catching up on skipped messages failed; trying again")

    async def _catch_up_once(self) -> None:
        assignment = self.app.consumer.assignment()
        for stage in (self.entity, self.family):
            tps = [tp for tp in assignment if tp.topic == stage.topic]
            if not tps:
                continue
            ends = await self._end_offsets(stage.topic, [tp.partition for tp in tps])
            for tp in tps:
                end = ends.get(tp.partition, 0)
                applied = stage.state(tp.partition).applied
                seen, ticks = stage.idle.get(tp.partition, (None, 0))
                ticks = ticks + 1 if seen == applied else 0
                stage.idle[tp.partition] = (applied, ticks)
                if ticks < CATCH_UP_TICKS:
                    continue
                if applied + 1 >= end:
                    await self._commit_applied(tp, applied)
                    continue
                async with stage.lock:
                    if stage.state(tp.partition).applied != applied:
                        continue
                    await self._settled()
                    await self._process(stage, await self._fill_gap(tp, applied + 1, end))
                # no later message will be acknowledged to carry faust's commit past them
                commit = getattr(self.app.consumer, "_commit_offsets", None)
                if commit is not None and stage.state(tp.partition).applied + 1 >= end:
                    await commit({tp: end})

    async def _commit_applied(self, tp: Any, applied: int) -> None:
        """Move faust's committed offset of an idle partition up to its watermark.

        Everything at or below the watermark is durable (outputs, then state), so
        committing ``applied + 1`` is always safe. faust itself commits only what was
        acknowledged on the stream; messages a worker SIGKILLed after writing their state
        but before its commit are fetched again by the survivor, and when faust drops such
        re-fetched records around a rebalance without acknowledging them, no later
        message may ever come to carry the commit past them: the partition would stay
        "behind" for ever although nothing is left to do."""
        if applied < 0:
            return
        consumer = self.app.consumer
        committed = getattr(consumer, "_committed_offset", {}).get(tp)
        commit = getattr(consumer, "_commit_offsets", None)
        if commit is not None and (committed is None or committed < applied + 1):
            log.info("idle partition committed up to its watermark", tp=str(tp), applied=applied)
            await commit({tp: applied + 1})

    async def _end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        from aiokafka import TopicPartition

        reader = await self._side_reader()
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await reader.end_offsets(tps)
        return {tp.partition: int(o) for tp, o in ends.items()}

    async def _process(self, stage: _Stage, incoming: list[_Message]) -> None:
        stats = self.stats
        t = started = time.perf_counter()
        batch = _Batch()
        messages: list[_Message] = []
        for partition in {m.source.partition for m in incoming}:
            # changes a failed attempt left pending (detected, never written) would be
            # applied twice when its messages are processed again
            stage.state(partition).rollback(({}, set(), set()))
        for m in incoming:
            partition, offset = m.source.partition, m.source.offset
            state = stage.state(partition)
            gap_from = max(state.applied + 1, batch.last.get(partition, -1) + 1)
            if offset > gap_from:
                tp = next(
                    (
                        tp
                        for tp in self.app.consumer.assignment()
                        if tp.topic == m.source.topic and tp.partition == partition
                    ),
                    None,
                )
                if tp is not None:
                    messages += await self._fill_gap(tp, gap_from, offset)
                    batch.last[partition] = offset - 1
            if offset <= state.applied or offset <= batch.last.get(partition, -1):
                stats.skipped += 1
                log.info(
                    "message skipped: its state is already in the Table",
                    stage=stage.name,
                    partition=partition,
                    offset=offset,
                    applied=state.applied,
                )
                continue
            batch.last[partition] = offset
            messages.append(m)
        if not messages:
            return
        forwarded = [m for m in messages if not m.batch]
        batched = [m for m in messages if m.batch]
        if forwarded:
            await self._forward(forwarded, batch)
        size = sum(len(m.value or b"") for m in batched)
        bad = await _off_loop(size, self._decode, batched)
        stats.signed += sum(m.trusted for m in batched)
        batch.dead += bad
        t = stats.add(f"{stage.name}.decode", t)
        events_all = [e for m in batched for e in m.events]
        if stage is self.entity:
            # refresh events on to the family repartition first (acknowledged with the
            # batch's other sends, before its state is written): the family stage need
            # not wait for this stage's store transaction. The API sends its own there
            # itself (``family_sent``); only forwarded records' events are relayed here.
            relay = [
                e for m in batched if not m.family_sent for e in m.events if wants_family_stage(e)
            ]
            if relay:
                batch.sends += await self._publish(self.kafka.family_topic, relay, family_key)
        now = self.clock()
        result = await _off_loop(size, self._detect, stage, batched, now, batch)
        t = stats.add(f"{stage.name}.detect", t)
        if stage is not self.entity:
            result.events = []  # token facts are recorded once, by the audit stage
        if result.events or result.detections or result.orders:
            await self._persist(stage.stages, result, now)
        t = stats.add(f"{stage.name}.persist", t)
        batch.sends += await self._outputs(result, stage)
        await self._finish_sends(batch)
        t = stats.add(f"{stage.name}.acks", t)
        await self._write_state(stage, batch)
        stats.add(f"{stage.name}.state", t)
        stats.batches += 1
        stats.messages += len(messages)
        stats.events += len(events_all)
        stats.detections += len(result.detections)
        stats.orders += len(result.orders)
        if result.orders:
            stamps = [m.timestamp for m in messages if m.timestamp]
            log.info(
                "orders decided",
                stage=stage.name,
                messages=len(messages),
                events=len(events_all),
                detections=len(result.detections),
                orders=[o.id for o in result.orders],
                # wall clock vs. the broker's timestamps: how long the oldest message of
                # the batch waited before its outputs were durable (diagnostics only)
                lag_ms=round((time.time() - min(stamps)) * 1000) if stamps else None,
                batch_ms=round((time.perf_counter() - started) * 1000, 1),
            )

    def _decode(self, messages: list[_Message]) -> list[tuple[Source, list[Bad]]]:
        """Each micro-batch into events — rebuilt when its MAC verifies, else validated;
        what does not validate, for the DLQ."""
        hasher = self.services.hasher
        dead: list[tuple[Source, list[Bad]]] = []
        for m in messages:
            m.trusted = codec.signed(m.headers, m.value, key=self.mac_key)
            try:
                parsed = codec.decode_events(m.value or b"", hasher=hasher, trusted=m.trusted)
            except ValueError as exc:
                dead.append((m.source, [(None, f"malformed micro-batch: {exc}", m.value)]))
                continue
            m.events = parsed.events
            if parsed.rejected:
                items = _items(m.value)
                dead.append(
                    (
                        m.source,
                        [
                            (r.index, r.reason, items[r.index] if r.index < len(items) else None)
                            for r in parsed.rejected
                        ],
                    )
                )
        return dead

    def _detect(
        self, stage: _Stage, messages: list[_Message], now: datetime, batch: _Batch
    ) -> BatchResult:
        """``Stages.detect`` per partition on its state; the partitions' results merged
        into one ``BatchResult`` for one ``persist``. A partition whose detection raises
        is retried event by event (``Stages.detect``, undone with the
        partition state's checkpoints); the events that fail are dead-lettered."""
        by_partition: dict[int, list[_Message]] = {}
        for m in messages:
            by_partition.setdefault(m.source.partition, []).append(m)
        merged = BatchResult(events=[e for m in messages for e in m.events])
        stages = stage.stages
        for partition, msgs in by_partition.items():
            state = stage.state(partition)
            stages.state = state
            if partition not in stage.upgraded and not upgrade_state(state):
                # state written before the per-entity records is moved with the batch's
                # changes; once nothing is left to move, the partition is not scanned again
                stage.upgraded.add(partition)
            self._maybe_sweep(stage, state, now)
            events = [e for m in msgs for e in m.events]
            # a detector that raises costs only the events it raised on: they go to the DLQ
            result = stages.detect(events, now=now)
            if result.failed:
                self._dead_letter_failed(msgs, result.failed, batch)
            merged.detections += result.detections
            merged.orders += result.orders
            batch.changes[partition] = (result.changed, result.deleted)
        # A take's orders are applied in one transaction, each locking its family's row;
        # the other stage's transaction (another worker's too) upserts the families of
        # its token facts in sorted order (``store.record_tokens``). Applying the orders in
        # that same order keeps the two from deadlocking (PostgreSQL detects a deadlock
        # only after ``deadlock_timeout``, 1 s: it stalled takes of several orders).
        merged.orders.sort(key=lambda o: (o.target.tenant, o.target.value))
        return merged

    @staticmethod
    def _dead_letter_failed(
        msgs: list[_Message], failed: list[tuple[int, str]], batch: _Batch
    ) -> None:
        """The events detection left out (``BatchResult.failed``: positions in the
        partition's events), to the DLQ under their messages' offsets."""
        where = [(m, index) for m in msgs for index in range(len(m.events))]
        bad: dict[int, list[Bad]] = {}
        for position, error in failed:
            m, index = where[position]
            event = m.events[index]
            bad.setdefault(id(m), []).append(
                (index, f"detection failed: {error}", event.model_dump())
            )
        for m in msgs:
            if id(m) in bad:
                batch.dead.append((m.source, bad[id(m)]))

    def _maybe_sweep(self, stage: _Stage, state: PartitionState, now: datetime) -> None:
        """Expire idle state of this partition, at most every ``sweep_interval_seconds``;
        the removals are taken with the batch's changes."""
        t = time.monotonic()
        last = stage.swept.setdefault(state.partition, t)
        if t - last >= self.settings.sweep_interval_seconds:
            stage.swept[state.partition] = t
            removed = stage.stages.engine.sweep(state, now)
            if removed:
                log.info("state swept", stage=stage.name, partition=state.partition, keys=removed)

    async def _persist(self, stages: Stages, result: BatchResult, now: datetime) -> None:
        """``Stages.persist`` with exponential backoff until it succeeds (fail closed: the
        partitions wait, nothing is acknowledged past the batch)."""
        delay = 0.05
        while True:
            try:
                await asyncio.to_thread(stages.persist, result, now=now)
                return
            except Exception:
                self.stats.store_retries += 1
                log.exception("store unavailable; retrying batch", retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _write_state(self, stage: _Stage, batch: _Batch) -> None:
        """Each partition's changes and watermark into the Table: its in-memory store, and
        its changelog partition (acknowledged before the messages count as processed)."""
        topic = stage.table.changelog_topic_name
        writes = []
        for partition, offset in batch.last.items():
            changed, deleted = batch.changes.get(partition, ({}, set()))
            records = stage.state(partition).apply(changed, deleted, offset=offset)
            writes.append(self._write_changelog(topic, partition, records))
            self.stats.state_records += len(records)
        await asyncio.gather(*writes)

    async def _write_changelog(
        self, topic: str, partition: int, records: list[tuple[str, bytes | None]]
    ) -> None:
        """The records until the broker takes them. They are already in the in-memory
        store and the watermark moved, so giving up would let a retry of the messages
        skip them and leave the changelog without their state: a broker fault is waited
        out (fail closed, like the store)."""
        delay = 0.05
        while True:
            try:
                writer = await self._changelog_writer(topic)
                await writer.write(topic, partition, records)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _transient(exc):
                    raise
                self.stats.retries += 1
                log.exception("changelog write failed; retrying", topic=topic, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _changelog_writer(self, topic: str) -> ChangelogWriter:
        async with self._writer_lock:
            writer = self._writers.get(topic)
            if writer is None:
                writer = ChangelogWriter(
                    self.kafka.bootstrap_servers(), client_id=f"{self.kafka.app_id}-state"
                )
                await writer.start()
                self._writers[topic] = writer
            return writer

    # -- forwarded records ----------------------------------------------------------------

    async def _ingesting(self, events: list[Any]) -> None:
        """A configured ingest topic: records normalized and re-keyed onto the audit topic
        (no state here, so no watermark: a replay re-publishes the same event ids)."""
        batch = _Batch()
        messages = [
            _Message(Source(e.message.topic, e.message.partition, e.message.offset), e.value, False)
            for e in events
        ]
        await self._forward(messages, batch)
        await self._finish_sends(batch)

    async def _forward(self, messages: list[_Message], batch: _Batch) -> None:
        """Records a forwarder wrote (JSON, NDJSON; any known format): normalized, the bad
        ones to the DLQ, the events re-keyed onto the audit topic as micro-batches."""
        events: list[AuditEvent] = []
        for m in messages:
            bad, found = await asyncio.to_thread(self._normalize, m)
            if bad:
                batch.dead.append((m.source, bad))
            events += found
        if events:
            batch.sends += await self._publish(self.kafka.audit_topic, events, principal_key)
            self.stats.forwarded += len(events)

    def _normalize(self, m: _Message) -> tuple[list[Bad], list[AuditEvent]]:
        if not m.value:
            return [(None, "empty message", m.value)], []
        try:
            items = decode(m.value, limits=self.limits)
        except IngestError as exc:
            return [(None, exc.description, m.value)], []
        svc = self.services
        try:
            parsed = normalize(
                items,
                formats=svc.formats,
                fmt=self.kafka.ingest_format,
                hasher=svc.hasher,
                tenant=self.settings.ingest.default_tenant,
            )
        except UnknownFormat as exc:
            return [(None, str(exc), m.value)], []
        bad: list[Bad] = [
            (r.index, r.reason, items[r.index] if 0 <= r.index < len(items) else None)
            for r in parsed.rejected
        ]
        return bad, parsed.events

    # -- producing ------------------------------------------------------------------------

    async def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        *,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any:
        return await self.app.producer.send(topic, key, value, partition, None, headers)

    async def _publish(
        self, topic: str, events: Sequence[AuditEvent], key: Callable[[AuditEvent], str]
    ) -> list[Any]:
        """``events`` as micro-batches, one or more messages per partition of their key."""
        sends = []
        for partition, (first_key, group) in self.partitioner.group(events, key).items():
            for value, _ in codec.chunks(
                group, max_events=self.kafka.batch_events, max_bytes=self.kafka.batch_bytes
            ):
                sends.append(
                    await self._send(
                        topic,
                        first_key.encode(),
                        value,
                        partition=partition,
                        headers=codec.batch_headers(value, key=self.mac_key),
                    )
                )
        return sends

    async def _outputs(self, result: BatchResult, stage: _Stage) -> list[Any]:
        key = stage.name.encode()
        sends = []
        if result.detections:
            value = codec.encode_detections(result.detections)
            sends.append(await self._send(self.kafka.detections_topic, key, value))
        if result.orders:
            value = codec.encode_orders(result.orders)
            sends.append(await self._send(self.kafka.orders_topic, key, value))
        return sends

    async def _finish_sends(self, batch: _Batch) -> None:
        """Send the dead letters (one message per bad record: error, source offset,
        redacted excerpt), then wait for every send of the batch to be acknowledged."""
        hasher = self.services.hasher
        for source, bad in batch.dead:
            for index, error, record in bad:
                value = codec.dead_letter(
                    error=error, source=source, index=index, record=record, hasher=hasher
                )
                batch.sends.append(await self._send(self.kafka.dlq_topic, source.key(), value))
            self.stats.dead_letters += len(bad)
            log.warning(
                "records sent to the DLQ",
                topic=source.topic,
                partition=source.partition,
                offset=source.offset,
                count=len(bad),
                first_error=bad[0][1][:200] if bad else None,
            )
        if batch.sends:
            await asyncio.gather(*batch.sends)

    # -- lifecycle ------------------------------------------------------------------------

    async def _on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Forget (in memory) the state of partitions that moved to another worker."""
        assigned: set[Any] = set(args[0]) if args else set(kwargs.get("assigned") or ())
        for stage in (self.entity, self.family):
            keep = {tp.partition for tp in assigned if tp.topic == stage.topic}
            log.info("partitions assigned", stage=stage.name, partitions=sorted(keep))
            for p in [p for p in stage.states if p not in keep]:
                del stage.states[p]
            if self.kafka.standby_replicas:
                continue  # the store also holds the standby copies of other partitions
            dropped = drop_partitions(stage.table.data, keep)
            if dropped:
                log.info("dropped state of moved partitions", stage=stage.name, keys=dropped)

    async def _refresh_policy(self) -> None:
        """Apply a policy stored with ``PUT /v1/policy`` since the last look to both
        stages, from their next take (the API that took the PUT runs no stage here). A
        store fault or a stored policy that no longer validates keeps the current one."""
        await follow_policy_off_loop(self.services, (self.entity.stages, self.family.stages))

    async def _save_fitted_tick(self) -> None:
        # (a faust timer passes the app to a function that takes any argument)
        await self._save_fitted(wait=0.0)

    async def _save_fitted(self, *, wait: float) -> None:
        """Save the models the fitting thread finished after the audit stage's last take
        (``learned_models.save_fitted``), between takes (the detector is not thread-safe).
        A store fault is logged: the next take or look saves them."""
        stage = self.entity
        try:
            await asyncio.wait_for(stage.lock.acquire(), timeout=30.0)
        except TimeoutError:
            return
        try:
            await asyncio.to_thread(
                save_fitted, stage.stages.engine, self.services.db, now=self.clock(), wait=wait
            )
        except Exception:
            log.exception("saving fitted models failed; the next take saves them")
        finally:
            stage.lock.release()

    async def _log_stats(self) -> None:
        log.info("worker stats", **self.stats.as_dict())

    async def _on_shutdown(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        log.info("worker stopping", **self.stats.as_dict())
        await self._save_fitted(wait=5.0)
        self._fits.shutdown(wait=False, cancel_futures=True)
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            await writer.stop()
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None

    async def _revocation_task(self) -> None:
        """The revocation executor (outbox dispatcher, pending-order retries), as the
        embedded service runs it; both stages wake it when they record orders."""
        from tokenwarden.revocation_runtime import start_revocation

        async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as http:
            runtime = start_revocation(
                settings=self.settings.revocation,
                db=self.services.db,
                http=http,
                stages=self.entity.stages,
            )
            self.family.stages.observer = self.entity.stages.observer
            self.family.stages.on_orders = self.entity.stages.on_orders
            try:
                await asyncio.Event().wait()
            finally:
                await runtime.stop()


async def _off_loop(size: int, fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` in a thread for a large take, on the event loop for a small one: the
    hop to the executor and back costs a few ms when other threads hold the GIL (faust's
    consumer thread, a store transaction) — more than decoding and detecting a few dozen
    events, and it sat on the path of every small take at moderate load."""
    if size <= INLINE_BYTES:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


def _transient(exc: BaseException) -> bool:
    """A broker or network fault worth waiting out (vs. a bug in what we process)."""
    from aiokafka.errors import KafkaError as AioKafkaError

    return isinstance(exc, ConnectionError | OSError | asyncio.TimeoutError | AioKafkaError)


def _items(value: bytes | None) -> list[Any]:
    """The JSON values of a micro-batch, for DLQ excerpts (best effort)."""
    try:
        items = orjson.loads(value or b"[]")
    except ValueError:
        return []
    return items if isinstance(items, list) else []
