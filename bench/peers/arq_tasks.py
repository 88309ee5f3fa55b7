"""arq 0.28: the INCR task, the worker settings and a producer (enqueue_job)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

from bench.peers._env import COUNTER, QUEUE, REDIS_URL, produce_main


async def incr(ctx: dict[str, Any], body: str = "") -> None:
    await ctx["redis"].incr(COUNTER)


# `--custom-log-dict bench.peers.arq_tasks.LOG_CONFIG`: no per-job log lines (as for every peer).
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"level": "WARNING", "class": "logging.StreamHandler"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}


class WorkerSettings:
    """`arq bench.peers.arq_tasks.WorkerSettings --burst`; BENCH_MAX_JOBS sets max_jobs,
    BENCH_KEEP_RESULT keep_result (seconds; 0 stores no result)."""

    functions = [incr]
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
    queue_name = QUEUE
    max_jobs = int(os.environ.get("BENCH_MAX_JOBS", "10"))
    poll_delay = float(os.environ.get("BENCH_POLL_DELAY", "0.5"))
    keep_result = float(os.environ.get("BENCH_KEEP_RESULT", "3600"))  # arq's default: 1 h
    burst = True
    handle_signals = True


async def _enqueue(n: int, body: str) -> None:
    pool = await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name=QUEUE)
    for _ in range(n):
        await pool.enqueue_job("incr", body)
    await pool.aclose()


def _enqueue_n(n: int, body: str) -> None:
    asyncio.run(_enqueue(n, body))


if __name__ == "__main__":
    produce_main(_enqueue_n)
