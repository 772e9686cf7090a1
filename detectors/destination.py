"""Destination drift: where a token is used from and what it is sent to.

Features, per ``(tenant, user, agent, audience)`` (the destination part of the entity's
record ``u/<entity>``, :class:`~detectors.records.DestinationPart`): calls on record; call
counts per network (ASN, else /24 or /48 — ``detectors.network``), per user agent (a CRC-32
of the string) and per destination host, each bounded (least used dropped first); the last
network and user agent; a decayed count of network switches per hour that involve a *minor*
network (under ``minor_share`` of the entity's calls — switching between an agent's usual
egress networks is not counted). Per agent population (``dstp/<tenant>/<agent>``): how many
of the agent's entities used each network and user agent. Per token family (the network
part of the family's record ``fam/<tenant>/<family>``): the last network that used it,
when, by which event, and since when.

* **Parallel use — critical, score 1.0:** one token family used (``token.used``; refreshes
  are ``refresh_reuse``'s) from two networks within ``parallel_window_seconds``, unless the
  new network is known (used by the entity ``well_known_calls`` times or for ``rare_share``
  of its calls, or by two of the agent's entities: an agent with several egress paths).
  The family's previous network must be well known (both) or have been its network for a
  minute (a new agent may start on two egress paths at once). Caught on the first call
  from the second network. The family's last use is rewritten at most every 5 s while the
  network stays the same, so the window is exact to 5 s.
* **New network:** switching into a network the entity never used (novelty 1) or rarely
  uses (under ``rare_share`` of its calls, 0.8): ``new_network_score * novelty *
  population * confidence``. A user who travels switches once and then stays; an attacker
  interleaving with the real agent keeps switching into a rare network.
* **Too-frequent network changes:** a switch when there were more than
  ``max_switches_per_hour`` switches involving a minor network: ``switch_score`` and up.
* **New user agent:** switching into an unseen/rare user agent, discounted when the agent
  population already uses it (a deploy): ``new_user_agent_score * …``.
* **New destination host** for the audience: ``new_destination_score * confidence``.

``population`` is ``1 - share / 0.2`` of the agent's other entities that know the network
(or user agent); ``confidence`` grows to 1 at ``min_history_events`` calls. Components
combine as ``1 - Π(1 - s)``. Flagged calls (≥ 0.7) are not learned.

State: ~200-450 B per entity, ~70 B per live family, one population record per agent.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from math import exp
from typing import Any, ClassVar

from detectors.base import State
from detectors.detection import Detection
from detectors.features import (
    F_DEST_NOVELTY,
    F_NET_NOVELTY,
    F_NET_SWITCH,
    F_UA_NOVELTY,
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
from detectors.records import DestinationPart, EntityRecord, FamilyRecord
from ingest import AuditEvent

_POP = "dstp/"


@dataclass(frozen=True, slots=True)
class DestinationConfig:
    """Parameters (``[detectors.destination]``)."""

    parallel_window_seconds: float = 120.0
    new_network_score: float = 0.45
    new_user_agent_score: float = 0.25
    new_destination_score: float = 0.5
    switch_score: float = 0.5
    max_switches_per_hour: float = 4.0
    rare_share: float = 0.05
    minor_share: float = 0.2
    well_known_calls: int = 10
    min_history_events: int = 20
    max_networks: int = 6
    max_user_agents: int = 4
    max_destinations: int = 4
    max_population: int = 16
    idle_ttl_seconds: float = 14 * 86400.0
    family_ttl_seconds: float = 86400.0

    def __post_init__(self) -> None:
        for name in (
            "new_network_score",
            "new_user_agent_score",
            "new_destination_score",
            "switch_score",
            "rare_share",
            "minor_share",
        ):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        if self.parallel_window_seconds < 0 or self.max_switches_per_hour <= 0:
            raise ValueError("parallel_window_seconds >= 0 and max_switches_per_hour > 0")
        if min(self.max_networks, self.max_user_agents, self.max_destinations) < 1:
            raise ValueError("bounds must be >= 1")


_UA_KEYS: dict[str, str] = {}


def _ua_key(ua: str | None) -> str | None:
    """A short stable key for a user-agent string (CRC-32, memoised)."""
    if ua is None:
        return None
    key = _UA_KEYS.get(ua)
    if key is None:
        key = format(zlib.crc32(ua.encode()), "08x")
        if len(_UA_KEYS) < 65536:
            _UA_KEYS[ua] = key
    return key


class DestinationDetector:
    """First-seen networks, user agents and destination hosts for the entity; one token
    family used from two networks at once (critical); too-frequent network changes."""

    name: ClassVar[str] = "destination"

    def __init__(self, config: DestinationConfig | None = None) -> None:
        self.config = config or DestinationConfig()
        self._max_switches = self.config.max_switches_per_hour

    @classmethod
    def from_config(cls, params: dict[str, Any]) -> DestinationDetector:
        return cls(DestinationConfig(**params))

    def detect(self, event: AuditEvent, state: State, now: datetime) -> list[Detection]:
        return standalone(self, event, state, now)

    def observe(self, obs: Observation, state: State) -> Finding | None:
        return observe_one(self, obs, state)

    def observe_batch(self, observations: Sequence[Observation], state: State) -> None:
        """Every successful ``token.used`` of the batch, in order (refreshes are
        refresh_reuse's to judge)."""
        max_switches = self._max_switches
        ua_keys = _UA_KEYS
        for obs in observations:
            if not obs.used or obs.outcome != "success":
                continue
            entity = obs.rec
            assert entity is not None  # every token.used has its record (Observation)
            rec = entity.destination
            net = obs.net
            t = obs.t
            parallel = None
            if net is not None:
                fam = obs.fam
                if fam is not None:
                    if fam.net == net:
                        # the common case: the family's network again
                        if t - fam.net_t > 5.0:
                            fam.net_t = t
                            fam.net_event = obs.event.id
                            state[obs.fam_key] = fam  # type: ignore[index]
                    else:
                        parallel = self._family(obs, state, rec, fam)
            ua_str = obs.user_agent
            ua = None if ua_str is None else (ua_keys.get(ua_str) or _ua_key(ua_str))
            if rec is not None and net == rec.last_net and ua == rec.last_ua and parallel is None:
                dest = obs.destination
                dests = rec.dests
                sw = rec.switches
                if sw > 0.01:
                    sw *= exp(-max(0.0, t - rec.t) / 3600.0)
                if (dest is None or dest in dests) and sw <= max_switches:
                    # the common case: same network, same user agent, known destination
                    if net is not None:
                        nets = rec.nets
                        nets[net] = nets.get(net, 0) + 1
                    if ua is not None:
                        uas = rec.uas
                        uas[ua] = uas.get(ua, 0) + 1
                    rec.switches = sw
                    c = rec.calls = rec.calls + 1
                    rec.t = t
                    row = obs.row
                    if row is not None:
                        row[F_NET_SWITCH] = sw
                    if c % 256 == 0:
                        self._touch_population(state, obs.tenant, obs.agent, t)
                    continue
            found = self._usage(obs, state, entity, rec, ua, parallel)
            if found is not None:
                obs.add(found)

    # -- parallel use of one family ------------------------------------------------------

    def _family(
        self,
        obs: Observation,
        state: State,
        rec: DestinationPart | None,
        fam: FamilyRecord,
    ) -> Finding | None:
        """The family's network part (of ``fam``) is missing or names another network
        than ``obs.net``."""
        event = obs.event
        family = obs.family
        net = obs.net
        t = obs.t
        found = None
        last = fam.net
        if (
            last is not None
            and last != net
            and abs(t - fam.net_t) <= self.config.parallel_window_seconds
            and not self._well_known(obs, state, rec, net)
            and (t - fam.net_since >= 60.0 or self._well_known(obs, state, rec, last, strict=True))
        ):
            elapsed = t - fam.net_t
            reason = (
                f"token family {family} of {obs.who} was used from {net} "
                f"{elapsed:.1f}s after a use from {last} (event {fam.net_event}): one token "
                f"in use from two networks at once — a stolen token used in parallel"
            )
            evidence = {
                "family_id": family,
                "network": net,
                "other_network": last,
                "other_event": fam.net_event,
                "seconds_apart": round(elapsed, 3),
                "window_seconds": self.config.parallel_window_seconds,
                "ip": event.source.ip if event.source else None,
            }
            found = Finding(
                self.name, 1.0, reason, evidence, critical=True, related=(fam.net_event,)
            )
        if last is None or last != net:
            # network, last use, its event, since
            fam.net, fam.net_t, fam.net_event, fam.net_since = net, t, event.id, t
            state[obs.fam_key] = fam  # type: ignore[index]
        elif t - fam.net_t > 5.0:
            fam.net_t, fam.net_event = t, event.id
            state[obs.fam_key] = fam  # type: ignore[index]
        return found

    def _well_known(
        self,
        obs: Observation,
        state: State,
        rec: DestinationPart | None,
        net: str | None,
        *,
        strict: bool = False,
    ) -> bool:
        """Used by the entity (``strict``: ``well_known_calls`` times and ``rare_share`` of
        its calls; else either) or by two of the agent's entities."""
        if net is None:
            return True
        if rec is not None:
            cnt = rec.nets.get(net, 0)
            many = cnt >= self.config.well_known_calls
            share = cnt >= self.config.rare_share * rec.calls
            if cnt and ((many and share) if strict else (many or share)):
                return True
        pop = state.get(f"{_POP}{obs.event.tenant}/{obs.agent}")
        return pop is not None and pop["n"].get(net, 0) >= 2

    # -- the entity's networks, user agents and destinations ----------------------------

    def _usage(
        self,
        obs: Observation,
        state: State,
        entity: EntityRecord,
        rec: DestinationPart | None,
        ua: str | None,
        parallel: Finding | None,
    ) -> Finding | None:
        """Everything but the common case (``observe``): a new entity, another network or
        user agent, a new destination, frequent switches, or a parallel use."""
        cfg = self.config
        event = obs.event
        t = obs.t
        net = obs.net
        dest = obs.destination
        row = obs.row
        pop_key = f"{_POP}{obs.tenant}/{obs.agent}"
        pop = state.get(pop_key)
        pop_changed = False
        if pop is None:
            pop = {"e": 0, "n": {}, "u": {}, "t": t}
        if rec is None:
            rec = entity.destination = DestinationPart(t)
            pop["e"] += 1
            pop_changed = True
        calls = rec.calls
        nets = rec.nets
        uas = rec.uas
        dests = rec.dests
        confidence = min(1.0, calls / cfg.min_history_events)
        others = max(1, pop["e"] - 1)
        parts: list[tuple[float, str, str]] = []  # score, kind, text

        sw = rec.switches
        dt = t - rec.t
        if dt > 0 and sw:
            sw *= exp(-dt / 3600.0)
        last = rec.last_net
        if net is not None and last is not None and net != last:
            cnt = nets.get(net, 0)
            minor = min(cnt, nets.get(last, 0)) < cfg.minor_share * max(calls, 1)
            if minor and calls >= cfg.min_history_events:
                sw += 1.0
            novelty = 1.0 if cnt == 0 else (0.8 if cnt < cfg.rare_share * calls else 0.0)
            if novelty:
                share = pop["n"].get(net, 0) / others
                population = max(0.0, 1.0 - share / 0.2)
                s = cfg.new_network_score * novelty * population * confidence
                if row is not None:
                    row[F_NET_NOVELTY] = novelty * population * confidence
                if s > 0:
                    seen = "never used" if cnt == 0 else f"used {cnt} times"
                    usual = ", ".join(
                        f"{n} ({fmt_count(c)})"
                        for n, c in sorted(nets.items(), key=lambda kv: -kv[1])[:3]
                    )
                    parts.append(
                        (
                            s,
                            "new_network",
                            f"switched from {last} to network {net}, {seen} in "
                            f"{fmt_age(t - rec.first)} of {fmt_count(calls)} calls (usual: "
                            f"{usual})",
                        )
                    )
        if row is not None:
            row[F_NET_SWITCH] = sw
        switched = net is not None and last is not None and net != last
        if switched and sw > cfg.max_switches_per_hour and calls >= cfg.min_history_events:
            s = min(1.0, cfg.switch_score + 0.05 * (sw - cfg.max_switches_per_hour))
            parts.append((s, "network_changes", f"{sw:.1f} network switches in the last hour"))
        if ua is not None and rec.last_ua is not None and ua != rec.last_ua:
            cnt = uas.get(ua, 0)
            novelty = 1.0 if cnt == 0 else (0.8 if cnt < cfg.rare_share * calls else 0.0)
            if novelty:
                share = pop["u"].get(ua, 0) / others
                population = max(0.0, 1.0 - share / 0.2)
                s = cfg.new_user_agent_score * novelty * population * confidence
                if row is not None:
                    row[F_UA_NOVELTY] = novelty * population * confidence
                if s > 0:
                    agent_str = event.source.user_agent if event.source else None
                    parts.append((s, "new_user_agent", f"new user agent {agent_str!r}"))
        if dest is not None and dests and dest not in dests:
            s = cfg.new_destination_score * confidence
            if row is not None:
                row[F_DEST_NOVELTY] = confidence
            if s > 0:
                parts.append(
                    (
                        s,
                        "new_destination",
                        f"called new destination host {dest} (usual: {', '.join(dests)})",
                    )
                )

        score = 0.0
        if parts:
            keep = 1.0
            for s, _, _ in parts:
                keep *= 1.0 - s
            score = 1.0 - keep
        flagged = score >= 0.7 or parallel is not None

        rec.switches = sw
        rec.t = t
        rec.calls = calls + 1
        if net is not None:
            rec.last_net = net
        if ua is not None:
            rec.last_ua = ua
        if not flagged:
            if net is not None:
                if net not in nets:
                    if len(nets) >= cfg.max_networks:
                        evict_smallest(nets, cfg.max_networks - 1)
                    pop_changed |= self._pop_add(pop["n"], net)
                nets[net] = nets.get(net, 0) + 1
            if ua is not None:
                if ua not in uas:
                    if len(uas) >= cfg.max_user_agents:
                        evict_smallest(uas, cfg.max_user_agents - 1)
                    pop_changed |= self._pop_add(pop["u"], ua)
                uas[ua] = uas.get(ua, 0) + 1
            if dest is not None:
                if dest not in dests and len(dests) >= cfg.max_destinations:
                    evict_smallest(dests, cfg.max_destinations - 1)
                dests[dest] = dests.get(dest, 0) + 1  # presence (and eviction order)
        if pop_changed or t - pop["t"] > 3600.0:
            pop["t"] = t
            state[pop_key] = pop

        if parallel is not None:
            return parallel
        if not parts:
            return None
        parts.sort(key=lambda p: -p[0])
        reason = f"{obs.who} on {event.audience or 'an unnamed API'}: " + "; ".join(
            text for _, _, text in parts
        )
        evidence: dict[str, Any] = {
            "network": net,
            "ip": event.source.ip if event.source else None,
            "user_agent": event.source.user_agent if event.source else None,
            "destination": dest,
            "components": {kind: round(s, 3) for s, kind, _ in parts},
            "known_networks": dict(nets),
            "switches_per_hour": round(sw, 2),
            "calls_on_record": calls,
        }
        return Finding(self.name, score, reason, evidence)

    def _pop_add(self, counts: dict[str, int], value: str) -> bool:
        if value in counts:
            counts[value] += 1
            return True
        if len(counts) >= self.config.max_population:
            return False
        counts[value] = 1
        return True

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
        removed = sweep_part(state, "destination", t - cfg.idle_ttl_seconds, lambda v: v.t)
        removed += sweep_family_part(state, "net", t - cfg.family_ttl_seconds)
        return removed + sweep_prefix(state, _POP, t - cfg.idle_ttl_seconds, lambda v: v["t"])
