"""The /queues rates: counter samples taken on each read, rates over about a minute."""

from __future__ import annotations

import pytest
from jobqueue_api.rates import RateTracker

from jobqueue import QueueStats


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stats(enqueued: int, completed: int = 0, failed: int = 0) -> QueueStats:
    return QueueStats(
        ready=0,
        in_flight=0,
        delayed=0,
        dead=0,
        oldest_ready_age=0.0,
        completed_total=completed,
        failed_total=failed,
        enqueued_total=enqueued,
    )


def test_the_first_read_has_no_rate_and_the_second_measures_since_it() -> None:
    clock = Clock()
    rates = RateTracker(clock)
    first = rates.observe("q", stats(100))
    assert (first.enqueued_per_s, first.window_seconds) == (0.0, 0.0)
    clock.now += 10
    r = rates.observe("q", stats(300, completed=50, failed=5))
    assert (r.enqueued_per_s, r.completed_per_s, r.failed_per_s) == (20.0, 5.0, 0.5)
    assert r.window_seconds == 10.0


def test_rates_cover_the_last_minute_once_the_history_is_longer() -> None:
    clock = Clock()
    rates = RateTracker(clock)
    for i in range(200):  # a read every 2 s: 10 jobs/s until t=300, then 100 jobs/s
        enqueued = 20 * i if i <= 150 else 3000 + 200 * (i - 150)
        r = rates.observe("q", stats(enqueued))
        clock.now += 2
    assert r.window_seconds == pytest.approx(60.0)
    assert r.enqueued_per_s == pytest.approx(100.0)


def test_queues_are_tracked_apart_and_a_purged_counter_is_not_negative() -> None:
    clock = Clock()
    rates = RateTracker(clock)
    rates.observe("a", stats(500))
    rates.observe("b", stats(0))
    clock.now += 5
    assert rates.observe("a", stats(0)).enqueued_per_s == 0.0  # purged: restarts at 0
    assert rates.observe("b", stats(50)).enqueued_per_s == 10.0


def test_reads_closer_than_a_second_keep_the_older_sample() -> None:
    clock = Clock()
    rates = RateTracker(clock)
    rates.observe("q", stats(0))
    for _ in range(20):
        clock.now += 0.1
        r = rates.observe("q", stats(int((clock.now - 1000.0) * 10)))
    assert r.window_seconds == pytest.approx(2.0) and r.enqueued_per_s == pytest.approx(10.0)
