"""burst: many distinct tools in a short window, against the agent's usual."""

from __future__ import annotations

from typing import Any

from detectors import BurstDetector
from tests.detectors.usage import detect_all, event

TOOLS = [f"https://api.t{i}.example" for i in range(12)]


def usual(n: int, *, start: float = 0.0) -> list[Any]:
    """The agent's steady sequence over its three tools, a call every 20 s."""
    return [event(start + i * 20, audience=TOOLS[i % 3]) for i in range(n)]


def test_a_steady_tool_sequence_does_not_fire() -> None:
    det = BurstDetector()
    state: dict[str, Any] = {}
    assert detect_all(det, usual(200), state) == []


def test_a_dozen_tools_in_half_a_minute_fires_once() -> None:
    det = BurstDetector()
    state: dict[str, Any] = {}
    detect_all(det, usual(100), state)
    burst = [event(2000 + i * 2.5, audience=TOOLS[i]) for i in range(12)]
    found = detect_all(det, burst, state)
    assert len(found) == 1, "one burst, one finding"
    d = found[0]
    assert d.detector == "burst" and d.entity.endswith(TOOLS[d.evidence["distinct_audiences"] - 1])
    assert d.evidence["distinct_audiences"] >= d.evidence["trigger"] >= 5
    assert "distinct APIs within 60s" in d.reason


def test_a_cold_agent_needs_more_tools() -> None:
    det = BurstDetector()
    state: dict[str, Any] = {}
    six = [event(i * 3.0, audience=TOOLS[i]) for i in range(6)]
    assert detect_all(det, six, state) == []  # cold trigger is 5 + 2
    state.clear()
    seven = [event(i * 3.0, audience=TOOLS[i]) for i in range(7)]
    assert len(detect_all(det, seven, state)) == 1


def test_state_is_bounded_per_agent_and_user() -> None:
    det = BurstDetector(None)
    state: dict[str, Any] = {}
    calls = [event(i * 100.0, audience=f"https://api.x{i}.example") for i in range(40)]
    detect_all(det, calls, state)
    (rec,) = [v for k, v in state.items() if k.startswith("bu/")]
    assert len(rec.seen) <= det.config.max_audiences
