"""The circuit breaker's states and the backoff's bounds, with time passed in."""

from __future__ import annotations

import random

import pytest

from revocation.backoff import Backoff
from revocation.breaker import BreakerState, CircuitBreaker


def test_the_breaker_opens_after_consecutive_failures_and_half_opens_later() -> None:
    b = CircuitBreaker(threshold=3, reset_after=30.0)
    assert (b.state(0), b.allowance(0)) == (BreakerState.CLOSED, None)
    b.failed(1)
    b.failed(2)
    b.succeeded(3)  # a success in between resets the count
    b.failed(4)
    b.failed(5)
    assert b.state(5) == BreakerState.CLOSED
    b.failed(6)
    assert (b.state(6), b.allowance(6), b.reopens_in(6)) == (BreakerState.OPEN, 0, 30.0)
    assert b.state(35.9) == BreakerState.OPEN
    assert (b.state(36), b.allowance(36)) == (BreakerState.HALF_OPEN, 1)


def test_a_half_open_breaker_lets_one_trial_through() -> None:
    b = CircuitBreaker(threshold=1, reset_after=10.0)
    b.failed(0)
    b.started(10)
    assert b.allowance(10) == 0  # the trial is running
    b.failed(11)  # the trial failed: open for another reset_after
    assert (b.state(11), b.state(20.9), b.state(21)) == (
        BreakerState.OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
    )
    b.started(21)
    b.succeeded(22)
    assert (b.state(22), b.allowance(22), b.failures) == (BreakerState.CLOSED, None, 0)


def test_breaker_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="threshold"):
        CircuitBreaker(threshold=0)


def test_backoff_grows_exponentially_within_equal_jitter_bounds() -> None:
    b = Backoff(base=0.5, cap=60.0, rng=random.Random(1))
    for attempt in range(1, 12):
        step = min(60.0, 0.5 * 2 ** (attempt - 1))
        for _ in range(50):
            delay = b.delay(attempt)
            assert step / 2 <= delay <= step
    assert Backoff(base=0.5, cap=60.0).delay(10_000) <= 60.0


def test_backoff_jitter_spreads_retries() -> None:
    b = Backoff(base=1.0, cap=300.0, rng=random.Random(3))
    delays = {round(b.delay(5), 3) for _ in range(20)}
    assert len(delays) > 10


def test_backoff_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="base <= cap"):
        Backoff(base=10, cap=1)
