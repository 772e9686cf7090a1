"""Throughput of the detector engine with every detector on, one JSON line of figures.

For each entity count (default 10,000 and 1,000,000 ``(tenant, user, agent, audience)``
entities) the same kind of traffic — agents calling their 3 tools with their usual scopes
from their usual network, refresh rotations, grants at issuance, and 0.2 % odd calls (another
network, a rarely used scope) that take the detectors' slow paths — is

1. generated and parsed (pydantic validation, untimed), in batches;
2. run through ``Engine.process`` for a warm-up (every entity gets history, the learned
   model fits itself per tenant from the clean rows, and refits as the entities' features
   come of age: ``detectors.model``, "Refit on drift"), untimed;
3. run through ``Engine.process`` again, timed: events/s with all detectors on, the model
   scored in batches.

Parsing of the same wire events is timed in the same run, in batches of the same size, two
ways: ``validate_events`` (what the pipeline runs: our validators, raw-token scrubbing,
stable ids) and **bare pydantic** — a model of the same wire schema with the same field types
and no validators of ours (``_BareEvent``), the yardstick the target is set against (the
engine at about a fifth of bare pydantic parsing).

``compiled`` says whether the detectors ran compiled (``detectors._native``; set
``TOKENWARDEN_PURE_PYTHON=1`` to measure their sources). State size is the JSON size of
every state key and value divided by the number of entities (per-family and per-agent
records included), in total and without ``refresh_reuse``'s per-family memory of consumed
tokens (``rr/``, ``rrt/``), which grows with refresh rotations rather than with entities.
``gc_collections_timed`` / ``gc_seconds_timed``: the
garbage collections (per generation) inside the timed engine calls, and their time. One core,
no threads.

    python bench/detectors.py [--entities 10000,1000000] [--batch 5000]
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field, TypeAdapter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors import _native, build_engine
from detectors.records import to_json
from ingest import AuditEvent, TokenHasher, validate_events
from tokenwarden.runtime import tune_gc

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC).timestamp()
TENANTS = 10
AGENTS = 20
TOOLS = ("crm", "mail", "docs", "tickets", "files", "chat")
HASHER = TokenHasher(b"bench-key-bench-key-bench-key-32")


class _BareSource(BaseModel):
    ip: str | None = None
    asn: int | None = None
    user_agent: str | None = None


class _BareToken(BaseModel):
    id: str | None = None
    parent_id: str | None = None
    family_id: str | None = None
    type: Literal["access_token", "refresh_token", "id_token", "authorization_code"] | None = None


class _BareEvent(BaseModel):
    """The AuditEvent wire schema as plain pydantic: same fields and types, no validators."""

    id: str
    time: datetime
    tenant: str
    action: str
    user: str | None = None
    agent: str | None = None
    client_id: str | None = None
    audience: str | None = None
    scopes: tuple[str, ...] = ()
    token: _BareToken | None = None
    source: _BareSource | None = None
    destination: str | None = None
    outcome: Literal["success", "failure"] = "success"
    attributes: dict[str, Any] = Field(default_factory=dict)


_BARE = TypeAdapter(list[_BareEvent])


class Traffic:
    """Entities = tenants x agents x users x 3 tools; calls spread uniformly over them."""

    def __init__(self, entities: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.users = max(1, entities // (TENANTS * AGENTS * 3))
        self.entities = TENANTS * AGENTS * self.users * 3
        self.sessions = TENANTS * AGENTS * self.users
        self.gen = [0] * self.sessions
        self.issued = bytearray(self.sessions)
        # event time: each session calls ~6 times a minute across its 3 tools
        self.step = 60.0 / (6.0 * self.sessions)
        self.t = T0
        self.n = 0

    def _session(self, s: int) -> tuple[int, int, int]:
        tenant, rest = divmod(s, AGENTS * self.users)
        agent, user = divmod(rest, self.users)
        return tenant, agent, user

    def events(self, count: int) -> Iterator[dict[str, Any]]:
        rng = self.rng
        for _ in range(count):
            s = rng.randrange(self.sessions)
            tenant, agent, user = self._session(s)
            self.t += self.step
            self.n += 1
            tools = [TOOLS[(agent + k) % len(TOOLS)] for k in range(3)]
            fam = f"f{s}"
            base: dict[str, Any] = {
                "id": f"e{self.n}",
                "time": self.t,
                "tenant": f"t{tenant}",
                "user": f"u{user}@t{tenant}.example",
                "agent": f"agent-{agent}",
                "client_id": f"client-{agent}",
                "source": {
                    "ip": f"10.{tenant}.{agent}.{user % 250}",
                    "asn": 64500 + tenant * 100 + agent,
                    "user_agent": f"agent-{agent}/1.4",
                },
            }
            if not self.issued[s]:
                self.issued[s] = 1
                yield {
                    **base,
                    "action": "token.issued",
                    "audience": f"https://api.{tools[0]}.example",
                    "scopes": [f"{x}:{v}" for x in tools for v in ("read", "write")],
                    "token": {"id": f"{fam}-rt0", "family_id": fam, "type": "refresh_token"},
                }
                continue
            roll = rng.random()
            if roll < 0.04:
                g = self.gen[s]
                self.gen[s] = g + 1
                yield {
                    **base,
                    "action": "token.refreshed",
                    "token": {
                        "parent_id": f"{fam}-rt{g}",
                        "id": f"{fam}-rt{g + 1}",
                        "family_id": fam,
                        "type": "refresh_token",
                    },
                }
                continue
            tool = tools[rng.randrange(3)]
            scope = f"{tool}:write" if rng.random() < 0.2 else f"{tool}:read"
            if roll > 0.998:  # the odd call: another network or a rare scope
                if rng.random() < 0.5:
                    base["source"] = {"ip": "198.51.100.7", "asn": 65001}
                else:
                    scope = f"{tool}:write"
            yield {
                **base,
                "action": "token.used",
                "audience": f"https://api.{tool}.example",
                "scopes": [scope],
                "token": {"id": f"{fam}-at{self.gen[s]}", "family_id": fam, "type": "access_token"},
                "destination": f"api.{tool}.example",
            }


def _parsed(traffic: Traffic, count: int, batch: int) -> Iterator[list[AuditEvent]]:
    left = count
    while left > 0:
        n = min(batch, left)
        left -= n
        yield validate_events(list(traffic.events(n)), hasher=HASHER).events


def _rate(parse: Callable[[list[dict[str, Any]]], object], raw: list[Any], batch: int) -> float:
    """Events/s of ``parse`` over ``raw`` in batches of ``batch``."""
    t = time.perf_counter()
    for i in range(0, len(raw), batch):
        parse(raw[i : i + batch])
    return len(raw) / (time.perf_counter() - t)


class _Collections:
    """The garbage collections inside ``with`` blocks: how many per generation, how long."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.seconds = 0.0
        self._start = 0.0
        self._on = False

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if not self._on:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start
            self.counts[info["generation"]] += 1

    def __enter__(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        self._on = True

    def __exit__(self, *exc: object) -> None:
        self._on = False


def run(entities: int, batch: int) -> dict[str, Any]:
    traffic = Traffic(entities)
    warm = max(200_000, 3 * traffic.entities)
    timed = max(200_000, traffic.entities)
    # the model fits itself as soon as a tenant has 2,000 clean rows (the bench's event time
    # spans minutes, not the hour a first fit waits for in the service)
    engine = build_engine(None, {"model": {"min_train_seconds": 0}})
    state: dict[str, Any] = {}
    for events in _parsed(traffic, warm, batch):
        engine.process(events, state, events[-1].time)

    raw = list(traffic.events(min(timed, 200_000)))
    # two passes each, alternating, the faster one counted: both see the same machine
    parse_rate = bare_rate = 0.0
    for _ in range(2):
        parse_rate = max(parse_rate, _rate(lambda b: validate_events(b, hasher=HASHER), raw, batch))
        bare_rate = max(bare_rate, _rate(_BARE.validate_python, raw, batch))
    del raw

    engine_seconds = 0.0
    done = 0
    detections = 0
    collector = _Collections()
    for events in _parsed(traffic, timed, batch):
        t = time.perf_counter()
        with collector:
            detections += len(engine.process(events, state, events[-1].time))
        engine_seconds += time.perf_counter() - t
        done += len(events)

    by_prefix: dict[str, int] = {}
    for k, v in state.items():
        prefix = k.split("/", 1)[0]
        stored = orjson.dumps(v, default=to_json)  # as a store keeps it
        by_prefix[prefix] = by_prefix.get(prefix, 0) + len(k) + len(stored)
    state_bytes = sum(by_prefix.values())
    usage = sum(v for p, v in by_prefix.items() if p not in {"rr", "rrt", "risk", "sctx"})
    model = next(d for d in engine.detectors if d.name == "model")
    trained = sorted(getattr(model, "models", {}))
    return {
        "entities": traffic.entities,
        "warmup_events": warm,
        "timed_events": done,
        "engine_events_per_s": round(done / engine_seconds),
        "parse_events_per_s": round(parse_rate),
        "engine_vs_parse": round(done / engine_seconds / parse_rate, 2),
        "bare_pydantic_events_per_s": round(bare_rate),
        "engine_vs_bare_pydantic": round(done / engine_seconds / bare_rate, 2),
        "state_keys": len(state),
        "state_bytes_per_entity": round(state_bytes / traffic.entities),
        "usage_state_bytes_per_entity": round(usage / traffic.entities),
        "state_bytes_per_entity_by_key": {
            p: round(v / traffic.entities) for p, v in sorted(by_prefix.items())
        },
        "gc_collections_timed": collector.counts,
        "gc_seconds_timed": round(collector.seconds, 3),
        "model_tenants_trained": len(trained),
        "detections": detections,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entities", default="10000,1000000")
    ap.add_argument("--batch", type=int, default=5000)
    args = ap.parse_args()
    tune_gc()
    # the compiled detector modules, or their sources (detectors._native, DEVELOPERS.md)
    out: dict[str, Any] = {
        "batch": args.batch,
        "detectors": "all",
        "compiled": _native.ACTIVE,
        "runs": [],
    }
    for n in (int(x) for x in args.entities.split(",")):
        out["runs"].append(run(n, args.batch))
        gc.collect()
    out["max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
