"""The embedded pipeline: ingest -> engine -> policy -> executor, in one process.

Batches stay batches through every stage (DESIGN.md, "Batches all the way"): one engine
pass; one store transaction that records the batch's token facts, detections, state
changes, the orders they call for with their outbox entries and alerts, the orders'
effect on our token store (the ``store`` adapter, applied in a SAVEPOINT per order), the
audit rows, and any extra writes of its submitters (the SSF receiver's jti records) — so
an order, its effect on the store and every delivery it still needs are durable together,
in one commit, before anything is acknowledged and before any adapter outside the
database is called. Those are the dispatcher's (``revocation.dispatcher``), woken through
``on_orders`` after the commit. The asyncio side is a bounded queue:
when it is full, ``submit`` says so and the API answers 429 with Retry-After — never a
silent drop. The worker cuts a batch from whatever is queued (up to ``max_batch_events``),
so many small submissions (one SET per push) share one transaction. Store work runs in a
worker thread so the event loop keeps answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
import structlog

from detectors import Detection, Engine
from ingest import AuditEvent
from revocation import OrderOutcome, Policy, RevocationOrder, Routing, retry_pending, store
from revocation.delivery import Scope
from revocation.store.audit import append_audit_many
from revocation.store.outbox import Claimed
from revocation.txn import writing
from tokenwarden.db import checkpoint_wal
from tokenwarden.learned_models import save_fitted, take_fitted
from tokenwarden.state import TrackedState

log = structlog.get_logger("tokenwarden.pipeline")

#: The usage detectors' baselines (volume, scope_drift and destination in one record per
#: entity, ``u/``; burst, ``bu/``): most of the state written per batch, and a restart that
#: loses their last seconds only makes them a little less sure. Everything else —
#: refresh-token families (``rr/``, ``rrt/``), the families' grants and networks
#: (``fam/``), risk from Shared Signals, the engine's per-entity risk and cool-down — is
#: saved with the batch that changed it, because forgetting it would let a replayed token
#: through.
USAGE_STATE_PREFIXES: tuple[str, ...] = ("u/", "bu/")

#: A write that must commit together with a batch (it gets the batch's connection).
Extra = Callable[[sa.Connection], object]

#: Told after each commit that recorded orders: the outbox entries claimed for the
#: in-process dispatcher, the orders, and what each changed in the store
#: (``Dispatcher.hand_off``).
OrdersHook = Callable[[Sequence[Claimed], Sequence[RevocationOrder], Mapping[str, Scope]], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


class PipelineObserver(Protocol):
    """Told how long orders took (``tokenwarden.metrics`` implements it)."""

    def orders_recorded(self, count: int, seconds_since_detection: float) -> None: ...

    def delivered(self, adapter: str, purpose: str, seconds_since_order: float) -> None: ...


@dataclass(slots=True)
class BatchResult:
    """What one batch produced, and how long each part took."""

    events: Sequence[AuditEvent]
    detections: list[Detection] = field(default_factory=list)
    orders: list[RevocationOrder] = field(default_factory=list)
    outcomes: list[OrderOutcome] = field(default_factory=list)
    changed: dict[str, Any] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    extras: list[Extra] = field(default_factory=list)
    recorded: list[RevocationOrder] | None = None
    seconds: float = 0.0
    #: ``time.perf_counter()`` when the detections were made and when the batch committed
    detected_at: float = 0.0
    committed_at: float = 0.0
    #: (position in ``events``, error) of the events the detectors raised on, left out
    #: of detection (``Stages.detect``)
    failed: list[tuple[int, str]] = field(default_factory=list)
    #: the ``model`` detector's models fitted since the last batch was persisted (by this
    #: batch's traffic, or the one detected while it waited), encoded, saved with the batch
    models: list[store.EncodedModel] | None = None


class Stages:
    """The synchronous stages, shared by the embedded runner and ``tokenwarden replay``."""

    def __init__(
        self,
        *,
        db: sa.Engine,
        engine: Engine,
        policy: Policy,
        state: TrackedState,
        routing: Routing | None = None,
        usage_state_flush_seconds: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.engine = engine
        self.policy = policy
        self.state = state
        #: usage baselines (``USAGE_STATE_PREFIXES``) are saved at most this often (seconds
        #: of ``monotonic``, the process's clock: it bounds what a crash loses, whatever the
        #: events' own times); the security-critical state with every batch
        self.usage_state_flush_seconds = usage_state_flush_seconds
        self.monotonic = monotonic
        self._usage_flushed_at: float | None = None
        self.routing = routing or Routing()
        #: set by the composition root: metrics, and the in-process dispatcher, which gets
        #: the entries pre-claimed for it (``routing.preclaim``) after each commit
        self.observer: PipelineObserver | None = None
        self.on_orders: OrdersHook | None = None
        #: the in-process dispatcher's queued bookkeeping, written in each batch's
        #: transaction (group commit: its outcomes cost no commit of their own)
        self.piggyback: Callable[[sa.Connection, list[dict[str, Any]]], None] | None = None

    def detect(self, events: Sequence[AuditEvent], *, now: datetime) -> BatchResult:
        """The pure part: engine and policy. Updates the in-memory state; a detector that
        raises costs only the events it raises on (``_isolating``)."""
        started = time.perf_counter()
        detections, failed = self._isolating(events, now)
        orders = self.policy.decide(detections, now=now)
        changed, deleted = self.state.take_changes(hold=self._held())
        return BatchResult(
            events=events,
            detections=detections,
            orders=orders,
            changed=changed,
            deleted=deleted,
            seconds=time.perf_counter() - started,
            detected_at=time.perf_counter(),
            failed=failed,
        )

    def _isolating(
        self, events: Sequence[AuditEvent], now: datetime
    ) -> tuple[list[Detection], list[tuple[int, str]]]:
        """The engine over the batch with the state's undo log on. If a detector raises,
        the state is put back as the batch found it and the events go through one at a
        time: an event the detectors raise on is left out of detection (its state changes
        undone, its position and the error returned, its id logged) — its token facts are
        still recorded, and the batch's other events are detected as usual."""
        state = self.state
        state.start_undo()
        try:
            try:
                return self.engine.process(events, state, now), []
            except Exception:
                log.exception("detection failed; retrying the batch event by event")
                state.undo()
            detections: list[Detection] = []
            failed: list[tuple[int, str]] = []
            for position, event in enumerate(events):
                state.start_undo()  # what the events before it changed stands
                try:
                    detections += self.engine.process([event], state, now)
                except Exception as exc:
                    state.undo()
                    error = f"{type(exc).__name__}: {exc}"[:500]
                    failed.append((position, error))
                    log.error("detection failed on an event", event_id=event.id, error=error)
            return detections, failed
        finally:
            state.stop_undo()

    def persist(self, result: BatchResult, *, now: datetime) -> BatchResult:
        """The I/O part: one transaction records everything the batch learned and decided
        — token facts, detections, state, the orders with their outbox entries and alerts,
        the orders' effect on our token store (``store.record_and_apply``: a SAVEPOINT per
        order), the audit rows — and commits once. Then the dispatcher is woken for the
        other adapters. Safe to retry: every write is an upsert or keyed by a
        deterministic id or idempotency key."""
        started = time.perf_counter()
        if result.models is None:
            fitted = take_fitted(self.engine)
            result.models = store.encode_models(fitted) if fitted is not None else []
        if result.recorded is None:
            handoff: list[Claimed] = []
            with writing(self.db) as conn:
                audit: list[dict[str, Any]] = []
                store.record_tokens(conn, events=result.events, now=now)
                if result.detections:
                    store.save_detections(conn, detections=result.detections, audit=audit, now=now)
                if result.changed or result.deleted:
                    store.save_state(conn, changed=result.changed, deleted=result.deleted, now=now)
                if result.models:
                    store.save_models(conn, models=result.models, now=now)
                recorded, outcomes = store.record_and_apply(
                    conn,
                    orders=result.orders,
                    now=now,
                    routing=self.routing,
                    audit=audit,
                    handoff=handoff,
                )
                for extra in result.extras:
                    extra(conn)
                if self.piggyback is not None:
                    self.piggyback(conn, audit)
                append_audit_many(conn, rows=audit)
            result.committed_at = time.perf_counter()
            result.recorded, result.outcomes = recorded, outcomes
            if recorded:
                if self.on_orders is not None:
                    scopes = {o.order_id: o.scope for o in outcomes if o.scope is not None}
                    self.on_orders(handoff, recorded, scopes)
                if self.observer is not None:
                    since = time.perf_counter() - result.detected_at if result.detected_at else 0.0
                    self.observer.orders_recorded(len(recorded), since)
                    for out in outcomes:
                        if out.error is None:
                            self.observer.delivered("store", "revoke", 0.0)
        result.seconds += time.perf_counter() - started
        return result

    def _held(self) -> tuple[str, ...]:
        """The state prefixes this batch leaves pending: the usage baselines, unless their
        interval has passed (then everything pending is saved with this batch)."""
        if self.usage_state_flush_seconds <= 0:
            return ()
        clock = self.monotonic()
        last = self._usage_flushed_at
        if last is None or clock - last >= self.usage_state_flush_seconds:
            self._usage_flushed_at = clock
            return ()
        return USAGE_STATE_PREFIXES

    def flush_state(self, *, now: datetime) -> int:
        """Save every pending state change now (at stop, and at the end of a replay)."""
        changed, deleted = self.state.take_changes()
        if changed or deleted:
            with self.db.begin() as conn:
                store.save_state(conn, changed=changed, deleted=deleted, now=now)
        self._usage_flushed_at = self.monotonic()
        return len(changed) + len(deleted)

    def process(self, events: Sequence[AuditEvent], *, now: datetime) -> BatchResult:
        return self.persist(self.detect(events, now=now), now=now)

    def retry_pending(self, *, now: datetime) -> list[OrderOutcome]:
        """Apply to the store the orders committed but not applied (crash, outage) — the
        dispatcher does this in the service; this is for runs without one."""
        return retry_pending(self.db, now=now, backoff=self.routing.backoff)

    def sweep(self, *, now: datetime) -> int:
        removed = self.engine.sweep(self.state, now)
        changed, deleted = self.state.take_changes()
        if changed or deleted:
            with self.db.begin() as conn:
                store.save_state(conn, changed=changed, deleted=deleted, now=now)
        return removed


