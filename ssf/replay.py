"""``jti`` replay: remember accepted ``(iss, jti)`` pairs for a retention window.

RFC 8417 §2.2, ``jti``: "A unique identifier for an event. The identifier MUST be unique
within a particular event feed and MAY be used by clients to track whether a particular
event has already been received." A transmitter that got no answer delivers the same SET
again (and a poll transmitter re-serves SETs until they are acknowledged, RFC 8936), so a
receiver sees a ``jti`` twice in normal operation: the push endpoint answers a redelivery
exactly like the first delivery (202) and acts on it only once.

:class:`JtiStore` is the protocol; the durable stores (database, Redis) live with the
composition root and implement it. :class:`MemoryJtiStore` is the in-process one, for
tests and the embedded default: bounded by both a TTL and a maximum entry count. Evicting an
unexpired entry to stay under ``max_entries`` means a very late redelivery of that ``jti``
would be acted on again — which is why production uses a durable store.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class JtiStore(Protocol):
    """Where accepted ``(issuer, jti)`` pairs are remembered."""

    async def seen_or_add(
        self, issuer: str, jti: str, *, now: datetime, retention: timedelta
    ) -> bool:
        """True if ``(issuer, jti)`` was already recorded and has not expired; otherwise
        record it until ``now + retention`` and return False. Atomic per pair."""
        ...


class MemoryJtiStore:
    """An in-memory :class:`JtiStore` bounded by TTL and ``max_entries`` (oldest evicted)."""

    def __init__(self, *, max_entries: int = 100_000) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self._expiry: OrderedDict[tuple[str, str], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    async def seen_or_add(
        self, issuer: str, jti: str, *, now: datetime, retention: timedelta
    ) -> bool:
        now_ts = now.timestamp()
        self._purge(now_ts)
        key = (issuer, jti)
        expires = self._expiry.get(key)
        if expires is not None and expires > now_ts:
            return True
        if expires is not None:
            del self._expiry[key]
        self._expiry[key] = now_ts + retention.total_seconds()
        while len(self._expiry) > self.max_entries:
            self._expiry.popitem(last=False)
        return False

    def _purge(self, now_ts: float) -> None:
        """Drop expired entries from the oldest end (insertion order ~ expiry order)."""
        expiry = self._expiry
        while expiry:
            key, expires = next(iter(expiry.items()))
            if expires > now_ts:
                break
            del expiry[key]
