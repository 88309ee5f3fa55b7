"""Backoff: exponential ceiling, capped, full jitter within [0, ceiling) for retries, equal
jitter within [ceiling/2, ceiling) for reconnects (no I/O)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jobqueue import backoff_ceiling, backoff_delay, reconnect_delay

attempts = st.integers(min_value=1, max_value=10_000)
bases = st.floats(min_value=0.001, max_value=60, allow_nan=False)
caps = st.floats(min_value=0.001, max_value=86_400, allow_nan=False)
units = st.floats(min_value=0, max_value=1, exclude_max=True)


def test_ceiling_doubles_per_attempt_until_the_cap() -> None:
    assert [backoff_ceiling(a, 1.0, 10.0) for a in range(1, 7)] == [1, 2, 4, 8, 10, 10]


@given(attempts, bases, caps, units)
def test_delay_is_within_zero_and_the_ceiling(
    attempt: int, base: float, cap: float, u: float
) -> None:
    ceiling = backoff_ceiling(attempt, base, cap)
    assert 0 <= backoff_delay(attempt, base, cap, u) <= ceiling <= cap


@given(attempts, bases, caps, units)
def test_reconnect_delay_is_within_half_the_ceiling_and_the_ceiling(
    attempt: int, base: float, cap: float, u: float
) -> None:
    ceiling = backoff_ceiling(attempt, base, cap)
    assert ceiling / 2 <= reconnect_delay(attempt, base, cap, u) <= ceiling


def test_reconnect_delays_spread_over_half_the_ceiling() -> None:
    # The worker's schedule (0.2 s doubling to 5 s): 0.1-0.2 s, 0.2-0.4 s, ... 2.5-5 s.
    assert [reconnect_delay(a, 0.2, 5.0, 0.0) for a in (1, 2, 6)] == [0.1, 0.2, 2.5]
    assert reconnect_delay(6, 0.2, 5.0, 0.999) > 4.99


@given(attempts, bases, caps)
def test_ceiling_never_decreases(attempt: int, base: float, cap: float) -> None:
    assert backoff_ceiling(attempt, base, cap) <= backoff_ceiling(attempt + 1, base, cap)


@given(bases, caps)
def test_huge_attempt_counts_do_not_overflow(base: float, cap: float) -> None:
    assert backoff_ceiling(10**9, base, cap) == cap or base * 2**1023 < cap


def test_attempt_below_one_is_treated_as_the_first() -> None:
    assert backoff_ceiling(0, 2.0, 100.0) == backoff_ceiling(1, 2.0, 100.0) == 2.0
