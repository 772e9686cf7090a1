"""The Engine: runs the enabled detectors over a batch of events and turns the usage
detectors' findings into detections.

``Engine.process(batch, state, now)`` is pure apart from the ``state`` mapping it is given,
so the same engine runs in the embedded pipeline, in faust agents and in tests.

Two kinds of detectors:

* **Plain detectors** (``refresh_reuse``, ``signal``, anything with only ``detect``): each
  event goes to ``detect`` — only events of the actions it ``accepts``, when it says
  (``detectors.base``) — and whatever it returns is passed through as is — no threshold,
  no cool-down (security signals fail closed).
* **Usage detectors** (``volume``, ``scope_drift``, ``destination``, ``burst``: they have
  ``observe``) look at one shared :class:`~detectors.features.Observation` per
  ``token.*`` event and report findings — each detector over the whole batch in turn
  (``observe_batch``), with the entity's and the family's state records looked up once
  per event for all of them (``detectors.features``); **batch detectors** (``model``: it
  has ``score_batch``) then score all of the batch's ``token.used`` rows at once. After the
  batch, the findings of each event are combined into its entity's risk, in event order:

  ``r = 1 - Π (1 - wᵢ·sᵢ)`` over the event's findings (detector weight ``wᵢ``, default 1;
  a critical finding counts as 1);
  ``R = 1 - (1 - R_prev·2^(-Δt/half_life)) · (1 - r)`` when ``r ≥ accumulate_min`` —
  suspicious findings on one entity add up over time (low-and-slow abuse) — else
  ``R = max(R_prev·2^(-Δt/half_life), r)``;
  it emits when ``R ≥ max(min_threshold, threshold * (1 - boost))``, where ``boost`` is the
  user's risk raised by a Shared Signal (``detectors.risk.risk_of``), or at once for a
  critical finding. Findings under ``accumulate_min`` never emit on carried risk alone.

  Severity: critical for a critical finding, high at ``R ≥ 0.9``, else medium. The
  detection carries the name of the detector that contributed most, the entity
  ``tenant/user/agent/audience``, ``score = R``, every contribution in
  ``evidence["contributions"]`` and each finding's numbers under ``evidence["findings"]``.

  **Cool-down:** after a detection on an entity, further ones of the same or lower
  severity within ``cooldown_seconds`` (event time) are suppressed and counted; the count
  is ``evidence["suppressed_since_last"]`` of the next detection emitted for the entity.

State: ``eng/<entity>`` = ``[R, t_R, t_emitted, severity rank, suppressed]`` only for
entities with risk, expiring ``idle_ttl_seconds`` after their last finding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from detectors.base import Detector, State, UsageDetector
from detectors.detection import Detection, Severity
from detectors.features import (
    USAGE_ACTIONS,
    Finding,
    Observation,
    detection_of,
    store_records,
    sweep_prefix,
)
from detectors.risk import risk_of
from ingest import AuditEvent

_PREFIX = "eng/"
_R, _TR, _TE, _RANK, _SUP = range(5)
#: usage events per chunk (``Engine.process``)
_CHUNK = 128
_RANKS = {Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Parameters (``[detectors.engine]``)."""

    threshold: float = 0.7
    min_threshold: float = 0.2
    cooldown_seconds: float = 900.0
    half_life_seconds: float = 1800.0
    accumulate_min: float = 0.3
    weights: dict[str, float] = field(default_factory=dict)
    idle_ttl_seconds: float = 86400.0

    def __post_init__(self) -> None:
        if not 0.0 < self.min_threshold <= self.threshold <= 1.0:
            raise ValueError("need 0 < min_threshold <= threshold <= 1")
        if self.cooldown_seconds < 0 or self.half_life_seconds <= 0:
            raise ValueError("cooldown_seconds >= 0 and half_life_seconds > 0")
        for name, w in self.weights.items():
            if not 0.0 <= float(w) <= 1.0:
                raise ValueError(f"weight of {name!r} must be within 0..1")


def _per_event(detector: UsageDetector) -> Any:
    """``observe_batch`` for a usage detector that has only ``observe``."""
    observe = detector.observe

    def observe_batch(observations: Sequence[Observation], state: State) -> None:
        for obs in observations:
            finding = observe(obs, state)
            if finding is not None:
                obs.add(finding)

    return observe_batch


