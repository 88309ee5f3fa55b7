"""Rates of a queue's monotonic counters, from samples this API process takes when asked.

Counters live in Redis (enqueued, completed, failed per queue); a rate needs two readings.
Each read of ``/queues`` (or ``/metrics``) records the totals it read, at most one sample per
RATE_MIN_SPACING seconds, and the rate is the difference to the newest sample at least
RATE_WINDOW_SECONDS old (or, while the history is shorter, the oldest one) divided by the time
between them. No background task and no Redis writes: an API nobody reads samples nothing,
and after an idle spell the first rates are averaged over the whole gap (window_seconds says
how long). Replicas sample on their own; each answers with its own, equally valid, window.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from jobqueue import QueueStats
from jobqueue_api import constants as c


@dataclass(frozen=True, slots=True)
class Rates:
    enqueued_per_s: float
    completed_per_s: float
    failed_per_s: float
    window_seconds: float


_Sample = tuple[float, int, int, int]  # monotonic time, enqueued, completed, failed


class RateTracker:
    """Per-queue counter history; ``observe`` records a reading and returns the rates."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._samples: dict[str, deque[_Sample]] = {}

    def observe(self, queue: str, stats: QueueStats) -> Rates:
        now = self._clock()
        current: _Sample = (now, stats.enqueued_total, stats.completed_total, stats.failed_total)
        samples = self._samples.setdefault(queue, deque())
        while samples and now - samples[0][0] > c.RATE_MAX_AGE_SECONDS:
            samples.popleft()
        base = None
        for sample in samples:  # the newest sample at least a window old, else the oldest
            if now - sample[0] >= c.RATE_WINDOW_SECONDS or base is None:
                base = sample
            else:
                break
        if not samples or now - samples[-1][0] >= c.RATE_MIN_SPACING:
            samples.append(current)
        while len(samples) > 2 and now - samples[1][0] >= c.RATE_WINDOW_SECONDS:
            samples.popleft()  # keep one sample older than the window, drop the rest
        if base is None or now - base[0] <= 0:
            return Rates(0.0, 0.0, 0.0, 0.0)
        dt = now - base[0]

        def rate(i: int) -> float:  # a counter that went down (queue purged) restarts at 0
            return max(0, current[i] - base[i]) / dt

        return Rates(rate(1), rate(2), rate(3), window_seconds=dt)
