"""Backoff: exponential with full jitter for job retries (the formula of ``lua/_lib.lua``), and
with equal jitter for reconnects."""

from __future__ import annotations

import math


def backoff_ceiling(attempt: int, base: float, cap: float) -> float:
    """Largest delay after failed attempt number ``attempt`` (1-based): min(cap, base * 2^(a-1))."""
    if attempt < 1:
        attempt = 1
    # Cap the exponent first so huge attempt counts cannot overflow a float.
    exponent = min(attempt - 1, 1023)
    return min(cap, base * math.ldexp(1.0, exponent))


def backoff_delay(attempt: int, base: float, cap: float, u: float) -> float:
    """Full jitter: a delay uniform in [0, ceiling), drawn with ``u`` in [0, 1)."""
    return u * backoff_ceiling(attempt, base, cap)


def reconnect_delay(attempt: int, base: float, cap: float, u: float) -> float:
    """Equal jitter: a delay uniform in [ceiling/2, ceiling), drawn with ``u`` in [0, 1). Clients
    that lost the same Redis at once come back spread over half the ceiling, and none waits
    longer than the plain exponential delay would have made it."""
    ceiling = backoff_ceiling(attempt, base, cap)
    return ceiling / 2 + u * ceiling / 2
