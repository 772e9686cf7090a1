"""Our own wire schema (DESIGN.md, "AuditEvent wire schema"): the identity mapping.

The record already is a wire-schema event; the only thing a normalizer adds is the
configured tenant when the record names none. Validation (field types, the action set,
raw-token hashing) is ``AuditEvent``'s, as for ``POST /v1/events`` without a format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest.normalizers.base import NormalizeError


class NativeNormalizer:
    """``format=native``: records are AuditEvent wire dicts."""

    name = "native"

    def normalize(self, record: Mapping[str, Any], *, tenant: str | None) -> dict[str, Any] | None:
        if not isinstance(record, Mapping):
            raise NormalizeError("a record must be a JSON object")
        out = dict(record)
        if out.get("tenant") is None:
            if not tenant:
                raise NormalizeError(
                    "no tenant: the event has no tenant and none is configured", code="no_tenant"
                )
            out["tenant"] = tenant
        return out

    def matches(self, record: Mapping[str, Any]) -> bool:
        """A wire event: a string ``action`` and a ``time``, and none of the vendor keys."""
        return (
            isinstance(record, Mapping)
            and isinstance(record.get("action"), str)
            and "time" in record
            and not any(k in record for k in ("eventType", "operationType", "log_id", "event"))
        )
