"""Prometheus metrics of the operator: reconciles by trigger and outcome, and their duration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram, start_http_server

RECONCILES = Counter(
    "jobqueue_operator_reconciles_total",
    "Reconciles run, by trigger and result.",
    ["trigger", "result"],
)
RECONCILE_SECONDS = Histogram(
    "jobqueue_operator_reconcile_seconds",
    "Time one reconcile took, by trigger.",
    ["trigger"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


@contextmanager
def timed(trigger: str) -> Iterator[None]:
    """Count and time one reconcile started by ``trigger``."""
    started = time.perf_counter()
    result = "error"
    try:
        yield
        result = "ok"
    finally:
        RECONCILES.labels(trigger, result).inc()
        RECONCILE_SECONDS.labels(trigger).observe(time.perf_counter() - started)


def serve(port: int) -> None:
    """Serve /metrics on ``port`` (a daemon thread of prometheus_client)."""
    start_http_server(port)
