"""What our Kafka messages hold.

**Micro-batch** (API → ``tokenwarden.audit`` and its refresh events → ``tokenwarden.audit.
by-family``, audit stage → ``tokenwarden.audit.by-family`` for forwarded records, forwarded
records re-keyed onto ``tokenwarden.audit``): one message carries many events of one
partition — a JSON array of AuditEvents in their wire form (defaults left out) — with the
header ``tw-batch: 1``. The record key is the first event's partition key, so a consumer
that re-derives the partition from the key lands on the same one. The API's audit messages
also carry ``tw-family-sent: 1``: their refresh events are on the family topic already, so
the audit stage does not relay them (it relays only what came from forwarders).

**Signed micro-batches:** our publishers (the API's ``KafkaPipeline``, the workers' relays)
add ``tw-mac``: HMAC-SHA256 (RFC 2104) of the value and the family-sent flag, under a key
derived from the instance's hash key (``batch_key``), which the API and the workers share
and forwarders never hold. A worker that verifies it rebuilds the events without
validating them a second time (``ingest.rebuild``: the API validated them, and that second
validation was a fifth of a worker's CPU); anything else — no MAC, a wrong one (a forged
batch, a rotated key), a value the rebuild refuses — is validated as a forwarder's batch
would be, so a bad event is still rejected alone.

**Forwarded records** (anything without that header on ``tokenwarden.audit`` or a
configured ingest topic): JSON — one object or an array — or NDJSON, in any format the
normalizers know (``ingest.format``), as rsyslog, Vector or Fluent Bit write them.

**Dead letters** (``tokenwarden.audit.dlq``): one message per bad record — the error, where
it came from (topic, partition, offset, index within the message) and a bounded excerpt of
the record with raw tokens hashed and credential shapes redacted (DESIGN.md: raw tokens
are never stored). Keyed ``<topic>/<partition>/<offset>``.

**Outputs** (``tokenwarden.detections``, ``tokenwarden.orders``): one message per batch's
detections (a JSON array of ``Detection``) and orders (``RevocationOrder`` with its
``status``); at least once — consumers dedupe by ``id``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from pydantic import TypeAdapter

from detectors import Detection
from ingest import (
    AuditEvent,
    ParsedBatch,
    TokenHasher,
    redact_text,
    scrub_tokens,
    validate_events,
)
from ingest.rebuild import rebuild_events
from ingest.secrets import REDACTED
from revocation import RevocationOrder

log = structlog.get_logger("tokenwarden.stream.codec")

BATCH_HEADER = "tw-batch"
BATCH_VERSION = b"1"
FAMILY_SENT_HEADER = "tw-family-sent"
MAC_HEADER = "tw-mac"
#: what ``batch_key`` derives the MAC key for (``TokenHasher.subkey``)
MAC_PURPOSE = "tokenwarden stream micro-batch mac v1"
EXCERPT_BYTES = 2048
#: longer than any identifier (ingest.secrets.MAX_IDENTIFIER_LENGTH): maybe a raw token
_OPAQUE_RUN = re.compile(r"[A-Za-z0-9._~+/=-]{129,}")

_EVENTS = TypeAdapter(list[AuditEvent])
_DETECTIONS = TypeAdapter(list[Detection])
_ORDERS = TypeAdapter(list[RevocationOrder])

Headers = Sequence[tuple[str, bytes]]


def batch_key(hasher: TokenHasher) -> bytes:
    """The key that signs our micro-batches, derived from the hash key (module docstring)."""
    return hasher.subkey(MAC_PURPOSE)


def batch_mac(key: bytes, value: bytes, *, family_sent: bool) -> bytes:
    """HMAC-SHA256 (RFC 2104) of a micro-batch: its flag, then its value."""
    mac = hmac.new(key, b"F" if family_sent else b"-", hashlib.sha256)
    mac.update(value)
    return mac.digest()


def batch_headers(
    value: bytes | None = None, *, key: bytes | None = None, family_sent: bool = False
) -> list[tuple[str, bytes]]:
    """The headers of a micro-batch; ``family_sent``: its events of the family stage are on
    the family topic already (the API sends them there itself), so the audit stage must
    not relay them again. With a ``key`` (``batch_key``), the value is signed."""
    headers = [(BATCH_HEADER, BATCH_VERSION)]
    if family_sent:
        headers.append((FAMILY_SENT_HEADER, BATCH_VERSION))
    if key is not None and value is not None:
        headers.append((MAC_HEADER, batch_mac(key, value, family_sent=family_sent)))
    return headers


def signed(
    headers: Iterable[tuple[str, bytes]] | None, value: bytes | None, *, key: bytes | None
) -> bool:
    """The micro-batch carries a MAC that ``key`` verifies (constant-time comparison)."""
    if not headers or key is None or value is None:
        return False
    macs = [v for k, v in headers if k == MAC_HEADER]
    if len(macs) != 1:
        return False
    expected = batch_mac(key, value, family_sent=family_sent(headers))
    return hmac.compare_digest(macs[0], expected)


def family_sent(headers: Iterable[tuple[str, bytes]] | None) -> bool:
    """The micro-batch's family-stage events were published to the family topic by its
    producer (``batch_headers(family_sent=True)``)."""
    if not headers:
        return False
    return any(k == FAMILY_SENT_HEADER and v == BATCH_VERSION for k, v in headers)


def is_batch(headers: Iterable[tuple[str, bytes]] | None) -> bool:
    """A micro-batch of ours (the header says so); anything else is forwarded records."""
    if not headers:
        return False
    return any(k == BATCH_HEADER and v == BATCH_VERSION for k, v in headers)


def encode_events(events: Sequence[AuditEvent]) -> bytes:
    return _EVENTS.dump_json(list(events), exclude_defaults=True)


def chunks(
    events: Sequence[AuditEvent], *, max_events: int, max_bytes: int
) -> Iterator[tuple[bytes, int]]:
    """``events`` as micro-batch values of at most ``max_events`` events and about
    ``max_bytes`` bytes (a single larger event still travels alone); with their counts."""
    i = 0
    n = len(events)
    while i < n:
        size = min(max_events, n - i)
        while True:
            value = encode_events(events[i : i + size])
            if len(value) <= max_bytes or size == 1:
                break
            size = max(1, size * max_bytes // len(value) - 1)
        yield value, size
        i += size


def decode_events(value: bytes, *, hasher: TokenHasher, trusted: bool = False) -> ParsedBatch:
    """A micro-batch back into events. ``trusted`` (its MAC verified: ``signed``): rebuilt
    without validation, unless the rebuild refuses it. Otherwise validated again (a batch
    header is no proof of origin), so a bad event is rejected alone with its index."""
    items = orjson.loads(value)
    if not isinstance(items, list):
        raise ValueError("a micro-batch must be a JSON array of events")
    if trusted:
        try:
            return ParsedBatch(events=rebuild_events(items))
        except Exception as exc:  # not as our publisher wrote it: validate it
            log.warning("a signed micro-batch did not rebuild; validating it", error=repr(exc))
    return validate_events(items, hasher=hasher)


def encode_detections(detections: Sequence[Detection]) -> bytes:
    return _DETECTIONS.dump_json(list(detections))


def encode_orders(orders: Sequence[RevocationOrder]) -> bytes:
    return _ORDERS.dump_json(list(orders))


def decode_detections(value: bytes) -> list[Detection]:
    return _DETECTIONS.validate_json(value)


def decode_orders(value: bytes) -> list[RevocationOrder]:
    return _ORDERS.validate_json(value)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record was read: a Kafka topic, partition and offset."""

    topic: str
    partition: int
    offset: int

    def key(self) -> bytes:
        return f"{self.topic}/{self.partition}/{self.offset}".encode()


def dead_letter(
    *, error: str, source: Source, index: int | None, record: Any, hasher: TokenHasher
) -> bytes:
    """A dead-letter message: the error, the source offset and a redacted excerpt."""
    return orjson.dumps(
        {
            "error": error[:1000],
            "source": {
                "topic": source.topic,
                "partition": source.partition,
                "offset": source.offset,
                "index": index,
            },
            "record": excerpt(record, hasher),
        }
    )


def excerpt(record: Any, hasher: TokenHasher) -> str:
    """At most ``EXCERPT_BYTES`` of the record, raw tokens hashed, credentials redacted."""
    if isinstance(record, bytes | bytearray):
        # not JSON: redact the credential shapes, and any long opaque run a token could be
        text = bytes(record[: EXCERPT_BYTES * 2]).decode("utf-8", errors="replace")
        text = _OPAQUE_RUN.sub(REDACTED, text)
    else:
        try:
            text = orjson.dumps(scrub_tokens(record, hasher), default=str).decode()
        except (TypeError, ValueError):
            text = repr(record)
    return redact_text(text[:EXCERPT_BYTES])
