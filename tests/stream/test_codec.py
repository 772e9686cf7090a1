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


KEY = codec.batch_key(HASHER)


def test_signed_micro_batches_verify_only_with_our_key_value_and_flag() -> None:
    value = codec.encode_events(events(5))
    for family_sent in (False, True):
        headers = codec.batch_headers(value, key=KEY, family_sent=family_sent)
        assert codec.is_batch(headers) and codec.family_sent(headers) is family_sent
        assert codec.signed(headers, value, key=KEY)
        # another instance's key (or a rotated one), a guessed key: not ours
        other = codec.batch_key(TokenHasher(b"another-key-another-key-another!"))
        assert not codec.signed(headers, value, key=other)
        assert not codec.signed(headers, value, key=None)
        # one byte of the value changed, the value cut short, the family flag flipped
        assert not codec.signed(headers, value.replace(b"acme", b"acmf", 1), key=KEY)
        assert not codec.signed(headers, value[:-1], key=KEY)
        flipped = codec.batch_headers(family_sent=not family_sent) + [
            h for h in headers if h[0] == codec.MAC_HEADER
        ]
        assert not codec.signed(flipped, value, key=KEY)
    headers = codec.batch_headers(value, key=KEY)
    mac = next(v for k, v in headers if k == codec.MAC_HEADER)
    # no MAC, an empty or truncated one, two of them (which would be checked?)
    assert not codec.signed(codec.batch_headers(), value, key=KEY)
    assert not codec.signed([*codec.batch_headers(), (codec.MAC_HEADER, b"")], value, key=KEY)
    assert not codec.signed([*codec.batch_headers(), (codec.MAC_HEADER, mac[:16])], value, key=KEY)
    assert not codec.signed([*headers, (codec.MAC_HEADER, mac)], value, key=KEY)
    assert not codec.signed(None, value, key=KEY)
    assert not codec.signed(headers, None, key=KEY)


def test_the_mac_key_is_no_token_hash() -> None:
    """The key is derived from the hash key for its purpose alone: a token whose value is
    the purpose string hashes to something else, and neither half of the key shows in it."""
    assert len(KEY) == 64 and HASHER.subkey("another purpose") != KEY
    exposed = HASHER.hash(codec.MAC_PURPOSE).removeprefix("h1:")
    assert exposed not in KEY.hex()
    assert KEY.hex()[:32] != exposed


def test_a_signed_batch_is_rebuilt_and_an_unsigned_one_validated() -> None:
    """The MAC is what lets a worker skip validation: the same value with a raw token in it
    is hashed when unsigned; signed, it is trusted as our publisher wrote it."""
    items = orjson.loads(codec.encode_events(events(3)))
    assert codec.decode_events(orjson.dumps(items), hasher=HASHER, trusted=True).events == (
        events(3)
    )
    items[1]["token"]["id"] = JWT
    value = orjson.dumps(items)
    assert codec.decode_events(value, hasher=HASHER).events[1].token.id == HASHER.hash(JWT)  # type: ignore[union-attr]
    trusted = codec.decode_events(value, hasher=HASHER, trusted=True).events
    assert trusted[1].token is not None and trusted[1].token.id == JWT


def test_a_signed_batch_the_rebuild_refuses_is_validated_event_by_event() -> None:
    """Signed yet not as our publisher writes (a bug, another version): nothing is trusted
    and nothing is lost — the batch is validated, its bad event rejected alone."""
    items = orjson.loads(codec.encode_events(events(3)))
    items[0]["unknown_field"] = "x"  # the rebuild refuses; validation keeps it as attribute
    items[2]["action"] = "not.an.action"
    parsed = codec.decode_events(orjson.dumps(items), hasher=HASHER, trusted=True)
    assert [e.id for e in parsed.events] == ["e0", "e1"]
    assert parsed.events[0].attributes["unknown_field"] == "x"
    assert [r.index for r in parsed.rejected] == [2]


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
