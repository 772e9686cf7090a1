"""``tokenwarden replay``: run an NDJSON file through the same stages as fast as possible.

The file is read in batches; each batch goes through ``Stages.process`` with ``now`` set to
the batch's latest event time, so replaying last month's log behaves as it did live.
Detections and orders are written as JSON lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

import orjson

from ingest import NORMALIZERS, Normalizer, Rejected, TokenHasher, iter_ndjson
from tokenwarden.formats import normalize
from tokenwarden.pipeline import Stages


@dataclass(slots=True)
class ReplayStats:
    events: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    detections: int = 0
    orders: int = 0
    seconds: float = 0.0


def _chunks(path: Path, size: int) -> Iterator[tuple[int, bytes]]:
    """(bytes read so far, a block of about ``size`` whole lines)."""
    done = 0
    with path.open("rb") as fh:
        while True:
            lines = fh.readlines(size * 200)
            if not lines:
                return
            block = b"".join(lines)
            done += len(block)
            yield done, block


def replay(
    path: Path,
    *,
    stages: Stages,
    hasher: TokenHasher,
    formats: Mapping[str, Normalizer] = NORMALIZERS,
    fmt: str | None = None,
    tenant: str | None = None,
    detections_out: IO[bytes] | None = None,
    orders_out: IO[bytes] | None = None,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> ReplayStats:
    stats = ReplayStats()
    started = time.perf_counter()
    index = 0
    last_now: datetime | None = None
    for done, block in _chunks(path, batch_size):
        items = list(iter_ndjson(block))
        parsed = normalize(
            items, formats=formats, fmt=fmt, hasher=hasher, tenant=tenant, start=index
        )
        index += len(items)
        stats.rejected.extend(parsed.rejected)
        if parsed.events:
            now = last_now = max(e.time for e in parsed.events)
            result = stages.process(parsed.events, now=now)
            stats.events += len(parsed.events)
            stats.detections += len(result.detections)
            stats.orders += len(result.orders)
            if detections_out is not None:
                for d in result.detections:
                    detections_out.write(d.to_json() + b"\n")
            if orders_out is not None:
                for o in result.orders:
                    orders_out.write(o.to_json() + b"\n")
        if progress is not None:
            progress(done)
    if last_now is not None:
        stages.flush_state(now=last_now)  # the usage baselines still pending
    stats.seconds = time.perf_counter() - started
    return stats


def rejected_line(r: Rejected) -> bytes:
    return orjson.dumps({"index": r.index, "reason": r.reason})
