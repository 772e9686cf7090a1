"""Crash safety with real processes: SIGKILL after the order's commit and before any
delivery, or in the middle of a delivery; on restart every adapter gets the order once in
effect — the real Redis, and a real webhook receiver that applies each idempotency key
once and counts the raw requests. Our own store applies in the recording commit: exactly
once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import sqlalchemy as sa

from revocation import store
from revocation.adapters.redis_denylist import DenylistKeys
from revocation.tables import families, orders, outbox, tokens
from tests.revocation.conftest import REDIS_URL
from tests.revocation.receiver import Receiver, receiving
from tokenwarden.db import make_engine

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = "crash-test-secret-0123456789"


def runner(mode: str, db_url: str, rx: Receiver, prefix: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.revocation.outbox_runner",
        mode,
        db_url,
        "--webhook",
        rx.url,
        "--secret",
        SECRET,
        "--redis-prefix",
        prefix,
        "--lease",
        "3",
        *extra,
    ]


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def state(db_url: str) -> dict[str, Any]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            (order,) = conn.execute(sa.select(orders)).all()
            entries = {
                r.adapter: (r.state, r.attempts)
                for r in conn.execute(sa.select(outbox).where(outbox.c.order_id == order.id))
            }
            fam = conn.execute(sa.select(families).where(families.c.family_id == "fam-crash")).one()
            revoked_tokens = conn.execute(
                sa.select(sa.func.count()).where(tokens.c.revoked_at.is_not(None))
            ).scalar_one()
            chain_ok = store.verify_chain(conn).ok
        return {
            "order": order,
            "entries": entries,
            "family_revoked_by": fam.revoked_by_order,
            "revoked_tokens": revoked_tokens,
            "chain_ok": chain_ok,
        }
    finally:
        engine.dispose()


def test_sigkill_after_commit_before_delivery_then_restart_delivers_once(
    db_url: str, redis_prefix: str
) -> None:
    keys = DenylistKeys(redis_prefix)
    client = redis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    pubsub.subscribe(keys.channel)
    assert pubsub.get_message(timeout=5) is not None  # the subscribe confirmation
    try:
        with receiving(SECRET.encode()) as rx:
            crashed = run(runner("record", db_url, rx, redis_prefix, "--crash-after-commit"))
            assert crashed.returncode == -signal.SIGKILL, crashed.stderr

            # durable: the order, its entries, and — in the same commit — its effect on our
            # own store; no adapter outside the database was called
            before = state(db_url)
            order_id = before["order"].id
            assert before["order"].status == "executing"
            assert before["entries"] == {
                "store": ("delivered", 1),
                "webhook": ("pending", 0),
                "redis": ("pending", 0),
            }
            assert before["family_revoked_by"] == order_id
            assert before["revoked_tokens"] == 4  # rt-0, rt-1, rt-2, rt-x
            assert rx.requests == []
            assert client.exists(keys.family("acme", "fam-crash")) == 0

            restarted = run(runner("deliver", db_url, rx, redis_prefix))
            assert restarted.returncode == 0, restarted.stderr
            summary = orjson.loads(restarted.stdout.splitlines()[-1])
            assert summary["left"] == 0

            after = state(db_url)
            assert after["order"].status == "done"
            assert after["entries"] == {
                "store": ("delivered", 1),
                "webhook": ("delivered", 1),
                "redis": ("delivered", 1),
            }
            assert after["family_revoked_by"] == order_id
            assert after["revoked_tokens"] == 4
            assert [r["key"] for r in rx.requests] == [f"{order_id}/webhook"]
            assert client.exists(keys.family("acme", "fam-crash")) == 1
            msg = pubsub.get_message(timeout=5)
            assert msg is not None
            assert orjson.loads(msg["data"])["order_id"] == order_id
            assert after["chain_ok"]

            # another restart finds nothing to do: still once
            again = run(runner("deliver", db_url, rx, redis_prefix))
            assert again.returncode == 0, again.stderr
            assert len(rx.requests) == 1
            assert pubsub.get_message(timeout=0.2) is None
    finally:
        pubsub.close()
        client.close()


def test_sigkill_mid_delivery_then_restart_redelivers_once_in_effect(
    db_url: str, redis_prefix: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with receiving(SECRET.encode(), hold_first=True) as rx:
        recorded = run(runner("record", db_url, rx, redis_prefix))
        assert recorded.returncode == 0, recorded.stderr
        assert state(db_url)["entries"]["store"] == ("delivered", 1)  # the synchronous path

        proc = subprocess.Popen(
            runner("deliver", db_url, rx, redis_prefix),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # the receiver has the request (and applied it) but has not answered yet
            assert rx.holding.wait(30), "the webhook delivery never arrived"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        during = state(db_url)
        assert during["entries"]["webhook"] == ("delivering", 1)  # leased by a dead process
        assert during["order"].status == "executing"
        rx.release.set()

        started = time.monotonic()
        restarted = run(runner("deliver", db_url, rx, redis_prefix))
        assert restarted.returncode == 0, restarted.stderr
        assert time.monotonic() - started < 30

    after = state(db_url)
    order_id = after["order"].id
    assert after["entries"]["webhook"] == ("delivered", 2)
    assert after["order"].status == "done"
    # two requests reached the receiver, with the same key: applied once
    assert [r["key"] for r in rx.requests] == [f"{order_id}/webhook"] * 2
    assert list(rx.effects) == [f"{order_id}/webhook"]
    assert rx.refused == []
    assert after["chain_ok"]
