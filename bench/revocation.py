"""The revocation executor's throughput and latency, one JSON line of figures.

In one run, on one machine:

* **orders/s executed** against SQLite (and PostgreSQL with ``--postgres URL``): families
  of ``--tokens`` tokens each revoked by orders recorded with their outbox (store and
  Redis entries, an alert each) and applied to the store in the same transaction,
  ``--order-batch`` orders per commit — the pipeline's path. Also the latency of one
  order alone (one commit).
* **detection → revoked** on the embedded runner (``EmbeddedPipeline`` + dispatcher +
  the Redis adapter, SQLite): a stolen refresh token is replayed; from the moment its
  detection is made to the family being revoked in the store (the commit of the batch's
  transaction, which applies the order to the store) and in Redis (the pub/sub
  announcement arriving at a subscriber — the keys are set in the same MULTI). One
  family at a time, sequentially.
* **/v1/check**: the lookup alone (``DenylistReader.check`` against Redis, ``store.check``
  against SQLite) and over HTTP against ``tokenwarden serve`` in its own process —
  sequential requests for latency, ``--concurrency`` in flight for requests/s — with the
  Redis denylist configured (a denied family answers from Redis) and without (the store).

    python bench/revocation.py [--postgres URL] [--families 2000] [--samples 500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
import redis.asyncio as aioredis
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest import AuditEvent
from revocation import Action, RevocationOrder, Target, TargetKind, store
from revocation.adapters.redis_denylist import DenylistKeys, RedisConfig, build_reader
from revocation.routing import AlertPolicy, Route, Routing
from revocation.txn import writing
from tokenwarden.db import make_engine, upgrade
from tokenwarden.logs import configure_logging
from tokenwarden.pipeline import EmbeddedPipeline
from tokenwarden.revocation_runtime import start_revocation
from tokenwarden.runtime import tune_gc
from tokenwarden.services import build_services
from tokenwarden.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/0"


def _pct(samples: list[float], q: float, scale: float = 1000.0) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))] * scale, 3)


# -- orders/s ---------------------------------------------------------------------------


@contextlib.contextmanager
def _database(kind: str, postgres: str | None, tmp: Path) -> Iterator[sa.Engine]:
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{tmp / 'orders.db'}")
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()
        return
    assert postgres is not None
    schema = "twbench_" + secrets.token_hex(4)
    admin = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(postgres, connect_args={"options": f"-csearch_path={schema}"})
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _family_events(family: str, n: int, t0: datetime) -> list[AuditEvent]:
    out = []
    for i in range(n):
        out.append(
            AuditEvent.model_validate(
                {
                    "time": (t0 + timedelta(seconds=i)).isoformat(),
                    "tenant": "bench",
                    "action": "token.refreshed" if i else "token.issued",
                    "user": f"user-{family}",
                    "agent": "bench-agent",
                    "client_id": "bench-client",
                    "token": {
                        "id": f"{family}-t{i}",
                        "parent_id": f"{family}-t{i - 1}" if i else None,
                        "family_id": family,
                        "type": "refresh_token",
                    },
                }
            )
        )
    return out


def run_orders(
    kind: str, postgres: str | None, families: int, tokens: int, batch: int
) -> dict[str, Any]:
    now = datetime.now(UTC)
    routing = Routing(
        routes=(Route("redis", frozenset({Action.REVOKE, Action.KILL_SWITCH, Action.RELEASE})),),
        alerts=AlertPolicy(sinks=("oncall",)),
    )
    with tempfile.TemporaryDirectory() as tmp, _database(kind, postgres, Path(tmp)) as engine:
        events = [e for f in range(families) for e in _family_events(f"fam-{f}", tokens, now)]
        for i in range(0, len(events), 5000):
            with engine.begin() as conn:
                store.record_tokens(conn, events=events[i : i + 5000], now=now)
        orders = [
            RevocationOrder.create(
                target=Target(kind=TargetKind.FAMILY, tenant="bench", value=f"fam-{f}"),
                action=Action.REVOKE,
                cause="bench",
                reason="bench: refresh token reuse",
                detection_ids=(f"det-{f}",),
                now=now,
                rule="refresh-reuse-revokes-family",
            )
            for f in range(families)
        ]
        single = orders[: min(200, families // 10)]
        batched = orders[len(single) :]
        started = time.perf_counter()
        for i in range(0, len(batched), batch):
            with writing(engine) as conn:  # the pipeline's path: one commit per batch
                _, outcomes = store.record_and_apply(
                    conn, orders=batched[i : i + batch], now=now, routing=routing
                )
            assert all(o.tokens == tokens for o in outcomes), outcomes[:1]
        seconds = time.perf_counter() - started
        lat = []
        for o in single:  # one order alone, as the API and CLI record it
            t0 = time.perf_counter()
            with writing(engine) as conn:
                store.record_and_apply(conn, orders=[o], now=now, routing=routing)
            lat.append(time.perf_counter() - t0)
    return {
        "orders_per_s": round(len(batched) / seconds),
        "tokens_revoked_per_s": round(len(batched) * tokens / seconds),
        "one_order_p50_ms": _pct(lat, 0.5),
        "one_order_p99_ms": _pct(lat, 0.99),
    }


# -- detection -> revoked on the embedded runner -----------------------------------------


def _reuse(family: str, now: datetime) -> list[AuditEvent]:
    def refreshed(parent: str, child: str, ago: int, asn: int) -> AuditEvent:
        return AuditEvent.model_validate(
            {
                "id": f"evt-{family}-{child}",
                "time": (now - timedelta(seconds=ago)).isoformat(),
                "tenant": "bench",
                "action": "token.refreshed",
                "user": f"user-{family}",
                "agent": "bench-agent",
                "client_id": "bench-client",
                "token": {
                    "parent_id": parent,
                    "id": child,
                    "family_id": family,
                    "type": "refresh_token",
                },
                "source": {"ip": "203.0.113.5", "asn": asn},
            }
        )

    return [
        refreshed(f"{family}-0", f"{family}-1", 900, 64500),
        refreshed(f"{family}-1", f"{family}-2", 300, 64500),
        refreshed(f"{family}-1", f"{family}-x", 1, 64999),  # the replay
    ]


async def _embedded(tmp: Path, samples: int, prefix: str) -> dict[str, Any]:
    settings = Settings.model_validate(
        {
            "database_url": f"sqlite:///{tmp / 'embedded.db'}",
            "revocation": {"adapters": [{"type": "redis", "url": REDIS_URL, "prefix": prefix}]},
        }
    )
    services = build_services(settings)
    pipeline = EmbeddedPipeline(services.stages, max_batches=64)
    http = httpx.AsyncClient()
    runtime = start_revocation(
        settings=settings.revocation, db=services.db, http=http, stages=services.stages
    )
    sub = aioredis.Redis.from_url(REDIS_URL)
    pubsub = sub.pubsub()
    await pubsub.subscribe(DenylistKeys(prefix).channel)
    await pubsub.get_message(timeout=5)
    await pipeline.start()
    to_store: list[float] = []
    to_redis: list[float] = []
    try:
        for i in range(samples + 20):
            result = await pipeline.submit(_reuse(f"fam-{i}", datetime.now(UTC)))
            stored = result.committed_at  # the family is revoked in the store at this commit
            assert result.outcomes and result.outcomes[0].families == 1, result.outcomes
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=10)
                assert msg is not None, "no announcement from Redis"
                if orjson.loads(msg["data"])["order_id"] == result.recorded[0].id:  # type: ignore[index]
                    break
            announced = time.perf_counter()
            if i >= 20:  # warm-up
                to_store.append(stored - result.detected_at)
                to_redis.append(announced - result.detected_at)
    finally:
        await pipeline.stop()
        await runtime.stop()
        await pubsub.aclose()
        await sub.aclose()
        await http.aclose()
        services.db.dispose()
    return {
        "samples": samples,
        "detection_to_store_p50_ms": _pct(to_store, 0.5),
        "detection_to_store_p99_ms": _pct(to_store, 0.99),
        "detection_to_redis_p50_ms": _pct(to_redis, 0.5),
        "detection_to_redis_p99_ms": _pct(to_redis, 0.99),
    }


def run_embedded(samples: int) -> dict[str, Any]:
    prefix = f"twbench-{secrets.token_hex(4)}:"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return asyncio.run(_embedded(Path(tmp), samples, prefix))
    finally:
        _drop_prefix(prefix)


def _drop_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


# -- /v1/check --------------------------------------------------------------------------


def run_check_lookup(samples: int) -> dict[str, Any]:
    """The lookup alone, in process: Redis MGET vs the store's queries (SQLite)."""
    prefix = f"twbench-{secrets.token_hex(4)}:"
    now = datetime.now(UTC)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'check.db'}")
            upgrade(engine)
            with engine.begin() as conn:
                for f in range(200):
                    store.record_tokens(conn, events=_family_events(f"fam-{f}", 10, now), now=now)
            order = RevocationOrder.create(
                target=Target(kind=TargetKind.FAMILY, tenant="bench", value="fam-7"),
                action=Action.REVOKE,
                cause="bench",
                reason="bench",
                detection_ids=(),
                now=now,
            )
            store.execute_orders(engine, orders=[order], now=now)
            reader = build_reader(RedisConfig(url=REDIS_URL, prefix=prefix))
            reader.client.set(DenylistKeys(prefix).family("bench", "fam-7"), b'{"order":"x"}')
            ask = {"token_id": "fam-7-t3", "family_id": "fam-7", "user": "user-fam-7"}
            out: dict[str, Any] = {}
            loop = asyncio.new_event_loop()
            for name, call in (
                (
                    "redis_deny",
                    lambda: loop.run_until_complete(reader.acheck(tenant="bench", **ask)),
                ),
                (
                    "redis_miss",
                    lambda: loop.run_until_complete(
                        reader.acheck(tenant="bench", family_id="fam-8")
                    ),
                ),
                ("database_deny", lambda: _db_check(engine, ask, now)),
                ("database_allow", lambda: _db_check(engine, {"family_id": "fam-8"}, now)),
            ):
                for _ in range(200):
                    call()
                lat = []
                for _ in range(samples):
                    t0 = time.perf_counter()
                    call()
                    lat.append(time.perf_counter() - t0)
                out[f"{name}_p50_us"] = _pct(lat, 0.5, 1e6)
                out[f"{name}_p99_us"] = _pct(lat, 0.99, 1e6)
            loop.run_until_complete(reader.aclose())
            loop.close()
            engine.dispose()
            return out
    finally:
        _drop_prefix(prefix)


