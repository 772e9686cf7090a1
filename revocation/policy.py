"""The policy: which detections become which revocation orders.

DESIGN.md, "One path for every signal": every action comes from a ``Detection`` through the
policy. A rule matches a detector (and, for the ``signal`` detector, the SSF event names)
at or above a severity and names what to act on: its ``target`` kind, or the first of its
``fallback`` kinds the detection names. The order's idempotency key is derived from
(target, action, cause). The cause is the detector — so a reuse detected again on an
already revoked family yields the same key and changes nothing — or, for rules with
``cause_per_event``, the detector and the detection's events: every Shared Signal is its own
cause (an account disabled, enabled and disabled again is thrown twice), while the same SET
delivered twice is still one order.

The defaults are the README's policy table; ``Policy.from_config`` replaces them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from detectors.detection import Detection, Severity
from revocation.order import Action, Mode, RevocationOrder, Target, TargetKind

_RANK = {s: i for i, s in enumerate(Severity)}


class PolicyError(ValueError):
    """A policy configuration that cannot be used; the message names the rule and field."""


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """``detector`` at ``min_severity`` or above → ``action`` on the detection's ``target``
    (or the first ``fallback`` kind it names). ``signals``, when given, restricts the rule to
    detections whose ``evidence["signal"]`` is one of them. ``releases`` names the rules
    whose kill switches a ``release`` order may release. ``reason_prefix`` heads the order's
    reason (default: the rule's name).
    """

    name: str
    detector: str
    min_severity: Severity
    action: Action
    target: TargetKind
    mode: Mode = Mode.ENFORCE
    reason_prefix: str = ""
    signals: tuple[str, ...] = ()
    fallback: tuple[TargetKind, ...] = ()
    cause_per_event: bool = False
    releases: tuple[str, ...] = field(default=())

    def matches(self, detection: Detection) -> bool:
        if detection.detector != self.detector:
            return False
        if _RANK[detection.severity] < _RANK[self.min_severity]:
            return False
        return not self.signals or detection.evidence.get("signal") in self.signals

    def target_of(self, detection: Detection) -> Target | None:
        for kind in (self.target, *self.fallback):
            value = target_value(detection, kind)
            if value:
                return Target(kind=kind, tenant=detection.tenant, value=value)
        return None

    def cause_of(self, detection: Detection) -> str:
        if self.cause_per_event:
            return f"{detection.detector}:{','.join(detection.event_ids)}"
        return detection.detector


#: RFC 9700 §4.14.2: on refresh token reuse, revoke the whole family.
REFRESH_REUSE_REVOKES_FAMILY = PolicyRule(
    name="refresh-reuse-revokes-family",
    detector="refresh_reuse",
    min_severity=Severity.INFO,
    action=Action.REVOKE,
    target=TargetKind.FAMILY,
    reason_prefix="refresh token reuse",
)

#: CAEP 1.0 §3.1 session-revoked: the session's families, or the user's when none is named.
SESSION_REVOKED = PolicyRule(
    name="caep-session-revoked-revokes-families",
    detector="signal",
    min_severity=Severity.HIGH,
    action=Action.REVOKE,
    target=TargetKind.SESSION,
    fallback=(TargetKind.USER,),
    signals=("session_revoked", "sessions_revoked"),
    cause_per_event=True,
    reason_prefix="CAEP session revoked",
)

#: RISC 1.0 account-disabled: every agent acting for the user is cut off until enabled.
ACCOUNT_DISABLED = PolicyRule(
    name="risc-account-disabled-kills-user",
    detector="signal",
    min_severity=Severity.HIGH,
    action=Action.KILL_SWITCH,
    target=TargetKind.USER,
    signals=("account_disabled",),
    cause_per_event=True,
    reason_prefix="RISC account disabled",
)

#: RISC 1.0 credential-compromise, account-purged: kill switch until a human releases it.
ACCOUNT_COMPROMISED = PolicyRule(
    name="risc-compromise-kills-user",
    detector="signal",
    min_severity=Severity.HIGH,
    action=Action.KILL_SWITCH,
    target=TargetKind.USER,
    signals=("credential_compromise", "account_purged"),
    cause_per_event=True,
    reason_prefix="RISC account compromised or purged",
)

#: RISC 1.0 account-enabled releases only the kill switch account-disabled threw.
ACCOUNT_ENABLED = PolicyRule(
    name="risc-account-enabled-releases-user",
    detector="signal",
    min_severity=Severity.INFO,
    action=Action.RELEASE,
    target=TargetKind.USER,
    signals=("account_enabled",),
    cause_per_event=True,
    releases=(ACCOUNT_DISABLED.name,),
    reason_prefix="RISC account enabled",
)

#: CAEP 1.0 credential-change / token-claims-change: the families bound to the credential or
#: token (a ``jwt_id`` subject names a token: its family), else the session's, else the user's.
CREDENTIAL_CHANGE = PolicyRule(
    name="caep-credential-change-revokes-families",
    detector="signal",
    min_severity=Severity.HIGH,
    action=Action.REVOKE,
    target=TargetKind.TOKEN,
    fallback=(TargetKind.FAMILY, TargetKind.SESSION, TargetKind.USER),
    signals=("credential_change", "token_claims_change", "tokens_revoked", "token_revoked"),
    cause_per_event=True,
    reason_prefix="CAEP credential or token claims changed",
)

#: CAEP 1.0 device-compliance-change to not-compliant: the families used from that device.
DEVICE_NOT_COMPLIANT = PolicyRule(
    name="caep-device-not-compliant-revokes-families",
    detector="signal",
    min_severity=Severity.HIGH,
    action=Action.REVOKE,
    target=TargetKind.DEVICE,
    signals=("device_compliance_change",),
    cause_per_event=True,
    reason_prefix="CAEP device not compliant",
)

#: RFC 9700 §4.14 (sender-constrained or not, a bearer token used from two places at once
#: was copied): the ``destination`` detector's critical finding is a family used from two
#: networks inside its window — revoke the family.
PARALLEL_USE_REVOKES_FAMILY = PolicyRule(
    name="parallel-use-revokes-family",
    detector="destination",
    min_severity=Severity.CRITICAL,
    action=Action.REVOKE,
    target=TargetKind.FAMILY,
    reason_prefix="token family used from two networks at once",
)

#: RFC 6749 §3.3: a token is good only for the scope granted at issuance; the
#: ``scope_drift`` detector's critical finding is a scope exercised outside that grant.
UNGRANTED_SCOPE_REVOKES_FAMILY = PolicyRule(
    name="ungranted-scope-revokes-family",
    detector="scope_drift",
    min_severity=Severity.CRITICAL,
    action=Action.REVOKE,
    target=TargetKind.FAMILY,
    reason_prefix="scope used outside the grant",
)

DEFAULT_RULES: tuple[PolicyRule, ...] = (
    REFRESH_REUSE_REVOKES_FAMILY,
    SESSION_REVOKED,
    ACCOUNT_DISABLED,
    ACCOUNT_COMPROMISED,
    ACCOUNT_ENABLED,
    CREDENTIAL_CHANGE,
    DEVICE_NOT_COMPLIANT,
    PARALLEL_USE_REVOKES_FAMILY,
    UNGRANTED_SCOPE_REVOKES_FAMILY,
)


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
        TargetKind.DEVICE: detection.device_id,
    }[kind]


def _enum(cls: Any, rule: str, key: str, value: Any) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise PolicyError(f"rule {rule!r}: {key} {value!r} is not one of {allowed}") from None


def rule_from_config(data: Mapping[str, Any]) -> PolicyRule:
    """A rule from its config table (the README's policy section shows the keys)."""
    known = set(PolicyRule.__dataclass_fields__)
    name = str(data.get("name") or "")
    if not name:
        raise PolicyError("every policy rule needs a name")
    unknown = set(data) - known
    if unknown:
        raise PolicyError(f"rule {name!r}: unknown keys {sorted(unknown)}")
    for key in ("detector", "action", "target"):
        if key not in data:
            raise PolicyError(f"rule {name!r}: {key} is required")
    return PolicyRule(
        name=name,
        detector=str(data["detector"]),
        min_severity=_enum(Severity, name, "min_severity", data.get("min_severity", "info")),
        action=_enum(Action, name, "action", data["action"]),
        target=_enum(TargetKind, name, "target", data["target"]),
        mode=_enum(Mode, name, "mode", data.get("mode", "enforce")),
        reason_prefix=str(data.get("reason_prefix", "")),
        signals=tuple(str(s) for s in data.get("signals", ())),
        fallback=tuple(_enum(TargetKind, name, "fallback", k) for k in data.get("fallback", ())),
        cause_per_event=bool(data.get("cause_per_event", False)),
        releases=tuple(str(r) for r in data.get("releases", ())),
    )


class Policy:
    """An ordered set of rules; every matching rule contributes an order."""

    def __init__(self, rules: Sequence[PolicyRule] = DEFAULT_RULES) -> None:
        names = [r.name for r in rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise PolicyError(f"duplicate rule names: {dupes}")
        self.rules: tuple[PolicyRule, ...] = tuple(rules)

    @classmethod
    def default(cls) -> Policy:
        return cls(DEFAULT_RULES)

    @classmethod
    def from_config(
        cls,
        rules: Sequence[Mapping[str, Any]] | None = None,
        modes: Mapping[str, str] | None = None,
    ) -> Policy:
        """``rules`` replace the defaults when given; ``modes`` switch rules (by name) between
        ``enforce`` and ``dry_run``."""
        built = [rule_from_config(r) for r in rules] if rules is not None else list(DEFAULT_RULES)
        by_name = {r.name: r for r in built}
        for name, mode in (modes or {}).items():
            if name not in by_name:
                raise PolicyError(f"mode given for unknown rule {name!r}; rules: {sorted(by_name)}")
            by_name[name] = _with_mode(by_name[name], _enum(Mode, name, "mode", mode))
        return cls([by_name[r.name] for r in built])

    def decide(self, detections: Sequence[Detection], *, now: datetime) -> list[RevocationOrder]:
        """The orders the detections call for, one per (rule, target): detections of one
        batch that hit the same target are merged into one order with all their ids.
        A detection that names none of the rule's target kinds is skipped.
        """
        merged: dict[str, tuple[RevocationOrder, list[str]]] = {}
        for detection in detections:
            for rule in self.rules:
                if not rule.matches(detection):
                    continue
                target = rule.target_of(detection)
                if target is None:
                    continue
                order = RevocationOrder.create(
                    target=target,
                    action=rule.action,
                    cause=rule.cause_of(detection),
                    reason=f"{rule.reason_prefix or rule.name}: {detection.reason}",
                    detection_ids=(detection.id,),
                    now=now,
                    mode=rule.mode,
                    rule=rule.name,
                    releases=rule.releases,
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


def _with_mode(rule: PolicyRule, mode: Mode) -> PolicyRule:
    return replace(rule, mode=mode)
