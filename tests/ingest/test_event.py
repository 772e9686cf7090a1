"""The AuditEvent wire schema (DESIGN.md) and batch parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingest import (
    AuditEvent,
    BatchTooLarge,
    Limits,
    MalformedBatch,
    TokenHasher,
    parse_batch,
)

HASHER = TokenHasher(b"0123456789abcdef0123456789abcdef")
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJqYW5lIiwianRpIjoiMSJ9."
    "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
)
FULL: dict[str, Any] = {
    "id": "evt-7f3a",
    "time": "2026-11-23T08:00:00.123Z",
    "tenant": "acme",
    "action": "token.used",
    "user": "jane@acme.example",
    "agent": "crm-followup",
    "client_id": "agent-crm",
    "audience": "https://api.crm.example",
    "scopes": ["leads:read"],
    "token": {"id": "t1", "parent_id": "t0", "family_id": "f1", "type": "refresh_token"},
    "source": {"ip": "203.0.113.5", "asn": 64500, "user_agent": "crm-bot/1.4"},
    "destination": "api.crm.example",
    "outcome": "success",
    "attributes": {"k": "v"},
}


def validate(data: dict[str, Any]) -> AuditEvent:
    return AuditEvent.model_validate(data, context={"hasher": HASHER})


def test_the_design_example_round_trips() -> None:
    event = validate(FULL)
    assert event.time == datetime(2026, 11, 23, 8, 0, 0, 123000, tzinfo=UTC)
    assert event.scopes == ("leads:read",)
    assert event.token is not None and event.token.family_id == "f1"
    assert event.source is not None and event.source.asn == 64500
    again = validate(orjson.loads(event.to_json()))
    assert again == event


def test_event_is_frozen() -> None:
    event = validate(FULL)
    with pytest.raises(ValidationError):
        event.tenant = "other"  # type: ignore[misc]


def test_epoch_seconds_are_accepted() -> None:
    assert validate({**FULL, "time": 1_700_000_000.5}).time.timestamp() == 1_700_000_000.5


def test_unknown_fields_are_kept_as_attributes() -> None:
    event = validate({**FULL, "geo": {"country": "NL"}})
    assert event.attributes == {"k": "v", "geo": {"country": "NL"}}


def test_missing_id_gets_a_stable_content_id() -> None:
    data = {k: v for k, v in FULL.items() if k != "id"}
    assert validate(data).id == validate(dict(data)).id
    assert validate(data).id != validate({**data, "user": "bob"}).id


def test_scope_string_is_split_like_oauth() -> None:
    assert validate({**FULL, "scopes": "a b  c"}).scopes == ("a", "b", "c")


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"action": "token.stolen"}, "unknown action"),
        ({"time": "yesterday"}, "not RFC 3339"),
        ({"time": True}, "time"),
        ({"tenant": ""}, "tenant"),
        ({"scopes": 5}, "scopes"),
        ({"outcome": "maybe"}, "outcome"),
        ({"token": {"id": 5}}, "token.id"),
        ({"token": {"kind": "x"}}, "token.kind"),
        ({"attributes": []}, "attributes"),
    ],
)
def test_bad_fields_are_rejected_with_the_field_named(patch: dict[str, Any], needle: str) -> None:
    body = orjson.dumps([{**FULL, **patch}])
    batch = parse_batch(body, hasher=HASHER)
    assert batch.events == []
    assert len(batch.rejected) == 1
    assert needle in batch.rejected[0].reason


def test_ssf_actions_are_open_ended() -> None:
    assert validate({**FULL, "action": "ssf.session_revoked"}).action == "ssf.session_revoked"


def test_raw_tokens_are_replaced_by_their_keyed_hash() -> None:
    event = validate(
        {
            **FULL,
            "token": {"id": JWT, "parent_id": "Bearer " + JWT, "family_id": "f1"},
            "attributes": {"authorization": "Bearer abcdefghijklmnop", "nested": [JWT]},
        }
    )
    assert event.token is not None
    assert event.token.id == HASHER.hash(JWT)
    assert event.token.parent_id == HASHER.hash(JWT)  # the scheme is not part of the token
    assert event.token.family_id == "f1"
    dumped = event.to_json().decode()
    assert JWT not in dumped and "abcdefghijklmnop" not in dumped


def test_token_value_field_is_hashed_into_the_id() -> None:
    event = validate({**FULL, "token": {"value": "opaque-secret-xyz", "type": "access_token"}})
    assert event.token is not None and event.token.id == HASHER.hash("opaque-secret-xyz")
    assert "opaque-secret-xyz" not in event.to_json().decode()


def test_hash_is_keyed() -> None:
    other = TokenHasher(b"another-key-another-key-32-bytes")
    assert HASHER.hash(JWT) != other.hash(JWT)
    assert HASHER.hash(JWT).startswith("h1:")


def test_raw_token_without_hash_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="no hash key"):
        AuditEvent.model_validate({**FULL, "token": {"id": JWT}})


def test_partly_bad_batch_keeps_the_good_events() -> None:
    body = orjson.dumps([FULL, {**FULL, "action": "nope"}, {**FULL, "id": "evt-2"}, 7])
    batch = parse_batch(body, hasher=HASHER)
    assert [e.id for e in batch.events] == ["evt-7f3a", "evt-2"]
    assert [r.index for r in batch.rejected] == [1, 3]
    assert "must be a JSON object" in batch.rejected[1].reason


def test_ndjson_with_a_malformed_line() -> None:
    body = b"\n".join([orjson.dumps(FULL), b"{not json", orjson.dumps({**FULL, "id": "e2"}), b""])
    batch = parse_batch(body, hasher=HASHER, content_type="application/x-ndjson")
    assert [e.id for e in batch.events] == ["evt-7f3a", "e2"]
    assert batch.rejected[0].index == 1
    assert "malformed JSON" in batch.rejected[0].reason


def test_malformed_json_array_is_refused_whole() -> None:
    with pytest.raises(MalformedBatch, match="malformed JSON"):
        parse_batch(b'[{"a": 1},', hasher=HASHER)


def test_non_array_json_is_refused() -> None:
    with pytest.raises(MalformedBatch):
        parse_batch(b"", hasher=HASHER)


def test_oversize_batches_are_refused() -> None:
    with pytest.raises(BatchTooLarge, match="limit is 100 bytes"):
        parse_batch(b"[" + b" " * 200 + b"]", hasher=HASHER, limits=Limits(max_bytes=100))
    with pytest.raises(BatchTooLarge, match="3 events"):
        parse_batch(orjson.dumps([FULL] * 3), hasher=HASHER, limits=Limits(max_events=2))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_escape_as_anything_but_ingest_errors(body: bytes) -> None:
    try:
        batch = parse_batch(body, hasher=HASHER)
    except (MalformedBatch, BatchTooLarge):
        return
    assert batch.total >= 0


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(list(FULL)), json_values), max_size=5))
def test_arbitrary_json_events_are_validated_or_rejected_with_a_reason(items: list[Any]) -> None:
    batch = parse_batch(orjson.dumps(items), hasher=HASHER)
    assert batch.total == len(items)
    assert all(r.reason for r in batch.rejected)
