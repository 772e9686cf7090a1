"""The dispatcher: carries outbox entries to their adapters and alert sinks.

One pass (``run_once``):

1. for each adapter whose circuit breaker lets deliveries through, claim its due entries
   (``revocation.store.outbox.claim``: leased, ``attempts`` + 1) — a half-open breaker gets
   one trial entry, an open one none;
2. resolve each against the store (the order and ``scope_of`` it; an alert's context) —
   entries handed over by the pipeline (``hand_off``) come with their order and scope;
3. deliver them concurrently (at most ``concurrency`` per adapter), each within
   ``delivery_timeout``;
4. record the outcomes in one transaction: ``delivered`` with the adapter's result, or
   ``failed`` with the error and the next attempt at ``now + backoff`` (exponential, with
   jitter; at least the target's ``Retry-After``; the longest backoff for a permanent
   failure) — audited, the orders' statuses recomputed.

``run`` repeats passes: at once while there is work, else when woken (the pipeline commits
new orders) or when the next entry falls due, at least every ``poll_interval``.

Killed between 3 and 4, a delivery is not recorded: the entry stays ``delivering`` until its
lease runs out and is then delivered again — at least once, and idempotent in effect
because every adapter is (DESIGN.md, non-negotiables). Time comes from the injected
``clock`` (wall, for the store) and ``monotonic`` (for breakers and waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import Connection

from revocation.alerts import AlertContext, AlertSink
from revocation.backoff import Backoff
from revocation.breaker import BreakerState, CircuitBreaker
from revocation.delivery import (
    Adapter,
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    Scope,
)
from revocation.order import RevocationOrder
from revocation.routing import ALERT
from revocation.store import outbox
from revocation.store.alerts import alert_context
from revocation.store.audit import append_audit_many, audit_row
from revocation.store.orders import get_orders
from revocation.store.scope import scope_of
from revocation.txn import writing

log = logging.getLogger(__name__)


class DeliveryObserver(Protocol):
    """Told about deliveries (``tokenwarden.metrics`` implements it with Prometheus)."""

    def delivered(self, adapter: str, purpose: str, seconds_since_order: float) -> None: ...

    def failed(self, adapter: str, purpose: str) -> None: ...

    def breaker(self, adapter: str, state: BreakerState) -> None: ...


class NullObserver:
    def delivered(self, adapter: str, purpose: str, seconds_since_order: float) -> None:
        return None

    def failed(self, adapter: str, purpose: str) -> None:
        return None

    def breaker(self, adapter: str, state: BreakerState) -> None:
        return None


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    """``lease``: how long a claimed entry is ours before another dispatcher may take it
    (longer than any delivery can take). ``batch``: entries claimed per adapter per pass."""

    lease: timedelta = timedelta(seconds=30)
    batch: int = 100
    concurrency: int = 8
    delivery_timeout: float = 20.0
    poll_interval: float = 1.0
    breaker_threshold: int = 5
    breaker_reset: float = 30.0
    max_families: int = 1000
    max_tokens: int = 10_000
    #: > 0: outcomes are recorded by the pipeline's next transaction (``flush_into``) or
    #: after this many seconds by the dispatcher — fewer commits competing with the
    #: pipeline's; 0: each pass records its outcomes itself before it returns
    record_delay: float = 0.0


@dataclass(slots=True)
class PassReport:
    """What one pass did."""

    claimed: int = 0
    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    postponed: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Attempt:
    entry: outbox.Claimed
    payload: Delivery | AlertContext | None
    error: str | None = None
    result: Mapping[str, Any] | None = None
    retry_after: float | None = None
    permanent: bool = False
    postponed: bool = False
    done_at: datetime | None = None
    retry_at: datetime | None = None


def utcnow() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    """Delivers outbox entries; see the module docstring."""

    def __init__(
        self,
        *,
        db: sa.Engine,
        adapters: Mapping[str, Adapter],
        sinks: Mapping[str, AlertSink] | None = None,
        settings: DispatchSettings | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        observer: DeliveryObserver | None = None,
        owner: str = "dispatcher",
    ) -> None:
        self.db = db
        self.adapters = dict(adapters)
        self.sinks = dict(sinks or {})
        clash = set(self.adapters) & set(self.sinks)
        if clash:
            raise ValueError(f"adapters and alert sinks share names: {sorted(clash)}")
        self.settings = settings or DispatchSettings()
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.monotonic = monotonic
        self.observer: DeliveryObserver = observer or NullObserver()
        self.owner = owner
        self.breakers = {
            name: CircuitBreaker(
                threshold=self.settings.breaker_threshold, reset_after=self.settings.breaker_reset
            )
            for name in (*self.adapters, *self.sinks)
        }
        self._states = {name: BreakerState.CLOSED for name in self.breakers}
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: set[asyncio.Task[PassReport]] = set()
        self._lock = threading.Lock()
        #: settled outcomes not written yet, with when (``monotonic``) they were queued
        self._unrecorded: list[tuple[float, _Attempt]] = []
        self._flusher: asyncio.Task[None] | None = None
        for name in self.breakers:
            self.observer.breaker(name, BreakerState.CLOSED)

    # -- one pass ---------------------------------------------------------------------

    def _limits(self, mono: float) -> dict[str, int]:
        limits: dict[str, int] = {}
        for name, breaker in self.breakers.items():
            self._note_breaker(name, breaker.state(mono))
            allowed = breaker.allowance(mono)
            limits[name] = self.settings.batch if allowed is None else allowed
        return limits

    def _note_breaker(self, name: str, state: BreakerState) -> None:
        if self._states[name] != state:
            log.warning("circuit breaker of %s is now %s", name, state.value)
            self._states[name] = state
            self.observer.breaker(name, state)

    def _claim(self, limits: Mapping[str, int], now: datetime) -> list[outbox.Claimed]:
        with writing(self.db) as conn:
            return outbox.claim(
                conn, limits=limits, now=now, lease=self.settings.lease, owner=self.owner
            )

    def _resolve(
        self,
        claimed: Sequence[outbox.Claimed],
        known: Sequence[RevocationOrder] = (),
        known_scopes: Mapping[str, Scope] | None = None,
    ) -> list[_Attempt]:
        """Each entry with its order and ``scope_of`` it (or its alert's context) — read
        from the store, except what the caller already has (``hand_off``)."""
        orders: dict[str, RevocationOrder] = {o.id: o for o in known}
        scopes: dict[str, Scope] = {
            order_id: scope
            for order_id, scope in (known_scopes or {}).items()
            if len(scope.tokens) <= self.settings.max_tokens
            and len(scope.families) <= self.settings.max_families
        }
        if all(
            c.order_id in orders and c.order_id in scopes and c.purpose != ALERT for c in claimed
        ):
            return [self._attempt_for(c, orders[c.order_id], scopes[c.order_id]) for c in claimed]
        attempts: list[_Attempt] = []
        with self.db.connect() as conn:
            missing = [c.order_id for c in claimed if c.order_id not in orders]
            orders.update((o.id, o) for o in get_orders(conn, order_ids=missing))
            for entry in claimed:
                order = orders.get(entry.order_id)
                if order is None:
                    attempts.append(
                        _Attempt(entry, None, error=f"order {entry.order_id} not found")
                    )
                    continue
                if entry.purpose == ALERT:
                    ctx = alert_context(conn, alert_id=entry.alert_id or "")
                    if ctx is None:
                        attempts.append(
                            _Attempt(entry, None, error=f"alert {entry.alert_id} not found")
                        )
                    else:
                        attempts.append(_Attempt(entry, ctx))
                    continue
                if order.id not in scopes:
                    scopes[order.id] = scope_of(
                        conn,
                        order,
                        max_families=self.settings.max_families,
                        max_tokens=self.settings.max_tokens,
                    )
                attempts.append(self._attempt_for(entry, order, scopes[order.id]))
        return attempts

    @staticmethod
    def _attempt_for(entry: outbox.Claimed, order: RevocationOrder, scope: Scope) -> _Attempt:
        delivery = Delivery(
            id=entry.id, adapter=entry.adapter, attempt=entry.attempts, order=order, scope=scope
        )
        return _Attempt(entry, delivery)

    async def _attempt(self, attempt: _Attempt, gate: asyncio.Semaphore) -> _Attempt:
        if attempt.payload is None:
            return attempt
        name = attempt.entry.adapter
        async with gate:
            breaker = self.breakers[name]
            if breaker.allowance(self.monotonic()) == 0:
                # the breaker opened while this entry waited its turn: hand it back
                attempt.postponed = True
                return attempt
            breaker.started(self.monotonic())
            try:
                if isinstance(attempt.payload, AlertContext):
                    call = self.sinks[name].send(
                        attempt.payload, delivery_id=attempt.entry.id, now=self.clock()
                    )
                else:
                    call = self.adapters[name].deliver(attempt.payload, now=self.clock())
                async with asyncio.timeout(self.settings.delivery_timeout):  # no task of its own
                    attempt.result = dict(await call)
            except PermanentDeliveryError as exc:
                attempt.error, attempt.permanent = str(exc), True
                attempt.retry_after = exc.retry_after
            except DeliveryError as exc:
                attempt.error, attempt.retry_after = str(exc), exc.retry_after
            except TimeoutError:
                attempt.error = f"{name} did not answer within {self.settings.delivery_timeout}s"
            except Exception as exc:  # an adapter bug must not stop the others
                log.exception("adapter %s raised while delivering %s", name, attempt.entry.id)
                attempt.error = f"{type(exc).__name__}: {exc}"
        mono = self.monotonic()
        if attempt.error is None:
            self.breakers[name].succeeded(mono)
        else:
            self.breakers[name].failed(mono)
        self._note_breaker(name, self.breakers[name].state(mono))
        return attempt

    def _retry_at(self, attempt: _Attempt, now: datetime, *, held: bool = False) -> datetime:
        if held:
            delay = 0.0
        elif attempt.permanent:
            delay = self.backoff.cap
        else:
            delay = self.backoff.delay(attempt.entry.attempts)
        if attempt.retry_after is not None:
            delay = max(delay, attempt.retry_after)
        delay = max(delay, self.breakers[attempt.entry.adapter].reopens_in(self.monotonic()))
        return now + timedelta(seconds=delay)

    def _settle(self, attempts: Sequence[_Attempt], now: datetime) -> None:
        """Fix each finished attempt's outcome time and, for a failure or a postponement,
        when it is due again (the breaker's state is that of now)."""
        for a in attempts:
            a.done_at = now
            if a.postponed:
                a.retry_at = self._retry_at(a, now, held=True)
            elif a.error is not None:
                a.retry_at = self._retry_at(a, now)

    def record_into(self, conn: Connection, attempts: Sequence[_Attempt]) -> list[dict[str, Any]]:
        """Write settled outcomes in the caller's transaction: entry states, the orders'
        statuses; return their audit rows (for the caller to append)."""
        rows: list[dict[str, Any]] = []
        touched: set[str] = set()
        for a in attempts:
            assert a.done_at is not None
            id_, now = a.entry.id, a.done_at
            if a.postponed:
                assert a.retry_at is not None
                outbox.postpone(conn, ids=[id_], until=a.retry_at)
                continue
            alert = a.entry.purpose == ALERT
            ref = a.entry.alert_id if alert else a.entry.order_id
            base = {"delivery": id_, "adapter": a.entry.adapter, "attempt": a.entry.attempts}
            if a.error is None:
                result = dict(a.result or {})
                if not outbox.mark_delivered(conn, results={id_: result}, now=now):
                    continue  # delivered already (a racing redelivery)
                kind = "alert.sent" if alert else "delivery.succeeded"
                data: dict[str, Any] = {**base, "result": result}
            else:
                assert a.retry_at is not None
                failure = {id_: (a.error, a.retry_at)}
                if not outbox.mark_failed(conn, failures=failure, now=now):
                    continue
                kind = "alert.failed" if alert else "delivery.failed"
                data = {
                    **base,
                    "error": a.error[:1000],
                    "permanent": a.permanent,
                    "retry_at": a.retry_at.isoformat(),
                }
            touched.add(a.entry.order_id)
            rows.append(audit_row(at=now, actor=a.entry.adapter, kind=kind, ref=ref, data=data))
        if touched:
            latest = max(a.done_at for a in attempts if a.done_at is not None)
            outbox.refresh_status(conn, order_ids=touched, now=latest)
        return rows

    def _record(self, attempts: Sequence[_Attempt]) -> None:
        with writing(self.db) as conn:
            append_audit_many(conn, rows=self.record_into(conn, attempts))

    # -- group-committing the bookkeeping ---------------------------------------------

    def _defer(self, attempts: Sequence[_Attempt]) -> None:
        """Queue settled outcomes for ``flush_into`` (the pipeline's next transaction) or,
        if none comes within ``record_delay``, this dispatcher's own transaction."""
        queued = self.monotonic()
        with self._lock:
            self._unrecorded.extend((queued, a) for a in attempts)
            start = self._flusher is None
        if start and self._loop is not None:
            self._flusher = self._loop.create_task(self._flush_later(), name="tw-record")

    async def _flush_later(self) -> None:
        """Write the outcomes no pipeline transaction took within ``record_delay`` of being
        queued — only those: a fresher one waits for the pipeline's next batch (writing it
        here would hold the database's write lock just when that batch begins)."""
        delay = self.settings.record_delay
        try:
            while True:
                with self._lock:
                    if not self._unrecorded:
                        break
                    due = self._unrecorded[0][0] + delay - self.monotonic()
                if due > 0:
                    await asyncio.sleep(due)
                else:
                    await asyncio.to_thread(self.flush, self.monotonic() - delay)
        except asyncio.CancelledError:
            self._flusher = None
            raise
        except Exception:
            log.exception("recording deliveries failed; their leases will run out")
        self._flusher = None

    def _take(self, queued_by: float | None = None) -> list[_Attempt]:
        """The queued outcomes (those queued by ``queued_by`` only, when given)."""
        with self._lock:
            cut = len(self._unrecorded)
            if queued_by is not None:
                cut = next((i for i, (q, _) in enumerate(self._unrecorded) if q > queued_by), cut)
            taken, self._unrecorded = self._unrecorded[:cut], self._unrecorded[cut:]
        return [a for _, a in taken]

    def flush_into(self, conn: Connection, audit: list[dict[str, Any]]) -> None:
        """Record the queued outcomes in the caller's transaction (the pipeline's, so the
        bookkeeping costs no commit of its own), their audit rows appended to ``audit``.
        If that transaction rolls back the outcomes are lost — the entries stay leased,
        and are delivered again once the lease runs out: at least once, still."""
        taken = self._take()
        if taken:
            audit.extend(self.record_into(conn, taken))

    def flush(self, queued_by: float | None = None) -> None:
        """Record the queued outcomes (those queued by ``queued_by``, a ``monotonic``
        time, when given) in a transaction of our own."""
        taken = self._take(queued_by)
        if taken:
            self._record(taken)

    async def run_once(self) -> PassReport:
        """One pass: claim due entries, resolve, deliver, record; see the module
        docstring."""
        limits = self._limits(self.monotonic())
        claimed = await asyncio.to_thread(self._claim, limits, self.clock())
        attempts = await asyncio.to_thread(self._resolve, claimed) if claimed else []
        return await self._deliver(attempts)

    async def _deliver(self, attempts: Sequence[_Attempt]) -> PassReport:
        """Deliver resolved entries concurrently (``concurrency`` per adapter) and record
        the outcomes in one transaction."""
        report = PassReport(claimed=len(attempts))
        if not attempts:
            return report
        gates = {name: asyncio.Semaphore(self.settings.concurrency) for name in self.breakers}
        if len(attempts) == 1:  # the hand-off's usual case: no task to schedule first
            done = [await self._attempt(attempts[0], gates[attempts[0].entry.adapter])]
        else:
            done = await asyncio.gather(
                *(self._attempt(a, gates[a.entry.adapter]) for a in attempts)
            )
        now = self.clock()
        self._settle(done, now)
        if self.settings.record_delay > 0 and self._loop is not None:
            self._defer(done)
        else:
            await asyncio.to_thread(self._record, done)
        for a in done:
            if a.postponed:
                report.postponed.append(a.entry.id)
            elif a.error is None:
                report.delivered.append(a.entry.id)
                seconds = max(0.0, (now - a.entry.created_at).total_seconds())
                self.observer.delivered(a.entry.adapter, a.entry.purpose, seconds)
            else:
                report.failed[a.entry.id] = a.error
                self.observer.failed(a.entry.adapter, a.entry.purpose)
                log.warning(
                    "delivery %s to %s failed (attempt %d): %s",
                    a.entry.id,
                    a.entry.adapter,
                    a.entry.attempts,
                    a.error,
                )
        return report

    # -- the loop -----------------------------------------------------------------------

    def wake(self) -> None:
        """Start the next pass now (new orders were committed). Callable from any thread."""
        if self._wake is None or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nothing to wake
            self._loop.call_soon_threadsafe(self._wake.set)

    def hand_off(
        self,
        claimed: Sequence[outbox.Claimed],
        orders: Sequence[RevocationOrder] = (),
        scopes: Mapping[str, Scope] | None = None,
    ) -> None:
        """Entries claimed for this dispatcher in a committed transaction
        (``revocation.routing.Preclaim``): resolved here, in the caller's thread (the
        pipeline's worker, right after its commit), and delivered at once by a task of
        their own — no claim, no waiting for a pass. If this dispatcher is not running, or
        resolving fails, they are not lost: their lease runs out and any dispatcher
        delivers them. ``orders``: the orders the entries are for, and ``scopes``: what they
        changed in the store (``OrderOutcome.scope``), when the caller has them — saves
        reading them back (a redelivery reads ``scope_of`` as usual)."""
        loop = self._loop
        if loop is None or not claimed:
            return
        try:
            resolved = self._resolve(list(claimed), orders, scopes)
            attempts = [a for a in resolved if a.entry.adapter in self.breakers]
        except Exception:
            log.exception("resolving handed-over entries failed; their lease will run out")
            return

        def start() -> None:
            task = loop.create_task(self._deliver(attempts), name="tw-handed-delivery")
            self._inflight.add(task)
            task.add_done_callback(self._finished)

        with contextlib.suppress(RuntimeError):  # a closed loop: the leases run out
            loop.call_soon_threadsafe(start)

    def _finished(self, task: asyncio.Task[PassReport]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivering handed-over entries failed", exc_info=task.exception())

    def _next_wait(self) -> float:
        """Seconds until there may be work: the next entry due of an adapter whose breaker
        lets deliveries through, or an open breaker turning half-open."""
        mono = self.monotonic()
        open_now = {n for n, b in self.breakers.items() if b.allowance(mono) == 0}
        wait = self.settings.poll_interval
        for name in open_now:
            wait = min(wait, max(self.breakers[name].reopens_in(mono), 0.01))
        with self.db.connect() as conn:
            due = outbox.next_due(conn, adapters=set(self.breakers) - open_now)
        if due is not None:
            wait = min(wait, max(0.0, (due - self.clock()).total_seconds()))
        return wait

    async def run(self, stop: asyncio.Event) -> None:
        """Passes until ``stop`` is set (then the deliveries in flight are finished); a
        failing pass (database down) is logged and retried after ``poll_interval``."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    report = await self.run_once()
                    wait = 0.0 if report.claimed else await asyncio.to_thread(self._next_wait)
                except Exception:
                    log.exception("dispatcher pass failed; retrying")
                    wait = self.settings.poll_interval
                if wait > 0 and not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._wake.wait()
        finally:
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            if self._flusher is not None:
                self._flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._flusher
            self._loop = None
            await asyncio.to_thread(self.flush)

    async def aclose(self) -> None:
        for adapter in self.adapters.values():
            try:
                await adapter.aclose()
            except Exception:
                log.exception("closing adapter %s failed", adapter.name)
