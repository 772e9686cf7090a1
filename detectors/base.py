"""The Detector protocol: ``(event, state, now) -> detections``.

Detectors are pure: everything they remember lives in the ``state`` mapping they are given
(a dict in tests and in the embedded runner, a faust Table on Kafka), and the time comes in
as ``now``. State values are plain JSON-serialisable data so any store can hold them — but
for the usage detectors' records, which are objects in memory and JSON where stored
(``detectors.records``: ``to_json`` writes them, ``decode`` reads them back).

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
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from detectors.detection import Detection
from ingest import AuditEvent

if TYPE_CHECKING:
    from detectors.features import Finding, Observation

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


@runtime_checkable
class UsageDetector(Protocol):
    """A detector the Engine feeds Observations and whose findings it combines.

    It may also have ``observe_batch(observations, state) -> None``: the same for every
    observation of a batch, in order, adding its findings to each with
    ``Observation.add`` — the Engine then calls that once per batch instead of ``observe``
    per event (the built-in usage detectors do: their common case is a short loop with
    their constants bound once per batch). Detectors keep only their own state, so running
    each over the whole batch in turn finds what running them all per event would.
    """

    name: ClassVar[str]

    def observe(self, obs: Observation, state: State) -> Finding | None:
        """Update ``state`` with the observation, write features into ``obs.row``, and
        return a finding when something is off (a score of 0 is no finding)."""
        ...
