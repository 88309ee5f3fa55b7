"""Retry backoff: exponential with full jitter (the same formula as ``lua/_lib.lua``)."""

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
