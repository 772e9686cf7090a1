"""volume: rates far above the entity's (or its population's) baseline, above a floor."""

from __future__ import annotations

from typing import Any

import orjson

from detectors import Severity, VolumeConfig, VolumeDetector
from detectors.records import to_json
from tests.detectors.usage import detect_all, event, steady


def test_a_spike_far_above_its_own_baseline_fires() -> None:
    det = VolumeDetector()
    state: dict[str, Any] = {}
    assert detect_all(det, steady(90, step=60), state) == []  # 1 call a minute for 1.5 h
    spike = [event(90 * 60 + i * 1.5) for i in range(40)]  # 40 a minute
    found = detect_all(det, spike, state)
    assert found, "a 40x spike must fire"
    first = found[0]
    assert first.detector == "volume" and first.severity is Severity.HIGH
    assert first.evidence["baseline"] == "own"
    assert first.evidence["count"] >= first.evidence["trigger"] >= 20
    assert "calls to https://api.crm.example in the last 1 min" in first.reason
    assert "agent crm-followup for jane@acme.example" in first.reason


def test_steady_traffic_and_a_small_burst_under_the_floor_do_not_fire() -> None:
    det = VolumeDetector()
    state: dict[str, Any] = {}
    calls = steady(120, step=20)  # 3 a minute for 40 min
    calls += [event(2400 + i * 3) for i in range(12)]  # 12 quick calls: under the 20 floor
    assert detect_all(det, calls, state) == []


def test_cold_start_uses_the_agent_population_baseline() -> None:
    det = VolumeDetector()
    state: dict[str, Any] = {}
    history = []
    for u in range(4):  # four mature users of the same agent, 1 call a minute
        history += steady(80, step=60, user=f"user{u}@acme.example", start=u)
    history.sort(key=lambda e: e.time)
    assert detect_all(det, history, state) == []
    newcomer = [event(4800 + i * 1.5, user="new@acme.example") for i in range(40)]
    found = detect_all(det, newcomer, state)
    assert found and found[0].evidence["baseline"] == "population"


def test_a_new_agent_without_population_needs_the_cold_floor() -> None:
    det = VolumeDetector()
    state: dict[str, Any] = {}
    moderate = [event(i * 2.0, agent="brand-new") for i in range(30)]  # 30 a minute
    assert detect_all(det, moderate, state) == []  # under 2 x the 20 floor
    heavy = [event(120 + i * 0.5, agent="brand-new") for i in range(60)]  # 120 a minute
    found = detect_all(det, heavy, state)
    assert found and found[0].evidence["baseline"] == "none"


def test_flagged_points_are_not_learned() -> None:
    det = VolumeDetector()
    state: dict[str, Any] = {}
    detect_all(det, steady(90, step=60), state)
    key = next(k for k in state if k.startswith("u/"))
    spike = [event(5400 + i) for i in range(60)]
    found = detect_all(det, spike, state)
    flagged = len({d.event_ids[0] for d in found})
    learned_before = state[key].volume.long
    assert flagged > 20
    detect_all(det, [event(5460 + i) for i in range(10)], state)  # still spiking
    assert state[key].volume.long <= learned_before + 0.01  # the baseline counter did not grow


def test_state_is_small_json_and_expires() -> None:
    det = VolumeDetector()
    state: dict[str, Any] = {}
    detect_all(det, steady(50, step=60), state)
    entity = [v for k, v in state.items() if k.startswith("u/")]
    assert len(entity) == 1 and len(orjson.dumps(entity[0], default=to_json)) < 200
    later = event(50 * 60 + 15 * 86400).time
    assert det.sweep(state, later) == 2  # the entity and its population record
    assert state == {}


def test_config_is_checked() -> None:
    import pytest

    with pytest.raises(ValueError, match="three values"):
        VolumeConfig.from_params({"floors": [1, 2]})
    assert VolumeDetector.from_config({"floors": [5, 50, 100]}).config.floors == (5.0, 50.0, 100.0)
