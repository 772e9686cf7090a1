"""The Engine's risk combination, threshold, Shared-Signal boost and cool-down."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

import orjson
import pytest

from detectors import (
    Detection,
    Engine,
    EngineConfig,
    Finding,
    Observation,
    RefreshReuseDetector,
    Severity,
    build_detectors,
    build_engine,
    raise_risk,
)
from detectors.records import to_json
from ingest import AuditEvent
from tests.detectors.usage import at, engine_run, event


class Fixed:
    """A usage detector that reports the score it is told for marked events."""

    def __init__(self, name: str, scores: dict[str, float], critical: bool = False) -> None:
        self.name = name  # type: ignore[misc]
        self.scores = scores
        self.critical = critical

    name: ClassVar[str]

    def detect(self, event: AuditEvent, state: Any, now: datetime) -> list[Detection]:
        return []

    def sweep(self, state: Any, now: datetime) -> int:
        return 0

    def observe(self, obs: Observation, state: Any) -> Finding | None:
        s = self.scores.get(obs.event.id)
        if s is None:
            return None
        return Finding(self.name, s, f"{self.name} says {s}", {"s": s}, critical=self.critical)


class CountingBatch:
    name = "batchy"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def detect(self, event: AuditEvent, state: Any, now: datetime) -> list[Detection]:
        return []

    def sweep(self, state: Any, now: datetime) -> int:
        return 0

    def score_batch(self, observations: Sequence[Observation], state: Any) -> None:
        self.calls.append(len(observations))
        for obs in observations:
            assert obs.row is not None


def test_findings_of_one_event_combine_as_noisy_or() -> None:
    a = Fixed("a", {"e1": 0.5, "e2": 0.5})
    b = Fixed("b", {"e2": 0.5})
    engine = Engine([a, b], EngineConfig(threshold=0.7))  # type: ignore[list-item]
    state: dict[str, Any] = {}
    found = engine_run(engine, [event(0, eid="e1")], state)
    assert found == []  # 0.5 < 0.7
    found = engine_run(engine, [event(86400, eid="e2")], state)  # long after: nothing carried
    assert len(found) == 1
    d = found[0]
    assert d.score == pytest.approx(0.75) and d.severity is Severity.MEDIUM
    assert d.evidence["contributions"] == {"a": 0.5, "b": 0.5}
    assert (
        d.detector == "a"
        and d.entity == "acme/jane@acme.example/crm-followup/https://api.crm.example"
    )


def test_suspicious_findings_accumulate_with_decay_but_small_ones_never_emit() -> None:
    a = Fixed("a", {"e1": 0.5, "e2": 0.5, "s1": 0.2, "s2": 0.2, "s3": 0.2})
    engine = Engine([a], EngineConfig(half_life_seconds=1800))  # type: ignore[list-item]
    state: dict[str, Any] = {}
    assert engine_run(engine, [event(0, eid="e1")], state) == []
    found = engine_run(engine, [event(300, eid="e2")], state)
    # R = 1 - (1 - 0.5 * 2^(-300/1800)) * (1 - 0.5)
    assert len(found) == 1
    assert found[0].score == pytest.approx(1 - (1 - 0.5 * 2 ** (-1 / 6)) * 0.5)
    state.clear()
    small = [event(i * 10, eid=f"s{i + 1}", user="bob@acme.example") for i in range(3)]
    assert engine_run(engine, small, state) == []


def test_a_weight_scales_a_detector() -> None:
    a = Fixed("a", {"e1": 0.8})
    engine = Engine([a], EngineConfig(weights={"a": 0.5}))  # type: ignore[list-item]
    assert engine_run(engine, [event(0, eid="e1")], {}) == []


def test_a_shared_signal_lowers_the_threshold() -> None:
    a = Fixed("a", {"e1": 0.45})
    engine = Engine([a])  # type: ignore[list-item]
    state: dict[str, Any] = {}
    raise_risk(
        state,
        tenant="acme",
        user="jane@acme.example",
        boost=0.5,
        signal="risk_level_change",
        at=at(-10),
        ttl_seconds=3600,
    )
    found = engine_run(engine, [event(0, eid="e1")], state)
    assert len(found) == 1
    assert found[0].evidence["threshold"] == pytest.approx(0.35)
    assert found[0].evidence["risk_boost"] == 0.5


def test_repeats_within_the_cool_down_are_counted_into_the_next_detection() -> None:
    scores = {f"e{i}": 0.8 for i in range(6)}
    engine = Engine([Fixed("a", scores)], EngineConfig(cooldown_seconds=900))  # type: ignore[list-item]
    state: dict[str, Any] = {}
    events = [event(i * 60, eid=f"e{i}") for i in range(5)]  # within 5 minutes
    found = engine_run(engine, events, state)
    # the first at 0.8 (medium); the second, risk now 0.96, escalates to high; the rest wait
    assert [d.severity for d in found] == [Severity.MEDIUM, Severity.HIGH]
    assert found[1].evidence["suppressed_since_last"] == 0
    found = engine_run(engine, [event(2000, eid="e5")], state)
    assert len(found) == 1 and found[0].evidence["suppressed_since_last"] == 3


def test_a_more_severe_finding_breaks_through_the_cool_down() -> None:
    high = Fixed("a", {"e0": 0.8})
    crit = Fixed("b", {"e1": 1.0}, critical=True)
    engine = Engine([high, crit])  # type: ignore[list-item]
    found = engine_run(engine, [event(0, eid="e0"), event(30, eid="e1")], {})
    assert [d.severity for d in found] == [Severity.MEDIUM, Severity.CRITICAL]
    assert found[1].detector == "b" and found[1].score == 1.0


def test_refresh_reuse_and_signals_are_never_held_back_by_the_cool_down() -> None:
    engine = build_engine()
    state: dict[str, Any] = {}

    def refresh(parent: str, child: str, t: float, asn: int) -> AuditEvent:
        return event(
            t,
            action="token.refreshed",
            token=child,
            token_type="refresh_token",
            audience=None,
            asn=asn,
            eid=f"r-{child}",
        ).model_copy(
            update={
                "token": event(0, token=child).token.model_copy(  # type: ignore[union-attr]
                    update={"parent_id": parent, "type": "refresh_token"}
                )
            }
        )

    rotation = [refresh(f"rt{i}", f"rt{i + 1}", i * 600.0, 64500) for i in range(4)]
    replays = [refresh("rt1", "x1", 2500, 64999), refresh("rt2", "x2", 2510, 64999)]
    found = engine_run(engine, [*rotation, *replays], state)
    reuse = [d for d in found if d.detector == "refresh_reuse"]
    assert len(reuse) == 2


def test_batch_detectors_score_the_whole_batch_in_one_call() -> None:
    batchy = CountingBatch()
    engine = Engine([*build_detectors(["volume", "scope_drift"]), batchy])  # type: ignore[list-item]
    events = [event(i, eid=f"b{i}") for i in range(50)]
    engine_run(engine, events, {})
    assert batchy.calls == [50]


def test_state_is_json_and_small_per_entity() -> None:
    engine = build_engine()
    state: dict[str, Any] = {}
    events = [event(i * 20.0, audience=f"https://api.t{i % 3}.example") for i in range(300)]
    engine_run(engine, events, state)
    size = sum(len(k) + len(orjson.dumps(v, default=to_json)) for k, v in state.items())
    assert size / 3 <= 1024  # three entities (one user, one agent, three audiences)
    later = at(30 * 86400)
    engine.sweep(state, later)
    assert state == {}


def test_engine_config_is_read_from_the_engine_section() -> None:
    engine = build_engine(None, {"engine": {"threshold": 0.8, "cooldown_seconds": 60}})
    assert engine.config.threshold == 0.8 and engine.config.cooldown_seconds == 60
    assert {d.name for d in engine.detectors} >= {"refresh_reuse", "signal", "volume", "model"}
    assert isinstance(engine.detectors[0], RefreshReuseDetector)
    with pytest.raises(ValueError, match="engine"):
        build_engine(None, {"engine": {"nope": 1}})
    with pytest.raises(ValueError, match="min_threshold"):
        EngineConfig(threshold=0.1, min_threshold=0.2)
