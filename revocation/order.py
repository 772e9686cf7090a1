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
    """An order's lifecycle: ``pending`` (durable, nothing delivered yet) → ``executing``
    (some adapters delivered, the others in flight) → ``done`` (every adapter delivered) or
    ``failed`` (a delivery failed and is being retried with backoff; it becomes ``done``
    when the retry succeeds). A kill switch order whose switch was released is
    ``released``."""

    PENDING = "pending"
    EXECUTING = "executing"
    DONE = "done"
    FAILED = "failed"
    RELEASED = "released"

    @property
    def terminal(self) -> bool:
        return self in (Status.DONE, Status.RELEASED)


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
    actor: str = Field(
        default="policy", description="who decided: 'policy', or the human behind a manual order"
    )
    kill_switch_id: str | None = Field(
        default=None, description="for a manual release: the one kill switch it releases"
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
        actor: str = "policy",
        kill_switch_id: str | None = None,
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
            actor=actor,
            kill_switch_id=kill_switch_id,
            created_at=now,
        )

    @property
    def kill_switch_thrown(self) -> str:
        """The id of the kill switch this order throws (for a ``kill_switch`` order)."""
        return "ks-" + self.id.removeprefix("ord-")

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))
