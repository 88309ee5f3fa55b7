"""Prometheus metrics of the operator: reconciles by trigger and outcome, and per JobQueue its
workers, queue depth, scaling decisions, schedule fires and reconcile errors.

The per-JobQueue series carry ``namespace`` and ``jobqueue`` labels (the chart's dashboard and
alerts select on them); :func:`forget` removes every series of a JobQueue when it is deleted, so
label cardinality follows the JobQueues that exist. Only touched from the event loop's thread
(prometheus_client's own locks make the scrape safe).
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
DESIRED_WORKERS = Gauge(
    "jobqueue_operator_desired_workers",
    "Worker replicas the autoscaler last asked for (every autoscaled pool of the JobQueue).",
    ["namespace", "jobqueue"],
)
CURRENT_WORKERS = Gauge(
    "jobqueue_operator_current_workers",
    "Worker replicas the worker Deployments have (spec.replicas, every autoscaled pool).",
    ["namespace", "jobqueue"],
)
QUEUE_DEPTH = Gauge(
    "jobqueue_operator_queue_depth",
    "Jobs waiting plus in flight, as the autoscaler last read them, by queue.",
    ["namespace", "jobqueue", "queue"],
)
SCALE_DECISIONS = Counter(
    "jobqueue_operator_scale_decisions_total",
    "Autoscaler evaluations by the reason of their decision (ScaleUp, ScaleDown, AtMax, ...).",
    ["namespace", "jobqueue", "reason"],
)
SCHEDULE_FIRES = Counter(
    "jobqueue_operator_schedule_fires_total",
    "Jobs enqueued by spec.schedules (a fire time already enqueued is not counted again).",
    ["namespace", "jobqueue", "schedule"],
)
RECONCILE_ERRORS = Counter(
    "jobqueue_operator_reconcile_errors_total",
    "Reconciles that ended with a problem (invalid spec, missing Secret, failed apply) or "
    "an error.",
    ["namespace", "jobqueue"],
)

_Key = tuple[str, str]
# The label values each JobQueue has used, so forget() removes exactly its series.
_queues: dict[_Key, set[str]] = defaultdict(set)
_reasons: dict[_Key, set[str]] = defaultdict(set)
_schedules: dict[_Key, set[str]] = defaultdict(set)
# The autoscaled pools' own numbers; the gauges hold their sums.
_workers: dict[_Key, dict[str, tuple[int | None, int | None]]] = defaultdict(dict)


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


def workers(
    namespace: str, jobqueue: str, pool: str, desired: int | None, current: int | None
) -> None:
    """One pool's desired and current worker replicas (None: not known)."""
    key = (namespace, jobqueue)
    _workers[key][pool] = (desired, current)
    _set_workers(key)


def pool_stopped(namespace: str, jobqueue: str, pool: str) -> None:
    """A pool's autoscaler stopped: its numbers no longer count."""
    key = (namespace, jobqueue)
    pools = _workers.get(key)
    if pools is None or pools.pop(pool, None) is None:
        return
    if pools:
        _set_workers(key)
    else:
        del _workers[key]
        _remove(DESIRED_WORKERS, *key)
        _remove(CURRENT_WORKERS, *key)


def _set_workers(key: _Key) -> None:
    pools = _workers[key].values()
    DESIRED_WORKERS.labels(*key).set(sum(d for d, _ in pools if d is not None))
    CURRENT_WORKERS.labels(*key).set(sum(c for _, c in pools if c is not None))


def queue_depth(namespace: str, jobqueue: str, queue: str, depth: int) -> None:
    _queues[(namespace, jobqueue)].add(queue)
    QUEUE_DEPTH.labels(namespace, jobqueue, queue).set(depth)


def scale_decision(namespace: str, jobqueue: str, reason: str) -> None:
    _reasons[(namespace, jobqueue)].add(reason)
    SCALE_DECISIONS.labels(namespace, jobqueue, reason).inc()


def schedule_fire(namespace: str, jobqueue: str, schedule: str) -> None:
    _schedules[(namespace, jobqueue)].add(schedule)
    SCHEDULE_FIRES.labels(namespace, jobqueue, schedule).inc()


def reconcile_error(namespace: str, jobqueue: str) -> None:
    RECONCILE_ERRORS.labels(namespace, jobqueue).inc()


def forget(namespace: str, jobqueue: str) -> None:
    """Remove every series of a deleted JobQueue."""
    key = (namespace, jobqueue)
    for metric, values in (
        (QUEUE_DEPTH, _queues.pop(key, set())),
        (SCALE_DECISIONS, _reasons.pop(key, set())),
        (SCHEDULE_FIRES, _schedules.pop(key, set())),
    ):
        for value in values:
            _remove(metric, namespace, jobqueue, value)
    if _workers.pop(key, None) is not None:
        _remove(DESIRED_WORKERS, *key)
        _remove(CURRENT_WORKERS, *key)
    _remove(RECONCILE_ERRORS, *key)


def _remove(metric: Counter | Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never set
        metric.remove(*labels)


def serve(port: int) -> None:
    """Serve /metrics on ``port`` (a daemon thread of prometheus_client)."""
    start_http_server(port)
