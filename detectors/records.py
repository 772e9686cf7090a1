"""The usage detectors' per-entity, per-family and per-agent records, as typed objects.

The usage detectors keep their hottest state in three kinds of records (``detectors.features``
says which detector owns what): the entity's ``u/<tenant>/<user>/<agent>/<audience>``
(:class:`EntityRecord`, with one part per detector: :class:`VolumePart`,
:class:`ScopePart`, :class:`DestinationPart`), the token family's ``fam/<tenant>/<family>``
(:class:`FamilyRecord`: the grant, scope drift's, and the last network, destination's) and the
agent-for-a-user's ``bu/<tenant>/<user>/<agent>`` (:class:`BurstRecord`).

In memory they are objects with typed attributes, not JSON-shaped lists and dicts: reading
``part.c0`` costs what reading ``rec[1]`` did, but one record is one object instead of a
nest of lists, dicts and their floats scattered over the heap — with a million entities
every one of those is a cache miss (docs/speed-log.md, session 16) — and where the package
is compiled (``detectors._native``) the numbers are stored unboxed inside the object, and
the records are not tracked by the cyclic garbage collector (``acyclic``: they hold numbers,
strings, tuples of strings, dicts of those and each other, so they cannot form a cycle —
keep it so), which with millions of records alive spared a collection of >1 s every few
million allocations.

Stored (the embedded store's snapshot, a Table's changelog) they are JSON in exactly the
layout the detectors kept before they were objects, so saved state needs no migration:

* entity: ``[volume | null, scope drift | null, destination | null]``, where volume is
  ``[last call, 1 min, 15 min, 1 h, baseline counter, calls, first call]``, scope drift
  ``{"n": calls, "f": first, "t": last, "s": {scope: uses}}`` and destination
  ``{"n": {network: calls}, "u": {user-agent key: calls}, "d": {host: calls}, "c": calls,
  "f": first, "t": last, "ln": last network, "lu": last user agent, "sw": switches/h}``;
* family: ``[[granted scopes, last use] | null, [network, last use, its event, since] |
  null]``;
* burst: ``{"a": {audience: last call}, "b": usual distinct, "k": distinct now, "n": calls,
  "t": last call, "ft": last fired | null}``.

:func:`to_json` turns a record into that JSON (it is the ``default`` of every encoder that
writes state: ``orjson.dumps(value, default=to_json)``); :func:`decode` turns a stored
value back into its record by its key's prefix. Detectors accept either: the first look at
a stored value converts it (``entity_record``, ``family_record``, ``burst_record``).
"""

from __future__ import annotations

from typing import Any, Final

from mypy_extensions import mypyc_attr

#: The entity record's key prefix: ``u/<tenant>/<user>/<agent>/<audience>``.
ENTITY_PREFIX: Final = "u/"
#: The token family record's key prefix: ``fam/<tenant>/<family>``.
FAMILY_PREFIX: Final = "fam/"
#: The burst record's key prefix: ``bu/<tenant>/<user>/<agent>``.
BURST_PREFIX: Final = "bu/"


@mypyc_attr(acyclic=True)
class VolumePart:
    """``volume``'s part of an entity: decayed call counters and the baseline."""

    __slots__ = ("c0", "c1", "c2", "first", "last", "long", "n")

    def __init__(
        self,
        last: float,
        c0: float = 1.0,
        c1: float = 1.0,
        c2: float = 1.0,
        long: float = 0.0,
        n: int = 1,
        first: float | None = None,
    ) -> None:
        #: event time of the last call
        self.last: float = last
        #: calls decayed over 1 min, 15 min, 1 h (``VolumeConfig.windows``)
        self.c0: float = c0
        self.c1: float = c1
        self.c2: float = c2
        #: calls decayed over the baseline window, flagged calls left out
        self.long: float = long
        #: calls on record
        self.n: int = n
        #: event time of the first call
        self.first: float = last if first is None else first

    def to_json(self) -> list[Any]:
        return [self.last, self.c0, self.c1, self.c2, self.long, self.n, self.first]

    @staticmethod
    def from_json(v: list[Any]) -> VolumePart:
        return VolumePart(
            float(v[0]), float(v[1]), float(v[2]), float(v[3]), float(v[4]), int(v[5]), float(v[6])
        )


