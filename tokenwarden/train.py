"""``tokenwarden train``: fit the ``model`` detector's per-tenant forests from history.

The history (an NDJSON file of AuditEvents, e.g. a SIEM export or ``tokenwarden
simulate`` output) is replayed through the usage detectors exactly as the Engine runs them,
so the model learns the same feature rows it will score; rows any detector flagged are left
out. One IsolationForest per tenant with at least ``min_train_rows`` clean rows is fitted
and saved with the format version and the feature list (``detectors.model``). Token ids
are hashed under a throw-away key: training looks at token families only to relate events.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from detectors import Engine, EngineConfig, ModelConfig, ModelDetector, build_detectors
from detectors.features import UsageDetector
from ingest import AuditEvent, TokenHasher, iter_ndjson, validate_events


@dataclass(slots=True)
class TrainResult:
    events: int = 0
    rejected: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    tenants: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _batches(path: Path, hasher: TokenHasher, size: int) -> Iterator[tuple[list[AuditEvent], int]]:
    with path.open("rb") as fh:
        index = 0
        while True:
            lines = fh.readlines(size * 200)
            if not lines:
                return
            items = list(iter_ndjson(b"".join(lines)))
            parsed = validate_events(items, hasher=hasher, start=index)
            index += len(items)
            yield parsed.events, len(parsed.rejected)


def train(
    path: Path,
    out: Path,
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int = 5000,
) -> TrainResult:
    """Replay ``path`` through the usage detectors, fit, and save the model to ``out``."""
    params = dict(params or {})
    model_params = {**dict(params.get("model", {})), "auto_fit": False, "path": None}
    model = ModelDetector(ModelConfig(**model_params))
    usage = [d for d in build_detectors(None, params) if isinstance(d, UsageDetector)]
    engine = Engine([*usage, model], EngineConfig(**dict(params.get("engine", {}))))
    hasher = TokenHasher(secrets.token_bytes(32))
    state: dict[str, Any] = {}
    result = TrainResult()
    last: datetime | None = None
    for events, rejected in _batches(path, hasher, batch_size):
        result.rejected += rejected
        if not events:
            continue
        now = max(e.time for e in events)
        last = now if last is None or now > last else last
        engine.process(events, state, now)
        result.events += len(events)
    result.rows = model.reservoir_sizes()
    artifact = model.fit_all(trained_at=last.timestamp() if last else 0.0)
    result.tenants = {name: m.rows for name, m in artifact.tenants.items()}
    result.skipped = sorted(set(result.rows) - set(result.tenants))
    artifact.save(out)
    return result
