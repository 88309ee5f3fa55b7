"""A worker's life as Kubernetes sees it: SIGTERM drains and hands back, kill -9 loses nothing,
/healthz fails when the loop is wedged, bad configuration exits non-zero with a message."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from jobqueue_worker import constants as c

from jobqueue import JobSpec, JobStatus, Queue
from tests.integration.worker_support import (
    WorkerProcess,
    eventually,
    run_worker_once,
    start_worker,
)

pytestmark = pytest.mark.timeout(60)


async def in_flight(queue: Queue, n: int) -> None:
    async def check() -> bool:
        return (await queue.stats()).in_flight == n

    await eventually(check, what=f"{n} jobs in flight")


async def test_sigterm_finishes_short_jobs_hands_back_long_ones_and_exits_0(
    queue: Queue, workers: list[WorkerProcess], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    w = await start_worker(
        workers, redis_url, queue_name, tmp_path, worker_concurrency=4, drain_timeout_seconds=1.5
    )
    short = [r.job_id for r in await queue.enqueue_many(
        [JobSpec("slow", {"seconds": 0.6, "steps": 2}) for _ in range(2)]
    )]  # fmt: skip
    long = [r.job_id for r in await queue.enqueue_many(
        [JobSpec("slow", {"seconds": 3, "steps": 3}) for _ in range(2)]
    )]  # fmt: skip
    await in_flight(queue, 4)
    waiting = [r.job_id for r in await queue.enqueue_many([JobSpec("noop") for _ in range(3)])]
    t0 = time.monotonic()
    w.signal(signal.SIGTERM)
    assert await w.wait_exit(10) == 0
    assert 1.3 < time.monotonic() - t0 < 6
    stats = await queue.stats()
    assert (stats.completed_total, stats.in_flight, stats.ready) == (2, 0, 5)
    for job_id in short:
        job = await queue.get(job_id)
        assert job is not None and job.status is JobStatus.COMPLETED
    for job_id in long + waiting:
        job = await queue.get(job_id)
        assert job is not None and job.status is JobStatus.QUEUED
    assert any(r.get("outcome") == "released" for r in w.logs())

    # Nothing was lost: a second worker finishes every job, the handed-back ones included.
    await start_worker(workers, redis_url, queue_name, tmp_path, worker_concurrency=8)

    async def all_done() -> bool:
        s = await queue.stats()
        return s.completed_total == 7 and s.in_flight == 0 and s.ready == 0

    await eventually(all_done, what="all seven jobs completed by the second worker")
    for job_id in long:
        job = await queue.get(job_id)
        assert job is not None and job.attempts == 1, "a hand-back must not count an attempt"


async def test_a_second_signal_hands_back_at_once(
    queue: Queue, workers: list[WorkerProcess], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    w = await start_worker(workers, redis_url, queue_name, tmp_path, drain_timeout_seconds=60)
    await queue.enqueue_many([JobSpec("slow", {"seconds": 60}) for _ in range(2)])
    await in_flight(queue, 2)
    t0 = time.monotonic()
    w.signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    assert w.proc.poll() is None, "the first SIGTERM must wait for the drain"
    w.signal(signal.SIGINT)
    assert await w.wait_exit(10) == 0
    assert time.monotonic() - t0 < 5
    stats = await queue.stats()
    assert (stats.ready, stats.in_flight) == (2, 0)


async def test_a_sync_task_stuck_past_its_timeout_does_not_hold_up_the_exit(
    queue: Queue, workers: list[WorkerProcess], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    w = await start_worker(workers, redis_url, queue_name, tmp_path, job_timeout_seconds=0.5)
    job_id = (await queue.enqueue(JobSpec("resize", {"work": 60}, max_retries=0))).job_id

    async def dead() -> bool:
        return (await queue.stats()).dead == 1

    await eventually(dead, what="the stuck sync job failed by its timeout")
    assert "jobqueue_worker_abandoned_threads 1.0" in (await w.get("/metrics")).text
    t0 = time.monotonic()
    w.signal(signal.SIGTERM)
    assert await w.wait_exit(10) == 0
    assert time.monotonic() - t0 < 5, "the exit waited for the abandoned thread"
    job = await queue.get(job_id)
    assert job is not None and "timed out" in (job.error or "")


async def test_kill_9_mid_job_and_another_worker_completes_it_after_the_lease(
    queue: Queue, workers: list[WorkerProcess], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    a = await start_worker(
        workers, redis_url, queue_name, tmp_path, pod_name="a", lease_seconds=1.5
    )
    job_id = (await queue.enqueue(JobSpec("stall_first"))).job_id
    await in_flight(queue, 1)
    a.proc.kill()
    assert await a.wait_exit(5) == -signal.SIGKILL
    await start_worker(workers, redis_url, queue_name, tmp_path, pod_name="b", lease_seconds=1.5)

    async def completed() -> bool:
        job = await queue.get(job_id)
        return job is not None and job.status is JobStatus.COMPLETED

    await eventually(completed, timeout=15, what="the job completed by worker b")
    job = await queue.get(job_id)
    assert job is not None and job.result == {"attempt": 2, "worker": "b"}


async def test_kill_9_with_prefetched_jobs_loses_nothing(
    queue: Queue, workers: list[WorkerProcess], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    """Prefetched jobs are leased like running ones: after a kill -9 their leases expire, the
    queue's maintenance recovers them and another worker runs every job."""
    n = 400
    ids = [r.job_id for r in await queue.enqueue_many([JobSpec("email", {"latency": 0.002})] * n)]
    env = {"lease_seconds": 1, "worker_concurrency": 1, "worker_prefetch": 8}
    a = await start_worker(workers, redis_url, queue_name, tmp_path, pod_name="a", **env)

    async def prefetching() -> bool:  # holds more jobs than it runs
        return (await queue.stats()).in_flight > 2

    await eventually(prefetching, what="worker a holding prefetched jobs")
    a.proc.kill()
    assert await a.wait_exit(5) == -signal.SIGKILL
    held = (await queue.stats()).in_flight
    assert held > 1
    await start_worker(workers, redis_url, queue_name, tmp_path, pod_name="b", **env)

    async def all_done() -> bool:
        return (await queue.stats()).completed_total == n

    await eventually(all_done, timeout=30, what="every job completed by worker b")
    jobs = await queue.get_many(ids)
    assert all(j is not None and j.status is JobStatus.COMPLETED for j in jobs)
    stats = await queue.stats()
    assert (stats.dead, stats.in_flight, stats.ready) == (0, 0, 0)
    assert 1 <= stats.failed_total <= held  # each held job: one attempt counted by recovery