@mypyc_attr(acyclic=True)
class ScopePart:
    """``scope_drift``'s part of an entity: calls on record and uses of each scope."""

    __slots__ = ("counts", "first", "n", "t")

    def __init__(self, t: float, n: int = 0, first: float | None = None) -> None:
        self.n: int = n
        self.first: float = t if first is None else first
        #: event time of the last call
        self.t: float = t
        #: scope -> uses (at most ``max_scopes``)
        self.counts: dict[str, int] = {}

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "f": self.first, "t": self.t, "s": self.counts}

    @staticmethod
    def from_json(v: dict[str, Any]) -> ScopePart:
        part = ScopePart(float(v["t"]), int(v["n"]), float(v["f"]))
        part.counts = {str(k): int(c) for k, c in v["s"].items()}
        return part


@mypyc_attr(acyclic=True)
class DestinationPart:
    """``destination``'s part of an entity: networks, user agents and hosts seen."""

    __slots__ = ("calls", "dests", "first", "last_net", "last_ua", "nets", "switches", "t", "uas")

    def __init__(self, t: float) -> None:
        #: network -> calls, user-agent key -> calls, destination host -> calls
        self.nets: dict[str, int] = {}
        self.uas: dict[str, int] = {}
        self.dests: dict[str, int] = {}
        self.calls: int = 0
        self.first: float = t
        self.t: float = t
        self.last_net: str | None = None
        self.last_ua: str | None = None
        #: network switches per hour (decayed)
        self.switches: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.nets,
            "u": self.uas,
            "d": self.dests,
            "c": self.calls,
            "f": self.first,
            "t": self.t,
            "ln": self.last_net,
            "lu": self.last_ua,
            "sw": self.switches,
        }

    @staticmethod
    def from_json(v: dict[str, Any]) -> DestinationPart:
        part = DestinationPart(float(v["f"]))
        part.nets = {str(k): int(c) for k, c in v["n"].items()}
        part.uas = {str(k): int(c) for k, c in v["u"].items()}
        part.dests = {str(k): int(c) for k, c in v["d"].items()}
        part.calls = int(v["c"])
        part.t = float(v["t"])
        ln, lu = v["ln"], v["lu"]
        part.last_net = None if ln is None else str(ln)
        part.last_ua = None if lu is None else str(lu)
        part.switches = float(v["sw"])
        return part


@mypyc_attr(acyclic=True)
class EntityRecord:
    """``u/<entity>``: one part per usage detector, ``None`` until it writes one."""

    __slots__ = ("destination", "scope", "volume")

    def __init__(self) -> None:
        self.volume: VolumePart | None = None
        self.scope: ScopePart | None = None
        self.destination: DestinationPart | None = None

    def empty(self) -> bool:
        return self.volume is None and self.scope is None and self.destination is None

    def __repr__(self) -> str:
        return f"EntityRecord({self.to_json()!r})"

    def to_json(self) -> list[Any]:
        vol, scope, dest = self.volume, self.scope, self.destination
        return [
            None if vol is None else vol.to_json(),
            None if scope is None else scope.to_json(),
            None if dest is None else dest.to_json(),
        ]

    @staticmethod
    def from_json(v: list[Any]) -> EntityRecord:
        rec = EntityRecord()
        if v[0] is not None:
            rec.volume = VolumePart.from_json(v[0])
        if v[1] is not None:
            rec.scope = ScopePart.from_json(v[1])
        if v[2] is not None:
            rec.destination = DestinationPart.from_json(v[2])
        return rec


