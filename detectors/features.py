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
(:data:`ENTITY_PREFIX`): an :class:`~detectors.records.EntityRecord` with one part per
detector (``volume``, ``scope``, ``destination``; ``None`` for a part its detector has not
written; each detector's module docstring describes its part). The state of one token family
likewise: ``fam/<tenant>/<family>`` (:data:`FAMILY_PREFIX`), a
:class:`~detectors.records.FamilyRecord` (the grant, scope drift's; the last network,
destination's). Records are typed objects in memory and JSON where stored
(``detectors.records``; :data:`VOLUME`, :data:`SCOPE`, :data:`DESTINATION`, :data:`GRANT`
and :data:`NETWORK` are the parts' positions in that JSON). One lookup per event and record,
not one per detector: the :class:`Observation` looks both records up once per event
(``Observation.rec``, ``Observation.fam``) and writes the entity record back right away, the
detectors change their own parts in place (a detector writes the family record itself when
it changed its part), and the Engine stores the entity records that were new after the
detectors ran (:func:`store_records`). A part expires with its own detector's ``idle_ttl``
(:func:`sweep_part`); the record goes with its last part. :func:`upgrade_state` moves state
saved in the earlier layout (one key per detector) into these records.

A usage detector reports a :class:`Finding` (a score in 0..1, a reason an on-call engineer
can act on, the numbers behind it) rather than a ``Detection``: the Engine combines the
findings of one event into the entity's risk (README, "Engine") and decides whether to
emit. Each detector's own ``detect`` turns its finding into a detection when the score alone
reaches :data:`STANDALONE_THRESHOLD`, so it also works outside the Engine.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from math import exp as _exp
from typing import Any

from detectors.base import State, UsageDetector
from detectors.detection import Detection, Severity
from detectors.network import network_of
from detectors.records import (
    ENTITY_PREFIX,
    FAMILY_PREFIX,
    EntityRecord,
    FamilyRecord,
    entity_record,
    family_record,
    to_json,
)
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

#: The entity record's parts, by position in its JSON: volume's, scope drift's,
#: destination's (``detectors.records``).
VOLUME, SCOPE, DESTINATION = range(3)
#: The family record's parts, by position in its JSON: the grant (scope drift's), the last
#: network (destination's).
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
        fresh: dict[str, Any] | None = None,
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
            self.rec: EntityRecord | None = None
            self.fam: FamilyRecord | None = None
        else:
            # the records (module docstring): one lookup each; an entity record found is
            # written back at once — the write finds the key where the lookup left it —
            # and changed in place by the detectors after (``detectors.base``); a record
            # not there yet starts empty, shared through ``fresh`` by the observations of
            # the same entity or family that follow, and is stored once it has a part; a
            # record still in its stored JSON becomes its object here, at its first look
            get = state.get
            if fresh is None:
                fresh = {}
            rec = None
            if action == "token.used":
                found = get(key)
                if found is None:
                    rec = fresh.get(key)
                    if rec is None:
                        rec = fresh[key] = EntityRecord()
                else:
                    rec = found if found.__class__ is EntityRecord else entity_record(found)
                    state[key] = rec
            self.rec = rec
            fam = None
            if fam_key is not None:
                found = get(fam_key)
                if found is None:
                    fam = fresh.get(fam_key)
                    if fam is None:
                        fam = fresh[fam_key] = FamilyRecord()
                elif found.__class__ is FamilyRecord:
                    fam = found
                else:
                    fam = state[fam_key] = family_record(found)
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


def store_records(fresh: dict[str, Any], state: State) -> None:
    """Store the entity records that were new to ``state`` (the ``fresh`` the batch's
    Observations were built with) once they have a part; family records are stored by the
    detector that changed them."""
    for key, rec in fresh.items():
        if rec.__class__ is EntityRecord and not rec.empty():
            state[key] = rec


#: builds a finding's reason and evidence when they are first read (``Finding``)
Explain = Callable[[], tuple[str, dict[str, Any]]]


class Finding:
    """A usage detector's view of one event: score 0..1, why, and the numbers.

    ``reason`` and ``evidence`` may come as an ``explain`` function instead, called when one
    of them is first read: most findings never reach a detection (a young entity's every
    new scope is a finding of a few thousandths, the Engine's combined risk stays far under
    its threshold), and their text and numbers are only read for one that does.
    """

    __slots__ = ("_evidence", "_explain", "_reason", "critical", "detector", "related", "score")

    def __init__(
        self,
        detector: str,
        score: float,
        reason: str = "",
        evidence: dict[str, Any] | None = None,
        critical: bool = False,
        related: tuple[str, ...] = (),
        *,
        explain: Explain | None = None,
    ) -> None:
        self.detector = detector
        self.score = score
        self.critical = critical
        #: other events that belong to the evidence (the parallel use from the other network)
        self.related = related
        self._reason = reason
        self._evidence: dict[str, Any] = {} if evidence is None else evidence
        self._explain = explain

    def _explained(self) -> None:
        explain = self._explain
        if explain is not None:
            self._explain = None
            self._reason, self._evidence = explain()

    @property
    def reason(self) -> str:
        self._explained()
        return self._reason

    @property
    def evidence(self) -> dict[str, Any]:
        self._explained()
        return self._evidence

    def __repr__(self) -> str:
        return (
            f"Finding({self.detector!r}, {self.score!r}, {self.reason!r}, {self.evidence!r}, "
            f"critical={self.critical!r}, related={self.related!r})"
        )


def observe_one(detector: Any, obs: Observation, state: State) -> Finding | None:
    """``observe`` of a detector that implements ``observe_batch``: a batch of one."""
    before = obs.findings
    obs.findings = None
    try:
        detector.observe_batch((obs,), state)
        found = _findings(obs)
    finally:
        obs.findings = before
    return found[0] if found else None


def _findings(obs: Observation) -> list[Finding] | None:
    """``obs.findings`` as it is now (read in a function of its own: where it was just set
    to ``None``, type narrowing — which the compiled module trusts — would take it for
    ``None`` still)."""
    return obs.findings


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
    fresh: dict[str, Any] = {}
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


def sweep_part(state: State, part: str, cutoff: float, last_seen: Callable[[Any], float]) -> int:
    """Clear the part named ``part`` (``volume``, ``scope``, ``destination``) of the entity
    records whose ``last_seen(part)`` is before ``cutoff`` (a record with no part left goes);
    returns the parts removed."""

    def clear(rec: EntityRecord) -> bool:
        current = getattr(rec, part)
        if current is None or float(last_seen(current)) >= cutoff:
            return False
        setattr(rec, part, None)
        return True

    return _sweep_records(state, ENTITY_PREFIX, entity_record, clear)


def sweep_family_part(state: State, part: str, cutoff: float) -> int:
    """Clear the ``grant`` or the ``net`` part of the family records last used before
    ``cutoff`` (a record with no part left goes); returns the parts removed."""

    def clear(rec: FamilyRecord) -> bool:
        if part == "grant":
            if rec.grant is None or rec.grant_t >= cutoff:
                return False
            rec.grant = None
        else:
            if rec.net is None or rec.net_t >= cutoff:
                return False
            rec.net = None
        return True

    return _sweep_records(state, FAMILY_PREFIX, family_record, clear)


def _sweep_records(
    state: State, prefix: str, record: Callable[[Any], Any], clear: Callable[[Any], bool]
) -> int:
    """``clear`` every record under ``prefix`` (as ``record`` makes it of its stored value);
    a record it cleared a part of is stored again, or dropped with no part left."""
    removed = 0
    for key in [k for k in list(state.keys()) if k.startswith(prefix)]:
        value = state.get(key)
        if value is None:
            continue
        rec = record(value)
        if not clear(rec):
            continue
        if rec.empty():
            state.pop(key, None)
        else:
            state[key] = rec
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
        current = to_json(state.get(target))
        if current is not None:
            rec = list(current)
        else:
            rec = [None, None, None] if prefix == ENTITY_PREFIX else [None, None]
        if rec[part] is None:
            rec[part] = value
        state[target] = rec
    return len(legacy)
