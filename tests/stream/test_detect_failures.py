"""A detector that raises in a Kafka worker's take costs only the events it raised on:
they go to the DLQ under their message's offset and index, the partition's state holds the
others exactly once. (No broker: the worker's detect step on partition states.)"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ingest import AuditEvent
from tests.detector_faults import ERROR, T0, volume_fails_on_bad
from tests.detector_faults import events as make_events
from tokenwarden.services import build_services
from tokenwarden.settings import Settings
from tokenwarden.stream.codec import Source
from tokenwarden.stream.worker import StreamWorker, _Batch, _Message, _Stage


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
    events = make_events(12, bad=6)
    # the reference: the same traffic with the bad event never sent
    expected, clean = _detect(tmp_path / "ref.db", [[e for e in events if e.id != "bad"]])
    assert clean.dead == []

    volume_fails_on_bad(monkeypatch)
    changed, batch = _detect(tmp_path / "tw.db", [events[0:4], events[4:8], events[8:12]])
    ((source, bad),) = batch.dead  # the third event of the second message
    assert (source.partition, source.offset) == (2, 11)
    ((index, error, record),) = bad
    assert (index, record["id"]) == (2, "bad")
    assert error == f"detection failed: {ERROR}"
    # the others were detected exactly once: the state of a run without the bad event
    assert changed == expected
