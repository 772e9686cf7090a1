"""destination: parallel use of one family (critical), new networks, user agents,
destinations, and too-frequent network changes."""

from __future__ import annotations

from typing import Any

from detectors import DestinationDetector, Engine, Severity
from tests.detectors.usage import AWAY, HOME, detect_all, engine_run, event, steady


def test_one_family_used_from_two_networks_at_once_is_caught_on_the_first_call() -> None:
    det = DestinationDetector()
    state: dict[str, Any] = {}
    calls = steady(30, step=60)
    legit = event(1800, eid="legit-1")
    thief = event(1812, asn=AWAY, ua="python-requests/2.31", eid="thief-1")
    found = detect_all(det, [*calls, legit, thief], state)
    assert len(found) == 1
    d = found[0]
    assert d.severity is Severity.CRITICAL and d.score == 1.0
    assert d.event_ids == ("thief-1", "legit-1")
    assert d.family_id == "fam-1"
    assert "token family fam-1" in d.reason and "as64999" in d.reason and "as64500" in d.reason
    assert d.evidence["seconds_apart"] == 12.0


def test_refreshes_are_left_to_refresh_reuse() -> None:
    det = DestinationDetector()
    state: dict[str, Any] = {}
    calls = [*steady(5, step=60), event(300, action="token.refreshed", asn=AWAY, audience=None)]
    assert detect_all(det, calls, state) == []
    thief = event(310, asn=AWAY)  # but the family's next use from elsewhere is parallel use
    found = detect_all(det, [thief], state)
    assert found and found[0].severity is Severity.CRITICAL


def test_a_user_who_travels_is_not_parallel_use_and_not_an_alarm_by_itself() -> None:
    det = DestinationDetector()
    state: dict[str, Any] = {}
    calls = steady(60, step=60)
    calls += steady(30, start=3600 + 1800, step=60, asn=64777)  # back 30 min later, elsewhere
    assert detect_all(det, calls, state) == []
    assert any(k.startswith("u/") and v.destination for k, v in state.items())


def test_an_agent_with_two_usual_egress_networks_is_not_parallel_use() -> None:
    det = DestinationDetector()
    state: dict[str, Any] = {}
    calls = [event(i * 30, asn=HOME if i % 2 else HOME + 1) for i in range(80)]
    assert detect_all(det, calls, state) == []


def test_a_new_network_is_remembered_in_the_evidence_of_a_combined_finding() -> None:
    det = DestinationDetector()
    state: dict[str, Any] = {}
    detect_all(det, steady(60, step=60), state)
    odd = event(3700, asn=AWAY, destination="exfil.example", family="fam-2")
    found = detect_all(det, [odd], state)
    assert len(found) == 1  # new network 0.45 and new destination 0.5 -> 0.725
    d = found[0]
    assert d.evidence["components"] == {"new_destination": 0.5, "new_network": 0.45}
    assert "switched from as64500 to network as64999, never used" in d.reason
    assert "new destination host exfil.example" in d.reason


def test_a_new_user_agent_alone_does_not_fire() -> None:
    det = DestinationDetector()
    state: dict[str, Any] = {}
    calls = [*steady(60, step=60), event(3700, ua="crm-bot/1.5")]
    assert detect_all(det, calls, state) == []


def test_an_attacker_interleaving_from_a_rare_network_adds_up_in_the_engine() -> None:
    engine = Engine([DestinationDetector()])
    state: dict[str, Any] = {}
    assert engine_run(engine, steady(120, step=30), state) == []
    found = []
    for k in range(6):  # one attacker call every 8 minutes, the agent keeps working
        t = 3600 + k * 480
        batch = [
            event(t, asn=AWAY, ua="python-requests/2.31", family="fam-x", token="x"),
            *steady(8, start=t + 30, step=55),
        ]
        found += engine_run(engine, batch, state)
    assert found, "the low-and-slow attacker must be caught"
    assert found[0].detector == "destination"
    assert found[0].evidence["carried_risk"] > 0


def test_state_is_bounded_and_expires() -> None:
    det = DestinationDetector()
    state: dict[str, Any] = {}
    for i in range(40):
        detect_all(det, [event(i * 10, asn=60000 + i, family=f"f{i}", ua=f"ua/{i}")], state)
    rec = next(v.destination for k, v in state.items() if k.startswith("u/"))
    assert len(rec.nets) <= det.config.max_networks and len(rec.uas) <= 4
    assert det.sweep(state, event(15 * 86400).time) > 0
    assert state == {}
