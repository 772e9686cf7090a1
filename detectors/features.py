"""What the usage detectors share about one event: its entity, its time, its network, and
the row of numbers the learned model scores.

The usage detectors (``volume``, ``scope_drift``, ``destination``, ``burst``) look at the
same event through one :class:`Observation`, built once per event by the Engine, so the
entity key, the epoch time and the caller's network are computed once, not once per
detector. Each of them writes its features into ``Observation.row`` at the positions named
in :data:`FEATURES`; the ``model`` detector scores those rows in batches. The feature list
is fixed (a disabled detector leaves its features at 0), and a trained model is saved with
it, so a model trained on another list is refused at load.

The usage state of one entity lives in **one record**, ``u/<tenant>/<user>/<agent>/<audience>``
(:data:`ENTITY_PREFIX`): a list with one part per detector, ``[volume, scope drift,
destination]`` (:data:`VOLUME`, :data:`SCOPE`, :data:`DESTINATION`; ``null`` for a part its
detector has not written; each detector's module docstring describes its part). The state
of one token family likewise: ``fam/<tenant>/<family>`` (:data:`FAMILY_PREFIX`), ``[grant,
network]`` (:data:`GRANT`: the scopes issued, scope drift's; :data:`NETWORK`: the family's
last network, destination's). One lookup per event and record, not one per detector: the
:class:`Observation` looks both records up once per event (``Observation.rec``,
``Observation.fam``) and writes the entity record back right away, the detectors change
their own parts in place (a detector writes the family record itself when it changed its
part), and the Engine stores the entity records that were new after the detectors ran
(:func:`store_records`). A part expires with its own detector's ``idle_ttl``
(:func:`sweep_part`); the record goes with its last part. :func:`upgrade_state` moves
state saved in the earlier layout (one key per detector) into these records.

A usage detector reports a :class:`Finding` (a score in 0..1, a reason an on-call engineer
can act on, the numbers behind it) rather than a ``Detection``: the Engine combines the
findings of one event into the entity's risk (README, "Engine") and decides whether to
emit. Each detector's own ``detect`` turns its finding into a detection when the score alone
reaches :data:`STANDALONE_THRESHOLD`, so it also works outside the Engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from math import exp as _exp
from typing import Any, ClassVar, Protocol, runtime_checkable

from detectors.base import State
from detectors.detection import Detection, Severity
from detectors.network import network_of
from ingest import AuditEvent

#: The model's feature vector, in order. Detectors write ``row[F_<NAME>]``.
FEATURES: tuple[str, ...] = (
    "vol_ratio_1m",  # log2 of calls in the last minute over the expected count
    "vol_ratio_15m",  # the same over 15 minutes
    "vol_ratio_1h",  # the same over an hour
    "scope_novelty",  # 1 never used by the entity (0.5 rarely), discounted by population/grant
    "scope_weight",  # sensitivity weight of the most sensitive scope exercised
    "net_novelty",  # switched into a network never (1) or rarely (0.8) used by the entity
    "net_switch_rate",  # network switches per hour (decayed)
    "ua_novelty",  # switched into a user agent never/rarely seen for the entity
    "dest_novelty",  # destination host never seen for the entity
    "burst_ratio",  # distinct audiences in the burst window over the agent's usual
    "hour_typicality",  # how busy this hour of day usually is for the agent population (1 = avg)
)
(
    F_VOL_1M,
    F_VOL_15M,
    F_VOL_1H,
    F_SCOPE_NOVELTY,
    F_SCOPE_WEIGHT,
    F_NET_NOVELTY,
    F_NET_SWITCH,
    F_UA_NOVELTY,
    F_DEST_NOVELTY,
    F_BURST,
    F_HOUR,
) = range(len(FEATURES))
N_FEATURES = len(FEATURES)

#: A usage detector's score that is worth a detection on its own (outside the Engine).
STANDALONE_THRESHOLD = 0.7

#: Actions the usage detectors look at.
USAGE_ACTIONS = frozenset({"token.used", "token.issued", "token.refreshed"})

#: The usage entity's record: ``u/<tenant>/<user>/<agent>/<audience>`` (module docstring).
ENTITY_PREFIX = "u/"
#: Its parts, by position: volume's, scope drift's, destination's.
VOLUME, SCOPE, DESTINATION = range(3)
#: A token family's record: ``fam/<tenant>/<family>``.
FAMILY_PREFIX = "fam/"
#: Its parts, by position: the grant (scope drift's), the last network (destination's).
GRANT, NETWORK = range(2)


_AS_NETS: dict[int, str] = {}


def _as_net(asn: int) -> str:
    """``as<asn>``, the network of a caller with a known ASN (memoised: one string object
    per network, so comparing and hashing it is cheap in every detector)."""
    net = f"as{asn}"
    if len(_AS_NETS) < 65536:
        _AS_NETS[asn] = net
    return net


def agent_key(event: AuditEvent) -> str:
    """The workload: the agent, else ``client:<client_id>``, else ``-``."""
    if event.agent:
        return event.agent
    if event.client_id:
        return f"client:{event.client_id}"
    return "-"


class Observation:
    """One event as the usage detectors see it (built once per event).

    The event's fields the detectors read are copied into plain attributes once here
    (``tenant``, ``user``, ``action``, ``audience``, ``scopes``, ``outcome``,
    ``destination``, ``user_agent``): reading a slot costs a third of reading a pydantic
    field, and each of them is read by several detectors per event. ``key`` and
    ``fam_key`` name the entity's and the family's state records; given the ``state``,
    ``rec`` (``token.used`` only) and ``fam`` are those records (module docstring).
    """

    __slots__ = (
        "action",
        "agent",
        "audience",
        "destination",
        "event",
        "fam",
        "fam_key",
        "family",
        "findings",
        "hour",
        "key",
        "net",
        "outcome",
        "principal",
        "rec",
        "row",
        "scopes",
        "t",
        "tenant",
        "used",
        "user",
        "user_agent",
    )

    def __init__(
        self,
        event: AuditEvent,
        with_row: bool = True,
        state: State | None = None,
        fresh: dict[str, list[Any]] | None = None,
    ) -> None:
        self.event = event
        # pydantic keeps a model's fields in its __dict__: one lookup, then plain dict reads
        d = event.__dict__
        t = self.t = d["time"].timestamp()
        self.hour: int = int(t // 3600) % 24
        tenant: str = d["tenant"]
        self.tenant = tenant
        user: str | None = d["user"]
        self.user = user
        action: str = d["action"]
        self.action = action
        #: a ``token.used`` (the only action most usage detectors look at)
        self.used: bool = action == "token.used"
        audience: str | None = d["audience"]
        self.audience = audience
        self.scopes: tuple[str, ...] = d["scopes"]
        self.outcome: str = d["outcome"]
        self.destination: str | None = d["destination"]
        agent = d["agent"]
        if not agent:
            client = d["client_id"]
            agent = f"client:{client}" if client else "-"
        self.agent: str = agent
        #: ``tenant/user/agent`` — the agent acting for one user
        principal = self.principal = f"{tenant}/{user or '-'}/{agent}"
        #: ``u/<entity>``: the state key of the entity's record
        key = self.key = f"{ENTITY_PREFIX}{principal}/{audience or '-'}"
        src = d["source"]
        if src is None:
            self.net: str | None = None
            self.user_agent: str | None = None
        else:
            asn = src.asn
            if asn is None:
                self.net = network_of(event)
            else:
                net = _AS_NETS.get(asn)
                if net is None:
                    net = _as_net(asn)
                self.net = net
            self.user_agent = src.user_agent
        tok = d["token"]
        #: the token family (``token.family_id``, else the token's own id)
        family = self.family = None if tok is None else (tok.family_id or tok.id)
        #: ``fam/<tenant>/<family>``: the state key of the family's record
        fam_key = self.fam_key = None if family is None else f"{FAMILY_PREFIX}{tenant}/{family}"
        if state is None:
            self.rec: list[Any] | None = None
            self.fam: list[Any] | None = None
        else:
            # the records (module docstring): one lookup each; an entity record found is
            # written back at once — the write finds the key where the lookup left it —
            # and changed in place by the detectors after (``detectors.base``); a record
            # not there yet starts empty, shared through ``fresh`` by the observations of
            # the same entity or family that follow, and is stored once it has a part
            get = state.get
            if fresh is None:
                fresh = {}
            rec = None
            if action == "token.used":
                rec = get(key)
                if rec is None:
                    rec = _fresh_record(fresh, key, 3)
                else:
                    state[key] = rec
            self.rec = rec
            fam = None
            if fam_key is not None:
                fam = get(fam_key)
                if fam is None:
                    fam = _fresh_record(fresh, fam_key, 2)
            self.fam = fam
        #: the model's feature row (``None`` when no batch detector needs one)
        self.row: list[float] | None = [0.0] * N_FEATURES if with_row else None
        self.findings: list[Finding] | None = None

    @property
    def entity(self) -> str:
        """``tenant/user/agent/audience`` — the usage entity (DESIGN.md, "Entity key")."""
        return self.key[len(ENTITY_PREFIX) :]

    @property
    def who(self) -> str:
        """``agent crm-followup for jane@acme.example``, for reasons."""
        return f"agent {self.agent} for {self.event.user or 'an unknown user'}"

    def add(self, finding: Finding) -> None:
        if self.findings is None:
            self.findings = [finding]
        else:
            self.findings.append(finding)


def _fresh_record(fresh: dict[str, list[Any]], key: str, parts: int) -> list[Any]:
    """The record ``key`` not in the state yet: the one an earlier observation of the
    chunk started, else a new empty one."""
    rec = fresh.get(key)
    if rec is None:
        rec = fresh[key] = [None] * parts
    return rec


def store_records(fresh: dict[str, list[Any]], state: State) -> None:
    """Store the entity records that were new to ``state`` (the ``fresh`` the batch's
    Observations were built with) once they have a part; family records are stored by the
    detector that changed them."""
    for key, rec in fresh.items():
        if key.startswith(ENTITY_PREFIX) and any(part is not None for part in rec):
            state[key] = rec


def _without(rec: list[Any], part: int) -> list[Any] | None:
    rest = list(rec)
    rest[part] = None
    return rest if any(p is not None for p in rest) else None


@dataclass(slots=True)
class Finding:
    """A usage detector's view of one event: score 0..1, why, and the numbers."""

    detector: str
    score: float
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    critical: bool = False
    #: other events that belong to the evidence (e.g. the parallel use from the other network)
    related: tuple[str, ...] = ()


