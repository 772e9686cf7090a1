"""Rejected records kept for inspection (``GET /v1/rejected``): bounded, newest first.

A forwarder's bad record is answered with its index and reason at once; this keeps the last
``rejected_keep`` of them with an excerpt of the record, so an operator can see what a
source sends wrong without turning on debug logs. Raw tokens in the excerpt are replaced by
their keyed hash and JWT/bearer shapes redacted, as everywhere else.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from ingest import Rejected, TokenHasher, redact_text, scrub_tokens

EXCERPT_BYTES = 1024


class RejectedLog:
    """The last ``keep`` rejected records (thread-safe; in memory, per process)."""

    def __init__(self, keep: int, hasher: TokenHasher) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=max(keep, 0) or None)
        self._keep = keep
        self._hasher = hasher
        self._lock = threading.Lock()
        self.total = 0

    def add(
        self,
        *,
        rejected: Sequence[Rejected],
        items: Sequence[Any],
        source: str,
        fmt: str | None,
        tenant: str | None,
        at: datetime,
    ) -> None:
        if not rejected:
            return
        entries = []
        for r in rejected:
            record = items[r.index] if 0 <= r.index < len(items) else None
            entries.append(
                {
                    "at": at.isoformat(),
                    "source": source,
                    "format": fmt,
                    "tenant": tenant,
                    "index": r.index,
                    "reason": r.reason,
                    "record": self._excerpt(record),
                }
            )
        with self._lock:
            self.total += len(entries)
            if self._keep:
                self._items.extend(entries)

    def _excerpt(self, record: Any) -> str:
        try:
            safe = scrub_tokens(record, self._hasher)
            text = orjson.dumps(safe, default=str).decode()
        except (TypeError, ValueError):
            text = repr(record)
        return redact_text(text[:EXCERPT_BYTES])

    def list(self, *, limit: int = 100, source: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._items)
        items.reverse()
        if source is not None:
            items = [i for i in items if i["source"] == source]
        return items[:limit]
