"""Real worker processes and a real Redis: jobs run, results and errors are recorded,
concurrency holds, retries end in the dead-letter queue, metrics and heartbeats show up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from jobqueue import JobSpec, JobStatus, Queue
from tests.integration.worker_support import WorkerProcess, eventually, start_worker

pytestmark = pytest.mark.timeout(60)


async def drained(queue: Queue, total: int) -> bool:
    s = await queue.stats()
    return s.ready == 0 and s.in_flight == 0 and s.delayed == 0 and s.completed_total == total


async def test_example_tasks_run_and_record_results_and_progress(
    queue: Queue, workers: list[WorkerProcess], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    await start_worker(workers, redis_url, queue_name, tmp_path, worker_concurrency=4)
    email = (await queue.enqueue(JobSpec("email", {"to": "a@example.com"}))).job_id
    resize = (await queue.enqueue(JobSpec("resize", {"width": 100, "height": 50}))).job_id
    slow = (await queue.enqueue(JobSpec("slow", {"seconds": 1.0, "steps": 5}))).job_id
    noop = (await queue.enqueue(JobSpec("noop"))).job_id

    async def partway() -> bool:
        job = await queue.get(slow)
        return job is not None and 0 < job.progress < 100

    await eventually(partway, what="progress of the slow job between 0 and 100")
    await eventually(lambda: drained(queue, 4), what="all four jobs completed")
    results = {}
    for job_id in (email, resize, slow, noop):
        job = await queue.get(job_id)
        assert job is not None and job.status is JobStatus.COMPLETED, job
        results[job.type] = job.result
    assert results == {
        "email": {"sent": True, "to": "a@example.com"},
        "resize": {"width": 50, "height": 25},
        "slow": {"slept": 1.0},
        "noop": None,
    }


async def test_concurrency_is_honoured(
    queue: Queue, workers: list[WorkerProcess], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    await start_worker(workers, redis_url, queue_name, tmp_path, worker_concurrency=5)
    ids = [r.job_id for r in await queue.enqueue_many(
        [JobSpec("track", {"seconds": 0.15}) for _ in range(30)]
    )]  # fmt: skip
    await eventually(lambda: drained(queue, 30), what="30 jobs completed")
    peaks = []
    for job_id in ids:
        job = await queue.get(job_id)
        assert job is not None
        peaks.append(job.result["peak"])
    assert max(peaks) == 5


async def test_failing_jobs_retry_then_go_to_the_dead_letter_queue(
    queue: Queue, workers: list[WorkerProcess], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    await start_worker(workers, redis_url, queue_name, tmp_path)
    doomed = (await queue.enqueue(JobSpec("fail", {"message": "nope"}, max_retries=2))).job_id
    flaky = (await queue.enqueue(JobSpec("flaky", {"succeed_on": 2}, max_retries=3))).job_id
    unknown = (await queue.enqueue(JobSpec("no-such-task", max_retries=5))).job_id
    bad_result = (await queue.enqueue(JobSpec("unjsonable", max_retries=5))).job_id

    async def settled() -> bool:
        s = await queue.stats()
        return s.dead == 3 and s.completed_total == 1

    await eventually(settled, timeout=20, what="three dead jobs and one completed")
    dead = {job.id: job for job in await queue.dead_jobs()}
    assert set(dead) == {doomed, unknown, bad_result}
    assert dead[doomed].attempts == 3 and "DeliberateFailure: nope" in (dead[doomed].error or "")
    assert dead[unknown].attempts == 1
    assert "unknown task type 'no-such-task'" in (dead[unknown].error or "")
    assert dead[bad_result].attempts == 1
    assert "not JSON-serialisable" in (dead[bad_result].error or "")
    ok = await queue.get(flaky)
    assert ok is not None and ok.status is JobStatus.COMPLETED and ok.result == {"attempt": 2}


async def test_a_job_past_its_timeout_fails(
    queue: Queue, workers: list[WorkerProcess], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    await start_worker(workers, redis_url, queue_name, tmp_path, job_timeout_seconds=0.5)
    job_id = (await queue.enqueue(JobSpec("slow", {"seconds": 30}, max_retries=0))).job_id

    async def dead() -> bool:
        return (await queue.stats()).dead == 1

    await eventually(dead, what="the slow job dead after its timeout")
    job = await queue.get(job_id)
    assert job is not None and job.status is JobStatus.DEAD
    assert "timed out" in (job.error or "")


async def test_metrics_heartbeat_and_job_logs(
    queue: Queue, workers: list[WorkerProcess], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    w = await start_worker(workers, redis_url, queue_name, tmp_path, pod_name="metrics-worker")
    secret = {"latency": 0, "to": "secret-recipient@example.com"}
    await queue.enqueue_many([JobSpec("email", secret) for _ in range(3)])
    await queue.enqueue(JobSpec("fail", max_retries=0))
    slow = (await queue.enqueue(JobSpec("slow", {"seconds": 3, "steps": 3}))).job_id

    async def busy() -> bool:
        infos = await queue.workers()
        return any(i.id == "metrics-worker" and i.busy and i.in_flight == 1 for i in infos)

    await eventually(busy, what="a busy heartbeat with one job in flight")
    text = (await w.get("/metrics")).text
    assert 'jobqueue_worker_jobs_processed_total{outcome="completed",type="email"} 3.0' in text
    assert 'jobqueue_worker_jobs_processed_total{outcome="failed",type="fail"} 1.0' in text
    assert 'jobqueue_worker_job_duration_seconds_count{type="email"} 3.0' in text
    assert "jobqueue_worker_jobs_in_flight 1.0" in text
    assert "jobqueue_worker_busy 1.0" in text
    assert (await w.get("/readyz")).status_code == 200

    await eventually(lambda: drained(queue, 4), what="the slow job done")

    async def idle() -> bool:
        infos = await queue.workers()
        return any(i.id == "metrics-worker" and not i.busy for i in infos)

    await eventually(idle, what="an idle heartbeat")
    assert "jobqueue_worker_busy 0.0" in (await w.get("/metrics")).text

    logs = w.logs()
    finished = [r for r in logs if r.get("msg") == "job finished"]
    assert len(finished) == 5
    assert {"job_id", "type", "attempt", "duration_ms", "outcome"} <= set(finished[0])
    assert any(r.get("job_id") == slow and r.get("outcome") == "completed" for r in finished)
    # one line per job at INFO: "job started" is a DEBUG line
    assert not [r for r in logs if r.get("msg") == "job started"]
    assert "secret-recipient" not in w.log_text(), "a payload reached the logs"


async def test_two_workers_share_a_queue_without_doing_a_job_twice(
    queue: Queue, workers: list[WorkerProcess], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    for _ in range(2):
        await start_worker(workers, redis_url, queue_name, tmp_path, worker_concurrency=16,
                    job_log_level="DEBUG")  # fmt: skip
    total = 2000
    await queue.enqueue_many([JobSpec("noop") for _ in range(total)])
    await eventually(lambda: drained(queue, total), timeout=30, what="2000 jobs completed")
    await asyncio.sleep(0.2)
    assert (await queue.stats()).completed_total == total
