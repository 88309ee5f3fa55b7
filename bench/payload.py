"""Payload sizes (100 B, 10 KB, 100 KB) for every system: Redis CPU, memory and time per job.

Each system enqueues N jobs with its own producer, one call per job (ours: `Queue.enqueue`),
and then its worker at its defaults drains them running the same one-INCR task. Redis
CPU (used_cpu_user + used_cpu_sys of the private redis-server) is measured over the enqueue
and over the drain separately, so "Redis CPU per job" is the whole life cycle of a job as Redis
sees it, less Redis' idle CPU over the same time (sampled for 1 s before each run: a system
that drains slowly is not charged for Redis' own timers); the harness' own polling is
subtracted from the command counts. Every configuration
runs PAYLOAD_ROUNDS times, interleaved (a round runs every system at every size once); the
report shows medians and ranges. Issue 20's target: at 100 KB, our Redis CPU per job within
2x of the best peer's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis

from bench import drive, envs
from bench.common import Ctx, RedisSnapshot, info, private_redis
from bench.constants import (
    GROWTH_PAYLOAD_SIZES,
    PAYLOAD_JOBS_FULL,
    PAYLOAD_JOBS_QUICK,
    PAYLOAD_ROUNDS,
    PEER_REQUIREMENTS,
)
from bench.enqueue import ours_producer
from bench.peers._env import payload as peer_payload

log = logging.getLogger(__name__)

IDLE_SAMPLE_S = 1.0  # how long Redis' idle CPU is sampled before each run


def _setups() -> list[drive.Setup]:
    """Every system at its defaults, as the issue judges its targets (ours: concurrency 8,
    INFO job lines, the autoscaler-like subscriber attached; its Redis work counts too)."""
    return [
        drive.ours_defaults("incr_plain"),
        *(drive.peer(p, best=False) for p in PEER_REQUIREMENTS),
    ]


def idle_cpu_rate(client: redis.Redis) -> float:
    """Redis CPU seconds per second with no client working (its own timers, serverCron):
    subtracted from both phases, so that a slow system is not charged Redis' idle time."""
    before = RedisSnapshot.take(client)
    t0 = time.monotonic()
    time.sleep(IDLE_SAMPLE_S)
    return max(0.0, before.delta(RedisSnapshot.take(client)).cpu / (time.monotonic() - t0))


def measure(setup: drive.Setup, url: str, n: int, size: int, ctx: Ctx) -> dict[str, Any]:
    """Enqueue n jobs of `size` payload bytes, drain them; Redis CPU of both phases."""
    client = redis.Redis.from_url(url)
    try:
        client.flushall()
        idle = idle_cpu_rate(client)
        mem0 = int(info(client, "memory")["used_memory"])
        before = RedisSnapshot.take(client)
        if setup.system == "ours":
            fill_s = asyncio.run(ours_producer(url, n, 1, peer_payload(size)))[0]
        else:
            fill_s = drive.produce_peer(setup.system, url, n, size)
        after = RedisSnapshot.take(client)
        mem1 = int(info(client, "memory")["used_memory"])
    finally:
        client.close()
    enq = before.delta(after)
    t0 = time.monotonic()
    row = drive.run_setup(
        setup, url, n, ctx.work / "logs", prefilled=True, max_seconds=300.0, payload_bytes=size
    )
    drain_s = time.monotonic() - t0  # a little more than run_setup's snapshots span
    enq_cpu = max(0.0, enq.cpu - idle * fill_s) / n * 1e6
    drain_cpu = max(0.0, row["redis_cpu_us_per_job"] - idle * drain_s / n * 1e6)
    row.update(
        {
            "redis_idle_cpu_pct": idle * 100,
            "enqueue_jobs_s": n / fill_s,
            "enqueue_redis_cpu_us_per_job": enq_cpu,
            "enqueue_redis_cmds_per_job": enq.total / n,
            "drain_redis_cpu_us_per_job": drain_cpu,
            "redis_cpu_us_per_job": enq_cpu + drain_cpu,
            "redis_bytes_per_job": (mem1 - mem0) / n,
        }
    )
    return row


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median Redis CPU per job, with every run's figures beside it."""
    done = sorted(runs, key=lambda r: r["redis_cpu_us_per_job"])
    row = dict(done[len(done) // 2])
    row["runs_redis_cpu_us_per_job"] = [round(r["redis_cpu_us_per_job"], 1) for r in runs]
    row["runs_jobs_s"] = [round(r["jobs_s"]) for r in runs]
    return row


def run(ctx: Ctx) -> dict[str, Any]:
    envs.ensure_all()
    n = ctx.pick(PAYLOAD_JOBS_QUICK, PAYLOAD_JOBS_FULL)
    setups = _setups()
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    errors: dict[tuple[str, int], str] = {}
    with private_redis() as server:
        for r in range(PAYLOAD_ROUNDS):
            for size in GROWTH_PAYLOAD_SIZES:
                for setup in setups:
                    key = (setup.label, size)
                    if key in errors:
                        continue
                    log.info("payload: round %d, %s, %d B, %d jobs", r + 1, setup.label, size, n)
                    try:
                        row = measure(setup, server.url, n, size, ctx)
                    except Exception as exc:
                        log.exception("  failed")
                        errors[key] = f"{type(exc).__name__}: {str(exc)[:300]}"
                        continue
                    runs.setdefault(key, []).append(row)
                    log.info(
                        "  Redis CPU %.1f µs/job (enqueue %.1f), %.0f jobs/s",
                        row["redis_cpu_us_per_job"],
                        row["enqueue_redis_cpu_us_per_job"],
                        row["jobs_s"],
                    )
    rows: list[dict[str, Any]] = []
    for size in GROWTH_PAYLOAD_SIZES:
        for setup in setups:
            key = (setup.label, size)
            if key in errors:
                rows.append({**drive.error_row(setup, RuntimeError(errors[key])), "x": size})
            elif key in runs:
                rows.append({**_median(runs[key]), "x": size})
    return {
        "rows": rows,
        "jobs": n,
        "rounds": PAYLOAD_ROUNDS,
        "peer_versions": {p: envs.version(p) for p in PEER_REQUIREMENTS},
    }
