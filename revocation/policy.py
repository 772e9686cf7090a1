"""The policy: which detections become which revocation orders.

DESIGN.md, "One path for every signal": every action comes from a ``Detection`` through the
policy. A rule matches a detector at or above a severity and names what to act on; the
order's idempotency key is derived from (target, action, detector), so the same cause on
the same target — a reuse detected again on an already revoked family — yields the same
key and changes nothing (``RevocationOrder.create``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from detectors.detection import Detection, Severity
from revocation.order import Action, Mode, RevocationOrder, Target, TargetKind

_RANK = {s: i for i, s in enumerate(Severity)}


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """``detector`` at ``min_severity`` or above → ``action`` on the detection's ``target``.

    ``reason_prefix`` heads the order's reason (default: the rule's name).
    """

    name: str
    detector: str
    min_severity: Severity
    action: Action
    target: TargetKind
    mode: Mode = Mode.ENFORCE
    reason_prefix: str = ""

    def matches(self, detection: Detection) -> bool:
        return (
            detection.detector == self.detector
            and _RANK[detection.severity] >= _RANK[self.min_severity]
        )


#: RFC 9700 §4.14.2: on refresh token reuse, revoke the whole family.
REFRESH_REUSE_REVOKES_FAMILY = PolicyRule(
    name="refresh-reuse-revokes-family",
    detector="refresh_reuse",
    min_severity=Severity.INFO,
    action=Action.REVOKE,
    target=TargetKind.FAMILY,
    mode=Mode.ENFORCE,
    reason_prefix="refresh token reuse",
)

DEFAULT_RULES: tuple[PolicyRule, ...] = (REFRESH_REUSE_REVOKES_FAMILY,)


def target_value(detection: Detection, kind: TargetKind) -> str | None:
    """The identifier of ``kind`` a detection names, if it names one."""
    if kind == TargetKind.TENANT:
        return detection.tenant
    if kind == TargetKind.TOKEN:
        token = detection.evidence.get("token_id")
        return token if isinstance(token, str) else None
    return {
        TargetKind.FAMILY: detection.family_id,
        TargetKind.USER: detection.user,
        TargetKind.AGENT: detection.agent,
        TargetKind.CLIENT: detection.client_id,
        TargetKind.SESSION: detection.session_id,
    }[kind]


class Policy:
    """An ordered set of rules; every matching rule contributes an order."""

    def __init__(self, rules: Sequence[PolicyRule] = DEFAULT_RULES) -> None:
        self.rules: tuple[PolicyRule, ...] = tuple(rules)

    @classmethod
    def default(cls) -> Policy:
        return cls(DEFAULT_RULES)

    def decide(self, detections: Sequence[Detection], *, now: datetime) -> list[RevocationOrder]:
        """The orders the detections call for, one per (rule, target): detections of one
        batch that hit the same target are merged into one order with all their ids.
        A detection that does not name the rule's target (e.g. no ``family_id``) is skipped.
        """
        merged: dict[str, tuple[RevocationOrder, list[str]]] = {}
        for detection in detections:
            for rule in self.rules:
                if not rule.matches(detection):
                    continue
                value = target_value(detection, rule.target)
                if not value:
                    continue
                order = RevocationOrder.create(
                    target=Target(kind=rule.target, tenant=detection.tenant, value=value),
                    action=rule.action,
                    cause=detection.detector,
                    reason=f"{rule.reason_prefix or rule.name}: {detection.reason}",
                    detection_ids=(detection.id,),
                    now=now,
                    mode=rule.mode,
                    rule=rule.name,
                )
                if order.idempotency_key in merged:
                    ids = merged[order.idempotency_key][1]
                    if detection.id not in ids:
                        ids.append(detection.id)
                else:
                    merged[order.idempotency_key] = (order, [detection.id])
        return [
            order.model_copy(update={"detection_ids": tuple(ids)}) for order, ids in merged.values()
        ]