def _consume_exception(future: asyncio.Future[BatchResult]) -> None:
    """Nobody may await a batch's future; its failure is already logged."""
    if not future.cancelled():
        future.exception()


class QueueFull(Exception):
    """The pipeline's queue is full: the caller should retry later (HTTP 429)."""


@dataclass(slots=True)
class _Item:
    events: list[AuditEvent]
    done: asyncio.Future[BatchResult]
    extras: list[Extra]


class EmbeddedPipeline:
    """A bounded asyncio queue of batches in front of ``Stages``, run by one worker task."""

    def __init__(
        self,
        stages: Stages,
        *,
        max_batches: int,
        max_batch_events: int = 10_000,
        sweep_interval: float = 3600.0,
        checkpoint_interval: float = 0.5,
        clock: Callable[[], datetime] = utcnow,
        follow_policy: Callable[[], Awaitable[object]] | None = None,
        policy_refresh_seconds: float = 5.0,
    ) -> None:
        self.stages = stages
        #: applies a policy another process stored (``services.follow_policy_off_loop``:
        #: a store fault keeps the running one); awaited
        #: before a batch when ``policy_refresh_seconds`` have passed since the last call:
        #: an idle pipeline costs nothing, and a batch after an idle spell runs the policy
        #: stored at that moment
        self.follow_policy = follow_policy
        self.policy_refresh_seconds = policy_refresh_seconds
        self.clock = clock
        self.max_batch_events = max_batch_events
        self.sweep_interval = sweep_interval
        #: SQLite: the WAL is checkpointed when the queue runs empty, at most this often
        #: (seconds), rather than by the commit that fills it (``tokenwarden.db``)
        self.checkpoint_interval = checkpoint_interval
        self._checkpoints = stages.db.dialect.name == "sqlite"
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue(maxsize=max_batches)
        self._task: asyncio.Task[None] | None = None
        self.processed_events = 0
        self.processed_batches = 0
        self.failed_batches = 0
        #: events the detectors raised on, left out of detection (``Stages.detect``)
        self.failed_events = 0
        self.store_retries = 0
        #: told of every processed batch on the event loop (the admin API's recent events)
        self.on_batch: Callable[[BatchResult], None] | None = None

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tokenwarden-pipeline")

    async def stop(self) -> None:
        """Finish every queued batch, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None
        try:
            await asyncio.to_thread(self.stages.flush_state, now=self.clock())
        except Exception:
            log.exception("saving the pending detector state at stop failed")
        try:  # models whose fit ended after the last batch (or ends within seconds)
            await asyncio.to_thread(
                save_fitted, self.stages.engine, self.stages.db, now=self.clock(), wait=5.0
            )
        except Exception:
            log.exception("saving the fitted models at stop failed")

    def submit(
        self, events: list[AuditEvent], *, extras: Sequence[Extra] = ()
    ) -> asyncio.Future[BatchResult]:
        """Queue a batch; the future resolves when it has been processed and committed
        (with ``extras`` in the same transaction)."""
        if self._task is None or self._task.done():
            raise RuntimeError("the pipeline is not running")
        done: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Item(events, done, list(extras)))
        except asyncio.QueueFull:
            raise QueueFull(f"pipeline queue is full ({self._queue.maxsize} batches)") from None
        done.add_done_callback(_consume_exception)
        return done

    def _take(self, first: _Item) -> tuple[list[_Item], bool]:
        """``first`` plus whatever else is queued, up to ``max_batch_events``; and whether
        the stop marker was met."""
        items = [first]
        size = len(first.events)
        stop = False
        while size < self.max_batch_events:
            try:
                nxt = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if nxt is None:
                stop = True
                break
            items.append(nxt)
            size += len(nxt.events)
        return items, stop

    async def _run(self) -> None:
        next_sweep = time.monotonic() + self.sweep_interval
        next_checkpoint = time.monotonic() + self.checkpoint_interval
        next_policy = time.monotonic() + self.policy_refresh_seconds
        while True:
            first = await self._queue.get()
            if first is None:
                return
            follow = self.follow_policy
            if follow is not None and time.monotonic() >= next_policy:
                next_policy = time.monotonic() + self.policy_refresh_seconds
                await follow()
            items, stop = self._take(first)
            events = [e for item in items for e in item.events]
            extras = [x for item in items for x in item.extras]
            try:
                now = self.clock()
                result, failed = await asyncio.to_thread(self._work, events, extras, now)
            except Exception as exc:  # a bug past the detectors (the policy) must not kill it
                self.failed_batches += 1
                log.exception("batch failed; skipped", events=len(events))
                for item in items:
                    if not item.done.done():
                        item.done.set_exception(exc)
                if stop:
                    return
                continue
            if failed is not None:
                self.store_retries += 1
                log.error("store unavailable; retrying batch", error=repr(failed))
                await self._persist(result, now)
            self.processed_events += len(events)
            self.processed_batches += 1
            self.failed_events += len(result.failed)
            if self.on_batch is not None:
                try:
                    self.on_batch(result)
                except Exception:
                    log.exception("batch observer failed")
            for item in items:
                if not item.done.done():
                    item.done.set_result(result)
            if result.detections or result.orders:
                log.info(
                    "batch processed",
                    events=len(events),
                    detections=len(result.detections),
                    orders=len(result.orders),
                    ms=round(result.seconds * 1000, 2),
                )
            if stop:
                return
            if self._checkpoints and self._queue.empty() and time.monotonic() >= next_checkpoint:
                await self._checkpoint()
                next_checkpoint = time.monotonic() + self.checkpoint_interval
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + self.sweep_interval
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.stages.sweep, now=self.clock())

    async def _checkpoint(self) -> None:
        """Checkpoint the WAL between batches (measured: run beside a commit, its fsync
        of the database file delays the commit's as much as running it in the commit)."""
        try:
            await asyncio.to_thread(checkpoint_wal, self.stages.db)
        except Exception:  # a busy or failing disk: the commits' backstop still runs
            log.warning("WAL checkpoint failed", exc_info=True)

    def _work(
        self, events: list[AuditEvent], extras: list[Extra], now: datetime
    ) -> tuple[BatchResult, Exception | None]:
        """Detect and make the first attempt to persist, in one worker-thread hop (the
        latency from detection to revoked is mostly hops and commits). Detection errors
        propagate; a persist error is returned for ``_persist`` to retry."""
        result = self.stages.detect(events, now=now)
        result.extras = extras
        try:
            self.stages.persist(result, now=now)
        except Exception as exc:
            return result, exc
        return result, None

    async def _persist(self, result: BatchResult, now: datetime) -> None:
        """Persist with exponential backoff until it succeeds: security signals fail closed.
        While this retries, the queue fills and the API answers 429 (backpressure)."""
        delay = 0.05
        while True:
            try:
                await asyncio.to_thread(self.stages.persist, result, now=now)
                return
            except Exception:
                self.store_retries += 1
                log.exception("store unavailable; retrying batch", retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
