"""The operator's per-JobQueue Prometheus series: names the chart's dashboard and alerts read,
pools summed, and every series of a deleted JobQueue removed."""

from __future__ import annotations

from jobqueue_operator import metrics
from prometheus_client import REGISTRY, generate_latest


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def series_of(namespace: str, jobqueue: str) -> list[str]:
    text = generate_latest(REGISTRY).decode()
    mark = f'jobqueue="{jobqueue}",namespace="{namespace}"'
    mark2 = f'namespace="{namespace}",jobqueue="{jobqueue}"'
    return [line for line in text.splitlines() if mark in line or mark2 in line]


def test_per_jobqueue_series_carry_the_names_the_dashboard_reads() -> None:
    q = {"namespace": "m1", "jobqueue": "emails"}
    metrics.workers("m1", "emails", "default", 3, 2)
    metrics.workers("m1", "emails", "gpu", 1, 1)  # a second autoscaled pool: summed
    metrics.queue_depth("m1", "emails", "m1/emails", 42)
    metrics.scale_decision("m1", "emails", "ScaleUp")
    metrics.scale_decision("m1", "emails", "AtMax")
    metrics.scale_decision("m1", "emails", "AtMax")
    metrics.schedule_fire("m1", "emails", "nightly")
    metrics.reconcile_error("m1", "emails")
    assert value("jobqueue_operator_desired_workers", **q) == 4
    assert value("jobqueue_operator_current_workers", **q) == 3
    assert value("jobqueue_operator_queue_depth", **q, queue="m1/emails") == 42
    assert value("jobqueue_operator_scale_decisions_total", **q, reason="AtMax") == 2
    assert value("jobqueue_operator_schedule_fires_total", **q, schedule="nightly") == 1
    assert value("jobqueue_operator_reconcile_errors_total", **q) == 1
    metrics.pool_stopped("m1", "emails", "gpu")  # autoscaling off for that pool
    assert value("jobqueue_operator_desired_workers", **q) == 3


def test_a_deleted_jobqueue_leaves_no_series() -> None:
    metrics.workers("m2", "gone", "default", 1, 1)
    metrics.queue_depth("m2", "gone", "m2/gone", 1)
    metrics.scale_decision("m2", "gone", "ScaleDown")
    metrics.schedule_fire("m2", "gone", "hourly")
    metrics.reconcile_error("m2", "gone")
    metrics.workers("m2", "kept", "default", 5, 5)
    assert len(series_of("m2", "gone")) >= 5
    metrics.forget("m2", "gone")
    assert series_of("m2", "gone") == []
    assert value("jobqueue_operator_desired_workers", namespace="m2", jobqueue="kept") == 5
    metrics.forget("m2", "never-seen")  # harmless


def test_the_last_pool_stopping_removes_the_worker_series() -> None:
    metrics.workers("m3", "q", "default", 2, 2)
    metrics.pool_stopped("m3", "q", "default")
    assert value("jobqueue_operator_desired_workers", namespace="m3", jobqueue="q") is None
    metrics.pool_stopped("m3", "q", "default")  # twice: harmless
