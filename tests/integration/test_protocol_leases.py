"""Leases, fencing tokens, release and crash recovery (kill -9 of a real worker process)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from jobqueue import Claimed, FailOutcome, JobSpec, JobStatus, Priority, Queue
from jobqueue.constants import LEASE_EXPIRED_ERROR, MAINTENANCE_INTERVAL_MS

LEASE = 0.4


@pytest.fixture
async def queue(redis_client: aioredis.Redis, queue_name: str) -> AsyncIterator[Queue]:
    q = Queue(redis_client, queue_name, lease_seconds=LEASE, backoff_base=0.001, backoff_cap=0.001)
    yield q
    await q.purge()


async def claim_within(
    q: Queue, worker: str, timeout: float = 10.0, count: int = 1
) -> list[Claimed]:
    """Claim until something comes back (lease expiry is checked by the server clock)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await q.claim(worker, count)
        if got or asyncio.get_running_loop().time() > deadline:
            return got
        await asyncio.sleep(0.05)


async def test_stale_token_changes_nothing_after_the_lease_is_lost(queue: Queue) -> None:
    res = await queue.enqueue(JobSpec("t", max_retries=3))
    [a] = await queue.claim("worker-a")
    await asyncio.sleep(LEASE + 0.1)
    [b] = await claim_within(queue, "worker-b")  # recovers the expired lease, then claims
    assert b.id == a.id and b.token > a.token and b.attempt == 2

    # worker A wakes up late: every call with its token is refused
    assert await queue.complete([(a.id, a.token, "from A")]) == [False]
    assert await queue.fail(a.id, a.token, "A failed") is FailOutcome.STALE
    assert await queue.renew([(a.id, a.token)]) == [False]
    assert await queue.release([(a.id, a.token)]) == [False]
    assert not await queue.set_progress(a.id, a.token, 50)
    job = await queue.get(res.job_id)
    assert job is not None and job.status is JobStatus.PROCESSING and job.result is None
    assert job.error == LEASE_EXPIRED_ERROR  # the lost lease counted as a failed attempt

    assert await queue.complete([(b.id, b.token, "from B")]) == [True]
    job = await queue.get(res.job_id)
    assert job is not None
    assert (job.status, job.result, job.attempts) == (JobStatus.COMPLETED, "from B", 2)
    stats = await queue.stats()
    assert (stats.completed_total, stats.failed_total, stats.in_flight) == (1, 1, 0)


async def test_renewed_lease_is_not_recovered(
    redis_client: aioredis.Redis, queue_name: str
) -> None:
    queue = Queue(redis_client, queue_name, lease_seconds=1.0, backoff_base=0.001)
    try:
        await queue.enqueue(JobSpec("t"))
        [a] = await queue.claim("worker-a")
        for _ in range(8):  # 8 x 0.2 s: well past the 1 s lease
            await asyncio.sleep(0.2)
            assert await queue.renew([(a.id, a.token)]) == [True]
            assert await queue.claim("worker-b") == []
        assert await queue.complete([(a.id, a.token, None)]) == [True]
        assert (await queue.stats()).failed_total == 0
    finally:
        await queue.purge()


async def test_release_puts_jobs_back_at_the_front_without_counting_the_attempt(
    queue: Queue,
) -> None:
    results = await queue.enqueue_many([JobSpec("t", i) for i in range(4)])
    results.append(await queue.enqueue(JobSpec("t", "hi", priority=Priority.HIGH)))
    claimed = await queue.claim("w", 3)
    assert [c.payload for c in claimed] == ["hi", 0, 1]
    assert await queue.release([(c.id, c.token) for c in claimed]) == [True, True, True]
    assert await queue.release([(claimed[0].id, claimed[0].token)]) == [False]  # already back
    again = await queue.claim("w", 5)
    assert [c.payload for c in again] == ["hi", 0, 1, 2, 3]  # front of each priority, order kept
    assert [c.attempt for c in again] == [1, 1, 1, 1, 1]
    assert all(n.token > o.token for n, o in zip(again, claimed, strict=False))
    job = await queue.get(claimed[1].id)
    assert job is not None and job.attempts == 1 and job.status is JobStatus.PROCESSING
    stats = await queue.stats()
    assert (stats.failed_total, stats.in_flight) == (0, 5)


async def test_duplicate_ids_in_one_ack_batch_count_once(queue: Queue) -> None:
    await queue.enqueue(JobSpec("t"))
    [c] = await queue.claim("w")
    assert await queue.complete([(c.id, c.token, None), (c.id, c.token, None)]) == [True, False]
    assert (await queue.stats()).completed_total == 1


