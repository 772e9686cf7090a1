"""The policy: refresh-token reuse revokes the family, keyed so repeats change nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from detectors.detection import Severity
from revocation import Action, Mode, Policy, PolicyRule, RevocationOrder, Target, TargetKind
from tests.revocation.helpers import detection

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_default_policy_revokes_the_family_on_refresh_reuse() -> None:
    d = detection(family="fam-1", reason="token t0 presented again from AS64999")
    (o,) = Policy.default().decide([d], now=NOW)
    assert o.target == Target(kind=TargetKind.FAMILY, tenant="acme", value="fam-1")
    assert (o.action, o.mode, o.rule) == (
        Action.REVOKE,
        Mode.ENFORCE,
        "refresh-reuse-revokes-family",
    )
    assert o.reason == "refresh token reuse: token t0 presented again from AS64999"
    assert o.detection_ids == (d.id,)
    assert o.created_at == NOW
    assert o.idempotency_key == RevocationOrder.key_for(o.target, Action.REVOKE, "refresh_reuse")


def test_repeated_reuse_on_a_family_gives_the_same_idempotency_key() -> None:
    policy = Policy()
    first = policy.decide([detection(event_id="e1")], now=NOW)
    later = policy.decide([detection(event_id="e9")], now=NOW.replace(hour=10))
    other_family = policy.decide([detection(event_id="e2", family="fam-2")], now=NOW)
    assert first[0].idempotency_key == later[0].idempotency_key
    assert first[0].id == later[0].id
    assert first[0].idempotency_key != other_family[0].idempotency_key


def test_detections_of_one_batch_on_one_family_merge_into_one_order() -> None:
    a, b = detection(event_id="e1"), detection(event_id="e2")
    c = detection(event_id="e3", family="fam-2")
    orders = Policy().decide([a, b, a, c], now=NOW)
    assert [(o.target.value, o.detection_ids) for o in orders] == [
        ("fam-1", (a.id, b.id)),
        ("fam-2", (c.id,)),
    ]


def test_detections_without_a_family_or_from_other_detectors_are_skipped() -> None:
    orders = Policy().decide(
        [detection(family=None), detection(detector="volume", event_id="e5")], now=NOW
    )
    assert orders == []


def test_rules_respect_min_severity_and_mode() -> None:
    rule = PolicyRule(
        name="volume-kills-agent",
        detector="volume",
        min_severity=Severity.HIGH,
        action=Action.KILL_SWITCH,
        target=TargetKind.AGENT,
        mode=Mode.DRY_RUN,
    )
    policy = Policy([rule])
    low = detection(detector="volume", severity=Severity.MEDIUM, reason="3x baseline")
    high = detection(detector="volume", severity=Severity.HIGH, event_id="e2", reason="40x")
    (o,) = policy.decide([low, high], now=NOW)
    assert o.target == Target(kind=TargetKind.AGENT, tenant="acme", value="crm-followup")
    assert (o.action, o.mode, o.reason) == (
        Action.KILL_SWITCH,
        Mode.DRY_RUN,
        "volume-kills-agent: 40x",
    )
    assert o.detection_ids == (high.id,)
