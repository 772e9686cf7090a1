"""A detector bug on demand: traffic with one event named ``bad``, and ``volume`` made to
raise on it after applying the events before it in place (as a real bug mid-chunk
would) — for the tests that a runner loses only that event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from detectors.features import Observation
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


def volume_fails_on_bad(monkeypatch: pytest.MonkeyPatch) -> None:
    original = VolumeDetector.observe_batch

    def failing(self: VolumeDetector, observations: Sequence[Observation], state: Any) -> None:
        for i, obs in enumerate(observations):
            if obs.event.id == "bad":
                original(self, observations[:i], state)  # applied in place, then it raises
                raise ValueError("volume cannot read this event")
        original(self, observations, state)

    monkeypatch.setattr(VolumeDetector, "observe_batch", failing)