WORKER = textwrap.dedent(
    """
    import asyncio, sys
    import jobqueue

    async def main() -> None:
        q = jobqueue.Queue(
            jobqueue.connect(sys.argv[1]),
            sys.argv[2],
            lease_seconds=float(sys.argv[3]),
            backoff_base=0.001,
            backoff_cap=0.001,
        )
        while True:
            got = await q.claim("doomed-worker-" + sys.argv[4])
            if got:
                print(got[0].id, got[0].token, got[0].attempt, flush=True)
                await asyncio.sleep(3600)  # "working" until killed
            await asyncio.sleep(0.02)

    asyncio.run(main())
    """
)


def start_worker(redis_url: str, queue_name: str, n: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, redis_url, queue_name, str(LEASE), str(n)],
        stdout=subprocess.PIPE,
        text=True,
    )


async def kill_after_claim(proc: subprocess.Popen[str]) -> tuple[str, int, int]:
    """Wait until the worker process printed its claim, then SIGKILL it mid-job."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    job_id, token, attempt = line.split()
    return job_id, int(token), int(attempt)


async def test_job_of_a_killed_worker_is_recovered_and_completed_by_another(
    queue: Queue, redis_url: str
) -> None:
    res = await queue.enqueue(JobSpec("t", {"n": 1}, max_retries=2))
    proc = start_worker(redis_url, queue.name, 1)
    try:
        job_id, token, attempt = await kill_after_claim(proc)
    finally:
        proc.kill()
    assert (job_id, attempt) == (res.job_id, 1)
    stats = await queue.stats()
    assert (stats.in_flight, stats.ready) == (1, 0)  # held by a dead worker until the lease ends

    [c] = await claim_within(queue, "survivor")
    assert (c.id, c.attempt, c.payload) == (res.job_id, 2, {"n": 1})
    assert c.token > token
    assert await queue.complete([(c.id, c.token, "done")]) == [True]
    job = await queue.get(res.job_id)
    assert job is not None
    assert (job.status, job.attempts, job.result) == (JobStatus.COMPLETED, 2, "done")
    assert job.error == LEASE_EXPIRED_ERROR
    assert (await queue.stats()).failed_total == 1


async def test_a_job_that_keeps_killing_workers_ends_in_the_dead_letter_queue(
    queue: Queue, redis_url: str
) -> None:
    res = await queue.enqueue(JobSpec("poison", max_retries=1))  # 2 attempts allowed
    for n in (1, 2):
        proc = start_worker(redis_url, queue.name, n)
        try:
            job_id, _token, attempt = await kill_after_claim(proc)
        finally:
            proc.kill()
        assert (job_id, attempt) == (res.job_id, n)
    await asyncio.sleep(LEASE + 0.1)
    assert await queue.claim("w") == []  # recovery found no attempt left: dead, not requeued
    stats = await queue.stats()
    assert (stats.dead, stats.ready, stats.in_flight, stats.delayed) == (1, 0, 0, 0)
    [dead] = await queue.dead_jobs()
    assert (dead.id, dead.status, dead.attempts) == (res.job_id, JobStatus.DEAD, 2)
    assert dead.error == LEASE_EXPIRED_ERROR and dead.finished_at is not None


async def test_claims_recover_expired_leases_at_most_every_maintenance_interval(
    redis_client: aioredis.Redis, queue_name: str
) -> None:
    """Maintenance runs inside claim at most once per MAINTENANCE_INTERVAL_MS (a gate key with
    that expiry), and keeps running while claims keep coming: an expired lease comes back
    within an interval or two even though the ready lists never run dry."""
    queue = Queue(redis_client, queue_name, lease_seconds=0.2, backoff_base=0.001)
    try:
        await queue.enqueue_many([JobSpec("t") for _ in range(400)])
        [lost] = await queue.claim("dies")
        gate = await redis_client.pttl(queue.keys.maintenance)
        assert 0 < gate <= MAINTENANCE_INTERVAL_MS
        await asyncio.sleep(0.25)  # the lease ran out
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while (await queue.stats()).failed_total == 0:
            assert loop.time() - t0 < 2 * MAINTENANCE_INTERVAL_MS / 1000 + 0.5
            for c in await queue.claim("busy", 2):
                await queue.complete([(c.id, c.token, None)])
            await asyncio.sleep(0.005)
        assert await queue.complete([(lost.id, lost.token, None)]) == [False]
        job = await queue.get(lost.id)
        assert job is not None and job.error == LEASE_EXPIRED_ERROR
    finally:
        await queue.purge()
