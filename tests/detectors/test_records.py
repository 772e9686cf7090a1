"""The usage state's per-entity and per-family records (``detectors.features``,
``detectors.records``): one batch finds what one event at a time finds, parts expire on their
own, records stored as JSON and loaded again carry on where the objects left off, and state
saved in the earlier one-key-per-detector layout is carried over."""

from __future__ import annotations

from typing import Any

import orjson

from detectors import DETECTORS, build_engine, upgrade_state
from detectors.features import DESTINATION, GRANT, NETWORK, SCOPE, VOLUME
from detectors.records import (
    ENTITY_PREFIX,
    FAMILY_PREFIX,
    BurstRecord,
    EntityRecord,
    FamilyRecord,
    copied,
    decode,
    entity_record,
    to_json,
)
from ingest import AuditEvent
from tests.detectors.usage import AWAY, at, event, issued, steady

GRANT_SCOPES = ["leads:read", "leads:write", "leads:delete"]


def traffic() -> list[AuditEvent]:
    """Two users of one agent: issuance, steady use, a widened grant, a new scope, a spike,
    another network with the same family, a second family — new entities and families
    that first appear in the middle of a batch."""
    out = [issued(0, GRANT_SCOPES), *steady(70, start=1, step=60)]
    out += [issued(30, ["leads:read"], user="bob@acme.example", family="fam-b", token="rt-b")]
    out += steady(70, start=31, step=60, user="bob@acme.example", family="fam-b")
    out += [event(4300 + i, scopes=["leads:delete"]) for i in range(3)]
    out += [event(4310 + i) for i in range(40)]  # a spike
    out += [event(4360, asn=AWAY), event(4361)]  # the same family from another network
    out += [issued(4400, [*GRANT_SCOPES, "leads:export"], family="fam-2", token="rt-2")]
    out += [event(4401 + i, family="fam-2", scopes=["leads:export"]) for i in range(3)]
    out += [event(4410, user="bob@acme.example", family="fam-b", scopes=["leads:write"])]
    return sorted(out, key=lambda e: e.time)


def stored(state: dict[str, Any]) -> dict[str, Any]:
    """The state as a store keeps it: JSON (``detectors.records.to_json``)."""
    return orjson.loads(orjson.dumps(state, default=to_json))


def run(batches: list[list[AuditEvent]]) -> tuple[list[bytes], dict[str, Any]]:
    """Detections and the state (as stored) after ``batches``."""
    # every detector but the learned model, whose fits happen at batch ends
    engine = build_engine([d for d in DETECTORS if d != "model"])
    state: dict[str, Any] = {}
    found = []
    for batch in batches:
        found += [d.to_json() for d in engine.process(batch, state, batch[-1].time)]
    return found, stored(state)


def test_one_batch_finds_what_one_event_at_a_time_finds() -> None:
    events = traffic()
    one_by_one, state_1 = run([[e] for e in events])
    whole, state_all = run([events])
    assert one_by_one and whole == one_by_one
    assert orjson.dumps(state_all, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        state_1, option=orjson.OPT_SORT_KEYS
    )
    entity = state_all[
        f"{ENTITY_PREFIX}acme/jane@acme.example/crm-followup/https://api.crm.example"
    ]
    assert all(entity[p] is not None for p in (VOLUME, SCOPE, DESTINATION))
    family = state_all[f"{FAMILY_PREFIX}acme/fam-1"]
    assert family[GRANT][0] == GRANT_SCOPES and family[NETWORK][0] == "as64500"


def test_a_part_expires_with_its_own_detector() -> None:
    engine = build_engine(
        ["volume", "destination"],
        {"volume": {"idle_ttl_seconds": 3600}, "destination": {"idle_ttl_seconds": 7200}},
    )
    state: dict[str, Any] = {}
    calls = steady(10, step=60)
    engine.process(calls, state, calls[-1].time)
    (key,) = [k for k in state if k.startswith(ENTITY_PREFIX)]
    engine.sweep(state, at(600 + 5400))
    assert state[key].volume is None and state[key].destination is not None
    assert to_json(state[key])[VOLUME] is None
    engine.sweep(state, at(600 + 86400 * 2))
    assert not [k for k in state if k.startswith((ENTITY_PREFIX, FAMILY_PREFIX))]


def test_state_saved_in_the_earlier_layout_is_carried_over() -> None:
    events = traffic()
    _, state = run([events])
    legacy: dict[str, Any] = {}
    for key, rec in state.items():
        if key.startswith(ENTITY_PREFIX):
            rest = key[len(ENTITY_PREFIX) :]
            for prefix, part in (("vol/", VOLUME), ("sd/", SCOPE), ("dst/", DESTINATION)):
                if rec[part] is not None:
                    legacy[prefix + rest] = rec[part]
        elif key.startswith(FAMILY_PREFIX):
            rest = key[len(FAMILY_PREFIX) :]
            for prefix, part in (("sdg/", GRANT), ("dfam/", NETWORK)):
                if rec[part] is not None:
                    legacy[prefix + rest] = rec[part]
        else:
            legacy[key] = rec
    moved = upgrade_state(legacy)
    assert moved > 0 and upgrade_state(legacy) == 0
    assert legacy == state


def test_state_stored_as_json_and_loaded_again_carries_on_alike() -> None:
    """A restart (the embedded store's snapshot) or a Kafka take (a Table's JSON bytes)
    hands the detectors JSON, not objects: they must go on exactly as the objects would."""
    events = traffic()
    half = len(events) // 2
    engine = build_engine([d for d in DETECTORS if d != "model"])
    kept: dict[str, Any] = {}
    reloaded: dict[str, Any] = {}
    found_kept = [d.to_json() for d in engine.process(events[:half], kept, events[half].time)]
    found_reloaded = [
        d.to_json() for d in engine.process(events[:half], reloaded, events[half].time)
    ]
    reloaded = stored(reloaded)  # JSON lists and dicts, as loaded from a store
    assert any(isinstance(v, list) for k, v in reloaded.items() if k.startswith(ENTITY_PREFIX))
    rest = events[half:]
    found_kept += [d.to_json() for d in engine.process(rest, kept, rest[-1].time)]
    found_reloaded += [d.to_json() for d in engine.process(rest, reloaded, rest[-1].time)]
    assert found_kept and found_reloaded == found_kept
    assert stored(reloaded) == stored(kept)


def test_records_round_trip_through_their_json() -> None:
    _, state = run([traffic()])
    kinds = {EntityRecord: 0, FamilyRecord: 0, BurstRecord: 0}
    for key, value in state.items():
        record = decode(key, value)
        if type(record) in kinds:
            kinds[type(record)] += 1
            assert to_json(record) == value
            twin = copied(record)
            assert twin is not record and to_json(twin) == value
        else:
            assert record == value  # other state stays JSON
    assert all(kinds.values()), kinds
    assert decode("u/x", None) is None


def test_a_copy_is_deep() -> None:
    _, state = run([traffic()])
    key = f"{ENTITY_PREFIX}acme/jane@acme.example/crm-followup/https://api.crm.example"
    rec = entity_record(state[key])
    twin = copied(rec)
    assert twin.scope is not None and rec.scope is not None
    twin.scope.counts["leads:admin"] = 1
    assert "leads:admin" not in rec.scope.counts
