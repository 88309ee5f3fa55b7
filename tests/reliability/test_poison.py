"""A poison job that SIGKILLs the worker process running it, every time: it ends in the
dead-letter queue after 1 + maxRetries attempts, and every other job still completes.

A small supervisor plays the kubelet: it restarts a worker process that died. Each death is
counted; the poison job must cost exactly one process per attempt.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from jobqueue import JobSpec, JobStatus, Queue
from jobqueue.constants import LEASE_EXPIRED_ERROR
from tests.cluster.redis_server import RedisServer
from tests.reliability.support import (
    Figures,
    Service,
    count_status,
    executions,
    forget_queue,
    sizes,
    start_worker,
    stop_all,
)

SECTION = "Faults: poison job (kills its worker every time)"
POISON_RETRIES = 2


@dataclass(frozen=True)
class Size:
    jobs: int
    poison: int


FAST = Size(jobs=400, poison=1)
FULL = Size(jobs=5_000, poison=3)


@pytest.mark.parametrize("size", sizes(FAST, FULL))
async def test_a_poison_job_ends_in_the_dlq_and_the_queue_keeps_moving(
    size: Size, redis_server: RedisServer, workdir: Path, figures: Figures
) -> None:
    redis = aioredis.Redis.from_url(redis_server.url)
    queue = Queue(redis, f"chaos-poison/{uuid.uuid4().hex[:8]}")
    env = {"LEASE_SECONDS": 2, "WORKER_CONCURRENCY": 4}
    workers: list[Service] = [
        start_worker(redis_server.url, queue.name, workdir, **env) for _ in range(2)
    ]
    poison = [uuid.uuid4().hex for _ in range(size.poison)]
    ids = [uuid.uuid4().hex for _ in range(size.jobs)]
    half = len(ids) // 2
    specs = [JobSpec("track", {"ms": 5}, job_id=j, max_retries=10) for j in ids[:half]]
    specs += [JobSpec("poison", None, job_id=p, max_retries=POISON_RETRIES) for p in poison]
    specs += [JobSpec("track", {"ms": 5}, job_id=j, max_retries=10) for j in ids[half:]]
    deaths: list[int | None] = []
    started = time.monotonic()
    await queue.enqueue_many(specs)
    try:
        while True:
            for w in workers:
                if w.proc is not None and not w.alive and w.returncode is not None:
                    deaths.append(w.returncode)
                    w.proc = None  # counted; the supervisor replaces it
            live = [w for w in workers if w.proc is not None]
            while len(live) < 2:
                fresh = start_worker(redis_server.url, queue.name, workdir, **env)
                workers.append(fresh)
                live.append(fresh)
            poison_jobs = await queue.get_many(poison)
            statuses = await count_status(queue, ids)
            if statuses.get("completed") == len(ids) and all(
                j is not None and j.status is JobStatus.DEAD for j in poison_jobs
            ):
                break
            assert time.monotonic() - started < 300, (statuses, poison_jobs)
            await asyncio.sleep(0.3)
        dead = await queue.dead_jobs(0, 100)
        runs = await executions(redis, queue.name)
        deaths += [w.returncode for w in workers if w.proc is not None and not w.alive]
    finally:
        stop_all(workers)
    figures.set(
        jobs=len(ids),
        poison_jobs=len(poison),
        worker_deaths=len(deaths),
        poison_attempts_allowed=len(poison) * (1 + POISON_RETRIES),
        poison_executions=sum(runs.get(p, 0) for p in poison),
        completed=statuses.get("completed", 0),
        lost=len(ids) - statuses.get("completed", 0),
        dead_letter=len(dead),
        seconds=round(time.monotonic() - started, 1),
    )
    try:
        assert {j.id for j in dead} == set(poison)
        for job in dead:
            assert job.attempts == 1 + POISON_RETRIES
            assert job.error == LEASE_EXPIRED_ERROR
        assert all(runs.get(p) == 1 + POISON_RETRIES for p in poison)
        # every death a SIGKILL by a poison job: one per attempt, or fewer when one process
        # happened to start two poison jobs before the first killed it
        poison_runs = sum(runs.get(p, 0) for p in poison)
        assert all(code == -9 for code in deaths), deaths
        assert 1 + POISON_RETRIES <= len(deaths) <= poison_runs, (deaths, poison_runs)
        assert statuses == {"completed": len(ids)}
    finally:
        await forget_queue(redis, queue)
        await queue.aclose()
        await redis.aclose()