@runtime_checkable
class UsageDetector(Protocol):
    """A detector the Engine feeds Observations and whose findings it combines.

    It may also have ``observe_batch(observations, state) -> None``: the same for every
    observation of a batch, in order, adding its findings to each with
    ``Observation.add`` — the Engine then calls that once per batch instead of ``observe``
    per event (the built-in usage detectors do: their common case is a short loop with
    their constants bound once per batch). Detectors keep only their own state, so running
    each over the whole batch in turn finds what running them all per event would.
    """

    name: ClassVar[str]

    def observe(self, obs: Observation, state: State) -> Finding | None:
        """Update ``state`` with the observation, write features into ``obs.row``, and
        return a finding when something is off (a score of 0 is no finding)."""
        ...


def observe_one(detector: Any, obs: Observation, state: State) -> Finding | None:
    """``observe`` of a detector that implements ``observe_batch``: a batch of one."""
    before = obs.findings
    obs.findings = None
    try:
        detector.observe_batch((obs,), state)
        found = obs.findings
    finally:
        obs.findings = before
    return found[0] if found else None


def detection_of(
    detector: str,
    obs: Observation,
    *,
    score: float,
    severity: Severity,
    reason: str,
    evidence: dict[str, Any],
    related: tuple[str, ...] = (),
) -> Detection:
    """A usage Detection on ``obs.entity`` (deterministic id from the events)."""
    event = obs.event
    entity = obs.entity
    event_ids = (event.id, *related)
    session = event.attributes.get("session_id")
    return Detection(
        id=Detection.make_id(detector, entity, event_ids),
        detector=detector,
        entity=entity,
        tenant=event.tenant,
        score=min(1.0, max(0.0, score)),
        severity=severity,
        reason=reason,
        evidence=evidence,
        event_ids=event_ids,
        time=event.time,
        user=event.user,
        agent=event.agent,
        client_id=event.client_id,
        family_id=family_of(event),
        session_id=session if isinstance(session, str) else None,
    )


