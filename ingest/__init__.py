"""Sources -> AuditEvent: the wire schema, batch parsing, raw-token hashing at the edge."""

from ingest.batch import (
    Limits,
    ParsedBatch,
    decode,
    iter_ndjson,
    parse_batch,
    validate_events,
)
from ingest.errors import BatchTooLarge, IngestError, MalformedBatch, Rejected
from ingest.event import ACTIONS, AuditEvent, Source, TokenRef, is_known_action
from ingest.secrets import TokenHasher, looks_like_raw_token, redact, redact_text

__all__ = [
    "ACTIONS",
    "AuditEvent",
    "BatchTooLarge",
    "IngestError",
    "Limits",
    "MalformedBatch",
    "ParsedBatch",
    "Rejected",
    "Source",
    "TokenHasher",
    "TokenRef",
    "decode",
    "is_known_action",
    "iter_ndjson",
    "looks_like_raw_token",
    "parse_batch",
    "redact",
    "redact_text",
    "validate_events",
]
