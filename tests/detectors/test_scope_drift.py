"""scope_drift: never/rarely used scopes, weighted by sensitivity; ungranted is critical."""

from __future__ import annotations

from typing import Any

import pytest

from detectors import ScopeDriftConfig, ScopeDriftDetector, Severity
from tests.detectors.usage import detect_all, event, issued, steady

GRANT = ["leads:read", "leads:write", "leads:delete", "contacts:read"]


def mature(det: ScopeDriftDetector, state: dict[str, Any], **kw: Any) -> None:
    calls = [issued(0, GRANT, **kw), *steady(60, start=1, step=60, **kw)]
    assert detect_all(det, calls, state) == []


def test_a_sensitive_scope_never_used_fires_with_an_actionable_reason() -> None:
    det = ScopeDriftDetector()
    state: dict[str, Any] = {}
    mature(det, state)
    found = detect_all(det, [event(3700, scopes=["leads:delete"])], state)
    assert len(found) == 1
    d = found[0]
    assert d.detector == "scope_drift" and d.severity is Severity.HIGH
    assert d.score == pytest.approx(0.9)
    assert d.reason == (
        "agent crm-followup for jane@acme.example used scope `leads:delete` on "
        "https://api.crm.example, never seen in 1.0 h of 60 calls; weight 0.9"
    )
    assert d.evidence["uses_before"] == 0 and d.evidence["calls_on_record"] == 60


def test_a_never_used_read_scope_is_low_and_does_not_fire_alone() -> None:
    det = ScopeDriftDetector()
    state: dict[str, Any] = {}
    mature(det, state)
    assert detect_all(det, [event(3700, scopes=["contacts:read"])], state) == []


def test_a_scope_outside_the_grant_is_critical_even_for_a_new_agent() -> None:
    det = ScopeDriftDetector()
    state: dict[str, Any] = {}
    calls = [issued(0, ["leads:read"]), event(5, scopes=["leads:read", "admin:users"])]
    found = detect_all(det, calls, state)
    assert len(found) == 1
    assert found[0].severity is Severity.CRITICAL and found[0].score == 1.0
    assert "admin:users" in found[0].reason and "granted only `leads:read`" in found[0].reason


def test_a_new_agent_has_no_habits_to_drift_from() -> None:
    det = ScopeDriftDetector()
    state: dict[str, Any] = {}
    calls = [issued(0, GRANT), event(5, scopes=["leads:delete"]), event(9, scopes=["leads:write"])]
    assert detect_all(det, calls, state) == []


def test_a_deploy_that_widens_the_grant_is_not_an_escalation() -> None:
    det = ScopeDriftDetector()
    state: dict[str, Any] = {}
    calls = [issued(0, ["leads:read"]), *steady(60, start=1, step=60)]
    calls.append(issued(3650, [*GRANT, "leads:export"], family="fam-2", token="rt-9"))
    calls.append(event(3700, scopes=["leads:export"], family="fam-2"))
    assert detect_all(det, calls, state) == []
    # the same scope from the old, narrower grant would have been critical
    found = detect_all(det, [event(3710, scopes=["leads:export"], family="fam-1")], state)
    assert found and found[0].severity is Severity.CRITICAL


def test_a_scope_the_agent_population_uses_is_not_novel() -> None:
    det = ScopeDriftDetector()
    state: dict[str, Any] = {}
    for u in range(5):
        calls = steady(30, step=60, user=f"u{u}@acme.example", scopes=["leads:write"])
        detect_all(det, calls, state)
    mature(det, state)
    assert detect_all(det, [event(3700, scopes=["leads:write"])], state) == []


def test_the_weight_table_is_configurable_and_first_match_wins() -> None:
    det = ScopeDriftDetector.from_config({"weights": {"leads:*": 0.1}})
    assert det.weight("leads:delete") == 0.1
    assert det.weight("billing:delete") == 0.9
    assert det.weight("billing:admin") == 1.0
    assert det.weight("whatever") == 0.4
    state: dict[str, Any] = {}
    mature(det, state)
    assert detect_all(det, [event(3700, scopes=["leads:delete"])], state) == []
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        ScopeDriftConfig(weights={"x": 2.0})


def test_a_flagged_scope_is_not_learned_and_state_is_bounded() -> None:
    det = ScopeDriftDetector()
    state: dict[str, Any] = {}
    mature(det, state)
    first = detect_all(det, [event(3700, scopes=["leads:delete"])], state)
    again = detect_all(det, [event(3760, scopes=["leads:delete"])], state)
    assert first and again  # still never seen: it was not learned
    for i in range(30):
        detect_all(det, [event(4000 + i, scopes=[f"x{i}:read"])], state)
    rec = next(v.scope for k, v in state.items() if k.startswith("u/"))
    assert len(rec.counts) <= det.config.max_scopes
