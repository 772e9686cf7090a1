"""Throughput of the embedded pipeline's stages, one JSON line of figures.

Measures, on the same synthetic traffic in the same run: bare parsing (pydantic
validation of wire events), the detector engine alone, and the whole batch path
(parse -> engine -> policy -> one store transaction per batch -> executor) into SQLite,
and into PostgreSQL when ``--postgres URL`` is given.

    python bench/pipeline.py [--events 100000] [--batch 5000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.traffic import events
from detectors import Engine, build_detectors
from ingest import TokenHasher, validate_events
from tokenwarden.runtime import tune_gc
from tokenwarden.services import build_services
from tokenwarden.settings import Settings


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def run(n: int, batch: int, postgres: str | None) -> dict[str, Any]:
    raw = list(events(n, families=max(1000, n // 50)))
    tune_gc()  # as the service does
    hasher = TokenHasher(b"bench-key-bench-key-bench-key-32")
    out: dict[str, Any] = {"events": n, "batch": batch}

    t = time.perf_counter()
    parsed = [e for b in _batches(raw, batch) for e in validate_events(b, hasher=hasher).events]
    out["parse_events_per_s"] = round(n / (time.perf_counter() - t))

    engine = Engine(build_detectors())
    state: dict[str, Any] = {}
    now = datetime.now(UTC)
    t = time.perf_counter()
    found = sum(len(engine.process(b, state, now)) for b in _batches(parsed, batch))
    out["engine_events_per_s"] = round(n / (time.perf_counter() - t))
    out["detections"] = found

    targets = {"sqlite": None}
    if postgres:
        targets["postgresql"] = postgres
    for name, url in targets.items():
        with tempfile.TemporaryDirectory() as tmp:
            db_url = url or f"sqlite:///{Path(tmp) / 'bench.db'}"
            services = build_services(Settings(database_url=db_url))
            stages = services.stages
            lat: list[float] = []
            t = time.perf_counter()
            for b in _batches(raw, batch):
                t0 = time.perf_counter()
                evs = validate_events(b, hasher=services.hasher).events
                stages.process(evs, now=max(e.time for e in evs))
                lat.append(time.perf_counter() - t0)
            out[f"{name}_events_per_s"] = round(n / (time.perf_counter() - t))
            lat.sort()
            out[f"{name}_batch_p50_ms"] = round(lat[len(lat) // 2] * 1000, 2)
            out[f"{name}_batch_p99_ms"] = round(
                lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 2
            )
            services.db.dispose()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--postgres", default=None)
    a = p.parse_args()
    print(orjson.dumps(run(a.events, a.batch, a.postgres)).decode())


if __name__ == "__main__":
    main()
