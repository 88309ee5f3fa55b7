"""Queue script calls over jobqueue.wire against a real redis-server: pipelined on one
connection, replies in order, a lost connection replaced, closed with the client."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobqueue import JobSpec, JobStatus, Queue, connect
from jobqueue.constants import MAX_BATCH
from jobqueue.wire import Wire


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _connections(admin: aioredis.Redis, name: str) -> int:
    return sum(1 for c in await admin.client_list() if c.get("name") == name)


async def test_concurrent_calls_share_one_connection_and_get_their_own_replies(
    redis_url: str, admin: aioredis.Redis, queue_name: str
) -> None:
    client = connect(redis_url, client_name="wire-share")
    queue = Queue(client, queue_name)
    try:
        await queue.get((await queue.enqueue(JobSpec("warm-up"))).job_id)  # scripts loaded
        before = await _connections(admin, "wire-share")
        specs = [JobSpec("t", {"n": i}, job_id=f"job-{i}") for i in range(200)]
        results = await asyncio.gather(*(queue.enqueue(s) for s in specs))
        assert [r.job_id for r in results] == [s.job_id for s in specs]
        assert all(r.created for r in results)
        jobs = await asyncio.gather(*(queue.get(s.job_id or "") for s in specs))
        assert [j.payload if j else None for j in jobs] == [{"n": i} for i in range(200)]
        assert await _connections(admin, "wire-share") == before  # no new connection
        # the same id again: not created, the reply says so
        assert not (await queue.enqueue(specs[0])).created
    finally:
        await queue.purge()
        await client.aclose()
    assert await _connections(admin, "wire-share") == 0  # closed with the client


async def test_a_killed_connection_is_replaced_on_the_next_call(
    redis_url: str, admin: aioredis.Redis, queue_name: str
) -> None:
    async with _queue(redis_url, queue_name) as queue:
        await queue.enqueue(JobSpec("t"))
        assert await admin.client_kill_filter(_type="normal", skipme=True) >= 1
        await asyncio.sleep(0.05)
        created = await queue.enqueue(JobSpec("t"))
        job = await queue.get(created.job_id)
        assert job is not None and job.status is JobStatus.QUEUED
        assert (await queue.stats()).ready == 2


@contextlib.asynccontextmanager
async def _queue(redis_url: str, name: str, **options: Any) -> AsyncIterator[Queue]:
    client = connect(redis_url, **options)
    queue = Queue(client, name)
    try:
        yield queue
    finally:
        await queue.purge()
        await client.aclose()


async def test_large_replies_and_decoded_responses(redis_url: str, queue_name: str) -> None:
    async with _queue(redis_url, queue_name, decode_responses=True) as queue:
        payload = "é" * 700_000  # 1.4 MB: many reads of the socket
        created = await queue.enqueue(JobSpec("big", payload))
        [claimed] = await queue.claim("w1", 1)
        assert claimed.id == created.job_id and claimed.payload == payload
        job = await queue.get(created.job_id)
        assert job is not None and job.payload == payload


async def test_a_script_flushed_from_the_server_is_loaded_again(
    redis_url: str, admin: aioredis.Redis, queue_name: str
) -> None:
    async with _queue(redis_url, queue_name) as queue:
        await queue.enqueue(JobSpec("t"))
        await admin.script_flush()
        await queue.enqueue(JobSpec("t"))
        assert (await queue.stats()).ready == 2


async def test_socket_timeout_bounds_a_call_and_the_next_call_works(
    redis_url: str, admin: aioredis.Redis, queue_name: str
) -> None:
    options = {"socket_timeout": 0.3, "retry": Retry(NoBackoff(), 0)}
    async with _queue(redis_url, queue_name, **options) as queue:
        await queue.enqueue(JobSpec("t"))
        await admin.client_pause(1500)
        with pytest.raises(RedisTimeoutError):
            await queue.enqueue(JobSpec("t"))
        await admin.client_unpause()
        await queue.enqueue(JobSpec("t"))
        assert (await queue.stats()).ready >= 2


async def test_one_wire_per_connection_pool(redis_url: str) -> None:
    a = connect(redis_url)
    b = connect(redis_url)
    try:
        assert Wire.for_client(a) is Wire.for_client(a)
        assert Wire.for_client(a) is not Wire.for_client(b)
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_closed_and_dropped_client_leaves_no_wire_behind(
    redis_url: str, queue_name: str
) -> None:
    gc.collect()
    before = len(Wire._by_pool)
    async with _queue(redis_url, queue_name) as queue:
        await queue.enqueue(JobSpec("t"))
        assert len(Wire._by_pool) == before + 1
    del queue
    gc.collect()
    assert len(Wire._by_pool) == before


async def test_a_pool_of_one_connection_is_not_held_by_the_wire(
    redis_url: str, queue_name: str
) -> None:
    async with _queue(redis_url, queue_name, max_connections=1) as queue:
        await queue.enqueue(JobSpec("t"))
        # more than one script call: a pipeline, which needs the pool's connection
        created = await queue.enqueue_many([JobSpec("t") for _ in range(MAX_BATCH + 1)])
        assert len(created) == MAX_BATCH + 1
        assert (await queue.stats()).ready == MAX_BATCH + 2
