"""A per-adapter circuit breaker (Nygard, *Release It!*, "Circuit Breaker").

``closed``: deliveries flow; ``threshold`` consecutive failures open it. ``open``: nothing
is attempted for ``reset_after`` seconds — the entries wait in the outbox, a dead IdP is
not hammered, and the other adapters are not held up. ``half_open``: one trial delivery;
success closes the breaker, failure opens it again for another ``reset_after``.

Time is passed in (``now``, monotonic seconds); the breaker does no I/O. One breaker per
adapter per dispatcher process: each process learns a target's health on its own.
"""

from __future__ import annotations

from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def gauge(self) -> int:
        """0 closed, 1 half-open, 2 open (the ``/metrics`` value)."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


class CircuitBreaker:
    """Counts consecutive failures of one adapter; see the module docstring."""

    def __init__(self, *, threshold: int = 5, reset_after: float = 30.0) -> None:
        if threshold < 1 or reset_after <= 0:
            raise ValueError("a circuit breaker needs threshold >= 1 and reset_after > 0")
        self.threshold = threshold
        self.reset_after = reset_after
        self.failures = 0
        self._opened_at: float | None = None
        self._trial = False

    def state(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if now - self._opened_at >= self.reset_after:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allowance(self, now: float) -> int | None:
        """How many deliveries may start now: ``None`` for no limit (closed), 1 for the
        half-open trial (0 while it runs), 0 while open."""
        state = self.state(now)
        if state == BreakerState.CLOSED:
            return None
        if state == BreakerState.HALF_OPEN:
            return 0 if self._trial else 1
        return 0

    def reopens_in(self, now: float) -> float:
        """Seconds until an open breaker lets a trial through (0 unless open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.reset_after - (now - self._opened_at))

    def started(self, now: float) -> None:
        """A delivery started; in half-open state it is the trial."""
        if self.state(now) == BreakerState.HALF_OPEN:
            self._trial = True

    def succeeded(self, now: float) -> None:
        self.failures = 0
        self._opened_at = None
        self._trial = False

    def failed(self, now: float) -> None:
        self.failures += 1
        if self._trial or self.failures >= self.threshold:
            self._opened_at = now
        self._trial = False
