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
from ingest.event import ACTIONS, AuditEvent, Source, TokenRef, is_known_action, scrub_tokens
from ingest.normalizers import (
    NORMALIZERS,
    FieldMapping,
    MappingConfigError,
    NormalizedBatch,
    NormalizeError,
    Normalizer,
    UnknownFormat,
    build_registry,
    chooser,
    detect_format,
    get_normalizer,
    normalize_batch,
)
from ingest.secrets import TokenHasher, looks_like_raw_token, redact, redact_text

__all__ = [
    "ACTIONS",
    "NORMALIZERS",
    "AuditEvent",
    "BatchTooLarge",
    "FieldMapping",
    "IngestError",
    "Limits",
    "MalformedBatch",
    "MappingConfigError",
    "NormalizeError",
    "NormalizedBatch",
    "Normalizer",
    "ParsedBatch",
    "Rejected",
    "Source",
    "TokenHasher",
    "TokenRef",
    "UnknownFormat",
    "build_registry",
    "chooser",
    "decode",
    "detect_format",
    "get_normalizer",
    "is_known_action",
    "iter_ndjson",
    "looks_like_raw_token",
    "normalize_batch",
    "parse_batch",
    "redact",
    "redact_text",
    "scrub_tokens",
    "validate_events",
]
