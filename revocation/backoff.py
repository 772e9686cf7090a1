"""Exponential backoff with jitter for redeliveries.

Attempt ``n`` (1-based) waits ``min(cap, base * 2**(n-1))``, of which a random half is
jitter ("equal jitter", Marc Brooker, *Exponential Backoff And Jitter*, AWS Architecture
Blog, 2015): the wait never drops below half the exponential step, so a flapping target is
not hammered, while the random half spreads out the retries of many entries that failed
together. The random source is injected, so tests are deterministic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Backoff:
    """``base`` and ``cap`` in seconds; ``rng`` the random source for the jitter."""

    base: float = 0.5
    cap: float = 300.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={self.base} cap={self.cap}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first)."""
        step = min(self.cap, self.base * 2.0 ** min(max(attempt, 1) - 1, 62))
        return float(step / 2 + self.rng.uniform(0, step / 2))
