"""The API's queue gauges: one series set per queue, ready jobs by priority too, cleared when
another replica exports them or Redis cannot be read."""

from __future__ import annotations

from jobqueue_api.metrics import Metrics
from prometheus_client.parser import text_string_to_metric_families

from jobqueue import QueueStats


def samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = metrics.render().decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def stats(ready: int, by_priority: tuple[int, int, int]) -> QueueStats:
    return QueueStats(
        ready=ready, in_flight=1, delayed=2, dead=3, oldest_ready_age=4.0,
        completed_total=0, failed_total=0, enqueued_total=0, ready_by_priority=by_priority,
    )  # fmt: skip


def test_ready_jobs_are_exported_by_queue_and_priority() -> None:
    metrics = Metrics()
    metrics.set_queue_stats(
        [("shop/emails", stats(6, (1, 2, 3))), ("shop/bulk", stats(0, (0, 0, 0)))]
    )
    by_priority = samples(metrics, "jobqueue_api_queue_ready_by_priority")
    assert by_priority == {
        (("priority", "high"), ("queue", "shop/emails")): 1.0,
        (("priority", "normal"), ("queue", "shop/emails")): 2.0,
        (("priority", "low"), ("queue", "shop/emails")): 3.0,
        (("priority", "high"), ("queue", "shop/bulk")): 0.0,
        (("priority", "normal"), ("queue", "shop/bulk")): 0.0,
        (("priority", "low"), ("queue", "shop/bulk")): 0.0,
    }
    depth = samples(metrics, "jobqueue_api_queue_depth")
    assert depth[(("queue", "shop/emails"), ("state", "ready"))] == 6.0


def test_queue_gauges_are_cleared_when_another_replica_exports_them_or_redis_is_down() -> None:
    metrics = Metrics()
    metrics.set_queue_stats([("shop/emails", stats(6, (1, 2, 3)))])
    metrics.set_queue_stats([])  # another replica holds the lease
    assert samples(metrics, "jobqueue_api_queue_ready_by_priority") == {}
    metrics.set_queue_stats([("shop/emails", stats(6, (1, 2, 3)))])
    metrics.set_queue_stats(None)
    assert samples(metrics, "jobqueue_api_queue_ready_by_priority") == {}
    assert samples(metrics, "jobqueue_api_redis_up") == {(): 0.0}
