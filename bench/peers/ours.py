"""Our worker's benchmark tasks (TASKS_MODULE=bench.peers.ours): `noop` and the shared `incr`.

`incr` does the same one Redis INCR as every peer's task, on its own async client, so the
comparison is like for like; `noop` does nothing, and its completions are counted by the
protocol's own `completed` counter instead.
"""

from __future__ import annotations

import os
from typing import Any

import redis.asyncio as aioredis
from jobqueue_worker import JobContext, task

_COUNTER = os.environ.get("BENCH_COUNTER", "bench:done")
_POOL_SIZE = int(os.environ.get("BENCH_POOL_SIZE", "32"))
_client: aioredis.Redis | None = None


def _redis() -> aioredis.Redis:
    global _client
    if _client is None:
        url = os.environ.get("BENCH_REDIS_URL") or os.environ["REDIS_URL"]
        # A blocking pool: at high WORKER_CONCURRENCY tasks wait for a connection instead of
        # failing with "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=_POOL_SIZE)
        _client = aioredis.Redis(connection_pool=pool)
    return _client


@task("noop")
async def noop(payload: Any) -> None:
    return None


@task("incr")
async def incr(payload: Any) -> None:
    await _redis().incr(_COUNTER)


_plain: aioredis.Redis | None = None


@task("incr_plain")
async def incr_plain(payload: Any) -> None:
    """The INCR as a user writes it: one module-level `redis.asyncio` client, its defaults."""
    global _plain
    if _plain is None:
        _plain = aioredis.Redis.from_url(
            os.environ.get("BENCH_REDIS_URL") or os.environ["REDIS_URL"]
        )
    await _plain.incr(_COUNTER)


@task("incr_ctx")
async def incr_ctx(payload: Any, ctx: JobContext) -> None:
    """The same INCR on the client the runtime gives tasks (`ctx.redis`), as documented."""
    await ctx.redis.incr(_COUNTER)
