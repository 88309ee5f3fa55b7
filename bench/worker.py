"""Worker throughput, ours against RQ, Celery, arq and Dramatiq, plus the Redis ceiling.

All on one private redis-server, one worker process each, at concurrency 1 and at the best
setting found for each system. Every peer's task does one Redis INCR and is counted by that
counter; ours runs the same INCR task (counted the same way) and a true no-op (counted by the
protocol's `completed` counter). The ceiling is redis-benchmark running our own claim script.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess
from typing import Any, cast

import redis
from jobqueue_worker.constants import CLAIM_BATCH_MAX as WORKER_CLAIM_BATCH

from bench import drive, envs
from bench.common import Ctx, private_redis
from bench.constants import (
    CEILING_CLIENTS,
    CEILING_REQUESTS_FULL,
    CEILING_REQUESTS_QUICK,
    OURS_BEST_CONCURRENCY,
    OURS_INCR_CONCURRENCY,
    OURS_JOBS_FULL,
    OURS_JOBS_QUICK,
    PEER_REQUIREMENTS,
    WORKER_CAP_FULL_S,
    WORKER_CAP_QUICK_S,
    WORKER_JOBS_FULL,
    WORKER_JOBS_QUICK,
    WORKER_REPEATS_FULL,
)

log = logging.getLogger(__name__)

PEERS = tuple(PEER_REQUIREMENTS)
# One job per call, a mid batch, and the batch our worker asks for (CLAIM_BATCH_MAX).
CLAIM_BATCHES = (1, 100, WORKER_CLAIM_BATCH)


def setups() -> list[drive.Setup]:
    out = [
        drive.ours(1, "noop"),
        drive.ours(OURS_BEST_CONCURRENCY, "noop"),
        drive.ours(1, "incr"),
        drive.ours(OURS_INCR_CONCURRENCY, "incr"),
    ]
    for p in PEERS:
        out += [drive.peer(p, best=False), drive.peer(p, best=True)]
    return out


def _redis_benchmark(url_port: int, n: int, *cmd: str) -> float:
    """requests/s of one command line under redis-benchmark (CEILING_CLIENTS clients)."""
    out = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(url_port),
            "-c",
            str(CEILING_CLIENTS),
            "-n",
            str(n),
            "-q",
            *cmd,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    m = re.findall(r"([\d.]+) requests per second", out)
    if not m:
        raise RuntimeError(f"redis-benchmark printed no rate: {out[-500:]}")
    return float(m[-1])


def ceiling(ctx: Ctx) -> list[dict[str, Any]]:
    """redis-benchmark: LPUSH, and EVALSHA of our claim script at batch 1 and 100."""
    from jobqueue.constants import LEASE_EXPIRED_ERROR, MAINTENANCE_LIMIT
    from jobqueue.keys import QueueKeys
    from jobqueue.scripts import script

    if shutil.which("redis-benchmark") is None:
        raise RuntimeError("redis-benchmark is missing (Debian package redis-tools)")
    requests = ctx.pick(CEILING_REQUESTS_QUICK, CEILING_REQUESTS_FULL)
    rows: list[dict[str, Any]] = []
    with private_redis() as server:
        client = redis.Redis.from_url(server.url)
        rps = _redis_benchmark(server.port, requests, "LPUSH", "bench:list", "x")
        rows.append({"what": "LPUSH (reference)", "batch": 1, "ops_s": rps, "jobs_s": rps})
        claim = script("claim")
        sha = client.script_load(claim.source)
        assert sha == claim.sha
        keys = claim.keys_for(QueueKeys.for_queue(drive.QUEUE))
        for batch in CLAIM_BATCHES:
            calls = max(requests // batch, 500)
            jobs = calls * batch
            client.flushall()
            client.script_load(claim.source)
            drive.fill_ours(server.url, jobs, "noop")
            argv = [
                str(batch),
                "30000",
                "ceiling",
                "12345",
                "1000",
                "300000",
                str(MAINTENANCE_LIMIT),
                LEASE_EXPIRED_ERROR,
            ]
            rps = _redis_benchmark(server.port, calls, "EVALSHA", sha, str(len(keys)), *keys, *argv)
            left = sum(
                int(cast(int, client.llen(k))) for k in QueueKeys.for_queue(drive.QUEUE).ready
            )
            rows.append(
                {
                    "what": f"EVALSHA claim.lua, {batch} job(s) per call",
                    "batch": batch,
                    "ops_s": rps,
                    "jobs_s": rps * batch,
                    "jobs_left_unclaimed": left,
                }
            )
            log.info("ceiling: claim batch %d: %.0f calls/s = %.0f jobs/s", batch, rps, rps * batch)
        client.close()
    return rows


def _check_ours(url: str) -> dict[str, int]:
    from jobqueue import Queue, connect

    async def stats() -> dict[str, int]:
        c = connect(url)
        try:
            s = await Queue(c, drive.QUEUE).stats()
            return {"failed_total": s.failed_total, "dead": s.dead, "ready": s.ready}
        finally:
            await c.aclose()

    return asyncio.run(stats())


def run(ctx: Ctx) -> dict[str, Any]:
    n = ctx.pick(WORKER_JOBS_QUICK, WORKER_JOBS_FULL)
    n_ours = ctx.pick(OURS_JOBS_QUICK, OURS_JOBS_FULL)
    max_s = ctx.pick(WORKER_CAP_QUICK_S, WORKER_CAP_FULL_S)
    repeats = ctx.pick(1, WORKER_REPEATS_FULL)
    versions = envs.ensure_all()
    rows: list[dict[str, Any]] = []
    with private_redis() as server:
        for s in setups():
            jobs = n_ours if s.system == "ours" and s.setting != "concurrency 1" else n
            log.info("worker: %s, %d jobs", s.label, jobs)
            try:
                runs = []
                for _ in range(repeats):
                    r = drive.run_setup(s, server.url, jobs, ctx.work / "logs", max_seconds=max_s)
                    if s.system == "ours":
                        r.update(_check_ours(server.url))
                    runs.append(r)
                    log.info(
                        "  %.0f jobs/s, %.2f redis cmds/job", r["jobs_s"], r["redis_cmds_per_job"]
                    )
                runs.sort(key=lambda r: r["jobs_s"])
                row = runs[len(runs) // 2]  # the median run
                row["runs_jobs_s"] = [round(r["jobs_s"]) for r in runs]
            except Exception as exc:
                log.exception("  %s failed", s.label)
                row = drive.error_row(s, exc)
            rows.append(row)
    try:
        ceil = ceiling(ctx)
    except Exception as exc:
        log.exception("ceiling failed")
        ceil = [{"what": "ceiling", "error": f"{type(exc).__name__}: {exc}"}]
    return {
        "rows": rows,
        "ceiling": ceil,
        "jobs": n,
        "jobs_ours": n_ours,
        "repeats": repeats,
        "peer_versions": versions,
    }
