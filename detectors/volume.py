"""Volume: an entity calling far more than it usually does at this hour.

Features, per ``(tenant, user, agent, audience)`` (the volume part of the entity's record
``u/<entity>``, :class:`~detectors.records.VolumePart`):

* the calls of the last 1 min, 15 min and 1 h — each an exponentially decayed counter with
  that time constant, so it needs no buckets and updates in O(1);
* the entity's baseline rate: a decayed counter over ``baseline_seconds`` (1 day) divided by
  how long it has been counting (events per second). Points this detector flagged are
  **not** learned, so an attack does not become the new normal;
* the agent population's hour-of-day profile (``volp/<tenant>/<agent>``: calls per UTC
  hour, summed over every user of the agent) once it spans a day: the expected count is
  scaled by how busy this hour usually is (``hour_typicality``);
* cold start: until the entity has ``min_history_events`` calls over
  ``min_history_seconds``, the baseline is the population's (a moving average of the mature
  entities' rates of the same agent — or the same client when the event names no agent);
  with no population either, only ``cold_floor_multiplier`` * the floors apply.

For each window ``W``: ``expected = rate * W * hour factor``; the window fires when
``count ≥ max(floor_W, ratio * expected + z * √expected)`` (a Poisson tail test with an
absolute floor, so a quiet entity's three calls are never a spike). Score 0.7 at the
trigger, rising with log2(count / trigger) to 1.0 at 4* the trigger; the window with the
highest score names the reason.

State: 7 numbers per entity (~100 B as JSON) and one population record per agent (~330 B).
Expires after ``idle_ttl_seconds`` without calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from math import exp, log2, sqrt
from typing import Any, ClassVar

from detectors.base import State
from detectors.detection import Detection
from detectors.features import (
    F_VOL_1H,
    F_VOL_1M,
    F_VOL_15M,
    Finding,
    Observation,
    fmt_count,
    observe_one,
    standalone,
    sweep_part,
    sweep_prefix,
)
from detectors.records import VolumePart
from ingest import AuditEvent

_POP = "volp/"
_WINDOW_NAMES = ("1 min", "15 min", "1 h")
_FEATURE_SLOTS = (F_VOL_1M, F_VOL_15M, F_VOL_1H)


@dataclass(frozen=True, slots=True)
class VolumeConfig:
    """Parameters (``[detectors.volume]``)."""

    windows: tuple[float, float, float] = (60.0, 900.0, 3600.0)
    floors: tuple[float, float, float] = (20.0, 120.0, 400.0)
    ratio: float = 4.0
    z: float = 5.0
    baseline_seconds: float = 86400.0
    min_history_events: int = 40
    min_history_seconds: float = 1800.0
    cold_floor_multiplier: float = 2.0
    idle_ttl_seconds: float = 14 * 86400.0

    def __post_init__(self) -> None:
        if len(self.windows) != 3 or len(self.floors) != 3:
            raise ValueError("windows and floors take three values (short, medium, long)")
        if min(self.windows) <= 0 or min(self.floors) <= 0:
            raise ValueError("windows and floors must be > 0")
        if self.ratio <= 1 or self.z < 0 or self.cold_floor_multiplier < 1:
            raise ValueError("ratio must be > 1, z >= 0, cold_floor_multiplier >= 1")
        if self.baseline_seconds <= 0 or self.idle_ttl_seconds <= 0:
            raise ValueError("baseline_seconds and idle_ttl_seconds must be > 0")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> VolumeConfig:
        p = dict(params)
        for key in ("windows", "floors"):
            if key in p:
                if len(p[key]) != 3:
                    raise ValueError(
                        f"{key}: windows and floors take three values (short, medium, long)"
                    )
                p[key] = tuple(float(v) for v in p[key])
        return cls(**p)


class VolumeDetector:
    """Call volume far above the entity's own (or, cold, its agent population's) baseline
    for this hour of day, at 1 min / 15 min / 1 h, above absolute floors."""

    name: ClassVar[str] = "volume"

    def __init__(self, config: VolumeConfig | None = None) -> None:
        cfg = self.config = config or VolumeConfig()
        # what every call reads, unpacked at once (one attribute read, not six)
        self._hot = (
            *cfg.windows,
            cfg.baseline_seconds,
            cfg.min_history_events,
            cfg.min_history_seconds,
        )
        self._floors = cfg.floors

    @classmethod
    def from_config(cls, params: dict[str, Any]) -> VolumeDetector:
        return cls(VolumeConfig.from_params(params))

    def detect(self, event: AuditEvent, state: State, now: datetime) -> list[Detection]:
        return standalone(self, event, state, now)

    def observe(self, obs: Observation, state: State) -> Finding | None:
        return observe_one(self, obs, state)

    def observe_batch(self, observations: Sequence[Observation], state: State) -> None:
        """Every ``token.used`` of the batch in order: update the entity's counters, write
        its rates into the row, and test it when a counter is over its floor."""
        w0, w1, w2, w_long, min_events, min_seconds = self._hot
        f0, f1, f2 = self._floors
        filled = 8.0 * w2  # from this age on every window is filled
        for obs in observations:
            if not obs.used:
                continue
            t = obs.t
            entity = obs.rec
            assert entity is not None  # every token.used has its record (Observation)
            rec = entity.volume
            if rec is None:
                rec = entity.volume = VolumePart(t)
            else:
                dt = t - rec.last
                if dt > 0:
                    rec.c0 = rec.c0 * exp(-dt / w0) + 1.0
                    rec.c1 = rec.c1 * exp(-dt / w1) + 1.0
                    rec.c2 = rec.c2 * exp(-dt / w2) + 1.0
                    rec.long *= exp(-dt / w_long)
                    rec.last = t
                else:
                    rec.c0 += 1.0
                    rec.c1 += 1.0
                    rec.c2 += 1.0
                rec.n += 1
            n = rec.n
            age = t - rec.first
            mature = n >= min_events and age >= min_seconds
            rate = rec.long / max(60.0, min(age, w_long)) if mature else None
            row = obs.row
            if row is not None and rate is not None:
                if age >= filled:
                    row[F_VOL_1M] = log2((rec.c0 + 1.0) / (rate * w0 + 1.0))
                    row[F_VOL_15M] = log2((rec.c1 + 1.0) / (rate * w1 + 1.0))
                    row[F_VOL_1H] = log2((rec.c2 + 1.0) / (rate * w2 + 1.0))
                else:
                    row[F_VOL_1M] = log2((rec.c0 + 1.0) / (rate * w0 * _fill(age, w0) + 1.0))
                    row[F_VOL_15M] = log2((rec.c1 + 1.0) / (rate * w1 * _fill(age, w1) + 1.0))
                    row[F_VOL_1H] = log2((rec.c2 + 1.0) / (rate * w2 * _fill(age, w2) + 1.0))
            if rec.c0 >= f0 or rec.c1 >= f1 or rec.c2 >= f2:
                found = self._test(obs, state, rec, rate, mature, n, age)
                if found is not None:
                    obs.add(found)
                continue
            # the common case: under every floor, nothing to test; learn the call
            rec.long += 1.0
            if n % 8 == 0 or n == 1:
                pop_key = f"{_POP}{obs.tenant}/{obs.agent}"
                self._update_population(state, pop_key, state.get(pop_key), rate, obs)

    def _test(
        self,
        obs: Observation,
        state: State,
        rec: VolumePart,
        rate: float | None,
        mature: bool,
        n: int,
        age: float,
    ) -> Finding | None:
        """A call with a counter over its absolute floor: the full test against the
        (hour-scaled) baseline; learn it unless it fired; its finding."""
        cfg = self.config
        t = obs.t
        best: tuple[float, int, float, float] | None = None  # score, window, count, expected
        pop_key = f"{_POP}{obs.tenant}/{obs.agent}"
        pop = state.get(pop_key)
        hour_factor = hour_factor_of(pop, t, obs.hour)
        own_rate = rate
        if rate is None and pop is not None and pop[1] > 0:
            rate = float(pop[1])
        counts = (rec.c0, rec.c1, rec.c2)
        for i in range(3):
            count = counts[i]
            w = cfg.windows[i]
            if rate is None:
                expected = -1.0
                trigger = cfg.floors[i] * cfg.cold_floor_multiplier
            else:
                expected = rate * w * _fill(age, w) * hour_factor
                trigger = max(cfg.floors[i], cfg.ratio * expected + cfg.z * sqrt(expected))
            if count >= trigger:
                score = min(1.0, 0.7 + 0.15 * log2(count / trigger))
                if best is None or score > best[0]:
                    best = (score, i, count, expected)
        if best is None:
            rec.long += 1.0  # learn only from points not flagged
        if n % 8 == 0 or n == 1:
            self._update_population(state, pop_key, pop, own_rate, obs)
        if best is None:
            return None
        score, i, count, expected = best
        trigger = (
            cfg.floors[i] * cfg.cold_floor_multiplier
            if expected < 0
            else max(cfg.floors[i], cfg.ratio * expected + cfg.z * sqrt(expected))
        )
        basis = (
            "no baseline yet for it or its agent population"
            if expected < 0
            else f"{count / max(expected, 1e-9):.1f}x the {expected:.1f} expected "
            f"({'its own' if mature else 'agent population'} baseline"
            f"{f', hour factor {hour_factor:.2f}' if hour_factor != 1.0 else ''})"
        )
        reason = (
            f"{obs.who} made {fmt_count(count)} calls to {obs.audience or 'an unnamed API'} "
            f"in the last {_WINDOW_NAMES[i]}, {basis}; trigger {trigger:.0f} "
            f"(floor {cfg.floors[i]:.0f}), {fmt_count(n)} calls on record"
        )
        evidence = {
            "window_seconds": cfg.windows[i],
            "count": round(count, 1),
            "expected": None if expected < 0 else round(expected, 2),
            "trigger": round(trigger, 1),
            "floor": cfg.floors[i],
            "hour_factor": round(hour_factor, 3),
            "baseline": "own" if mature else ("population" if expected >= 0 else "none"),
            "calls_on_record": n,
        }
        return Finding(self.name, score, reason, evidence)

    def _update_population(
        self,
        state: State,
        key: str,
        pop: list[Any] | None,
        rate: float | None,
        obs: Observation,
    ) -> None:
        t = obs.t
        if pop is None:
            pop = [t, 0.0, 0, t, [0.0] * 24]
        pop[0] = t
        if rate is not None:
            pop[2] = int(pop[2]) + 1
            alpha = max(0.02, 1.0 / pop[2])
            pop[1] = float(pop[1]) + alpha * (rate - float(pop[1]))
        prof = pop[4]
        prof[obs.hour] += 8.0
        if prof[obs.hour] > 1e7:
            pop[4] = [v / 2.0 for v in prof]
        state[key] = pop

    def sweep(self, state: State, now: datetime) -> int:
        cutoff = now.timestamp() - self.config.idle_ttl_seconds
        removed = sweep_part(state, "volume", cutoff, lambda v: v.last)
        return removed + sweep_prefix(state, _POP, cutoff, lambda v: v[0])


def _fill(age: float, window: float) -> float:
    """How much of a decayed window counter a ``age``-second-old entity can have filled."""
    if age >= 8.0 * window:
        return 1.0
    return 1.0 - exp(-max(age, 1.0) / window)


def population_key(tenant: str, agent: str) -> str:
    return f"{_POP}{tenant}/{agent}"


def hour_factor_of(pop: list[Any] | None, t: float, hour: int) -> float:
    """How busy ``hour`` (UTC) usually is for the agent population, 1.0 = the daily mean
    (1.0 until the population's profile spans a day), clipped to 0.2..5."""
    if pop is None or t - pop[3] < 86400.0:
        return 1.0
    prof = pop[4]
    total = sum(prof)
    if total <= 0:
        return 1.0
    return float(min(5.0, max(0.2, prof[hour] * 24.0 / total)))