async def test_sigterm_hands_back_prefetched_jobs_at_once(
    queue: Queue, workers: list[WorkerProcess], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    """On SIGTERM the jobs claimed ahead of a slot go back to the queue before the drain,
    their attempt not counted, and the running one finishes."""
    await queue.enqueue_many([JobSpec("email", {"latency": 0.002})] * 300)
    env = {"worker_concurrency": 1, "worker_prefetch": 8}
    a = await start_worker(workers, redis_url, queue_name, tmp_path, pod_name="a", **env)

    async def prefetching() -> bool:
        return (await queue.stats()).in_flight > 2

    await eventually(prefetching, what="worker a holding prefetched jobs")
    a.proc.send_signal(signal.SIGTERM)
    assert await a.wait_exit(10) == 0
    stats = await queue.stats()
    assert (stats.in_flight, stats.failed_total, stats.dead) == (0, 0, 0)
    assert stats.ready + stats.completed_total == 300
    handed = [r for r in a.logs() if r.get("msg") == "handed back prefetched jobs"]
    assert handed and handed[0]["jobs"] >= 1 and handed[0]["lost"] == 0


async def test_healthz_fails_while_a_task_blocks_the_event_loop(
    queue: Queue, workers: list[WorkerProcess], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    w = await start_worker(workers, redis_url, queue_name, tmp_path, liveness_timeout_seconds=1)
    assert (await w.get("/healthz")).status_code == 200
    await queue.enqueue(JobSpec("block_loop", {"seconds": 4}))

    async def unhealthy() -> bool:
        try:
            return (await w.get("/healthz", timeout=0.5)).status_code != 200
        except httpx.TimeoutException:
            return True  # the kubelet counts a probe timeout as a failure

    await eventually(unhealthy, what="/healthz failing")

    async def healthy() -> bool:
        try:
            return (await w.get("/healthz", timeout=0.5)).status_code == 200
        except httpx.TimeoutException:
            return False

    await eventually(healthy, timeout=10, what="/healthz healthy again after the block")


async def test_healthz_fails_while_the_claim_loop_is_stuck(
    workers: list[WorkerProcess],
    redis_client: aioredis.Redis,
    redis_url: str,
    queue_name: str,
    tmp_path: Path,
) -> None:
    w = await start_worker(workers, redis_url, queue_name, tmp_path, liveness_timeout_seconds=1)
    await redis_client.execute_command("CLIENT", "PAUSE", "3000", "WRITE")  # type: ignore[no-untyped-call]
    try:
        resp: httpx.Response | None = None
        deadline = time.monotonic() + 2.8
        while time.monotonic() < deadline:
            resp = await w.get("/healthz")
            if resp.status_code == 503:
                break
            await asyncio.sleep(0.1)
        assert resp is not None and resp.status_code == 503, "healthz stayed 200"
        assert "claim loop silent" in resp.text
    finally:
        await redis_client.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]

    async def healthy() -> bool:
        return (await w.get("/healthz")).status_code == 200

    await eventually(healthy, what="/healthz healthy again")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY: Input should be greater than or equal"),
        ({"TASKS_MODULE": "no_such_module.tasks"}, "'no_such_module.tasks' was not found"),
        ({"TASKS_MODULE": "json"}, "registers no task"),
        ({"REDIS_URL": "redis://user:hunter2@host:99999/0"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://user:hunter2@host:6379/notadb"}, "REDIS_URL"),
    ],
)
def test_bad_configuration_exits_78_with_a_message(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    code, output = run_worker_once(tmp_path, env)
    assert code == c.EXIT_CONFIG, output
    assert message in output
    assert "hunter2" not in output


def test_a_tasks_module_that_fails_to_import_exits_78(tmp_path: Path) -> None:
    (tmp_path / "broken_tasks.py").write_text("raise RuntimeError('import-time bug')\n")
    code, output = run_worker_once(tmp_path, {"TASKS_MODULE": "broken_tasks"})
    assert code == c.EXIT_CONFIG
    assert "importing TASKS_MODULE 'broken_tasks' failed: RuntimeError: import-time bug" in output


def test_check_mode_validates_without_redis(tmp_path: Path) -> None:
    code, output = run_worker_once(
        tmp_path, {"ARGS": "--check", "REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    assert code == 0, output
    assert "configuration and tasks are valid" in output and '"noop"' in output
