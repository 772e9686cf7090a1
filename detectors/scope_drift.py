"""Scope drift: an agent exercising scopes it never (or rarely) uses, weighted by what the
scope can do — and any scope it was never granted.

Features, per ``(tenant, user, agent, audience)`` (the scope drift part of the entity's
record ``u/<entity>``, :class:`~detectors.records.ScopePart`): calls on record, when the
entity was first seen, and how often it exercised each scope (at most ``max_scopes``, the
least used dropped first). Per agent acting for a user (``sdn/<tenant>/<user>/<agent>``):
when each scope was added to its grants (the first grant seen is the baseline; a later
``token.issued`` — or ``token.refreshed`` naming scopes — that adds a scope widens it). Per
agent population (``sdp/<tenant>/<agent>``): how many of the agent's entities exist and how
many of them exercised each scope. Per token family (the grant part of the family's record
``fam/<tenant>/<family>``, :class:`~detectors.records.FamilyRecord`): the scopes granted at
issuance and when the family was last used.

For each scope of a ``token.used``:

* not in the family's grant (when the grant was seen): **critical**, score 1.0 — a token
  used beyond what it was issued for;
* else ``score = weight * novelty * confidence * population * new-grant``, where ``weight``
  is the scope's sensitivity (the first matching pattern of ``weights``, then the defaults:
  admin 1.0, delete 0.9, export 0.8, write/update/send 0.6, create 0.5, read 0.2, OIDC
  0.05, anything else ``default_weight``); ``novelty`` is 1 for a scope the entity never
  used, 0.5 for one under ``rare_fraction`` of its calls, else 0; ``confidence`` grows
  with history to 1 at ``min_history_events`` calls over ``min_history_seconds`` (a new
  agent has no habits to drift from — only the grant check applies); ``population`` is
  ``1 - adoption / population_common`` (0 once that share of the agent's other entities
  use the scope); ``new-grant`` is ``new_grant_factor`` while the scope was added to the
  agent's grant for this user less than ``new_grant_seconds`` ago (a deploy that widens
  an agent's grant).

A scope that scored >= 0.7 is not learned as usage. The event's score is its worst scope's.

State: ~100-350 B per entity (12 scopes at most), ~150 B per agent and user, ~120 B per
live family, one population record per agent. Expires after ``idle_ttl_seconds`` (families
after ``grant_ttl_seconds``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, ClassVar

from detectors.base import State
from detectors.detection import Detection
from detectors.features import (
    F_SCOPE_NOVELTY,
    F_SCOPE_WEIGHT,
    Finding,
    Observation,
    evict_smallest,
    fmt_age,
    fmt_count,
    observe_one,
    standalone,
    sweep_family_part,
    sweep_part,
    sweep_prefix,
)
from detectors.records import EntityRecord, FamilyRecord, ScopePart
from ingest import AuditEvent

_GRANTED = "sdn/"
_POP = "sdp/"

DEFAULT_WEIGHTS: dict[str, float] = {
    "*admin*": 1.0,
    "*delete*": 0.9,
    "*export*": 0.8,
    "*:write": 0.6,
    "*:update": 0.6,
    "*:send": 0.6,
    "*:create": 0.5,
    "*:read": 0.2,
    "openid": 0.05,
    "profile": 0.05,
    "email": 0.05,
    "offline_access": 0.05,
}


@dataclass(frozen=True, slots=True)
class ScopeDriftConfig:
    """Parameters (``[detectors.scope_drift]``)."""

    weights: dict[str, float] = field(default_factory=dict)
    default_weight: float = 0.4
    rare_fraction: float = 0.01
    min_history_events: int = 20
    min_history_seconds: float = 1800.0
    population_common: float = 0.2
    new_grant_seconds: float = 86400.0
    new_grant_factor: float = 0.25
    max_scopes: int = 12
    max_population_scopes: int = 32
    idle_ttl_seconds: float = 14 * 86400.0
    grant_ttl_seconds: float = 2 * 86400.0

    def __post_init__(self) -> None:
        for pattern, w in self.weights.items():
            if not 0.0 <= float(w) <= 1.0:
                raise ValueError(f"weight of {pattern!r} must be within 0..1")
        if not 0.0 <= self.default_weight <= 1.0:
            raise ValueError("default_weight must be within 0..1")
        if self.max_scopes < 1 or self.max_population_scopes < 1:
            raise ValueError("max_scopes and max_population_scopes must be >= 1")
        if self.min_history_events < 1 or self.population_common <= 0:
            raise ValueError("min_history_events must be >= 1, population_common > 0")


class ScopeDriftDetector:
    """Scopes the entity never or rarely exercised (relative to itself and its agent
    population), weighted by sensitivity; a scope outside the token's grant is critical."""

    name: ClassVar[str] = "scope_drift"

    def __init__(self, config: ScopeDriftConfig | None = None) -> None:
        self.config = config or ScopeDriftConfig()
        self._table = [*self.config.weights.items(), *DEFAULT_WEIGHTS.items()]
        self._weights: dict[str, float] = {}  # memo: scope -> weight (pure function)

    @classmethod
    def from_config(cls, params: dict[str, Any]) -> ScopeDriftDetector:
        return cls(ScopeDriftConfig(**params))

    def weight(self, scope: str) -> float:
        """The sensitivity weight of ``scope`` (first matching pattern wins)."""
        w = self._weights.get(scope)
        if w is None:
            w = self.config.default_weight
            for pattern, value in self._table:
                if fnmatchcase(scope, pattern):
                    w = float(value)
                    break
            if len(self._weights) < 65536:
                self._weights[scope] = w
        return w

    def detect(self, event: AuditEvent, state: State, now: datetime) -> list[Detection]:
        return standalone(self, event, state, now)

    def observe(self, obs: Observation, state: State) -> Finding | None:
        return observe_one(self, obs, state)

    def observe_batch(self, observations: Sequence[Observation], state: State) -> None:
        """Every observation of the batch in order: a grant (``token.issued``, or a
        ``token.refreshed`` naming scopes) is remembered; a ``token.used`` is checked."""
        rare_fraction = self.config.rare_fraction
        memo = self._weights
        for obs in observations:
            scopes = obs.scopes
            if not scopes:
                continue
            if not obs.used:
                if obs.outcome == "success":
                    self._granted(obs, state)
                continue
            t = obs.t
            entity = obs.rec
            assert entity is not None  # every token.used has its record (Observation)
            rec = entity.scope
            fam = obs.fam
            granted = None
            touch_grant = False
            if fam is not None:
                granted = fam.grant
                touch_grant = granted is not None and t - fam.grant_t > 300.0
            if rec is not None:
                # the common case: every scope well used before, and within the grant
                counts = rec.counts
                n = rec.n
                bar = rare_fraction * n
                usual = True
                for scope in scopes:
                    cnt = counts.get(scope, 0)
                    if cnt == 0 or cnt < bar or (granted is not None and scope not in granted):
                        usual = False
                        break
                if usual:
                    row = obs.row
                    if row is None:
                        for scope in scopes:
                            counts[scope] += 1
                    else:
                        top_weight = 0.0
                        for scope in scopes:
                            counts[scope] += 1
                            w = memo.get(scope)
                            if w is None:
                                w = self.weight(scope)
                            if w > top_weight:
                                top_weight = w
                        row[F_SCOPE_WEIGHT] = top_weight
                    rec.n = n + 1
                    rec.t = t
                    if touch_grant and fam is not None:
                        fam.grant_t = t
                        state[obs.fam_key] = fam  # type: ignore[index]
                    if n % 256 == 0:
                        self._touch_population(state, obs.tenant, obs.agent, t)
                    continue
            found = self._unusual(obs, state, entity, rec, fam, granted, touch_grant)
            if found is not None:
                obs.add(found)

    def _granted(self, obs: Observation, state: State) -> None:
        scopes = tuple(dict.fromkeys(obs.scopes))
        fam = obs.fam
        if fam is not None and obs.fam_key is not None:
            fam.grant = scopes
            fam.grant_t = obs.t
            state[obs.fam_key] = fam
        key = _GRANTED + obs.principal
        rec = state.get(key)
        # the first grant seen is the agent's baseline (0); later additions widen it
        when = 0.0 if rec is None else obs.t
        if rec is None:
            rec = {"g": {}, "t": obs.t}
        granted = rec["g"]
        for scope in scopes:
            if scope not in granted:
                granted[scope] = when
        if len(granted) > 2 * self.config.max_scopes:
            evict_smallest(granted, 2 * self.config.max_scopes)  # oldest widenings go first
        rec["t"] = obs.t
        state[key] = rec

    def _unusual(
        self,
        obs: Observation,
        state: State,
        entity: EntityRecord,
        rec: ScopePart | None,
        fam: FamilyRecord | None,
        granted: tuple[str, ...] | None,
        touch_grant: bool,
    ) -> Finding | None:
        """A ``token.used`` of a new entity, or with a scope it never or rarely used, or
        outside the grant: score each scope; learn the ones not flagged."""
        cfg = self.config
        event = obs.event
        scopes = obs.scopes
        t = obs.t
        family = obs.family
        pop_key = f"{_POP}{obs.tenant}/{obs.agent}"
        pop = state.get(pop_key)
        if pop is None:
            pop = {"n": 0, "s": {}, "t": t}
        pop_changed = False
        if rec is None:
            rec = entity.scope = ScopePart(t)
            pop["n"] += 1  # one more entity of the agent
            pop_changed = True
        n = rec.n
        counts = rec.counts
        age = t - rec.first
        confidence = min(1.0, n / cfg.min_history_events) * min(
            1.0, max(age, 0.0) / cfg.min_history_seconds
        )
        others = max(0, pop["n"] - 1)
        widened: dict[str, Any] | None = None
        #: score, scope, weight, uses before, novelty, entities using it, newly granted
        worst: tuple[float, str, float, int, float, int, bool] | None = None
        critical: tuple[str, list[str]] | None = None
        top_weight = 0.0
        top_novelty = 0.0
        flagged: set[str] = set()
        for scope in scopes:
            w = self.weight(scope)
            if w > top_weight:
                top_weight = w
            if granted is not None and scope not in granted:
                critical = (scope, list(granted))
                flagged.add(scope)
                continue
            cnt = counts.get(scope, 0)
            if cnt == 0:
                novelty = 1.0
            elif cnt < cfg.rare_fraction * n:
                novelty = 0.5
            else:
                continue
            users = pop["s"].get(scope, 0) if cnt == 0 else 0
            adoption = users / others if others else 0.0
            population = max(0.0, 1.0 - adoption / cfg.population_common)
            novel = novelty * confidence * population
            new_grant = 1.0
            if novel > 0.0:  # (the agent's grants matter only then)
                if widened is None:
                    widened = state.get(_GRANTED + obs.principal) or {"g": {}}
                granted_at = widened["g"].get(scope)
                if granted_at and t - granted_at < cfg.new_grant_seconds:
                    new_grant = cfg.new_grant_factor
                novel *= new_grant
            if novel > top_novelty:
                top_novelty = novel
            score = w * novel
            if score >= 0.7:
                flagged.add(scope)
            if score > 0 and (worst is None or score > worst[0]):
                worst = (score, scope, w, cnt, novelty, users, new_grant < 1.0)
        if obs.row is not None:
            obs.row[F_SCOPE_WEIGHT] = top_weight
            obs.row[F_SCOPE_NOVELTY] = top_novelty

        # learn what was not flagged
        for scope in scopes:
            if scope in flagged:
                continue
            cnt = counts.get(scope, 0)
            if cnt == 0:
                if len(counts) >= cfg.max_scopes:
                    evict_smallest(counts, cfg.max_scopes - 1)
                if len(pop["s"]) < cfg.max_population_scopes or scope in pop["s"]:
                    pop["s"][scope] = pop["s"].get(scope, 0) + 1
                    pop_changed = True
            counts[scope] = cnt + 1
        rec.n = n + 1
        rec.t = t
        if pop_changed or t - pop["t"] > 3600.0:
            pop["t"] = t
            state[pop_key] = pop
        if touch_grant and fam is not None:
            fam.grant_t = t
            state[obs.fam_key] = fam  # type: ignore[index]

        if critical is not None:
            scope, issued = critical
            reason = (
                f"{obs.who} used scope `{scope}` on {event.audience or 'an unnamed API'} "
                f"with a token of family {family} that was granted only "
                f"{', '.join(f'`{s}`' for s in issued) or 'no scopes'}"
            )
            evidence = {"scope": scope, "granted": issued, "family_id": family}
            return Finding(self.name, 1.0, reason, evidence, critical=True)
        if worst is None:
            return None
        found = worst
        return Finding(
            self.name,
            found[0],
            # its words and numbers only if a detection reads them (``Finding``)
            explain=lambda: _explain(obs, found, n, age, confidence, others),
        )

    def _touch_population(self, state: State, tenant: str, agent: str, t: float) -> None:
        """Keep an agent population that is in use from expiring."""
        pop_key = f"{_POP}{tenant}/{agent}"
        pop = state.get(pop_key)
        if pop is not None and t - pop["t"] > 3600.0:
            pop["t"] = t
            state[pop_key] = pop

    def sweep(self, state: State, now: datetime) -> int:
        t = now.timestamp()
        cfg = self.config
        removed = sweep_part(state, "scope", t - cfg.idle_ttl_seconds, lambda v: v.t)
        removed += sweep_family_part(state, "grant", t - cfg.grant_ttl_seconds)
        removed += sweep_prefix(state, _GRANTED, t - cfg.idle_ttl_seconds, lambda v: v["t"])
        return removed + sweep_prefix(state, _POP, t - cfg.idle_ttl_seconds, lambda v: v["t"])


def _explain(
    obs: Observation,
    worst: tuple[float, str, float, int, float, int, bool],
    n: int,
    age: float,
    confidence: float,
    others: int,
) -> tuple[str, dict[str, Any]]:
    """The reason and evidence of a scope drift finding (``_unusual``'s worst scope)."""
    _, scope, w, cnt, novelty, users, newly = worst
    detail = {
        "scope": scope,
        "weight": w,
        "uses_before": cnt,
        "calls_on_record": n,
        "history_seconds": round(age, 1),
        "novelty": novelty,
        "confidence": round(confidence, 3),
        "population_entities_using": users,
        "population_entities": others,
        "newly_granted": newly,
    }
    seen = "never seen" if cnt == 0 else f"seen only {cnt} times"
    pop_txt = f"; {users} of {others} other entities of the agent use it" if others else ""
    grant_txt = "; newly granted" if newly else ""
    reason = (
        f"{obs.who} used scope `{scope}` on {obs.event.audience or 'an unnamed API'}, {seen} "
        f"in {fmt_age(age)} of {fmt_count(n)} calls{pop_txt}{grant_txt}; weight {w:g}"
    )
    return reason, detail
