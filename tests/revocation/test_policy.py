"""The policy: refresh-token reuse revokes the family, keyed so repeats change nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from detectors.detection import Severity
from revocation import (
    Action,
    Mode,
    Policy,
    PolicyError,
    PolicyRule,
    RevocationOrder,
    Target,
    TargetKind,
)
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


@pytest.mark.parametrize(
    ("detector", "rule"),
    [
        ("destination", "parallel-use-revokes-family"),
        ("scope_drift", "ungranted-scope-revokes-family"),
    ],
)
def test_critical_usage_findings_revoke_the_family(detector: str, rule: str) -> None:
    critical = detection(detector=detector, severity=Severity.CRITICAL, event_id="e1")
    high = detection(detector=detector, severity=Severity.HIGH, event_id="e2")
    (o,) = Policy.default().decide([critical, high], now=NOW)
    assert (o.rule, o.action, o.target.kind, o.target.value) == (
        rule,
        Action.REVOKE,
        TargetKind.FAMILY,
        "fam-1",
    )
    assert o.detection_ids == (critical.id,)  # a high finding alone revokes nothing


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


def _signal(name: str, **fields: object) -> object:
    from detectors.detection import Detection

    base = {
        "id": f"det-{name}",
        "detector": "signal",
        "entity": "acme/user/jane",
        "tenant": "acme",
        "score": 1.0,
        "severity": Severity.CRITICAL,
        "reason": name,
        "time": NOW,
        "event_ids": (f"set-{name}",),
        "user": "jane",
        "evidence": {"signal": name},
    }
    base.update(fields)
    return Detection.model_validate(base)


def test_signal_rules_pick_their_target_or_fall_back() -> None:
    policy = Policy.default()
    (o,) = policy.decide([_signal("session_revoked", session_id="s-1")], now=NOW)  # type: ignore[list-item]
    assert (o.action, o.target.kind, o.target.value) == (Action.REVOKE, TargetKind.SESSION, "s-1")
    (o,) = policy.decide([_signal("session_revoked")], now=NOW)  # type: ignore[list-item]
    assert (o.target.kind, o.target.value) == (TargetKind.USER, "jane")
    (o,) = policy.decide([_signal("account_disabled")], now=NOW)  # type: ignore[list-item]
    assert (o.action, o.target.kind) == (Action.KILL_SWITCH, TargetKind.USER)
    (o,) = policy.decide([_signal("account_enabled", severity=Severity.INFO)], now=NOW)  # type: ignore[list-item]
    assert o.action == Action.RELEASE
    assert o.releases == ("risc-account-disabled-kills-user",)
    assert policy.decide([_signal("opt_in", severity=Severity.LOW)], now=NOW) == []  # type: ignore[list-item]


def test_each_signal_event_is_its_own_cause() -> None:
    policy = Policy.default()
    a = policy.decide([_signal("account_disabled")], now=NOW)  # type: ignore[list-item]
    b = policy.decide([_signal("account_disabled", event_ids=("set-other",))], now=NOW)  # type: ignore[list-item]
    assert a[0].idempotency_key != b[0].idempotency_key
    again = policy.decide([_signal("account_disabled")], now=NOW)  # type: ignore[list-item]
    assert again[0].idempotency_key == a[0].idempotency_key


def test_policy_from_config_replaces_rules_and_switches_modes() -> None:
    policy = Policy.from_config(
        [{"name": "r1", "detector": "refresh_reuse", "action": "alert_only", "target": "family"}],
        {"r1": "dry_run"},
    )
    assert [(r.name, r.action, r.mode) for r in policy.rules] == [
        ("r1", Action.ALERT_ONLY, Mode.DRY_RUN)
    ]
    assert Policy.from_config(None, {"refresh-reuse-revokes-family": "dry_run"}).rules[0].mode == (
        Mode.DRY_RUN
    )


@pytest.mark.parametrize(
    ("rules", "modes", "needle"),
    [
        ([{"detector": "x", "action": "revoke", "target": "family"}], None, "needs a name"),
        ([{"name": "a", "detector": "x", "action": "nuke", "target": "family"}], None, "action"),
        ([{"name": "a", "detector": "x", "action": "revoke", "target": "planet"}], None, "target"),
        ([{"name": "a", "detector": "x", "action": "revoke"}], None, "target is required"),
        (
            [{"name": "a", "detector": "x", "action": "revoke", "target": "user", "oops": 1}],
            None,
            "unknown keys",
        ),
        (None, {"nope": "dry_run"}, "unknown rule"),
        (None, {"refresh-reuse-revokes-family": "maybe"}, "mode"),
    ],
)
def test_bad_policy_config_names_the_problem(rules: object, modes: object, needle: str) -> None:
    with pytest.raises(PolicyError, match=needle):
        Policy.from_config(rules, modes)  # type: ignore[arg-type]
