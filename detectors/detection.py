"""The Detection: what a detector saw, with the numbers that fired."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Detection(BaseModel):
    """One finding about one entity.

    ``entity`` is the detector's state key in readable form (``tenant/family/<id>`` for
    refresh reuse, ``tenant/user/agent/audience`` for usage detectors); ``tenant``, ``user``,
    ``agent``, ``client_id``, ``family_id``, ``session_id`` and ``device_id`` name what the
    policy may act
    on. ``evidence`` holds the numbers that fired; ``event_ids`` the events behind it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    detector: str
    entity: str
    tenant: str
    score: float = Field(ge=0.0, le=1.0)
    severity: Severity
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    event_ids: tuple[str, ...] = ()
    time: datetime
    user: str | None = None
    agent: str | None = None
    client_id: str | None = None
    family_id: str | None = None
    session_id: str | None = None
    device_id: str | None = None

    @staticmethod
    def make_id(detector: str, entity: str, event_ids: tuple[str, ...]) -> str:
        """Deterministic id: the same events replayed give the same detection id."""
        digest = hashlib.sha256(orjson.dumps([detector, entity, list(event_ids)]))
        return "det-" + digest.hexdigest()[:24]

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))
