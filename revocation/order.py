"""The RevocationOrder: what to cut off, why, and how far it got."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

import orjson
from pydantic import BaseModel, ConfigDict, Field


class TargetKind(StrEnum):
    FAMILY = "family"
    TOKEN = "token"  # noqa: S105 - a target kind, not a secret
    USER = "user"
    AGENT = "agent"
    CLIENT = "client"
    TENANT = "tenant"
    SESSION = "session"
    DEVICE = "device"


class Action(StrEnum):
    REVOKE = "revoke"
    KILL_SWITCH = "kill_switch"
    ALERT_ONLY = "alert_only"
    RELEASE = "release"


class Mode(StrEnum):
    ENFORCE = "enforce"
    DRY_RUN = "dry_run"


class Status(StrEnum):
    PENDING = "pending"
    EXECUTING = "executing"
    DONE = "done"
    FAILED = "failed"
    RELEASED = "released"


class Target(BaseModel):
    """What an order acts on: a family, token, user, agent, client, session or tenant."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: TargetKind
    tenant: str
    value: str

    def key(self) -> str:
        return f"{self.tenant}/{self.kind.value}/{self.value}"


class RevocationOrder(BaseModel):
    """One decision to revoke or kill, with the detections behind it.

    ``idempotency_key`` is derived from (target, cause): the same cause on the same target
    yields the same key, so a repeated detection or a redelivered order changes nothing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    target: Target
    action: Action
    reason: str
    detection_ids: tuple[str, ...] = ()
    idempotency_key: str
    mode: Mode = Mode.ENFORCE
    status: Status = Status.PENDING
    rule: str = Field(default="", description="the policy rule that produced the order")
    releases: tuple[str, ...] = Field(
        default=(), description="for a release: the rules whose kill switches it may release"
    )
    created_at: datetime

    @staticmethod
    def key_for(target: Target, action: Action, cause: str) -> str:
        digest = hashlib.sha256(orjson.dumps([target.key(), action.value, cause]))
        return digest.hexdigest()[:32]

    @classmethod
    def create(
        cls,
        *,
        target: Target,
        action: Action,
        cause: str,
        reason: str,
        detection_ids: tuple[str, ...],
        now: datetime,
        mode: Mode = Mode.ENFORCE,
        rule: str = "",
        releases: tuple[str, ...] = (),
    ) -> RevocationOrder:
        key = cls.key_for(target, action, cause)
        return cls(
            id="ord-" + key[:24],
            target=target,
            action=action,
            reason=reason,
            detection_ids=detection_ids,
            idempotency_key=key,
            mode=mode,
            rule=rule,
            releases=releases,
            created_at=now,
        )

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))
