"""The Engine: runs the enabled detectors over a batch of events.

``Engine.process(batch, state, now)`` is pure apart from the ``state`` mapping it is given,
so the same engine runs in the embedded pipeline, in faust agents and in tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from detectors.base import Detector, State
from detectors.detection import Detection
from ingest import AuditEvent


class Engine:
    """Feeds each event of a batch, in order, to every enabled detector."""

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors = tuple(detectors)

    def process(self, batch: Sequence[AuditEvent], state: State, now: datetime) -> list[Detection]:
        out: list[Detection] = []
        detectors = self.detectors
        for event in batch:
            for detector in detectors:
                found = detector.detect(event, state, now)
                if found:
                    out.extend(found)
        return out

    def sweep(self, state: State, now: datetime) -> int:
        """Expire idle state in every detector; returns the number of keys removed."""
        return sum(d.sweep(state, now) for d in self.detectors)
