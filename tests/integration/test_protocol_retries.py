"""Failures: backoff with full jitter, max_retries, and the dead-letter queue."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import AsyncIterator
from importlib import resources

import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobqueue import Claimed, FailOutcome, JobSpec, JobStatus, Priority, Queue, backoff_ceiling


@pytest.fixture
async def queue(redis_client: aioredis.Redis, queue_name: str) -> AsyncIterator[Queue]:
    q = Queue(redis_client, queue_name, backoff_base=0.001, backoff_cap=0.001)
    yield q
    await q.purge()


async def server_time(r: aioredis.Redis) -> float:
    seconds, micros = await r.time()
    return seconds + micros / 1e6


async def claim_one(q: Queue, timeout: float = 10.0) -> Claimed:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        got = await q.claim("w")
        if got:
            return got[0]
        await asyncio.sleep(0.01)
    raise AssertionError("no job became claimable")


_LUA_BACKOFF = """
math.randomseed(tonumber(ARGV[4]))
return backoff_ms(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
"""


# redis_url is a plain string of the session's server: safe to share between examples
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    attempt=st.integers(min_value=0, max_value=5000),
    base_ms=st.floats(min_value=1, max_value=60_000),
    cap_ms=st.floats(min_value=1, max_value=86_400_000),
    seed=st.integers(min_value=1, max_value=2**31 - 1),
)
def test_lua_backoff_stays_within_the_python_ceiling(
    redis_url: str, attempt: int, base_ms: float, cap_ms: float, seed: int
) -> None:
    """The Lua implementation (lua/_lib.lua) against its Python mirror, over many inputs."""
    client = redis.Redis.from_url(redis_url)
    try:
        source = resources.files("jobqueue").joinpath("lua", "_lib.lua").read_text() + _LUA_BACKOFF
        delay = client.eval(source, 0, attempt, repr(base_ms), repr(cap_ms), seed)
    finally:
        client.close()
    assert 0 <= delay <= backoff_ceiling(attempt, base_ms, cap_ms)


async def test_retry_delays_follow_exponential_backoff_with_full_jitter(
    redis_client: aioredis.Redis, queue_name: str
) -> None:
    base, cap, n = 0.4, 1.0, 150
    q = Queue(redis_client, queue_name, backoff_base=base, backoff_cap=cap)
    try:
        await q.enqueue_many([JobSpec("t", i, max_retries=5) for i in range(n)])
        for attempt in (1, 2, 3):  # ceilings 0.4 s, 0.8 s, then capped at 1.0 s
            claimed = await q.claim("w", n)
            while len(claimed) < n:  # the rest are still waiting out their backoff
                await asyncio.sleep(0.05)
                claimed += await q.claim("w", n - len(claimed))
            assert {c.attempt for c in claimed} == {attempt}
            before = await server_time(redis_client)
            for c in claimed:
                assert await q.fail(c.id, c.token, f"boom {attempt}") is FailOutcome.RETRYING
            after = await server_time(redis_client)
            ceiling = backoff_ceiling(attempt, base, cap)
            delays = []
            for c in claimed:
                job = await q.get(c.id)
                assert job is not None and job.status is JobStatus.FAILED and job.run_at is not None
                assert job.error == f"boom {attempt}"
                assert before - 0.002 <= job.run_at <= after + ceiling + 0.002
                delays.append(job.run_at - before)
            # full jitter: spread over [0, ceiling], not bunched at the ceiling
            assert min(delays) < ceiling * 0.25 and max(delays) > ceiling * 0.75 - (after - before)
            assert statistics.pstdev(delays) > ceiling / 10
            stats = await q.stats()
            assert stats.delayed + stats.ready == n and stats.failed_total == attempt * n
    finally:
        await q.purge()


async def test_retried_job_is_not_claimed_before_it_is_due(
    redis_client: aioredis.Redis, queue_name: str
) -> None:
    q = Queue(redis_client, queue_name, backoff_base=0.3, backoff_cap=0.3)
    try:
        await q.enqueue(JobSpec("t"))
        for _ in range(3):
            c = await claim_one(q)
            assert await q.fail(c.id, c.token, "again") is FailOutcome.RETRYING
            again = await claim_one(q)
            job = await q.get(again.id)
            assert job is not None and job.run_at is not None and job.started_at is not None
            assert job.started_at >= job.run_at  # server clock: never before the backoff ends
            assert await q.release([(again.id, again.token)]) == [True]
    finally:
        await q.purge()


async def test_job_dies_after_max_retries_and_keeps_its_last_error(queue: Queue) -> None:
    res = await queue.enqueue(JobSpec("t", "payload", max_retries=2))
    outcomes = []
    for i in range(1, 4):
        c = await claim_one(queue)
        assert c.attempt == i
        outcomes.append(await queue.fail(c.id, c.token, f"error {i}"))
    assert outcomes == [FailOutcome.RETRYING, FailOutcome.RETRYING, FailOutcome.DEAD]
    await asyncio.sleep(0.01)
    assert await queue.claim("w") == []
    [dead] = await queue.dead_jobs()
    assert (dead.id, dead.status, dead.attempts, dead.error) == (
        res.job_id,
        JobStatus.DEAD,
        3,
        "error 3",
    )
    assert dead.payload == "payload" and dead.finished_at is not None
    stats = await queue.stats()
    assert (stats.dead, stats.failed_total, stats.ready, stats.delayed) == (1, 3, 0, 0)


async def test_fail_without_retry_goes_straight_to_the_dead_letter_queue(queue: Queue) -> None:
    await queue.enqueue(JobSpec("t", max_retries=10))
    c = await claim_one(queue)
    assert await queue.fail(c.id, c.token, "not retryable", retry=False) is FailOutcome.DEAD
    assert await queue.fail(c.id, c.token, "again") is FailOutcome.STALE
    assert (await queue.stats()).dead == 1


async def _make_dead(q: Queue, n: int, **kwargs: object) -> list[str]:
    results = await q.enqueue_many([JobSpec("t", i, max_retries=0, **kwargs) for i in range(n)])  # type: ignore[arg-type]
    claimed = await q.claim("w", n)
    for c in claimed:
        assert await q.fail(c.id, c.token, f"dead {c.payload}") is FailOutcome.DEAD
        if n < 10:
            await asyncio.sleep(0.003)  # distinct times of death (ms resolution) for ordering
    return [r.job_id for r in results]


async def test_dead_letter_queue_list_retry_one_retry_all_and_purge(queue: Queue) -> None:
    ids = await _make_dead(queue, 3, priority=Priority.LOW)
    page = await queue.dead_jobs()
    assert [j.id for j in page] == ids  # oldest death first
    assert [j.error for j in page] == ["dead 0", "dead 1", "dead 2"]
    assert [j.id for j in await queue.dead_jobs(offset=1, limit=1)] == [ids[1]]

    assert await queue.retry_dead(ids[1]) == 1
    assert await queue.retry_dead(ids[1]) == 0  # not dead any more
    assert await queue.retry_dead("no-such-job") == 0
    job = await queue.get(ids[1])
    assert job is not None
    assert (job.status, job.attempts, job.error) == (JobStatus.QUEUED, 0, "dead 1")  # error kept
    c = await claim_one(queue)
    assert (c.id, c.attempt, c.priority) == (ids[1], 1, Priority.LOW)
    assert await queue.complete([(c.id, c.token, "ok")]) == [True]

    assert await queue.retry_dead() == 2
    stats = await queue.stats()
    assert (stats.dead, stats.ready) == (0, 2)
    claimed = await queue.claim("w", 10)
    assert [x.id for x in claimed] == [ids[0], ids[2]]
    for x in claimed:
        await queue.fail(x.id, x.token, "dead again")
    assert (await queue.stats()).dead == 2

    assert await queue.purge_dead() == 2
    assert await queue.dead_jobs() == []
    assert await queue.get(ids[0]) is None and await queue.get(ids[2]) is None
    assert (await queue.get(ids[1])) is not None  # the completed job is not touched
    assert (await queue.stats()).dead == 0


async def test_retry_all_and_purge_work_in_chunks(queue: Queue) -> None:
    from jobqueue.constants import DLQ_CHUNK

    n = DLQ_CHUNK + 20
    await _make_dead(queue, n)
    assert await queue.retry_dead() == n
    assert (await queue.stats()).ready == n
    claimed = await queue.claim("w", 1000)
    for c in claimed:
        await queue.fail(c.id, c.token, "x")
    assert await queue.purge_dead() == n
    stats = await queue.stats()
    assert (stats.dead, stats.ready, stats.in_flight) == (0, 0, 0)
