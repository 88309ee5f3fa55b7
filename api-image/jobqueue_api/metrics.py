"""Prometheus metrics of one app instance, in its own registry (no global state, no files)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from jobqueue import QueueStats
from jobqueue.models import PRIORITIES
from jobqueue_api import constants as c

P = c.METRIC_PREFIX
DEPTH_STATES = ("ready", "in_flight", "delayed", "dead")


class Metrics:
    """The API's instruments. Queue gauges are set from QueueStats at scrape time."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.enqueued = Counter(
            f"{P}_jobs_enqueued", "Jobs created by this API process.", registry=self.registry
        )
        self.rejected = Counter(
            f"{P}_rejected_requests",
            "Requests refused for capacity: backpressure or Redis unavailable.",
            ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{P}_request_duration_seconds",
            "HTTP request latency by method, route template and status code.",
            ["method", "route", "status"],
            buckets=c.LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.enqueue_batch = Histogram(
            f"{P}_enqueue_batch_jobs",
            "Jobs per Redis enqueue round trip (concurrent requests are coalesced).",
            buckets=c.BATCH_BUCKETS,
            registry=self.registry,
        )
        self.depth = Gauge(
            f"{P}_queue_depth",
            "Jobs in each queue by state, read from Redis at scrape time (exported by one "
            "API replica: see jobqueue_api_queue_exporter).",
            ["queue", "state"],
            registry=self.registry,
        )
        self.ready_by_priority = Gauge(
            f"{P}_queue_ready_by_priority",
            "Jobs in each queue's ready lists by priority (due delayed jobs not promoted yet "
            "count in queue_depth's ready only), read at scrape time (one replica).",
            ["queue", "priority"],
            registry=self.registry,
        )
        self.oldest_ready_age = Gauge(
            f"{P}_queue_oldest_ready_age_seconds",
            "Age of each queue's oldest waiting job, read at scrape time (one replica).",
            ["queue"],
            registry=self.registry,
        )
        self.exporter = Gauge(
            f"{P}_queue_exporter",
            "1 if this API replica exports the queue gauges (it holds the Redis lease).",
            registry=self.registry,
        )
        self.redis_up = Gauge(
            f"{P}_redis_up",
            "1 if the last scrape could read the queue from Redis.",
            registry=self.registry,
        )
        self._latency_children: dict[tuple[str, str, int], Histogram] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._latency_children.get(key)
        if child is None:
            child = self.latency.labels(method, route, str(status))
            self._latency_children[key] = child
        child.observe(seconds)

    def set_queue_stats(self, stats: Sequence[tuple[str, QueueStats]] | None) -> None:
        """Refresh the queue gauges, one set per queue; None means Redis could not be read,
        an empty sequence that another replica exports them (see exporter.py)."""
        self.depth.clear()
        self.ready_by_priority.clear()
        self.oldest_ready_age.clear()
        if stats is None:
            self.redis_up.set(0)
            self.exporter.set(0)
            return
        self.redis_up.set(1)
        self.exporter.set(1 if stats else 0)
        for name, s in stats:
            self.depth.labels(name, "ready").set(s.ready)
            self.depth.labels(name, "in_flight").set(s.in_flight)
            self.depth.labels(name, "delayed").set(s.delayed)
            self.depth.labels(name, "dead").set(s.dead)
            self.oldest_ready_age.labels(name).set(s.oldest_ready_age)
            for priority, count in zip(PRIORITIES, s.ready_by_priority, strict=True):
                self.ready_by_priority.labels(name, priority.value).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
