"""arq (from PyPI, redis<6): `produce N DELAYED` enqueues with arq's own producer; `report`
prints arq's queued_jobs and each job's status (queued, deferred, in_progress); the worker is
`arq arq_peer.WorkerSettings`."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from typing import Any

from _common import QUEUE, STARTED, URL, emit
from arq import create_pool
from arq.connections import RedisSettings
from arq.jobs import Job


async def slow(ctx: dict[str, Any], seconds: float) -> None:
    await ctx["redis"].incr(STARTED)
    await asyncio.sleep(seconds)


class WorkerSettings:
    functions = [slow]
    redis_settings = RedisSettings.from_dsn(URL)
    queue_name = QUEUE
    max_jobs = 2
    poll_delay = 0.1
    job_timeout = 600


async def main() -> None:
    pool = await create_pool(RedisSettings.from_dsn(URL), default_queue_name=QUEUE)
    if sys.argv[1] == "produce":
        n, delayed = int(sys.argv[2]), int(sys.argv[3])
        for _ in range(n):
            await pool.enqueue_job("slow", 120)
        for _ in range(delayed):
            await pool.enqueue_job("slow", 1, _defer_by=600)
    jobs = await pool.queued_jobs(queue_name=QUEUE)
    statuses = Counter(
        [(await Job(j.job_id, pool, _queue_name=QUEUE).status()).value for j in jobs]  # type: ignore[arg-type]
    )
    emit({"queued_jobs": len(jobs), **statuses})
    await pool.aclose()


if __name__ == "__main__":
    asyncio.run(main())