class Engine:
    """Feeds each event of a batch, in order, to every enabled detector; combines the
    usage detectors' findings into entity risk (module docstring)."""

    def __init__(self, detectors: Sequence[Detector], config: EngineConfig | None = None) -> None:
        self.detectors = tuple(detectors)
        self.config = config or EngineConfig()
        self._usage: tuple[UsageDetector, ...] = tuple(
            d for d in self.detectors if isinstance(d, UsageDetector)
        )
        self._batch: tuple[Any, ...] = tuple(
            d for d in self.detectors if callable(getattr(d, "score_batch", None))
        )
        special = {id(d) for d in (*self._usage, *self._batch)}
        self._plain = tuple(d for d in self.detectors if id(d) not in special)
        #: per usage detector, what the Engine calls once per batch (``observe_batch``, or
        #: ``observe`` for each observation in turn when it has none)
        self._observers = tuple(
            getattr(u, "observe_batch", None) or _per_event(u) for u in self._usage
        )
        #: action -> the plain detectors' ``detect`` methods that want it (``accepts``)
        self._plain_by_action: dict[str, tuple[Any, ...]] = {}

    def _plain_for(self, action: str) -> tuple[Any, ...]:
        """The ``detect`` of each plain detector that wants events of ``action``: one that
        has ``accepts(action)`` says so; one without gets every event."""
        wanted = tuple(
            d.detect
            for d in self._plain
            if (accepts := getattr(d, "accepts", None)) is None or accepts(action)
        )
        cache = self._plain_by_action
        if len(cache) >= 4096:  # actions are a small vocabulary; never grow without bound
            cache.clear()
        cache[action] = wanted
        return wanted

    def process(self, batch: Sequence[AuditEvent], state: State, now: datetime) -> list[Detection]:
        out: list[Detection] = []
        plain_by_action = self._plain_by_action
        observers = self._observers
        batchers = self._batch
        with_row = bool(batchers)
        usage: list[AuditEvent] = []
        for event in batch:
            action = event.action
            plain = plain_by_action.get(action)
            if plain is None:
                plain = self._plain_for(action)
            for detect in plain:
                found = detect(event, state, now)
                if found:
                    out.extend(found)
            if observers and action in USAGE_ACTIONS:
                usage.append(event)
        if not usage:
            return out
        # the usage detectors, each over a chunk of the batch in turn: a chunk's records
        # stay in the CPU's caches from one detector to the next (whole batches of 5,000
        # did not: slower by ~8 % at 200,000 entities)
        observed: list[Observation] = []
        for i in range(0, len(usage), _CHUNK):
            fresh: dict[str, Any] = {}
            chunk = [Observation(e, with_row, state, fresh) for e in usage[i : i + _CHUNK]]
            for observe_batch in observers:
                observe_batch(chunk, state)
            store_records(fresh, state)
            observed += chunk
        if batchers:
            used = [obs for obs in observed if obs.used]
            for b in batchers:
                b.score_batch(used, state)
        for obs in observed:
            if obs.findings is not None:
                self._combine(obs, obs.findings, state, out)
        return out

    def _combine(
        self, obs: Observation, findings: list[Finding], state: State, out: list[Detection]
    ) -> None:
        cfg = self.config
        weights = cfg.weights
        keep = 1.0
        critical = False
        contributions: dict[str, float] = {}
        for f in findings:
            s = 1.0 if f.critical else min(1.0, weights.get(f.detector, 1.0) * f.score)
            critical |= f.critical
            keep *= 1.0 - s
            contributions[f.detector] = max(s, contributions.get(f.detector, 0.0))
        r = 1.0 - keep
        if r < cfg.accumulate_min and not critical:
            return
        t = obs.t
        key = _PREFIX + obs.entity
        rec = state.get(key)
        prev = 0.0
        if rec is not None:
            dt = t - rec[_TR]
            prev = rec[_R] * 2.0 ** (-dt / cfg.half_life_seconds) if dt > 0 else rec[_R]
        risk = 1.0 - (1.0 - prev) * (1.0 - r)
        if critical:
            risk = 1.0
        event = obs.event
        boost = risk_of(state, tenant=event.tenant, user=event.user, now=event.time)
        threshold = max(cfg.min_threshold, cfg.threshold * (1.0 - boost))
        if rec is None:
            rec = [risk, t, None, 0, 0]
        else:
            rec[_R] = risk
            rec[_TR] = max(t, rec[_TR])
        if risk < threshold:
            state[key] = rec
            return
        severity = (
            Severity.CRITICAL if critical else (Severity.HIGH if risk >= 0.9 else Severity.MEDIUM)
        )
        rank = _RANKS[severity]
        if rec[_TE] is not None and t - rec[_TE] < cfg.cooldown_seconds and rank <= rec[_RANK]:
            rec[_SUP] += 1
            state[key] = rec
            return
        suppressed = rec[_SUP]
        rec[_TE] = t
        rec[_RANK] = rank
        rec[_SUP] = 0
        state[key] = rec

        ranked = sorted(findings, key=lambda f: (not f.critical, -contributions[f.detector]))
        top = ranked[0]
        reason = top.reason
        if len(ranked) > 1:
            reason += "; also " + "; ".join(
                f"{f.detector} {contributions[f.detector]:.2f}" for f in ranked[1:]
            )
        if not critical and prev > 0.05:
            reason += f" (entity risk {risk:.2f} with {prev:.2f} carried from earlier findings)"
        related: tuple[str, ...] = tuple(
            dict.fromkeys(i for f in ranked for i in f.related if i != event.id)
        )
        evidence: dict[str, Any] = {
            "risk": round(risk, 4),
            "event_risk": round(r, 4),
            "carried_risk": round(prev, 4),
            "threshold": round(threshold, 4),
            "risk_boost": boost,
            "contributions": {k: round(v, 4) for k, v in contributions.items()},
            "suppressed_since_last": suppressed,
            "findings": {f.detector: f.evidence for f in ranked},
        }
        out.append(
            detection_of(
                top.detector,
                obs,
                score=risk,
                severity=severity,
                reason=reason,
                evidence=evidence,
                related=related,
            )
        )

    def sweep(self, state: State, now: datetime) -> int:
        """Expire idle state in every detector; returns the number of keys removed."""
        removed = sum(d.sweep(state, now) for d in self.detectors)
        cutoff = now.timestamp() - self.config.idle_ttl_seconds
        return removed + sweep_prefix(state, _PREFIX, cutoff, lambda v: max(v[_TR], v[_TE] or 0.0))
