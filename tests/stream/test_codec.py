"""Micro-batches, dead letters and outputs on the wire."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from detectors import Detection, Severity
from ingest import AuditEvent, TokenHasher, validate_events
from revocation import Action, RevocationOrder, Target, TargetKind
from tokenwarden.stream import codec

HASHER = TokenHasher(b"codec-test-key-codec-test-key-32")
T0 = datetime(2026, 11, 23, tzinfo=UTC)
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def events(n: int) -> list[AuditEvent]:
    raw = [
        {
            "id": f"e{i}",
            "time": T0.isoformat(),
            "tenant": "acme",
            "action": "token.used",
            "user": f"u{i % 7}",
            "scopes": ["a:read"],
            "token": {"id": f"at{i}", "family_id": f"f{i % 3}", "type": "access_token"},
            "attributes": {"n": i},
        }
        for i in range(n)
    ]
    return validate_events(raw, hasher=HASHER).events


def test_micro_batch_round_trip() -> None:
    batch = events(50)
    parsed = codec.decode_events(codec.encode_events(batch), hasher=HASHER)
    assert parsed.rejected == []
    assert parsed.events == batch


def test_chunks_respect_events_and_bytes() -> None:
    batch = events(500)
    by_events = list(codec.chunks(batch, max_events=120, max_bytes=10**9))
    assert [n for _, n in by_events] == [120, 120, 120, 120, 20]
    by_bytes = list(codec.chunks(batch, max_events=10_000, max_bytes=8_000))
    assert all(len(v) <= 8_000 for v, _ in by_bytes)
    assert sum(n for _, n in by_bytes) == 500
    decoded = [e for v, _ in by_bytes for e in codec.decode_events(v, hasher=HASHER).events]
    assert decoded == batch


def test_a_bad_event_in_a_batch_is_rejected_alone() -> None:
    good = orjson.loads(codec.encode_events(events(3)))
    good[1]["action"] = "not.an.action"
    parsed = codec.decode_events(orjson.dumps(good), hasher=HASHER)
    assert len(parsed.events) == 2
    assert [r.index for r in parsed.rejected] == [1]


def test_a_raw_token_in_a_batch_is_hashed_on_decode() -> None:
    """A batch header is no proof of origin: events are validated (and scrubbed) again."""
    item = orjson.loads(codec.encode_events(events(1)))[0]
    item["token"]["id"] = JWT
    parsed = codec.decode_events(orjson.dumps([item]), hasher=HASHER)
    assert parsed.events[0].token is not None
    assert parsed.events[0].token.id == HASHER.hash(JWT)


def test_batch_header() -> None:
    assert codec.is_batch(codec.batch_headers())
    assert not codec.is_batch(None)
    assert not codec.is_batch([("tw-batch", b"2")])
    assert not codec.is_batch([("content-type", b"application/json")])


def test_family_sent_header() -> None:
    """The API's audit messages say their refresh events are on the family topic already;
    nothing else does (the audit stage relays those)."""
    sent = codec.batch_headers(family_sent=True)
    assert codec.is_batch(sent) and codec.family_sent(sent)
    assert not codec.family_sent(codec.batch_headers())
    assert not codec.family_sent(None)
    assert not codec.family_sent([("tw-family-sent", b"2")])


def test_dead_letter_has_error_source_and_no_raw_token() -> None:
    source = codec.Source("tokenwarden.audit", 3, 1234)
    record = {"token": JWT, "note": "Bearer abcdefghijklmnop", "x": "y" * 200}
    value = codec.dead_letter(
        error="unknown format", source=source, index=2, record=record, hasher=HASHER
    )
    doc = orjson.loads(value)
    assert doc["error"] == "unknown format"
    assert doc["source"] == {
        "topic": "tokenwarden.audit",
        "partition": 3,
        "offset": 1234,
        "index": 2,
    }
    assert JWT not in doc["record"]
    assert "abcdefghijklmnop" not in doc["record"]
    assert HASHER.hash(JWT) in doc["record"]
    assert source.key() == b"tokenwarden.audit/3/1234"


def test_dead_letter_of_undecodable_bytes_is_redacted() -> None:
    raw = b'{"token": "' + JWT.encode() + b'", broken ' + b"Q" * 300
    doc = orjson.loads(
        codec.dead_letter(
            error="malformed", source=codec.Source("t", 0, 1), index=None, record=raw, hasher=HASHER
        )
    )
    assert JWT not in doc["record"]
    assert "Q" * 200 not in doc["record"]
    assert len(doc["record"]) <= codec.EXCERPT_BYTES


def test_outputs_round_trip() -> None:
    detection = Detection(
        id="det-1",
        detector="refresh_reuse",
        entity="acme/family/f1",
        tenant="acme",
        score=1.0,
        severity=Severity.CRITICAL,
        reason="reuse",
        time=T0,
        family_id="f1",
    )
    order = RevocationOrder.create(
        target=Target(kind=TargetKind.FAMILY, tenant="acme", value="f1"),
        action=Action.REVOKE,
        cause="refresh_reuse",
        reason="reuse",
        detection_ids=("det-1",),
        now=T0,
    )
    assert codec.decode_detections(codec.encode_detections([detection])) == [detection]
    assert codec.decode_orders(codec.encode_orders([order])) == [order]
