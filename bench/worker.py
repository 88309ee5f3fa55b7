"""Worker throughput, ours against RQ, Celery, arq and Dramatiq, plus the Redis ceiling.

All on one private redis-server, every system at its defaults (what a user gets, per-job log
lines included; ours with the autoscaler subscribed to the events channel, as in production)
and at the best setting found. Every peer's task does one Redis INCR and is counted by that
counter; ours runs the same INCR task written the plain way (a module-level `redis.asyncio`
client), the same INCR on `ctx.redis` (the client the runtime gives tasks), and a true no-op
(counted by the protocol's `completed` counter). Each configuration runs `repeats` times,
interleaved, each over a steady window after its first completion. The ceiling is
redis-benchmark running our own claim script.
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

from bench import drive, envs, machine
from bench.common import Ctx, private_redis
from bench.constants import (
    CEILING_CLIENTS,
    CEILING_REQUESTS_FULL,
    CEILING_REQUESTS_QUICK,
    PEER_REQUIREMENTS,
    WORKER_REPEATS_FULL,
    WORKER_REPEATS_QUICK,
    WORKER_WARMUP_S,
    WORKER_WINDOW_FULL_S,
    WORKER_WINDOW_QUICK_S,
)

log = logging.getLogger(__name__)

PEERS = tuple(PEER_REQUIREMENTS)
# One job per call, a mid batch, and the batch our worker asks for (CLAIM_BATCH_MAX).
CLAIM_BATCHES = (1, 100, WORKER_CLAIM_BATCH)


def setups() -> list[drive.Setup]:
    """Every configuration, ours and each peer's, at its defaults and at its best."""
    out = [
        drive.ours_defaults("noop"),
        drive.ours_defaults("incr_plain"),
        drive.ours_defaults("incr_ctx"),
        drive.ours_best("noop"),
        drive.ours_best("incr_ctx"),
    ]
    for p in PEERS:
        out += [drive.peer(p, best=False), drive.peer(p, best=True)]
    out.append(drive.arq_keep_result(True))
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
    from jobqueue.constants import LEASE_EXPIRED_ERROR, MAINTENANCE_INTERVAL_MS, MAINTENANCE_LIMIT
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
                str(MAINTENANCE_INTERVAL_MS),
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
    """Every configuration `repeats` times, interleaved (round r runs each once), so that a
    change in the machine's load hits every system alike; the median run of each is reported
    with the spread of all."""
    repeats = ctx.pick(WORKER_REPEATS_QUICK, WORKER_REPEATS_FULL)
    window = ctx.pick(WORKER_WINDOW_QUICK_S, WORKER_WINDOW_FULL_S)
    versions = envs.ensure_all()
    todo = setups()
    runs: dict[str, list[dict[str, Any]]] = {s.label: [] for s in todo}
    errors: dict[str, dict[str, Any]] = {}
    loads: list[list[float]] = []
    with private_redis() as server:
        for r in range(repeats):
            loads.append(list(machine.load()))
            for s in todo:
                if s.label in errors:
                    continue
                log.info("worker: round %d/%d, %s", r + 1, repeats, s.label)
                try:
                    row = drive.run_window(
                        s, server.url, ctx.work / "logs", window_s=window, warmup_s=WORKER_WARMUP_S
                    )
                    runs[s.label].append(row)
                    log.info(
                        "  %.0f jobs/s (%.0f per process), worker %.1f us/job, redis %.1f us/job",
                        row["jobs_s"],
                        row["jobs_s_per_process"],
                        row["worker_cpu_us_per_job"],
                        row["redis_cpu_us_per_job"],
                    )
                except Exception as exc:
                    log.exception("  %s failed", s.label)
                    errors[s.label] = drive.error_row(s, exc)
    loads.append(list(machine.load()))
    rows: list[dict[str, Any]] = []
    for s in todo:
        if s.label in errors:
            rows.append(errors[s.label])
            continue
        done = sorted(runs[s.label], key=lambda r: r["jobs_s"])
        row = dict(done[len(done) // 2])  # the median run
        row["runs_jobs_s"] = [round(r["jobs_s"]) for r in runs[s.label]]
        row["runs_jobs_s_per_process"] = [round(r["jobs_s_per_process"]) for r in runs[s.label]]
        rows.append(row)
    try:
        ceil = ceiling(ctx)
    except Exception as exc:
        log.exception("ceiling failed")
        ceil = [{"what": "ceiling", "error": f"{type(exc).__name__}: {exc}"}]
    return {
        "rows": rows,
        "ceiling": ceil,
        "repeats": repeats,
        "window_s": window,
        "warmup_s": WORKER_WARMUP_S,
        "loads_per_round": loads,
        "peer_versions": versions,
        "hiredis": "none (no system has it installed)",
    }
