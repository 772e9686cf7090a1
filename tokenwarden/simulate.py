"""``tokenwarden simulate``: realistic, labelled agent traffic in the AuditEvent wire format.

Each tenant has a dozen tools (audiences) and ``agents`` agents. An agent works for 4-7
users, each through one token family: a ``token.issued`` with the grant, then calls (Poisson,
1-4 a minute at the daily mean, shaped by a diurnal curve that peaks mid-afternoon UTC) that
walk the agent's 2-3 tools in a fixed order with the agent's usual scopes, and a refresh
rotation every 5-15 minutes (the access-token lifetime). Cloud agents call from their
region's network, desktop agents from their user's.

Benign events that must not raise an alarm by themselves, labelled as ``benign``:

* ``concurrent_refresh`` — two refreshes of the same refresh token, a second apart, from the
  same client and network (a race, not a replay);
* ``new_agent`` — an agent that starts mid-stream with new users, a new network and a tool
  nobody used before;
* ``deploy`` — a new version of an agent: new user agent string, re-issued tokens whose grant
  adds a write scope that calls then use;
* ``travel`` — a desktop agent's user goes offline for 20-40 minutes and comes back from a
  network never seen before, for good.

Attacks, labelled with kind, tenant, entity, start, and the ids of their events:

* ``refresh_replay`` — an already rotated refresh token replayed from a new network, and the
  stolen access token used. The second one of each tenant is logged the way an IdP that
  detects the reuse itself logs it: an Okta System Log ``app.oauth2.as.token.detect_reuse``
  LogEvent (odd tenants) or an Auth0 ``ferrt`` tenant log entry (even tenants), each with
  the tenant name a forwarder adds (``org`` / ``tenant_name``); ``evaluate`` replays them
  through the Okta and Auth0 normalizers (labels name them ``okta:<uuid>`` and
  ``auth0:<log_id>``, the ids those give);
* ``parallel_use`` — the current access token used from another network seconds after the
  agent used it;
* ``scope_escalation`` — the agent exercises a delete scope it was granted but never used,
  or an admin scope it was never granted;
* ``exfil_spike`` — 30-80 calls a minute for six minutes on one tool;
* ``cross_tool_burst`` — a dozen distinct tools within 40 seconds;
* ``low_and_slow`` — an attacker with their own token family for the same user and agent,
  one call every 6-12 minutes from a new network for hours.

Deterministic per seed: the same arguments give the same bytes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ATTACK_KINDS: tuple[str, ...] = (
    "refresh_replay",
    "parallel_use",
    "scope_escalation",
    "exfil_spike",
    "cross_tool_burst",
    "low_and_slow",
)
#: Attacks that must be caught on their first event.
IMMEDIATE_KINDS = frozenset({"refresh_replay", "parallel_use"})
BENIGN_KINDS: tuple[str, ...] = ("concurrent_refresh", "new_agent", "deploy", "travel")

TOOLS = (
    "crm",
    "mail",
    "calendar",
    "docs",
    "tickets",
    "billing",
    "hr",
    "files",
    "chat",
    "analytics",
    "wiki",
    "search",
)
AGENT_NAMES = (
    "crm-followup",
    "mail-triage",
    "meeting-scheduler",
    "doc-summarizer",
    "ticket-router",
    "invoice-bot",
    "hr-assistant",
    "file-organizer",
    "chat-helper",
    "report-builder",
    "wiki-curator",
    "search-agent",
)
START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
ATTACKER_UA = "python-requests/2.31.0"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def diurnal(t: float) -> float:
    """Load factor by UTC hour: 1.0 on average, peaking near 14:00, lowest near 02:00."""
    hour = (t / 3600.0) % 24.0
    return 1.0 + 0.6 * math.sin((hour - 8.0) / 24.0 * 2.0 * math.pi)


@dataclass(frozen=True, slots=True)
class SimConfig:
    minutes: float = 180.0
    tenants: int = 2
    agents: int = 4
    seed: int = 1
    attacks: tuple[str, ...] = ATTACK_KINDS
    attacks_per_tenant: int = 2
    start: datetime = START

    def __post_init__(self) -> None:
        unknown = set(self.attacks) - set(ATTACK_KINDS)
        if unknown:
            raise ValueError(f"unknown attack kinds {sorted(unknown)}; known: {ATTACK_KINDS}")
        if self.minutes < 30:
            raise ValueError("simulate at least 30 minutes (attacks start after a warm-up)")
        if not 1 <= self.agents <= len(AGENT_NAMES) - 1 or self.tenants < 1:
            raise ValueError(f"agents within 1..{len(AGENT_NAMES) - 1}, tenants >= 1")


@dataclass(slots=True)
class _Agent:
    name: str
    tenant: str
    tools: list[str]
    write_tools: list[str]
    grant: list[str]
    cloud: bool
    asn: int
    version: str = "1.4"


@dataclass(slots=True)
class _Session:
    tenant: str
    user: str
    agent: _Agent
    user_asn: int
    rate: float  # calls per minute at the daily mean
    lifetime: float
    family: str = ""
    gen: int = 0
    pos: int = 0
    ua: str = ""
    net: tuple[int, str] = (0, "")
    extra_scopes: dict[str, str] = field(default_factory=dict)  # tool -> new scope
    calls: list[tuple[float, str]] = field(default_factory=list)  # (time, audience)
    refreshes: list[tuple[float, int]] = field(default_factory=list)  # (time, new gen)
    travel: tuple[float, float, int] | None = None
    deploy: float | None = None

    @property
    def principal(self) -> str:
        return f"{self.tenant}/{self.user}/{self.agent.name}"


def _aud(tenant: str, tool: str) -> str:
    return f"https://api.{tool}.{tenant}.example"


def _host(tenant: str, tool: str) -> str:
    return f"api.{tool}.{tenant}.example"


def _tool_of(audience: str) -> str:
    return audience.split("//", 1)[1].split(".", 2)[1]


class Simulator:
    def __init__(self, config: SimConfig) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.t0 = config.start.timestamp()
        self.t1 = self.t0 + config.minutes * 60.0
        self._events: list[tuple[float, int, dict[str, Any]]] = []
        self._n = 0
        self.attacks: list[dict[str, Any]] = []
        self.benign: list[dict[str, Any]] = []
        self._attacker = 0
        self._replays: dict[str, int] = {}  # tenant -> refresh replays injected

    # -- output -----------------------------------------------------------------------

    def _next_id(self) -> str:
        eid = f"s{self.cfg.seed}-{self._n:07d}"
        self._n += 1
        return eid

    def emit(self, t: float, session: _Session, action: str, **fields: Any) -> str:
        eid = self._next_id()
        ev: dict[str, Any] = {
            "id": eid,
            "time": _iso(t),
            "tenant": session.tenant,
            "action": action,
            "user": session.user,
            "agent": session.agent.name,
            "client_id": f"agent-{session.agent.name}",
        }
        ev.update(fields)
        self._events.append((t, self._n, ev))
        return eid

    def _source(self, session: _Session, net: tuple[int, str] | None = None) -> dict[str, Any]:
        asn, ip = net or session.net
        return {"ip": ip, "asn": asn, "user_agent": session.ua}

    # -- the world --------------------------------------------------------------------

    def run(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rng = self.rng
        cfg = self.cfg
        sessions: list[_Session] = []
        for ti in range(cfg.tenants):
            tenant = f"tenant{ti + 1}"
            agents = [self._make_agent(tenant, ti, ai, AGENT_NAMES[ai]) for ai in range(cfg.agents)]
            tenant_sessions: list[_Session] = []
            user_asns = {f"user{u}@{tenant}.example": 64700 + ti * 40 + u for u in range(1, 13)}
            users = list(user_asns)
            for agent in agents:
                for user in rng.sample(users, rng.randint(4, 7)):
                    tenant_sessions.append(self._make_session(tenant, user, agent, user_asns[user]))
            # benign scenarios scheduled before the traffic is generated
            deploy_agent = agents[0]
            t_deploy = self.t0 + rng.uniform(0.40, 0.5) * (self.t1 - self.t0)
            for s in tenant_sessions:
                if s.agent is deploy_agent:
                    s.deploy = t_deploy + rng.uniform(0, 60)
            self.benign.append(
                {
                    "kind": "deploy",
                    "tenant": tenant,
                    "agent": deploy_agent.name,
                    "principal": f"{tenant}/*/{deploy_agent.name}",
                    "start": _iso(t_deploy),
                    "event_ids": [],
                }
            )
            desktop = [s for s in tenant_sessions if not s.agent.cloud]
            if desktop:
                traveller = rng.choice(desktop).user
                leave = self.t0 + rng.uniform(0.3, 0.6) * (self.t1 - self.t0)
                back = leave + rng.uniform(1200, 2400)
                new_asn = 65200 + ti * 10 + rng.randint(0, 9)
                for s in tenant_sessions:
                    if s.user == traveller and not s.agent.cloud:
                        s.travel = (leave, back, new_asn)
                self.benign.append(
                    {
                        "kind": "travel",
                        "tenant": tenant,
                        "user": traveller,
                        "principal": f"{tenant}/{traveller}/*",
                        "start": _iso(back),
                        "event_ids": [],
                    }
                )
            for s in tenant_sessions:
                self._generate(s, self.t0 + rng.uniform(0, 30), self.t1)
            # a new agent mid-stream
            newbie = self._make_agent(tenant, ti, cfg.agents, AGENT_NAMES[cfg.agents])
            newbie.asn = 64900 + ti
            newbie.cloud = True
            t_new = self.t0 + rng.uniform(0.35, 0.55) * (self.t1 - self.t0)
            first = self._n
            for user in rng.sample(users, 4):
                s = self._make_session(tenant, user, newbie, user_asns[user])
                self._generate(s, t_new + rng.uniform(0, 120), self.t1)
            self.benign.append(
                {
                    "kind": "new_agent",
                    "tenant": tenant,
                    "agent": newbie.name,
                    "principal": f"{tenant}/*/{newbie.name}",
                    "start": _iso(t_new),
                    "event_ids": [f"s{cfg.seed}-{i:07d}" for i in range(first, self._n)],
                }
            )
            sessions.extend(tenant_sessions)
            self._inject_attacks(tenant, tenant_sessions)

        self._events.sort(key=lambda x: (x[0], x[1]))
        events = [e for _, _, e in self._events]
        attack_ids = {i for a in self.attacks for i in a["event_ids"]}
        labels = {
            "seed": cfg.seed,
            "minutes": cfg.minutes,
            "tenants": cfg.tenants,
            "agents": cfg.agents,
            "start": _iso(self.t0),
            "end": _iso(self.t1),
            "events": len(events),
            "attack_events": len(attack_ids),
            "benign_events": len(events) - len(attack_ids),
            "attacks": self.attacks,
            "benign": self.benign,
        }
        return events, labels

    def _make_agent(self, tenant: str, ti: int, ai: int, name: str) -> _Agent:
        rng = self.rng
        tools = [TOOLS[ai % len(TOOLS)], *rng.sample([t for t in TOOLS if t != TOOLS[ai]], 2)]
        tools = tools[: rng.choice((2, 3, 3))]
        write_tools = [t for t in tools if rng.random() < 0.5]
        grant = ["openid", "offline_access"]
        for tool in tools:
            grant.append(f"{tool}:read")
            if tool in write_tools:
                grant.append(f"{tool}:write")
            if rng.random() < 0.6:
                grant.append(f"{tool}:delete")  # broad grant, never used
        cloud = ai % 3 != 2
        return _Agent(name, tenant, tools, write_tools, grant, cloud, 64500 + ti * 20 + ai % 2)

    def _make_session(self, tenant: str, user: str, agent: _Agent, user_asn: int) -> _Session:
        rng = self.rng
        s = _Session(
            tenant=tenant,
            user=user,
            agent=agent,
            user_asn=user_asn,
            rate=rng.uniform(1.0, 4.0),
            lifetime=rng.uniform(300, 900),
        )
        s.ua = f"{agent.name}-bot/{agent.version}"
        s.net = self._net(s)
        return s

    def _net(self, s: _Session, asn: int | None = None) -> tuple[int, str]:
        if asn is None:
            asn = s.agent.asn if s.agent.cloud else s.user_asn
        return asn, f"10.{asn % 250}.{self.rng.randint(0, 3)}.{self.rng.randint(2, 250)}"

    # -- one agent working for one user ----------------------------------------------

    def _issue(self, s: _Session, t: float) -> str:
        s.family = f"fam-{s.tenant}-{self._n:07d}"
        s.gen = 0
        grant = list(s.agent.grant) + list(s.extra_scopes.values())
        return self.emit(
            t,
            s,
            "token.issued",
            audience=_aud(s.tenant, s.agent.tools[0]),
            scopes=grant,
            token={"id": f"{s.family}-rt0", "family_id": s.family, "type": "refresh_token"},
            source=self._source(s),
        )

    def _refresh(self, s: _Session, t: float, *, race: bool = False) -> list[str]:
        parent = f"{s.family}-rt{s.gen}"
        s.gen += 1
        ids = [
            self.emit(
                t,
                s,
                "token.refreshed",
                token={
                    "parent_id": parent,
                    "id": f"{s.family}-rt{s.gen}",
                    "family_id": s.family,
                    "type": "refresh_token",
                },
                source=self._source(s),
            )
        ]
        if race:
            ids.append(
                self.emit(
                    t + self.rng.uniform(0.05, 1.5),
                    s,
                    "token.refreshed",
                    token={
                        "parent_id": parent,
                        "id": f"{s.family}-rt{s.gen}b",
                        "family_id": s.family,
                        "type": "refresh_token",
                    },
                    source=self._source(s),
                )
            )
        s.refreshes.append((t, s.gen))
        return ids

    def _call(
        self,
        s: _Session,
        t: float,
        *,
        tool: str | None = None,
        scope: str | None = None,
        net: tuple[int, str] | None = None,
        ua: str | None = None,
        token: str | None = None,
        family: str | None = None,
    ) -> str:
        rng = self.rng
        if tool is None:
            tool = s.agent.tools[s.pos % len(s.agent.tools)]
            s.pos += 1
        if scope is None:
            if tool in s.extra_scopes and rng.random() < 0.3:
                scope = s.extra_scopes[tool]
            elif tool in s.agent.write_tools and rng.random() < 0.25:
                scope = f"{tool}:write"
            else:
                scope = f"{tool}:read"
        source = self._source(s, net)
        if ua is not None:
            source["user_agent"] = ua
        fam = family or s.family
        eid = self.emit(
            t,
            s,
            "token.used",
            audience=_aud(s.tenant, tool),
            scopes=[scope],
            token={"id": token or f"{fam}-at{s.gen}", "family_id": fam, "type": "access_token"},
            source=source,
            destination=_host(s.tenant, tool),
        )
        if net is None and family is None:
            s.calls.append((t, _aud(s.tenant, tool)))
        return eid

    def _generate(self, s: _Session, t0: float, t1: float) -> None:
        rng = self.rng
        self._issue(s, t0)
        t = t0
        next_refresh = t0 + s.lifetime
        travelled = False
        deployed = False
        while True:
            t += rng.expovariate(s.rate * diurnal(t) / 60.0)
            if t >= t1:
                return
            if s.travel is not None and not travelled and t >= s.travel[0]:
                travelled = True
                t = s.travel[1]
                s.net = self._net(s, s.travel[2])
                next_refresh = t
            if s.deploy is not None and not deployed and t >= s.deploy:
                deployed = True
                s.agent.version = "1.5"
                s.ua = f"{s.agent.name}-bot/1.5"
                tool = s.agent.tools[0]
                s.extra_scopes = {
                    tool: f"{tool}:write" if tool not in s.agent.write_tools else f"{tool}:export"
                }
                self._issue(s, s.deploy)
                next_refresh = s.deploy + s.lifetime
                t = max(t, s.deploy + 1.0)
            while next_refresh <= t:
                race = rng.random() < 0.04
                ids = self._refresh(s, next_refresh, race=race)
                if race:
                    self.benign.append(
                        {
                            "kind": "concurrent_refresh",
                            "tenant": s.tenant,
                            "principal": s.principal,
                            "start": _iso(next_refresh),
                            "event_ids": ids,
                        }
                    )
                next_refresh += s.lifetime
            self._call(s, t)

    # -- attacks ----------------------------------------------------------------------

    def _attacker_net(self) -> tuple[int, str]:
        self._attacker += 1
        return 65500 + self._attacker, f"198.51.{100 + self._attacker % 50}.{7 + self._attacker}"

    def _label(
        self,
        kind: str,
        s: _Session,
        start: float,
        ids: list[str],
        audience: str | None,
        **extra: Any,
    ) -> None:
        self.attacks.append(
            {
                "id": f"atk-{len(self.attacks) + 1}",
                "kind": kind,
                "tenant": s.tenant,
                "principal": s.principal,
                "entity": f"{s.principal}/{audience or '-'}",
                "family_id": extra.pop("family_id", s.family),
                "start": _iso(start),
                "end": _iso(extra.pop("end", start)),
                "event_ids": ids,
                **extra,
            }
        )

    def _inject_attacks(self, tenant: str, sessions: list[_Session]) -> None:
        rng = self.rng
        span = self.t1 - self.t0
        pool = [s for s in sessions if s.deploy is None and s.travel is None]
        rng.shuffle(pool)
        for kind in self.cfg.attacks:
            for _ in range(self.cfg.attacks_per_tenant):
                if not pool:
                    return
                s = pool.pop()
                if kind == "low_and_slow":
                    start = self.t0 + rng.uniform(0.25, 0.35) * span
                    self._low_and_slow(s, start, min(3 * 3600.0, 0.55 * span))
                    continue
                start = self.t0 + rng.uniform(0.4, 0.85) * span
                getattr(self, "_" + kind)(s, start)

    def _call_after(self, s: _Session, t: float) -> tuple[float, str]:
        for when, aud in s.calls:
            if when >= t:
                return when, aud
        return s.calls[-1]

    def _gen_at(self, s: _Session, t: float) -> int:
        gen = 0
        for when, g in s.refreshes:
            if when <= t:
                gen = g
        return gen

    def _refresh_replay(self, s: _Session, start: float) -> None:
        gen = self._gen_at(s, start)
        if gen < 2:
            if len(s.refreshes) < 3:
                return
            start = s.refreshes[2][0] + 60.0
            gen = self._gen_at(s, start)
        net = self._attacker_net()
        stolen = f"{s.family}-stolen{gen}"
        nth = self._replays[s.tenant] = self._replays.get(s.tenant, 0) + 1
        if nth == 2:
            first = self._idp_reported_reuse(s, start, net, gen - 1)
        else:
            first = self.emit(
                start,
                s,
                "token.refreshed",
                token={
                    "parent_id": f"{s.family}-rt{gen - 1}",
                    "id": stolen,
                    "family_id": s.family,
                    "type": "refresh_token",
                },
                source={"ip": net[1], "asn": net[0], "user_agent": ATTACKER_UA},
            )
        ids = [first]
        tool = s.agent.tools[0]
        t = start
        for _ in range(3):
            t += self.rng.uniform(2, 20)
            ids.append(self._call(s, t, tool=tool, net=net, ua=ATTACKER_UA, token=f"{stolen}-at"))
        self._label("refresh_replay", s, start, ids, None, end=t)

    def _idp_reported_reuse(
        self, s: _Session, t: float, net: tuple[int, str], presented: int
    ) -> str:
        """The replay of generation ``presented`` as the IdP logs it when it detects the
        reuse itself: Okta's ``app.oauth2.as.token.detect_reuse`` (odd tenants) or
        Auth0's ``ferrt`` (even tenants). Returns the id its normalizer gives it."""
        raw_id = self._next_id()
        client = f"agent-{s.agent.name}"
        record: dict[str, Any]
        if int(s.tenant.removeprefix("tenant") or 1) % 2:
            record = {
                "uuid": raw_id,
                "published": _iso(t),
                "eventType": "app.oauth2.as.token.detect_reuse",
                "org": s.tenant,
                "actor": {"id": client, "type": "PublicClientApp", "displayName": s.agent.name},
                "client": {
                    "id": client,
                    "ipAddress": net[1],
                    "userAgent": {"rawUserAgent": ATTACKER_UA},
                },
                "securityContext": {"asNumber": net[0]},
                "outcome": {"result": "FAILURE", "reason": "refresh token reuse detected"},
                "authenticationContext": {"externalSessionId": s.family},
                "target": [
                    {"id": s.user, "type": "User", "alternateId": s.user},
                    {"id": f"{s.family}-rt{presented}", "type": "refresh_token"},
                ],
            }
            event_id = f"okta:{raw_id}"
        else:
            record = {
                "log_id": raw_id,
                "date": _iso(t),
                "type": "ferrt",
                "tenant_name": s.tenant,
                "client_id": client,
                "client_name": s.agent.name,
                "user_id": s.user,
                "agent_id": s.agent.name,
                "ip": net[1],
                "user_agent": ATTACKER_UA,
                "description": "Unsuccessful Refresh Token exchange, reused refresh token detected",
                "details": {
                    "familyId": s.family,
                    "tokenCounter": presented,
                    "latestCounter": presented + 1,
                },
            }
            event_id = f"auth0:{raw_id}"
        self._events.append((t, self._n, record))
        return event_id

    def _parallel_use(self, s: _Session, start: float) -> None:
        when, aud = self._call_after(s, start)
        gen = self._gen_at(s, when)
        net = self._attacker_net()
        tool = _tool_of(aud)
        t = when + self.rng.uniform(3, 30)
        first = t
        ids = []
        for _ in range(5):
            ids.append(
                self._call(
                    s,
                    t,
                    tool=tool,
                    scope=f"{tool}:read",
                    net=net,
                    ua=ATTACKER_UA,
                    token=f"{s.family}-at{gen}",
                )
            )
            t += self.rng.uniform(5, 30)
        self._label("parallel_use", s, first, ids, aud, end=t)

    def _scope_escalation(self, s: _Session, start: float) -> None:
        when, aud = self._call_after(s, start)
        tool = _tool_of(aud)
        granted = f"{tool}:delete" in s.agent.grant
        scope = f"{tool}:delete" if granted and self.rng.random() < 0.7 else f"{tool}:admin"
        t = when + self.rng.uniform(1, 20)
        first = t
        ids = []
        for _ in range(3):
            ids.append(self._call(s, t, tool=tool, scope=scope, family=s.family))
            t += self.rng.uniform(10, 60)
        self._label("scope_escalation", s, first, ids, aud, end=t, scope=scope)

    def _exfil_spike(self, s: _Session, start: float) -> None:
        when, aud = self._call_after(s, start)
        tool = _tool_of(aud)
        per_min = self.rng.uniform(30, 80)
        t = when + 1.0
        first = t
        ids = []
        while t < first + 360.0:
            ids.append(self._call(s, t, tool=tool, scope=f"{tool}:read", family=s.family))
            t += self.rng.expovariate(per_min / 60.0)
        self._label("exfil_spike", s, first, ids, aud, end=t)

    def _cross_tool_burst(self, s: _Session, start: float) -> None:
        when, _ = self._call_after(s, start)
        tools = [
            *s.agent.tools,
            *self.rng.sample([x for x in TOOLS if x not in s.agent.tools], 12 - len(s.agent.tools)),
        ]
        self.rng.shuffle(tools)
        t = when + 1.0
        first = t
        ids = []
        for tool in tools:
            # one exchanged token per tool (RFC 8693): families whose grant we never saw
            fam = f"{s.family}-x{tool}"
            ids.append(
                self._call(s, t, tool=tool, scope=f"{tool}:read", family=fam, token=f"{fam}-at")
            )
            t += self.rng.uniform(0.5, 3.5)
        self._label("cross_tool_burst", s, first, ids, None, end=t)

    def _low_and_slow(self, s: _Session, start: float, duration: float) -> None:
        net = self._attacker_net()
        family = f"fam-{s.tenant}-x{self._n:07d}"
        tool = s.agent.tools[0]
        ids = [
            self.emit(
                start,
                s,
                "token.issued",
                audience=_aud(s.tenant, tool),
                scopes=list(s.agent.grant),
                token={"id": f"{family}-rt0", "family_id": family, "type": "refresh_token"},
                source={"ip": net[1], "asn": net[0], "user_agent": ATTACKER_UA},
            )
        ]
        t = start
        while t < start + duration:
            t += self.rng.uniform(360, 720)
            ids.append(
                self._call(
                    s,
                    t,
                    tool=tool,
                    scope=f"{tool}:read",
                    net=net,
                    ua=ATTACKER_UA,
                    family=family,
                    token=f"{family}-at",
                )
            )
        self._label("low_and_slow", s, start, ids, _aud(s.tenant, tool), end=t, family_id=family)


def simulate(config: SimConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The events (wire dicts, in time order) and the labels."""
    return Simulator(config).run()


def write(
    events: Sequence[dict[str, Any]], labels: dict[str, Any], out: Path, labels_out: Path
) -> None:
    with out.open("wb") as fh:
        for ev in events:
            fh.write(orjson.dumps(ev))
            fh.write(b"\n")
    labels_out.write_bytes(orjson.dumps(labels, option=orjson.OPT_INDENT_2))