def standalone(
    detector: UsageDetector, event: AuditEvent, state: State, now: datetime
) -> list[Detection]:
    """``detect`` for a usage detector outside the Engine: its finding alone, when the
    score reaches :data:`STANDALONE_THRESHOLD` (critical findings always)."""
    if event.action not in USAGE_ACTIONS:
        return []
    fresh: dict[str, list[Any]] = {}
    obs = Observation(event, False, state, fresh)
    found = detector.observe(obs, state)
    store_records(fresh, state)
    if found is None or (found.score < STANDALONE_THRESHOLD and not found.critical):
        return []
    severity = Severity.CRITICAL if found.critical else Severity.HIGH
    return [
        detection_of(
            detector.name,
            obs,
            score=1.0 if found.critical else found.score,
            severity=severity,
            reason=found.reason,
            evidence=found.evidence,
            related=found.related,
        )
    ]


def family_of(event: AuditEvent) -> str | None:
    """The token family: ``token.family_id``, else the token's own id."""
    tok = event.token
    if tok is None:
        return None
    return tok.family_id or tok.id


def decay(value: float, dt: float, tau: float) -> float:
    """``value`` after ``dt`` seconds of exponential decay with time constant ``tau``."""
    if dt <= 0.0:
        return value
    return value * _exp(-dt / tau)