@mypyc_attr(acyclic=True)
class FamilyRecord:
    """``fam/<tenant>/<family>``: the grant (``scope_drift``'s: scopes issued, last use)
    and the last network (``destination``'s: which, last use, by which event, since when);
    ``grant is None`` / ``net is None`` when that part is missing."""

    __slots__ = ("grant", "grant_t", "net", "net_event", "net_since", "net_t")

    def __init__(self) -> None:
        self.grant: tuple[str, ...] | None = None
        self.grant_t: float = 0.0
        self.net: str | None = None
        self.net_t: float = 0.0
        self.net_event: str = ""
        self.net_since: float = 0.0

    def empty(self) -> bool:
        return self.grant is None and self.net is None

    def __repr__(self) -> str:
        return f"FamilyRecord({self.to_json()!r})"

    def to_json(self) -> list[Any]:
        return [
            None if self.grant is None else [list(self.grant), self.grant_t],
            None if self.net is None else [self.net, self.net_t, self.net_event, self.net_since],
        ]

    @staticmethod
    def from_json(v: list[Any]) -> FamilyRecord:
        rec = FamilyRecord()
        grant, net = v[0], v[1]
        if grant is not None:
            rec.grant = tuple(str(s) for s in grant[0])
            rec.grant_t = float(grant[1])
        if net is not None and net[0] is not None:
            rec.net = str(net[0])
            rec.net_t = float(net[1])
            rec.net_event = str(net[2])
            rec.net_since = float(net[3])
        return rec


@mypyc_attr(acyclic=True)
class BurstRecord:
    """``bu/<tenant>/<user>/<agent>``: ``burst``'s memory of the agent's audiences."""

    __slots__ = ("distinct", "fired", "n", "seen", "t", "usual")

    def __init__(self, t: float) -> None:
        #: audience -> event time of its last call (at most ``max_audiences``)
        self.seen: dict[str, float] = {}
        #: distinct audiences usually in one window (moving average)
        self.usual: float = 0.0
        #: distinct audiences in the window when the last one entered it
        self.distinct: int = 1
        self.n: int = 0
        self.t: float = t
        #: when it last fired
        self.fired: float | None = None

    def __repr__(self) -> str:
        return f"BurstRecord({self.to_json()!r})"

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.seen,
            "b": self.usual,
            "k": self.distinct,
            "n": self.n,
            "t": self.t,
            "ft": self.fired,
        }

    @staticmethod
    def from_json(v: dict[str, Any]) -> BurstRecord:
        rec = BurstRecord(float(v["t"]))
        rec.seen = {str(k): float(s) for k, s in v["a"].items()}
        rec.usual = float(v["b"])
        rec.distinct = int(v["k"])
        rec.n = int(v["n"])
        ft = v["ft"]
        rec.fired = None if ft is None else float(ft)
        return rec


def entity_record(value: Any) -> EntityRecord:
    """The entity record ``value`` is, or holds as its stored JSON."""
    if isinstance(value, EntityRecord):
        return value
    return EntityRecord.from_json(value)


def family_record(value: Any) -> FamilyRecord:
    """The family record ``value`` is, or holds as its stored JSON."""
    if isinstance(value, FamilyRecord):
        return value
    return FamilyRecord.from_json(value)


def burst_record(value: Any) -> BurstRecord:
    """The burst record ``value`` is, or holds as its stored JSON."""
    if isinstance(value, BurstRecord):
        return value
    return BurstRecord.from_json(value)


def to_json(value: Any) -> Any:
    """A record as its stored JSON (module docstring); anything else as it is. The
    ``default`` of the encoders that write state (``orjson.dumps(v, default=to_json)``
    calls it only for what it cannot encode itself, and raises if the result is not
    encodable either)."""
    if isinstance(value, (EntityRecord, FamilyRecord, BurstRecord)):
        return value.to_json()
    return value


def decode(key: str, value: Any) -> Any:
    """A stored value (JSON) as the detectors keep it in memory: the record for a key
    under one of the record prefixes, anything else as it is."""
    if value is None:
        return None
    if key.startswith(ENTITY_PREFIX):
        return EntityRecord.from_json(value)
    if key.startswith(FAMILY_PREFIX):
        return FamilyRecord.from_json(value)
    if key.startswith(BURST_PREFIX):
        return BurstRecord.from_json(value)
    return value


def copied(value: Any) -> Any:
    """A deep copy of a state value (records and JSON-shaped data)."""
    if isinstance(value, EntityRecord):
        return EntityRecord.from_json(value.to_json())
    if isinstance(value, FamilyRecord):
        return FamilyRecord.from_json(value.to_json())
    if isinstance(value, BurstRecord):
        return BurstRecord.from_json(value.to_json())
    if isinstance(value, list):
        return [copied(v) for v in value]
    if isinstance(value, dict):
        return {k: copied(v) for k, v in value.items()}
    return value