def _db_check(engine: sa.Engine, ask: dict[str, str], now: datetime) -> Any:
    with engine.connect() as conn:
        return store.check(conn, tenant="bench", now=now, **ask)


@contextlib.contextmanager
def _server(tmp: Path, prefix: str | None) -> Iterator[tuple[str, str]]:
    """``tokenwarden serve`` in its own process (client and server do not share a GIL);
    yields its URL and an API key of tenant ``bench`` (``ingest`` and ``check``) made with
    ``tokenwarden keys create`` before the service starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp / "bench.toml"
    text = f'database_url = "sqlite:///{tmp / "serve.db"}"\nlog_level = "warning"\n'
    if prefix is not None:
        text += (
            f'[[revocation.adapters]]\ntype = "redis"\nurl = "{REDIS_URL}"\nprefix = "{prefix}"\n'
        )
    config.write_text(text)
    cwd = Path(__file__).resolve().parents[1]
    key = subprocess.run(
        [
            *(sys.executable, "-m", "tokenwarden.cli", "keys", "create"),
            *("--config", str(config), "--tenant", "bench", "--scope", "ingest"),
            *("--scope", "check"),
        ],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokenwarden.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        cwd=cwd,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield base, key
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _concurrent(base: str, key: str, body: dict[str, Any], n: int, concurrency: int) -> float:
    """Requests/s with ``concurrency`` keep-alive connections in flight, each driven by a
    thread with ``http.client`` (an asyncio httpx client costs more per request than the
    server does, and would measure itself)."""
    host, port = base.removeprefix("http://").split(":")
    payload = orjson.dumps(body)
    headers = {"content-type": "application/json", "Authorization": f"Bearer {key}"}
    per = max(1, n // concurrency)

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            for _ in range(per):
                conn.request("POST", "/v1/check", body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
                assert response.status == 200, data
        finally:
            conn.close()

    with ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
        return per * concurrency / (time.perf_counter() - started)


def run_check_http(samples: int, concurrency: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    now = int(time.time())
    reuse = [
        {
            "id": f"evt-{c}",
            "time": now - ago,
            "tenant": "bench",
            "action": "token.refreshed",
            "user": "jane",
            "agent": "bench-agent",
            "client_id": "bench-client",
            "token": {"parent_id": p, "id": c, "family_id": "fam-1", "type": "refresh_token"},
            "source": {"ip": "203.0.113.5", "asn": asn},
        }
        for p, c, ago, asn in (
            ("rt-0", "rt-1", 900, 64500),
            ("rt-1", "rt-2", 300, 64500),
            ("rt-1", "rt-x", 1, 64999),
        )
    ]
    deny = {"tenant": "bench", "family_id": "fam-1", "token_id": "rt-2"}
    allow = {"tenant": "bench", "family_id": "fam-2", "token_id": "rt-9"}
    for mode in ("redis", "database"):
        prefix = f"twbench-{secrets.token_hex(4)}:" if mode == "redis" else None
        try:
            with tempfile.TemporaryDirectory() as tmp, _server(Path(tmp), prefix) as (base, key):
                auth = {"Authorization": f"Bearer {key}"}
                r = httpx.post(base + "/v1/events?wait=true", json=reuse, timeout=60, headers=auth)
                assert r.status_code == 202, r.text
                time.sleep(0.5)  # let the dispatcher reach Redis
                # http.client: a thin keep-alive client, so the figures are the server's
                host, port = base.removeprefix("http://").split(":")
                for name, body in (("deny", deny), ("allow", allow)):
                    # a fresh connection each round: the server closes idle keep-alives
                    conn = http.client.HTTPConnection(host, int(port), timeout=60)
                    payload = orjson.dumps(body)
                    headers = {"content-type": "application/json", **auth}

                    def ask(
                        payload: bytes = payload,
                        headers: dict[str, str] = headers,
                        conn: http.client.HTTPConnection = conn,
                    ) -> Any:
                        conn.request("POST", "/v1/check", body=payload, headers=headers)
                        response = conn.getresponse()
                        data = response.read()
                        assert response.status == 200, data
                        return orjson.loads(data)

                    source = ask()["source"]
                    for _ in range(200):
                        ask()
                    lat = []
                    for _ in range(samples):
                        t0 = time.perf_counter()
                        ask()
                        lat.append(time.perf_counter() - t0)
                    out[f"{mode}_config_{name}"] = {
                        "answered_by": source,
                        "p50_ms": _pct(lat, 0.5),
                        "p99_ms": _pct(lat, 0.99),
                        "sequential_per_s": round(samples / sum(lat)),
                        "concurrent_per_s": round(
                            _concurrent(base, key, body, samples, concurrency)
                        ),
                    }
                    conn.close()
        finally:
            if prefix:
                _drop_prefix(prefix)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--postgres", default=None, help="PostgreSQL URL for the orders/s figure")
    p.add_argument("--families", type=int, default=2000)
    p.add_argument("--tokens", type=int, default=10, help="tokens per family")
    p.add_argument("--order-batch", type=int, default=100)
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--check-samples", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument(
        "--parts", default="orders,embedded,lookup,http", help="which figures to measure"
    )
    a = p.parse_args()
    parts = set(a.parts.split(","))
    configure_logging(level="warning")  # the figures, not a log line per batch
    tune_gc()
    out: dict[str, Any] = {"bench": "revocation"}
    if "orders" in parts:
        out |= {"families": a.families, "tokens_per_family": a.tokens}
        out["orders_sqlite"] = run_orders("sqlite", None, a.families, a.tokens, a.order_batch)
        if a.postgres:
            out["orders_postgresql"] = run_orders(
                "postgresql", a.postgres, a.families, a.tokens, a.order_batch
            )
    if "embedded" in parts:
        out["embedded"] = run_embedded(a.samples)
    if "lookup" in parts:
        out["check_lookup"] = run_check_lookup(a.check_samples)
    if "http" in parts:
        out["check_http"] = run_check_http(a.check_samples // 2, a.concurrency)
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
