"""`ctx.redis` (jobqueue_worker.taskredis): concurrent commands share round trips, and each
task still gets exactly its own reply or error, on a real redis-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from jobqueue_worker.taskredis import PipelinedRedis, task_client
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from jobqueue import connect


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[PipelinedRedis]:
    base = connect(redis_url, socket_timeout=5)
    pipelined = task_client(base)
    assert isinstance(pipelined, PipelinedRedis)
    yield pipelined
    await pipelined.aclose()
    await base.aclose()


async def test_concurrent_commands_get_their_own_replies_in_one_batch(
    client: PipelinedRedis, redis_client: aioredis.Redis
) -> None:
    key = f"t:{uuid.uuid4().hex}"
    results = await asyncio.gather(*(client.incr(key) for _ in range(100)))
    assert sorted(results) == list(range(1, 101))
    # every task sees its own reply type through redis-py's callbacks
    await client.set(f"{key}:s", "v")
    got, exists, missing = await asyncio.gather(
        client.get(f"{key}:s"), client.exists(f"{key}:s"), client.get(f"{key}:none")
    )
    assert (got, exists, missing) == (b"v", 1, None)
    await redis_client.delete(key, f"{key}:s")


async def test_an_error_reaches_only_the_task_that_caused_it(
    client: PipelinedRedis, redis_client: aioredis.Redis
) -> None:
    key = f"t:{uuid.uuid4().hex}"
    await redis_client.set(f"{key}:text", "not a number")
    ok, bad, ok2 = await asyncio.gather(
        client.incr(key), client.incr(f"{key}:text"), client.incr(key), return_exceptions=True
    )
    assert isinstance(bad, ResponseError)
    assert sorted([ok, ok2]) == [1, 2]  # type: ignore[type-var]
    assert await client.incr(key) == 3  # the connection is still in step
    await redis_client.delete(key, f"{key}:text")


async def test_blocking_commands_and_explicit_pipelines_work_as_usual(
    client: PipelinedRedis, redis_client: aioredis.Redis
) -> None:
    key = f"t:{uuid.uuid4().hex}"
    c: Any = client  # redis-py types these replies as "awaitable or not"
    waiter = asyncio.create_task(c.blpop([key], timeout=5))
    await asyncio.sleep(0.05)
    assert await client.incr(f"{key}:n") == 1  # not stuck behind the blocking call
    await c.rpush(key, "x")
    assert tuple(await waiter) == (key.encode(), b"x")
    async with c.pipeline(transaction=True) as pipe:
        pipe.incr(f"{key}:n").incr(f"{key}:n")
        assert await pipe.execute() == [2, 3]
    await redis_client.delete(key, f"{key}:n")


async def test_a_dropped_connection_fails_the_batch_and_the_next_one_reconnects(
    client: PipelinedRedis, redis_client: aioredis.Redis
) -> None:
    key = f"t:{uuid.uuid4().hex}"
    assert await client.incr(key) == 1
    await redis_client.client_kill_filter(_type="normal", skipme=True)  # every other client
    await asyncio.sleep(0.05)
    with pytest.raises((RedisConnectionError, OSError)):
        await client.incr(key)
    assert await client.incr(key) == 2
    await redis_client.delete(key)
