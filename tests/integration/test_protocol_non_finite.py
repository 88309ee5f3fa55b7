"""NaN and Infinity against a real redis-server: refused before anything is written, not nulled."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from jobqueue import JobSpec, JobStatus, Queue


@pytest.fixture
async def queue(redis_client: aioredis.Redis, queue_name: str) -> AsyncIterator[Queue]:
    q = Queue(redis_client, queue_name, lease_seconds=30)
    yield q
    await q.purge()
    await q.aclose()


async def _keys(r: aioredis.Redis, q: Queue) -> list[bytes]:
    return sorted([k async for k in r.scan_iter(match=f"jq:{{{q.name}}}:*")])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_enqueue_refuses_a_non_finite_payload_and_writes_nothing(
    queue: Queue, redis_client: aioredis.Redis, bad: float
) -> None:
    before = await _keys(redis_client, queue)
    with pytest.raises(ValueError, match=r"payload of job type 'calc': .*NaN or Infinity"):
        await queue.enqueue(JobSpec("calc", {"x": bad, "note": None}))
    assert await _keys(redis_client, queue) == before
    stats = await queue.stats()
    assert (stats.ready, stats.enqueued_total) == (0, 0)


async def test_a_batch_with_one_non_finite_payload_is_refused_whole(queue: Queue) -> None:
    specs = [JobSpec("calc", {"x": 1.0}), JobSpec("calc", [None, {"y": math.nan}])]
    with pytest.raises(ValueError, match="NaN or Infinity"):
        await queue.enqueue_many(specs)
    assert (await queue.stats()).enqueued_total == 0


async def test_null_and_finite_floats_are_stored_as_given(queue: Queue) -> None:
    payload = {"x": 0.1, "none": None, "text": "null", "big": 1e308, "neg": -0.5}
    res = await queue.enqueue(JobSpec("calc", payload))
    job = await queue.get(res.job_id)
    assert job is not None and job.payload == payload


async def test_complete_refuses_a_non_finite_result_and_keeps_the_lease(queue: Queue) -> None:
    res = await queue.enqueue(JobSpec("calc", {"x": 1}))
    [claimed] = await queue.claim("w1")
    with pytest.raises(ValueError, match=r"inf is not a JSON number"):
        await queue.complete([(claimed.id, claimed.token, {"x": math.inf, "n": None})])
    job = await queue.get(res.job_id)
    assert job is not None and job.status is JobStatus.PROCESSING and job.result is None
    assert await queue.complete([(claimed.id, claimed.token, {"x": 2.5, "n": None})]) == [True]
    done = await queue.get(res.job_id)
    assert done is not None and done.status is JobStatus.COMPLETED
    assert done.result == {"x": 2.5, "n": None}
