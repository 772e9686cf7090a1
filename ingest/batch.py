"""Batches of audit events: JSON arrays and NDJSON (one JSON object per line).

A batch is parsed whole or refused whole only for batch-level faults (too large, not
JSON at all); each bad event inside it is rejected alone with its index and reason, and
the valid events still go through (DESIGN.md: "a malformed event is rejected alone").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from ingest.errors import BatchTooLarge, MalformedBatch, Rejected
from ingest.event import AuditEvent
from ingest.secrets import TokenHasher

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_EVENTS = 10_000


@dataclass(frozen=True, slots=True)
class Limits:
    """Batch limits: bytes of body and number of events."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_events: int = DEFAULT_MAX_EVENTS


@dataclass(slots=True)
class ParsedBatch:
    """The events that validated, and each rejected index with its reason."""

    events: list[AuditEvent] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.events) + len(self.rejected)


def describe(error: ValidationError) -> str:
    """A short, specific reason from a pydantic error: ``field.path: message``."""
    parts = []
    for err in error.errors(include_url=False, include_input=False)[:3]:
        loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def validate_events(items: Iterable[Any], *, hasher: TokenHasher, start: int = 0) -> ParsedBatch:
    """Validate decoded JSON values into events; a bad one is rejected alone."""
    out = ParsedBatch()
    ctx = {"hasher": hasher}
    for index, item in enumerate(items, start):
        if isinstance(item, _Undecodable):
            out.rejected.append(Rejected(index, item.reason))
            continue
        try:
            out.events.append(AuditEvent.model_validate(item, context=ctx))
        except ValidationError as exc:
            out.rejected.append(Rejected(index, describe(exc)))
    return out


@dataclass(frozen=True, slots=True)
class _Undecodable:
    reason: str


def iter_ndjson(body: bytes) -> Iterator[Any]:
    """Decoded values of the non-blank lines; a malformed line yields a placeholder that
    ``validate_events`` rejects with the decode error as its reason."""
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield _Undecodable(f"malformed JSON: {exc}")


def decode(body: bytes, *, content_type: str | None = None, limits: Limits = Limits()) -> list[Any]:
    """Decode a body into JSON values: a JSON array, a single object, or NDJSON.

    ``content_type`` ``application/x-ndjson`` (or ``application/jsonl``) forces NDJSON;
    otherwise a body starting with ``[`` is an array and anything else is NDJSON (a single
    object is an NDJSON batch of one).
    """
    if len(body) > limits.max_bytes:
        raise BatchTooLarge(f"body is {len(body)} bytes; the limit is {limits.max_bytes} bytes")
    ctype = (content_type or "").split(";")[0].strip().lower()
    stripped = body.lstrip()
    if not stripped:
        raise MalformedBatch("empty body: send a JSON array or NDJSON of events")
    items: list[Any]
    if ctype not in {"application/x-ndjson", "application/jsonl", "application/ndjson"} and (
        stripped[:1] == b"["
    ):
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedBatch(f"malformed JSON: {exc}") from None
        if not isinstance(decoded, list):
            raise MalformedBatch("expected a JSON array of events")
        items = decoded
    else:
        items = list(iter_ndjson(body))
    if len(items) > limits.max_events:
        raise BatchTooLarge(
            f"batch has {len(items)} events; the limit is {limits.max_events} per batch"
        )
    return items


def parse_batch(
    body: bytes,
    *,
    hasher: TokenHasher,
    content_type: str | None = None,
    limits: Limits = Limits(),
) -> ParsedBatch:
    """Decode and validate one batch body."""
    return validate_events(decode(body, content_type=content_type, limits=limits), hasher=hasher)
