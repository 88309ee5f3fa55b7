"""Liveness rule, probe handlers, JSON logs and the error formatting of the worker."""

from __future__ import annotations

import json
import logging

import pytest
from jobqueue_worker.health import HealthServer, liveness
from jobqueue_worker.logs import JsonFormatter
from jobqueue_worker.metrics import WorkerMetrics
from jobqueue_worker.runtime import format_error


def test_liveness_fails_only_past_the_threshold() -> None:
    assert liveness(0.0, 30) == (True, "ok")
    assert liveness(30.0, 30)[0]
    alive, reason = liveness(31.2, 30)
    assert not alive and "31.2" in reason


def make_server(
    silence: float = 0.0, draining: bool = False, redis_up: bool = True
) -> HealthServer:
    async def ping() -> bool:
        if not redis_up:
            raise ConnectionError("down")
        return True

    metrics = WorkerMetrics()
    metrics.job_outcome("email", "completed", 3)
    return HealthServer(
        host="127.0.0.1",
        port=0,
        loop_silence=lambda: silence,
        liveness_timeout=10,
        draining=lambda: draining,
        ping=ping,
        metrics=metrics,
    )


async def test_healthz_follows_the_loop_heartbeat() -> None:
    assert (await make_server(silence=1).healthz(None)).status == 200  # type: ignore[arg-type]
    resp = await make_server(silence=11).healthz(None)  # type: ignore[arg-type]
    assert resp.status == 503 and "silent" in (resp.text or "")


@pytest.mark.parametrize(
    ("draining", "redis_up", "status", "text"),
    [
        (False, True, 200, "ok"),
        (False, False, 503, "redis unreachable"),
        (True, True, 503, "draining"),
    ],
)
async def test_readyz(draining: bool, redis_up: bool, status: int, text: str) -> None:
    resp = await make_server(draining=draining, redis_up=redis_up).readyz(None)  # type: ignore[arg-type]
    assert resp.status == status and text in (resp.text or "")


async def test_metrics_are_prometheus_text() -> None:
    resp = await make_server().metrics(None)  # type: ignore[arg-type]
    body = resp.body
    assert isinstance(body, bytes)
    text = body.decode()
    assert 'jobqueue_worker_jobs_processed_total{outcome="completed",type="email"} 3.0' in text
    assert "jobqueue_worker_job_duration_seconds" in text
    assert resp.headers["Content-Type"].startswith("text/plain")


def test_json_log_lines_carry_the_extra_fields() -> None:
    record = logging.LogRecord("jobqueue_worker", logging.INFO, "f", 1, "job finished", None, None)
    record.job_id = "abc"
    record.duration_ms = 1.5
    doc = json.loads(JsonFormatter().format(record))
    assert doc["msg"] == "job finished" and doc["level"] == "info"
    assert doc["job_id"] == "abc" and doc["duration_ms"] == 1.5
    assert doc["ts"].endswith("+00:00")


def test_format_error_keeps_head_and_tail_within_the_limit() -> None:
    try:
        raise RuntimeError("x" * 10_000)
    except RuntimeError as exc:
        text = format_error(exc, limit=500)
    assert text.startswith("RuntimeError: xxx")
    assert len(text) <= 510 and "\n...\n" in text


def test_duration_histogram_buckets_are_cumulative_and_inclusive() -> None:
    from jobqueue_worker.metrics import DurationHistogram

    hist = DurationHistogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 2.0):
        hist.observe(value)
    assert hist.cumulative() == [("0.1", 2.0), ("1.0", 3.0), ("+Inf", 4.0)]
    assert hist.total == pytest.approx(2.65)
