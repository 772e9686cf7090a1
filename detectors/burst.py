"""Cross-tool burst: an agent that normally works through a few tools in a steady sequence
suddenly touches many distinct audiences within a short window.

Per ``(tenant, user, agent)`` — across audiences, which is the point (state key
``bu/<tenant>/<user>/<agent>``, :class:`~detectors.records.BurstRecord`): when each
audience was last called (at most ``max_audiences``, the longest idle dropped first), how
many distinct audiences the agent usually has in one ``window_seconds`` (a moving average,
sampled each time an audience enters the window), calls on record, and when it last fired.

It fires when an audience enters the window and the distinct count reaches
``max(min_distinct, ratio * usual + 2)`` — ``min_distinct + cold_extra`` before the agent
has ``min_history_events`` calls. Score 0.75 at the trigger, +0.05 per audience beyond.
One burst is one finding: after firing it stays quiet for ``quiet_seconds`` (the audiences
that join the same burst are listed in the next finding's evidence). A fired burst is not
learned as usual.

State: ~150-600 B per (tenant, user, agent), shared by the entity's audiences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from detectors.base import State
from detectors.detection import Detection
from detectors.features import (
    F_BURST,
    Finding,
    Observation,
    observe_one,
    standalone,
    sweep_prefix,
)
from detectors.records import BURST_PREFIX, BurstRecord, burst_record
from ingest import AuditEvent

_PREFIX = BURST_PREFIX


@dataclass(frozen=True, slots=True)
class BurstConfig:
    """Parameters (``[detectors.burst]``)."""

    window_seconds: float = 60.0
    min_distinct: int = 5
    ratio: float = 2.0
    cold_extra: int = 2
    min_history_events: int = 30
    quiet_seconds: float = 300.0
    max_audiences: int = 16
    idle_ttl_seconds: float = 14 * 86400.0

    def __post_init__(self) -> None:
        if self.window_seconds <= 0 or self.min_distinct < 2 or self.ratio < 1:
            raise ValueError("window_seconds > 0, min_distinct >= 2, ratio >= 1")
        if self.max_audiences < self.min_distinct:
            raise ValueError("max_audiences must be >= min_distinct")


class BurstDetector:
    """Many distinct audiences (tools) in a short window, against the agent's usual."""

    name: ClassVar[str] = "burst"

    def __init__(self, config: BurstConfig | None = None) -> None:
        self.config = config or BurstConfig()
        self._window = self.config.window_seconds

    @classmethod
    def from_config(cls, params: dict[str, Any]) -> BurstDetector:
        return cls(BurstConfig(**params))

    def detect(self, event: AuditEvent, state: State, now: datetime) -> list[Detection]:
        return standalone(self, event, state, now)

    def observe(self, obs: Observation, state: State) -> Finding | None:
        return observe_one(self, obs, state)

    def observe_batch(self, observations: Sequence[Observation], state: State) -> None:
        """Every ``token.used`` of the batch that names an audience, in order."""
        window = self._window
        for obs in observations:
            aud = obs.audience
            if not obs.used or aud is None:
                continue
            t = obs.t
            key = _PREFIX + obs.principal
            found = state.get(key)
            if found is None:
                rec = BurstRecord(t)
            elif found.__class__ is BurstRecord:
                rec = found
            else:
                rec = burst_record(found)
            seen = rec.seen
            prev = seen.get(aud)
            rec.n += 1
            rec.t = t
            if prev is not None and t - prev <= window:
                # the common case: an audience already in the window
                seen[aud] = t
                row = obs.row
                if row is not None:
                    row[F_BURST] = rec.distinct / max(1.0, rec.usual)
                state[key] = rec
                continue
            finding = self._enters(obs, rec, seen, aud, t)
            state[key] = rec
            if finding is not None:
                obs.add(finding)

    def _enters(
        self, obs: Observation, rec: BurstRecord, seen: dict[str, float], aud: str, t: float
    ) -> Finding | None:
        """A new audience, or one back after a pause: it enters the window."""
        cfg = self.config
        window = self._window
        found = None
        seen[aud] = t
        cutoff = t - window
        distinct = sum(1 for v in seen.values() if v >= cutoff)
        rec.distinct = distinct
        usual = rec.usual
        mature = rec.n > cfg.min_history_events
        trigger = (
            max(cfg.min_distinct, cfg.ratio * usual + 2.0)
            if mature
            else float(cfg.min_distinct + cfg.cold_extra)
        )
        fired = rec.fired
        quiet = fired is not None and t - fired < cfg.quiet_seconds
        if distinct >= trigger and not quiet:
            rec.fired = t
            recent = sorted((a for a, v in seen.items() if v >= cutoff), key=seen.__getitem__)
            reason = (
                f"{obs.who} called {distinct} distinct APIs within {window:.0f}s "
                f"(usually {usual:.1f}; trigger {trigger:.0f}): {', '.join(recent)}"
            )
            evidence = {
                "distinct_audiences": distinct,
                "usual": round(usual, 2),
                "trigger": trigger,
                "window_seconds": window,
                "audiences": recent,
                "calls_on_record": rec.n - 1,
            }
            found = Finding(
                self.name, min(1.0, 0.75 + 0.05 * (distinct - trigger)), reason, evidence
            )
        elif not quiet and distinct < trigger:
            rec.usual = usual + 0.05 * (distinct - usual)
        if len(seen) > cfg.max_audiences:
            del seen[min(seen, key=seen.__getitem__)]
        if obs.row is not None:
            obs.row[F_BURST] = rec.distinct / max(1.0, rec.usual)
        return found

    def sweep(self, state: State, now: datetime) -> int:
        cutoff = now.timestamp() - self.config.idle_ttl_seconds
        return sweep_prefix(state, _PREFIX, cutoff, lambda v: burst_record(v).t)