def evict_smallest(counts: dict[str, Any], keep: int, *, key_index: int | None = None) -> None:
    """Drop the entries with the smallest count until ``keep`` remain."""
    while len(counts) > keep:
        if key_index is None:
            victim = min(counts, key=lambda k: counts[k])
        else:
            victim = min(counts, key=lambda k: counts[k][key_index])
        del counts[victim]


def sweep_part(state: State, prefix: str, part: int, cutoff: float, last_seen: Any) -> int:
    """Clear part ``part`` of the records under ``prefix`` whose ``last_seen(part)`` is
    before ``cutoff`` (a record with no part left goes); returns the parts removed."""
    removed = 0
    for key in [k for k in list(state.keys()) if k.startswith(prefix)]:
        rec = state.get(key)
        if rec is None:
            continue
        value = rec[part]
        if value is None or float(last_seen(value)) >= cutoff:
            continue
        rest = _without(rec, part)
        if rest is None:
            state.pop(key, None)
        else:
            state[key] = rest
        removed += 1
    return removed


def sweep_prefix(state: State, prefix: str, cutoff: float, last_seen: Any) -> int:
    """Delete keys under ``prefix`` whose ``last_seen(value)`` is before ``cutoff``."""
    removed = 0
    for key in [k for k in list(state.keys()) if k.startswith(prefix)]:
        value = state.get(key)
        if value is None or float(last_seen(value)) < cutoff:
            state.pop(key, None)
            removed += 1
    return removed


def fmt_count(n: float) -> str:
    return f"{int(n):,}"


def fmt_age(seconds: float) -> str:
    """``14 days``, ``3.2 h``, ``12 min``."""
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{max(seconds, 0.0) / 60:.0f} min"


#: The state layout before the per-entity and per-family records: prefix -> (record prefix,
#: part) — ``vol/``, ``sd/`` and ``dst/`` per entity, ``sdg/`` and ``dfam/`` per family.
LEGACY_PARTS: dict[str, tuple[str, int]] = {
    "vol/": (ENTITY_PREFIX, VOLUME),
    "sd/": (ENTITY_PREFIX, SCOPE),
    "dst/": (ENTITY_PREFIX, DESTINATION),
    "sdg/": (FAMILY_PREFIX, GRANT),
    "dfam/": (FAMILY_PREFIX, NETWORK),
}


def upgrade_state(state: State) -> int:
    """Move state saved in the earlier layout (one key per detector: ``vol/<entity>``,
    ``sd/``, ``dst/``, ``sdg/<tenant>/<family>``, ``dfam/``) into the per-entity and
    per-family records, so that an upgrade keeps the baselines learned before it; a part
    already in a record is kept (it is the newer). Returns how many keys were moved; a
    state in the current layout is left alone."""
    legacy = [k for k in list(state.keys()) if k.startswith(tuple(LEGACY_PARTS))]
    for key in legacy:
        old_prefix, rest = key.split("/", 1)
        prefix, part = LEGACY_PARTS[old_prefix + "/"]
        value = state.pop(key, None)
        if value is None:
            continue
        target = prefix + rest
        current = state.get(target)
        if current is not None:
            rec = list(current)
        else:
            rec = [None, None, None] if prefix == ENTITY_PREFIX else [None, None]
        if rec[part] is None:
            rec[part] = value
        state[target] = rec
    return len(legacy)
