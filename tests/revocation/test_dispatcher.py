"""The dispatcher: retries with backoff, per-adapter circuit breakers, delivery state per
order, and an audit row for every attempt — with the clock and randomness injected."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from revocation import Status, TargetKind, store
from revocation.breaker import BreakerState
from revocation.delivery import DeliveryError, PermanentDeliveryError
from revocation.tables import audit_log, families, outbox
from tests.revocation.fakes import Clock, ScriptedAdapter, StoreForTests, dispatcher, routing
from tests.revocation.helpers import chain, order, rows


def setup(engine: sa.Engine, clock: Clock, *names: str, n: int = 1) -> list[str]:
    with engine.begin() as conn:
        store.record_tokens(conn, events=chain("fam-0", 3), now=clock.now)
    os = [order(TargetKind.FAMILY, f"fam-{i}") for i in range(n)]
    store.execute_orders(engine, orders=os, now=clock.now, routing=routing(*names))
    return [o.id for o in os]


def entry(engine: sa.Engine, id_: str) -> sa.Row[tuple[object, ...]]:
    (row,) = rows(engine, sa.select(outbox).where(outbox.c.id == id_))
    return row


def status(engine: sa.Engine, order_id: str) -> Status:
    with engine.connect() as conn:
        view = store.get_order(conn, order_id=order_id)
    assert view is not None
    return view.status


def test_a_pass_delivers_due_entries_and_completes_the_order(engine: sa.Engine) -> None:
    clock = Clock()
    (oid,) = setup(engine, clock, "redis", "hook")
    redis, hook = ScriptedAdapter("redis"), ScriptedAdapter("hook")
    report = asyncio.run(dispatcher(engine, clock, redis, hook).run_once())
    assert sorted(report.delivered) == [f"{oid}/hook", f"{oid}/redis"]
    assert status(engine, oid) == Status.DONE
    (delivery,) = redis.calls
    assert (delivery.id, delivery.attempt, delivery.order.id) == (f"{oid}/redis", 1, oid)
    # the adapter got the family as the store has it now, its tokens newest first
    assert [f.family_id for f in delivery.scope.families] == ["fam-0"]
    assert [t.token_id for t in delivery.scope.tokens] == ["fam-0-t2", "fam-0-t1", "fam-0-t0"]
    assert entry(engine, f"{oid}/redis").result == {"ok": True, "attempt": 1}
    kinds = [
        (a.kind, a.actor)
        for a in rows(engine, sa.select(audit_log).where(audit_log.c.ref == oid))
        if a.kind.startswith("delivery")
    ]
    assert sorted(kinds) == [("delivery.succeeded", "hook"), ("delivery.succeeded", "redis")]
    # nothing left: the next pass claims nothing
    assert asyncio.run(dispatcher(engine, clock, redis, hook).run_once()).claimed == 0


def test_a_failed_delivery_is_retried_after_a_jittered_backoff(engine: sa.Engine) -> None:
    clock = Clock()
    (oid,) = setup(engine, clock, "hook")
    hook = ScriptedAdapter("hook", [DeliveryError("503 from broker"), DeliveryError("reset")])
    d = dispatcher(engine, clock, hook)
    report = asyncio.run(d.run_once())
    assert report.failed == {f"{oid}/hook": "503 from broker"}
    row = entry(engine, f"{oid}/hook")
    first_wait = (row.next_attempt_at - clock.now).total_seconds()
    assert (row.state, row.attempts, row.last_error) == ("failed", 1, "503 from broker")
    assert 0.5 <= first_wait <= 1.0  # base 1 s, equal jitter
    assert status(engine, oid) == Status.FAILED

    assert asyncio.run(d.run_once()).claimed == 0  # not due yet
    clock.advance(first_wait)
    asyncio.run(d.run_once())
    row = entry(engine, f"{oid}/hook")
    second_wait = (row.next_attempt_at - clock.now).total_seconds()
    assert (row.attempts, row.last_error) == (2, "reset")
    assert 1.0 <= second_wait <= 2.0  # doubled
    clock.advance(second_wait)
    assert asyncio.run(d.run_once()).delivered == [f"{oid}/hook"]
    assert status(engine, oid) == Status.DONE
    assert [c.attempt for c in hook.calls] == [1, 2, 3]
    failed = rows(engine, sa.select(audit_log).where(audit_log.c.kind == "delivery.failed"))
    assert [(a.data["attempt"], a.data["error"]) for a in failed] == [
        (1, "503 from broker"),
        (2, "reset"),
    ]


def test_retry_after_and_permanent_failures_stretch_the_wait(engine: sa.Engine) -> None:
    clock = Clock()
    a, b = setup(engine, clock, "idp", n=2)
    idp = ScriptedAdapter(
        "idp",
        [
            DeliveryError("503", retry_after=42),
            PermanentDeliveryError("401 invalid_client"),
        ],
    )
    asyncio.run(dispatcher(engine, clock, idp).run_once())
    waits = sorted(
        (entry(engine, f"{o}/idp").next_attempt_at - clock.now).total_seconds() for o in (a, b)
    )
    assert waits == [42.0, 60.0]  # Retry-After; the longest backoff for a permanent error
    failed = rows(engine, sa.select(audit_log).where(audit_log.c.kind == "delivery.failed"))
    assert sorted(x.data["permanent"] for x in failed) == [False, True]


def test_the_breaker_opens_holds_deliveries_back_and_closes_after_a_trial(
    engine: sa.Engine,
) -> None:
    clock = Clock()
    ids = setup(engine, clock, "idp", n=6)
    idp = ScriptedAdapter("idp", [DeliveryError("down")] * 3)
    d = dispatcher(engine, clock, idp, breaker_threshold=3, breaker_reset=30.0, concurrency=1)
    first = asyncio.run(d.run_once())
    # one at a time: three failures open the breaker; the other three are handed back
    # untried, without spending an attempt, due when the breaker half-opens
    assert (len(idp.calls), len(first.failed), len(first.postponed)) == (3, 3, 3)
    assert d.breakers["idp"].state(clock.mono) == BreakerState.OPEN
    for oid in first.postponed:
        row = entry(engine, oid)
        assert (row.state, row.attempts) == ("pending", 0)
        assert row.next_attempt_at == clock.now + timedelta(seconds=30)
    clock.advance(10)
    assert asyncio.run(d.run_once()).claimed == 0
    assert len(idp.calls) == 3  # nothing attempted while open

    clock.advance(21)  # 31 s after opening: half-open
    trial = asyncio.run(d.run_once())
    assert (trial.claimed, len(trial.delivered)) == (1, 1)  # exactly one trial delivery
    assert d.breakers["idp"].state(clock.mono) == BreakerState.CLOSED
    rest = asyncio.run(d.run_once())
    assert len(rest.delivered) == 5
    assert len(idp.calls) == 9
    assert all(status(engine, o) == Status.DONE for o in ids)


def test_an_open_breaker_on_one_adapter_does_not_hold_back_another(engine: sa.Engine) -> None:
    clock = Clock()
    (oid,) = setup(engine, clock, "idp", "redis")
    idp = ScriptedAdapter("idp", [DeliveryError("down")] * 10)
    redis = ScriptedAdapter("redis")
    d = dispatcher(engine, clock, idp, redis, breaker_threshold=1)
    asyncio.run(d.run_once())
    assert d.breakers["idp"].state(clock.mono) == BreakerState.OPEN
    assert entry(engine, f"{oid}/redis").state == "delivered"
    assert status(engine, oid) == Status.FAILED


def test_an_adapter_bug_is_a_failed_delivery_not_a_dead_dispatcher(engine: sa.Engine) -> None:
    clock = Clock()
    (oid,) = setup(engine, clock, "buggy", "redis")
    buggy = ScriptedAdapter("buggy", [KeyError("oops")])
    redis = ScriptedAdapter("redis")
    report = asyncio.run(dispatcher(engine, clock, buggy, redis).run_once())
    assert report.failed == {f"{oid}/buggy": "KeyError: 'oops'"}
    assert report.delivered == [f"{oid}/redis"]


def test_a_slow_adapter_times_out(engine: sa.Engine) -> None:
    clock = Clock()
    (oid,) = setup(engine, clock, "slow")

    class Slow(ScriptedAdapter):
        async def deliver(self, delivery, *, now):  # type: ignore[no-untyped-def]
            await asyncio.Event().wait()

    report = asyncio.run(dispatcher(engine, clock, Slow("slow"), delivery_timeout=0.05).run_once())
    assert report.failed == {f"{oid}/slow": "slow did not answer within 0.05s"}


def test_the_store_entry_a_crash_left_behind_is_delivered_by_the_dispatcher(
    engine: sa.Engine,
) -> None:
    clock = Clock()
    with engine.begin() as conn:
        store.record_tokens(conn, events=chain("fam-1", 2), now=clock.now)
    o = order(TargetKind.FAMILY, "fam-1")
    from revocation.txn import writing

    with writing(engine) as conn:  # recorded, then the process died before applying
        store.record_orders(conn, orders=[o], now=clock.now, routing=routing(grace=2))
    d = dispatcher(engine, clock, StoreForTests(engine))
    assert asyncio.run(d.run_once()).claimed == 0  # within the pipeline's grace
    clock.advance(2)
    assert asyncio.run(d.run_once()).delivered == [f"{o.id}/store"]
    (fam,) = rows(engine, sa.select(families))
    assert fam.revoked_by_order == o.id
    assert status(engine, o.id) == Status.DONE
    (row,) = rows(engine, sa.select(outbox))
    assert (row.state, row.attempts) == ("delivered", 1)
    executed = rows(engine, sa.select(audit_log).where(audit_log.c.kind == "order.executed"))
    assert len(executed) == 1


def test_run_stops_and_wakes(engine: sa.Engine) -> None:
    clock = Clock()
    (oid,) = setup(engine, clock, "redis")
    redis = ScriptedAdapter("redis")
    d = dispatcher(engine, clock, redis, poll_interval=30.0)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(d.run(stop))
        for _ in range(200):  # the first pass runs at once
            if redis.calls:
                break
            await asyncio.sleep(0.01)
        assert redis.calls
        # a new order and a wake-up: delivered without waiting for the 30 s poll
        more = order(TargetKind.FAMILY, "fam-9")
        await asyncio.to_thread(
            store.execute_orders, engine, orders=[more], now=clock.now, routing=routing("redis")
        )
        d.wake()
        for _ in range(200):
            if len(redis.calls) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(redis.calls) == 2
        stop.set()
        d.wake()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(main())
    assert status(engine, oid) == Status.DONE


def test_lease_expiry_redelivers_what_a_dead_dispatcher_held(engine: sa.Engine) -> None:
    clock = Clock()
    (oid,) = setup(engine, clock, "hook")
    hook = ScriptedAdapter("hook")
    d = dispatcher(engine, clock, hook, lease=timedelta(seconds=30))
    # a dispatcher claims and then dies before recording anything
    claimed = d._claim({"hook": 10}, clock.now)
    assert [c.id for c in claimed] == [f"{oid}/hook"]
    assert asyncio.run(d.run_once()).claimed == 0
    clock.advance(31)
    assert asyncio.run(d.run_once()).delivered == [f"{oid}/hook"]
    row = entry(engine, f"{oid}/hook")
    assert (row.state, row.attempts) == ("delivered", 2)


def _preclaimed(
    engine: sa.Engine, clock: Clock, owner: str, *, cause: str = "refresh_reuse"
) -> tuple[str, list[Any], store.OrderOutcome]:
    """An order on fam-1 recorded and applied by the pipeline's transaction, its redis
    entry claimed for ``owner``: (order id, the claimed entries, the store's outcome)."""
    from revocation.routing import Preclaim
    from revocation.txn import writing

    r = routing("redis")
    r = type(r)(
        routes=r.routes,
        store_grace=r.store_grace,
        backoff=r.backoff,
        preclaim=Preclaim(owner=owner, lease=timedelta(seconds=30)),
    )
    o = order(TargetKind.FAMILY, "fam-1", cause=cause)
    handoff: list[Any] = []
    with writing(engine) as conn:
        _, (outcome,) = store.record_and_apply(
            conn, orders=[o], now=clock.now, routing=r, handoff=handoff
        )
    return o.id, handoff, outcome


def _handed_over(
    engine: sa.Engine, clock: Clock, handoff: list[Any], **kwargs: Any
) -> ScriptedAdapter:
    """Run a dispatcher, hand it ``handoff`` (with ``kwargs``), return its redis adapter
    once that was called."""
    redis = ScriptedAdapter("redis")
    d = dispatcher(engine, clock, redis, poll_interval=30.0)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(d.run(stop))
        await asyncio.sleep(0)  # the loop is up
        # not claimable by a normal pass: the lease is ours
        assert (await d.run_once()).claimed == 0
        d.hand_off(handoff, **kwargs)
        for _ in range(500):
            if redis.calls:
                break
            await asyncio.sleep(0.01)
        stop.set()
        d.wake()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(main())
    return redis


def test_entries_the_pipeline_claimed_for_us_are_delivered_without_a_claim(
    engine: sa.Engine,
) -> None:
    clock = Clock()
    oid, handoff, _ = _preclaimed(engine, clock, owner="test")
    assert [(c.id, c.attempts) for c in handoff] == [(f"{oid}/redis", 1)]
    row = entry(engine, f"{oid}/redis")
    assert (row.state, row.claimed_by, row.attempts) == ("delivering", "test", 1)
    assert status(engine, oid) == Status.EXECUTING  # the store applied in the same commit
    redis = _handed_over(engine, clock, handoff)
    assert [c.attempt for c in redis.calls] == [1]
    assert entry(engine, f"{oid}/redis").state == "delivered"
    assert status(engine, oid) == Status.DONE


def test_the_hand_off_carries_what_the_commit_revoked_as_scope_of_reads_it(
    engine: sa.Engine,
) -> None:
    """The pipeline's transaction reads the family it revoked and its tokens back
    (RETURNING); handed over, that is the delivery's scope — the same as ``scope_of``
    would read after the commit, without the extra read."""
    from revocation.store.scope import scope_of

    clock = Clock()
    with engine.begin() as conn:
        store.record_tokens(conn, events=chain("fam-1", 3), now=clock.now)
    oid, handoff, outcome = _preclaimed(engine, clock, owner="test")
    assert outcome.scope is not None
    with engine.connect() as conn:
        view = store.get_order(conn, order_id=oid)
        assert view is not None
        assert outcome.scope == scope_of(conn, view)
    assert [t.token_id for t in outcome.scope.tokens] == ["fam-1-t2", "fam-1-t1", "fam-1-t0"]
    assert {t.revoked_at for t in outcome.scope.tokens} == {clock.now}
    assert outcome.scope.families[0].revoked_by_order == oid

    redis = _handed_over(engine, clock, handoff, scopes={oid: outcome.scope})
    (delivery,) = redis.calls
    assert delivery.scope is outcome.scope
    assert entry(engine, f"{oid}/redis").state == "delivered"

    # a family revoked already changes nothing: no scope to hand over, scope_of reads it
    _, handoff2, again = _preclaimed(engine, clock, owner="test", cause="manual")
    assert (again.families, again.tokens, again.scope) == (0, 0, None)
    redis = _handed_over(engine, clock, handoff2, scopes={})
    (delivery,) = redis.calls
    assert [t.token_id for t in delivery.scope.tokens] == ["fam-1-t2", "fam-1-t1", "fam-1-t0"]


def test_entries_claimed_for_a_dispatcher_that_died_are_delivered_after_the_lease(
    engine: sa.Engine,
) -> None:
    clock = Clock()
    oid, _, _ = _preclaimed(engine, clock, owner="dead-process")
    redis = ScriptedAdapter("redis")
    d = dispatcher(engine, clock, redis)
    assert asyncio.run(d.run_once()).claimed == 0
    clock.advance(31)
    assert asyncio.run(d.run_once()).delivered == [f"{oid}/redis"]
    assert entry(engine, f"{oid}/redis").attempts == 2


def test_outcomes_ride_on_the_pipelines_next_commit_or_are_written_after_a_delay(
    engine: sa.Engine,
) -> None:
    """Group commit: with ``record_delay`` the bookkeeping costs the pipeline no commit."""
    from revocation.store.audit import append_audit_many
    from revocation.txn import writing

    clock = Clock()
    first, second = setup(engine, clock, "redis", n=2)
    redis = ScriptedAdapter("redis")
    d = dispatcher(engine, clock, redis, record_delay=30.0, poll_interval=30.0)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(d.run(stop))
        for _ in range(500):
            if len(redis.calls) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(redis.calls) == 2
        # delivered, not yet written: the entries are still leased to us
        assert entry(engine, f"{first}/redis").state == "delivering"
        # the pipeline's next transaction writes them, with their audit rows
        audit: list[Any] = []

        def batch() -> None:
            with writing(engine) as conn:
                d.flush_into(conn, audit)
                append_audit_many(conn, rows=audit)

        await asyncio.to_thread(batch)
        assert [a["kind"] for a in audit] == ["delivery.succeeded"] * 2
        assert entry(engine, f"{first}/redis").state == "delivered"
        assert status(engine, second) == Status.DONE
        stop.set()
        d.wake()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(main())


def test_the_dispatcher_writes_only_outcomes_no_pipeline_batch_took_in_time(
    engine: sa.Engine,
) -> None:
    """Past ``record_delay`` the dispatcher writes an outcome itself — but only one that
    old: a fresh one waits for the pipeline's next batch, whose write lock it would
    otherwise take just as that batch begins."""
    clock = Clock()
    (first,) = setup(engine, clock, "redis")
    redis = ScriptedAdapter("redis")
    d = dispatcher(engine, clock, redis, record_delay=0.01, poll_interval=30.0)

    async def until(what: Any) -> None:
        for _ in range(500):
            if what():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("timed out")

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(d.run(stop))
        await until(lambda: len(redis.calls) == 1)  # queued at t
        clock.advance(0.006)
        second = order(TargetKind.FAMILY, "fam-9")
        store.execute_orders(engine, orders=[second], now=clock.now, routing=routing("redis"))
        d.wake()
        await until(lambda: len(redis.calls) == 2)  # queued at t + 0.006
        await asyncio.sleep(0.05)
        # neither waited record_delay by the monotonic clock: nothing written
        assert entry(engine, f"{first}/redis").state == "delivering"
        clock.advance(0.006)  # t + 0.012: the first is due, the second is not
        await until(lambda: entry(engine, f"{first}/redis").state == "delivered")
        await asyncio.sleep(0.05)
        assert entry(engine, f"{second.id}/redis").state == "delivering"
        clock.advance(0.01)
        await until(lambda: entry(engine, f"{second.id}/redis").state == "delivered")
        stop.set()
        d.wake()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(main())
    assert status(engine, first) == Status.DONE


def test_queued_outcomes_are_written_when_the_dispatcher_stops(engine: sa.Engine) -> None:
    clock = Clock()
    (oid,) = setup(engine, clock, "redis")
    redis = ScriptedAdapter("redis")
    d = dispatcher(engine, clock, redis, record_delay=30.0, poll_interval=30.0)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(d.run(stop))
        for _ in range(500):
            if redis.calls:
                break
            await asyncio.sleep(0.01)
        stop.set()
        d.wake()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(main())
    assert entry(engine, f"{oid}/redis").state == "delivered"
    assert status(engine, oid) == Status.DONE
