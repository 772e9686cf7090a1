"""Refresh-token reuse scenarios, each its own test (foundation issue, item 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detectors import Engine, RefreshReuseConfig, RefreshReuseDetector, Severity
from ingest import AuditEvent, TokenHasher

T0 = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)
HASHER = TokenHasher(b"k" * 32)
HOME = {"ip": "203.0.113.5", "asn": 64500}
AWAY = {"ip": "198.51.100.7", "asn": 64999}


def refresh(
    parent: str,
    child: str | None,
    *,
    at: float,
    family: str | None = "fam-1",
    client: str = "agent-crm",
    source: dict[str, Any] | None = None,
    outcome: str = "success",
    action: str = "token.refreshed",
    user: str = "jane@acme.example",
    **attrs: Any,
) -> AuditEvent:
    token: dict[str, Any] = {"parent_id": parent, "type": "refresh_token"}
    if child is not None:
        token["id"] = child
    if family is not None:
        token["family_id"] = family
    return AuditEvent.model_validate(
        {
            "time": (T0 + timedelta(seconds=at)).isoformat(),
            "tenant": "acme",
            "action": action,
            "user": user,
            "agent": "crm-followup",
            "client_id": client,
            "token": token,
            "source": source if source is not None else HOME,
            "outcome": outcome,
            **attrs,
        },
        context={"hasher": HASHER},
    )


def run(events: list[AuditEvent], detector: RefreshReuseDetector | None = None) -> list[Any]:
    engine = Engine([detector or RefreshReuseDetector()])
    state: dict[str, Any] = {}
    return engine.process(events, state, T0 + timedelta(hours=1))


def rotation(n: int, *, start: float = 0.0, step: float = 600.0) -> list[AuditEvent]:
    """rt-0 -> rt-1 -> ... -> rt-n, one refresh every ``step`` seconds."""
    return [refresh(f"rt-{i}", f"rt-{i + 1}", at=start + i * step) for i in range(n)]


def test_normal_rotation_is_quiet() -> None:
    assert run(rotation(20)) == []


def test_reuse_after_rotation_kills_the_family() -> None:
    events = [*rotation(3), refresh("rt-1", "rt-x", at=3 * 600 + 5, source=AWAY)]
    found = run(events)
    assert len(found) == 1
    d = found[0]
    assert d.detector == "refresh_reuse"
    assert d.severity is Severity.CRITICAL
    assert d.score == 1.0
    assert d.family_id == "fam-1"
    assert d.entity == "acme/family/fam-1"
    assert d.event_ids == (events[-1].id,)
    assert d.evidence["presented_token"] == "rt-1"
    assert d.evidence["first_issued_token"] == "rt-2"
    assert d.evidence["generations_behind"] == 1
    assert d.evidence["network"] == "as64999"
    assert "presented again" in d.reason


def test_benign_concurrent_refresh_inside_grace_is_not_reuse() -> None:
    detector = RefreshReuseDetector()
    state: dict[str, Any] = {}
    events = [*rotation(2), refresh("rt-1", "rt-2b", at=600 + 3)]
    assert Engine([detector]).process(events, state, T0) == []
    assert state["rr/acme/fam-1"]["n"] == 1  # counted, not reported


def test_benign_race_then_third_presentation_is_reuse() -> None:
    events = [*rotation(2), refresh("rt-1", "rt-2b", at=603), refresh("rt-1", "rt-2c", at=605)]
    assert len(run(events)) == 1


def test_older_generation_inside_grace_is_reuse() -> None:
    # rt-0 -> rt-1 -> rt-2 within seconds; rt-0 replayed still inside the window
    events = [
        refresh("rt-0", "rt-1", at=0),
        refresh("rt-1", "rt-2", at=2),
        refresh("rt-0", "rt-1b", at=4),
    ]
    found = run(events)
    assert len(found) == 1
    assert found[0].evidence["generations_behind"] == 1
    assert found[0].evidence["seconds_after_rotation"] == 4.0


def test_other_network_inside_grace_is_reuse() -> None:
    events = [*rotation(2), refresh("rt-1", "rt-2b", at=601, source=AWAY)]
    found = run(events)
    assert len(found) == 1
    assert found[0].evidence["first_network"] == "as64500"
    assert found[0].evidence["network"] == "as64999"


def test_other_client_inside_grace_is_reuse() -> None:
    events = [*rotation(2), refresh("rt-1", "rt-2b", at=601, client="someone-else")]
    assert len(run(events)) == 1


def test_replay_after_grace_from_same_network_is_reuse() -> None:
    events = [*rotation(2), refresh("rt-1", "rt-2b", at=600 + 11)]
    assert len(run(events)) == 1


def test_same_second_replay_from_another_network_is_reuse() -> None:
    events = [refresh("rt-0", "rt-1", at=0), refresh("rt-0", "rt-1b", at=0, source=AWAY)]
    assert len(run(events)) == 1


def test_same_second_race_from_same_client_and_network_is_benign() -> None:
    events = [refresh("rt-0", "rt-1", at=0), refresh("rt-0", "rt-1b", at=0)]
    assert run(events) == []


def test_same_exchange_delivered_twice_is_not_reuse() -> None:
    events = [*rotation(3), rotation(3)[1]]
    assert run(events) == []


def test_separate_families_of_one_user_stay_independent() -> None:
    events = [
        refresh("a-0", "a-1", at=0, family="fam-a"),
        refresh("b-0", "b-1", at=1, family="fam-b"),
        refresh("a-1", "a-2", at=700, family="fam-a"),
        # b-0 is consumed in fam-b only; presenting a-0's sibling id in fam-b is new there
        refresh("b-1", "b-2", at=800, family="fam-b"),
        refresh("a-1", "a-x", at=900, family="fam-a", source=AWAY),
    ]
    found = run(events)
    assert [d.family_id for d in found] == ["fam-a"]


def test_same_token_ids_in_two_tenants_do_not_mix() -> None:
    first = refresh("rt-0", "rt-1", at=0)
    other = AuditEvent.model_validate(
        {**first.model_dump(mode="json"), "id": "other", "tenant": "globex"},
        context={"hasher": HASHER},
    )
    assert run([first, other]) == []


def test_failed_refresh_presenting_consumed_token_is_reuse() -> None:
    events = [
        *rotation(2),
        refresh("rt-0", None, at=2000, outcome="failure", action="auth.failed", source=AWAY),
    ]
    found = run(events)
    assert len(found) == 1
    assert found[0].evidence["outcome"] == "failure"


def test_failed_refresh_of_unknown_token_is_quiet() -> None:
    assert run([refresh("never-seen", None, at=0, outcome="failure", action="auth.failed")]) == []


def test_idp_reported_reuse_is_a_detection() -> None:
    event = refresh(
        "rt-9",
        None,
        at=0,
        action="auth.failed",
        outcome="failure",
        attributes={"reason": "refresh_token_reused", "vendor": "okta"},
    )
    found = run([event])
    assert len(found) == 1
    assert found[0].severity is Severity.CRITICAL
    assert found[0].reason.startswith("okta reported reuse")


def test_family_found_through_index_when_events_carry_no_family_id() -> None:
    events = [
        refresh("rt-0", "rt-1", at=0, family=None),
        refresh("rt-1", "rt-2", at=600, family=None),
        refresh("rt-0", "rt-x", at=1200, family=None, source=AWAY),
    ]
    found = run(events)
    assert len(found) == 1
    assert found[0].family_id == "rt-0"


def test_family_memory_expires_after_lifetime() -> None:
    detector = RefreshReuseDetector(RefreshReuseConfig(family_lifetime_seconds=3600))
    events = [refresh("rt-0", "rt-1", at=0), refresh("rt-0", "rt-x", at=7200, source=AWAY)]
    assert run(events, detector) == []


def test_consumed_tokens_are_capped_per_family() -> None:
    detector = RefreshReuseDetector(RefreshReuseConfig(max_consumed_per_family=4))
    state: dict[str, Any] = {}
    Engine([detector]).process(rotation(10), state, T0)
    assert len(state["rr/acme/fam-1"]["c"]) == 4
    # the oldest were forgotten: replaying rt-0 is no longer recognised
    assert Engine([detector]).process([refresh("rt-0", "z", at=9000)], state, T0) == []
    # a recent one still is
    assert len(Engine([detector]).process([refresh("rt-8", "z", at=9001)], state, T0)) == 1


def test_sweep_forgets_idle_families_and_their_index() -> None:
    detector = RefreshReuseDetector(RefreshReuseConfig(family_lifetime_seconds=3600))
    state: dict[str, Any] = {}
    Engine([detector]).process(
        [refresh("rt-0", "rt-1", at=0, family=None), refresh("x-0", "x-1", at=5000, family="f2")],
        state,
        T0,
    )
    removed = detector.sweep(state, T0 + timedelta(seconds=5000))
    assert removed >= 2
    assert "rr/acme/rt-0" not in state
    assert not any(k.startswith("rrt/acme/rt-") for k in state)
    assert "rr/acme/f2" in state


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="grace_seconds"):
        RefreshReuseConfig(grace_seconds=-1)
