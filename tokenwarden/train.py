"""``tokenwarden train``: fit the ``model`` detector's per-tenant forests from history.

* ``--from FILE.ndjson``: the history (AuditEvents, e.g. a SIEM export or ``tokenwarden
  simulate`` output) is replayed through the usage detectors exactly as the Engine runs
  them, so the model learns the same feature rows it will score; rows any detector flagged
  are left out. Token ids are hashed under a throw-away key: training looks at token
  families only to relate events.
* ``--from-store``: the rows each stored model (``detector_models``, saved by the service
  whenever it fits one) was fitted on are fitted again with the configured
  ``[detectors.model]`` parameters — after changing ``n_estimators`` or ``quantile``, say,
  without waiting for the next scheduled refit.

One IsolationForest per tenant with at least ``min_train_rows`` clean rows is fitted,
with the format version and the feature list (``detectors.model_artifact``), and written
to a file, to the store (which the service loads at start), or both.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from detectors import (
    Engine,
    EngineConfig,
    ModelArtifact,
    ModelConfig,
    ModelDetector,
    build_detectors,
)
from detectors.base import UsageDetector
from ingest import AuditEvent, TokenHasher, iter_ndjson, validate_events
from revocation import store


@dataclass(slots=True)
class TrainResult:
    events: int = 0
    rejected: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    tenants: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)

    def fitted(self, artifact: ModelArtifact) -> None:
        """Record what was fitted: the tenants trained and those with too few rows."""
        self.tenants = {name: m.rows for name, m in artifact.tenants.items()}
        self.skipped = sorted(set(self.rows) - set(self.tenants))


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
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int = 5000,
) -> tuple[TrainResult, ModelArtifact]:
    """Replay ``path`` through the usage detectors and fit; the models with their rows."""
    params = dict(params or {})
    model = _detector(params)
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
    result.fitted(artifact)
    return result, artifact


def train_from_store(
    db: sa.Engine, *, params: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[TrainResult, ModelArtifact]:
    """Refit every stored model from the rows it was fitted on (stored models that cannot
    be read are named in ``result.unreadable``)."""
    model = _detector(dict(params or {}))
    with db.connect() as conn:
        stored, errors = store.load_models(conn)
    artifact = model.refit_from(stored)
    result = TrainResult(unreadable=errors)
    result.rows = {tenant: len(rows) for tenant, rows in stored.samples.items()}
    result.fitted(artifact)
    return result, artifact


def _detector(params: Mapping[str, Mapping[str, Any]]) -> ModelDetector:
    return ModelDetector(
        ModelConfig(**{**dict(params.get("model", {})), "auto_fit": False, "path": None})
    )
