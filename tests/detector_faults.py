"""A detector bug on demand: traffic with one event named ``bad``, and ``volume`` made to
raise on it after applying the events before it in place (as a real bug mid-chunk
would) — for the tests that a runner loses only that event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from detectors import Detection
from detectors.features import Finding, Observation, observe_one, standalone
from detectors.registry import DETECTORS
from detectors.volume import VolumeDetector
from ingest import AuditEvent

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ERROR = "ValueError: volume cannot read this event"


def events(n: int, bad: int | None = None) -> list[AuditEvent]:
    """``n`` calls of three users' agent, event ``bad`` (if given) named ``bad``."""
    return [
        AuditEvent.model_validate(
            {
                "id": "bad" if i == bad else f"e{i}",
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
        for i in range(n)
    ]


class FailingVolume:
    """``volume`` with a bug: it raises on the event ``bad`` after applying the events
    before it in place. A wrapper registered in ``volume``'s place, not a patched method:
    the detector classes may be compiled (``detectors._native``), and compiled classes
    take no patches."""

    name: ClassVar[str] = "volume"

    def __init__(self, inner: VolumeDetector) -> None:
        self.inner = inner

    @classmethod
    def from_config(cls, params: dict[str, Any]) -> FailingVolume:
        return cls(VolumeDetector.from_config(params))

    def observe(self, obs: Observation, state: Any) -> Finding | None:
        return observe_one(self, obs, state)

    def observe_batch(self, observations: Sequence[Observation], state: Any) -> None:
        for i, obs in enumerate(observations):
            if obs.event.id == "bad":
                self.inner.observe_batch(observations[:i], state)  # applied in place
                raise ValueError("volume cannot read this event")
        self.inner.observe_batch(observations, state)

    def detect(self, event: AuditEvent, state: Any, now: datetime) -> list[Detection]:
        return standalone(self, event, state, now)

    def sweep(self, state: Any, now: datetime) -> int:
        return self.inner.sweep(state, now)


def volume_fails_on_bad(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DETECTORS, "volume", FailingVolume)
