"""The Detector protocol: ``(event, state, now) -> detections``.

Detectors are pure: everything they remember lives in the ``state`` mapping they are given
(a dict in tests and in the embedded runner, a faust Table on Kafka), and the time comes in
as ``now``. State values are plain JSON-serialisable data so any store can hold them.

Within one ``Engine.process`` call a record may be written and then changed in place
(``detectors.features``, the usage records): the mapping must hold the object it was given, not
a copy, at least until the call returns — a dict does, and so do ``TrackedState`` and the
Kafka worker's ``PartitionState``, which read the changed values after the batch.

A detector may also have ``accepts(action: str) -> bool``: whether events of that action can
make ``detect`` change state or report anything. The Engine then calls ``detect`` only for
the actions it accepts (a detector without it gets every event).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from detectors.detection import Detection
from ingest import AuditEvent

State = MutableMapping[str, Any]


@runtime_checkable
class Detector(Protocol):
    """Looks at one event in the light of the state it keeps, and may report detections."""

    name: ClassVar[str]

    def detect(self, event: AuditEvent, state: State, now: datetime) -> list[Detection]:
        """Update ``state`` with ``event`` and return what it found (often nothing)."""
        ...

    def sweep(self, state: State, now: datetime) -> int:
        """Drop this detector's expired state; return how many keys were removed."""
        ...
