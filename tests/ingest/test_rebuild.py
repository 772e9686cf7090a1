"""``ingest.rebuild``: events rebuilt from their wire form are the very objects validation
makes — same values, same types, same fields counted as set — and a value that is not
what ``AuditEvent`` dumps is refused, never half-built."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, TypeAdapter

from ingest import AuditEvent, Source, TokenHasher, TokenRef, validate_events
from ingest.rebuild import rebuild_event, rebuild_events
from tokenwarden.formats import build_formats, normalize
from tokenwarden.settings import IngestSettings
from tokenwarden.simulate import SimConfig, simulate

HASHER = TokenHasher(b"rebuild-test-key-rebuild-test-k!")
WIRE = TypeAdapter(list[AuditEvent])

FULL = {
    "id": "e-full",
    "time": "2026-11-23T08:00:00.123456+02:00",
    "tenant": "acme",
    "action": "token.refreshed",
    "user": "jane@acme.example",
    "agent": "crm-followup",
    "client_id": "agent-crm",
    "audience": "https://api.crm.example",
    "scopes": ["leads:read", "leads:write"],
    "token": {
        "value": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
        "parent_id": "rt-0",
        "family_id": "fam-1",
        "type": "refresh_token",
    },
    "source": {"ip": "203.0.113.5", "asn": 64500, "user_agent": "crm/1.0"},
    "destination": "api.crm.example",
    "outcome": "failure",
    "attributes": {"session_id": "s-1", "nested": {"list": [1, 2.5, None, "x"]}},
    "extra_field": "kept as an attribute",
}
SPARSE = [
    {"time": 1_795_000_000, "tenant": "t", "action": "token.used"},
    {"time": "2026-11-23T08:00:00", "tenant": "t", "action": "auth.failed", "user": "u"},
    {"time": "2026-11-23T08:00:00Z", "tenant": "t", "action": "ssf.session_revoked"},
    {"id": "e4", "time": "2026-11-23T08:00:00Z", "tenant": "t", "action": "token.issued",
     "token": {"id": "at-1"}, "source": {"asn": 1}, "scopes": []},
    {"id": "e5", "time": "2026-11-23T08:00:00Z", "tenant": "t", "action": "token.used",
     "token": {}, "source": {}, "attributes": {}},
]  # fmt: skip


def wire(events: list[AuditEvent]) -> list[dict[str, Any]]:
    """What a micro-batch holds: the events as ``tokenwarden.stream.codec`` dumps them."""
    items: list[dict[str, Any]] = orjson.loads(WIRE.dump_json(events, exclude_defaults=True))
    return items


def same(a: BaseModel, b: BaseModel) -> None:
    """Equal, field by field with types, and with the same fields counted as set."""
    assert type(a) is type(b)
    assert a == b
    assert a.model_fields_set == b.model_fields_set
    for name in type(a).model_fields:
        x, y = getattr(a, name), getattr(b, name)
        assert type(x) is type(y), name
        if isinstance(x, BaseModel):
            same(x, y)
        if isinstance(x, datetime):
            assert x.tzinfo is UTC and y.tzinfo is UTC and x.isoformat() == y.isoformat()


def revalidated(items: list[dict[str, Any]]) -> list[AuditEvent]:
    parsed = validate_events(items, hasher=HASHER)
    assert not parsed.rejected
    return parsed.events


def test_hand_built_events_rebuild_as_validation_makes_them() -> None:
    events = revalidated([FULL, *SPARSE])
    items = wire(events)
    rebuilt = rebuild_events(orjson.loads(orjson.dumps(items)))
    again = revalidated(orjson.loads(orjson.dumps(items)))
    assert len(rebuilt) == len(again) == len(events)
    for a, b, c in zip(rebuilt, again, events, strict=True):
        same(a, b)
        assert a == c  # (defaults given explicitly are not on the wire: not counted as set)
    full = rebuilt[0]
    assert full.token is not None and full.token.id is not None
    assert full.token.id.startswith("h1:")  # the raw token was hashed once, by validation
    assert full.attributes["extra_field"] == "kept as an attribute"
    assert full.time == datetime(2026, 11, 23, 6, 0, 0, 123456, tzinfo=UTC)
    # a rebuilt event is a working model: dumps, copies, hashes its parts like the original
    assert full.model_dump() == events[0].model_dump()
    assert full.model_copy(update={"tenant": "x"}).tenant == "x"
    assert hash(full.token) == hash(events[0].token)
    with pytest.raises(ValueError, match="frozen"):
        full.tenant = "other"  # type: ignore[misc]


def test_simulated_traffic_rebuilds_as_validation_makes_it() -> None:
    """Every event shape the simulator writes (our wire format, SSF, Okta and Auth0 logs
    through their normalizers), dumped and rebuilt."""
    records, _ = simulate(SimConfig(minutes=45, tenants=2, agents=3, seed=5))
    batch = normalize(
        records, formats=build_formats(IngestSettings()), fmt=None, hasher=HASHER, tenant=None
    )
    assert not batch.rejected and len(batch.events) > 1000
    items = wire(batch.events)
    rebuilt = rebuild_events(orjson.loads(orjson.dumps(items)))
    again = revalidated(orjson.loads(orjson.dumps(items)))
    for a, b in zip(rebuilt, again, strict=True):
        same(a, b)
    assert {e.action for e in rebuilt} >= {"token.used", "token.refreshed", "token.issued"}


def test_rebuilt_events_share_no_mutable_parts() -> None:
    a, b = rebuild_events([{"id": "1", "time": "2026-11-23T08:00:00Z", "tenant": "t",
                            "action": "token.used"}] * 2)  # fmt: skip
    assert a.attributes == {} and a.attributes is not b.attributes


def test_only_attributes_has_a_default_factory() -> None:
    """``rebuild_event`` fills ``attributes`` in by hand: a new field with a default factory
    (here or in the nested models) must be taught to it first."""
    factories = {
        f"{model.__name__}.{name}"
        for model in (AuditEvent, TokenRef, Source)
        for name, info in model.model_fields.items()
        if info.default_factory is not None
    }
    assert factories == {"AuditEvent.attributes"}


@pytest.mark.parametrize(
    ("item", "error"),
    [
        ({"time": "2026-11-23T08:00:00Z", "tenant": "t", "action": "token.used"}, ValueError),
        ({"id": "1", "tenant": "t", "action": "token.used"}, ValueError),
        ({"id": "1", "time": "2026-11-23T08:00:00Z", "tenant": "t", "action": "token.used",
          "surprise": 1}, ValueError),
        ({"id": "1", "time": "2026-11-23T08:00:00Z", "tenant": "t", "action": "token.used",
          "token": {"value": "a-raw-token"}}, ValueError),
        ({"id": "1", "time": "2026-11-23T08:00:00Z", "tenant": "t", "action": "token.used",
          "source": {"port": 1}}, ValueError),
        ({"id": "1", "time": 1_795_000_000, "tenant": "t", "action": "token.used"}, TypeError),
        ({"id": "1", "time": "yesterday", "tenant": "t", "action": "token.used"}, ValueError),
        ({"id": "1", "time": "2026-11-23T08:00:00Z", "tenant": "t", "action": "token.used",
          "token": "not an object"}, TypeError),
        ({"id": "1", "time": "2026-11-23T08:00:00Z", "tenant": "t", "action": "token.used",
          "scopes": 5}, TypeError),
        (["not", "an", "object"], TypeError),
    ],
)  # fmt: skip
def test_what_validation_did_not_write_is_refused(item: Any, error: type[Exception]) -> None:
    """Not what ``AuditEvent`` dumps: refused (the caller validates it instead)."""
    with pytest.raises(error):
        rebuild_event(item)
    good = {"id": "2", "time": "2026-11-23T08:00:00Z", "tenant": "t", "action": "token.used"}
    with pytest.raises(error):
        rebuild_events([good, item])
