"""How our worker's cost grows: jobs/s against payload size, queue length and process count.

Our no-op task at the best concurrency, counted by the protocol's `completed` counter, one
private redis-server. Payload runs cap the bytes in Redis (GROWTH_MAX_BYTES) by using fewer
jobs for the largest payloads; the backlog run fills the queue with the backlog plus the
measured jobs and measures the first N completions.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from bench import drive
from bench.common import Ctx, private_redis
from bench.constants import (
    GROWTH_BACKLOG_FULL,
    GROWTH_BACKLOG_QUICK,
    GROWTH_JOBS_FULL,
    GROWTH_JOBS_QUICK,
    GROWTH_PAYLOAD_SIZES,
    GROWTH_PROCESSES,
    OURS_BEST_CONCURRENCY,
)

log = logging.getLogger(__name__)

GROWTH_MAX_BYTES = 1_000_000_000  # payload bytes in Redis at once, at most


def _measure(
    kind: str, x: Any, setup: drive.Setup, url: str, n: int, ctx: Ctx, **kw: Any
) -> dict[str, Any]:
    log.info("growth: %s=%s, %d jobs", kind, x, n)
    try:
        row = drive.run_setup(setup, url, n, ctx.work / "logs", max_seconds=300.0, **kw)
    except Exception as exc:
        log.exception("  failed")
        row = drive.error_row(setup, exc)
    row.update({"kind": kind, "x": x})
    if "jobs_s" in row:
        log.info("  %.0f jobs/s", row["jobs_s"])
    return row


def run(ctx: Ctx) -> dict[str, Any]:
    n = ctx.pick(GROWTH_JOBS_QUICK, GROWTH_JOBS_FULL)
    backlog = ctx.pick(GROWTH_BACKLOG_QUICK, GROWTH_BACKLOG_FULL)
    best = drive.ours(OURS_BEST_CONCURRENCY, "noop")
    rows: list[dict[str, Any]] = []
    with private_redis() as server:
        url = server.url
        for size in GROWTH_PAYLOAD_SIZES:
            jobs = min(n, GROWTH_MAX_BYTES // size)
            rows.append(_measure("payload_bytes", size, best, url, jobs, ctx, payload_bytes=size))
        for waiting in (0, backlog):
            client = redis.Redis.from_url(url)
            client.flushall()
            client.close()
            fill_s = drive.fill_ours(url, waiting + n, "noop")
            row = _measure("waiting", waiting, best, url, n, ctx, prefilled=True)
            row["fill_s"] = fill_s
            rows.append(row)
        for p in GROWTH_PROCESSES:
            setup = drive.ours(OURS_BEST_CONCURRENCY, "noop", processes=p)
            rows.append(_measure("processes", p, setup, url, n * max(1, p // 2), ctx))
    return {"rows": rows, "jobs": n, "backlog": backlog}
