"""A detector that raises in a Kafka worker's take costs only the events it raised on:
they go to the DLQ under their message's offset and index, the partition's state holds the
others exactly once. (No broker: the worker's detect step on partition states.)"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from detectors.features import Observation
from detectors.volume import VolumeDetector
from ingest import AuditEvent
from tokenwarden.services import build_services
from tokenwarden.settings import Settings
from tokenwarden.stream.codec import Source
from tokenwarden.stream.worker import StreamWorker, _Batch, _Message, _Stage

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _events() -> list[AuditEvent]:
    return [
        AuditEvent.model_validate(
            {
                "id": "bad" if i == 6 else f"e{i}",
                "time": T0.timestamp() + i,
                "tenant": "acme",
                "action": "token.used",
                "user": f"user-{i % 3}",
                "agent": "crm",
                "audience": "https://api.crm.example",
                "scopes": ["crm:read"],
                "token": {"id": f"at-{i}", "family_id": f"fam-{i % 3}", "type": "access_token"},
            }
        )
        for i in range(12)
    ]


def _detect(tmp: Path, messages: list[list[AuditEvent]]) -> tuple[dict[str, Any], _Batch]:
    """Messages (offsets 10, 11, ...) of partition 2 through a worker's detect step: (the
    partition's changed state, the take's batch with its dead letters)."""
    services = build_services(Settings(database_url=f"sqlite:///{tmp}"))
    worker: Any = object.__new__(StreamWorker)
    worker.settings = Settings()
    stage = _Stage("audit", "tokenwarden.audit", services.stages, SimpleNamespace(data={}), 0)
    msgs = [
        _Message(Source("tokenwarden.audit", 2, 10 + k), None, True, events)
        for k, events in enumerate(messages)
    ]
    batch = _Batch()
    worker._detect(stage, msgs, T0, batch)
    services.db.dispose()
    return batch.changes[2][0], batch


def test_a_failing_event_goes_to_the_dlq_and_the_others_are_detected_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _events()
    # the reference: the same traffic with the bad event never sent
    expected, clean = _detect(tmp_path / "ref.db", [[e for e in events if e.id != "bad"]])
    assert clean.dead == []

    original = VolumeDetector.observe_batch

    def failing(self: VolumeDetector, observations: Sequence[Observation], state: Any) -> None:
        for i, obs in enumerate(observations):
            if obs.event.id == "bad":
                original(self, observations[:i], state)  # applied in place, then it raises
                raise ValueError("volume cannot read this event")
        original(self, observations, state)

    monkeypatch.setattr(VolumeDetector, "observe_batch", failing)
    changed, batch = _detect(tmp_path / "tw.db", [events[0:4], events[4:8], events[8:12]])
    ((source, bad),) = batch.dead  # the third event of the second message
    assert (source.partition, source.offset) == (2, 11)
    ((index, error, record),) = bad
    assert (index, record["id"]) == (2, "bad")
    assert error == "detection failed: ValueError: volume cannot read this event"
    # the others were detected exactly once: the state of a run without the bad event
    assert changed == expected
