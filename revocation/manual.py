"""Manual orders: a human revokes, kills or releases — through the same outbox and audit
trail as the policy's orders, with the human as the order's ``actor``.

``tokenwarden revoke family ID --reason TEXT`` and ``POST /v1/orders`` build a revoke
order; ``tokenwarden kill user ID --reason TEXT`` a kill-switch order; ``tokenwarden
release KILL_ID --reason TEXT`` and ``POST /v1/kill-switches/{id}/release`` a release order
naming that one switch (so the release reaches the Redis denylist and the webhooks too).
A reason and an actor are required. Each manual order is its own cause — unless the caller
passes a ``request_id`` (the API's ``Idempotency-Key``), which makes a retried request the
same order.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection

from revocation.order import Action, RevocationOrder, Target, TargetKind
from revocation.store.scope import get_switch

MANUAL_RULE = "manual"
KILL_KINDS = frozenset(
    {TargetKind.USER, TargetKind.AGENT, TargetKind.CLIENT, TargetKind.TENANT, TargetKind.SESSION}
)
REVOKE_KINDS = frozenset(
    {
        TargetKind.FAMILY,
        TargetKind.TOKEN,
        TargetKind.USER,
        TargetKind.AGENT,
        TargetKind.CLIENT,
        TargetKind.SESSION,
        TargetKind.DEVICE,
        TargetKind.TENANT,
    }
)


class ManualOrderError(ValueError):
    """A manual action that cannot be taken: ``code`` (``invalid``, ``not_found``,
    ``already_released``) and a message saying why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _need(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise ManualOrderError("invalid", f"{what} is required")
    return value


def manual_order(
    *,
    action: Action,
    kind: TargetKind,
    value: str,
    tenant: str,
    reason: str,
    actor: str,
    now: datetime,
    request_id: str | None = None,
) -> RevocationOrder:
    """A revoke or kill-switch order a human asked for."""
    reason, actor = _need(reason, "a reason"), _need(actor, "an actor (who is doing this)")
    value, tenant = _need(value, "the target's id"), _need(tenant, "the tenant")
    if action == Action.REVOKE:
        allowed = REVOKE_KINDS
    elif action == Action.KILL_SWITCH:
        allowed = KILL_KINDS
    else:
        raise ManualOrderError("invalid", f"a manual order revokes or kills, not {action.value}")
    if kind not in allowed:
        names = ", ".join(sorted(k.value for k in allowed))
        raise ManualOrderError("invalid", f"cannot {action.value} a {kind.value}; one of {names}")
    if kind == TargetKind.TENANT and value != tenant:
        raise ManualOrderError("invalid", f"a tenant target names its own tenant ({tenant!r})")
    return RevocationOrder.create(
        target=Target(kind=kind, tenant=tenant, value=value),
        action=action,
        cause=f"manual:{request_id or uuid.uuid4().hex}",
        reason=reason,
        detection_ids=(),
        now=now,
        rule=MANUAL_RULE,
        actor=actor,
    )


def release_order(
    conn: Connection,
    *,
    kill_switch_id: str,
    reason: str,
    actor: str,
    now: datetime,
    request_id: str | None = None,
) -> RevocationOrder:
    """The order releasing one active kill switch; refuses a switch that does not exist or
    is released already."""
    reason, actor = _need(reason, "a reason"), _need(actor, "an actor (who is doing this)")
    switch = get_switch(conn, kill_switch_id=kill_switch_id)
    if switch is None:
        raise ManualOrderError("not_found", f"no kill switch {kill_switch_id!r}")
    if switch.released_at is not None:
        raise ManualOrderError(
            "already_released",
            f"kill switch {kill_switch_id} was released at {switch.released_at.isoformat()}",
        )
    return RevocationOrder.create(
        target=Target(kind=TargetKind(switch.kind), tenant=switch.tenant, value=switch.value),
        action=Action.RELEASE,
        cause=f"manual-release:{kill_switch_id}:{request_id or uuid.uuid4().hex}",
        reason=reason,
        detection_ids=(),
        now=now,
        rule=MANUAL_RULE,
        actor=actor,
        kill_switch_id=kill_switch_id,
    )
