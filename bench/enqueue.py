"""Enqueue throughput: one API process under wrk, next to each peer's own Python producer.

The API side reuses bench/api_enqueue.py (the API helper's wrk driver: a private redis-server,
`python -m jobqueue_api` with one uvicorn worker, wrk with a Lua script for the POST body, a
check that every accepted job is in Redis). The producers enqueue the same number of jobs in
one process, one producer call per job: RQ `Queue.enqueue`, Celery `apply_async`, arq
`enqueue_job`, Dramatiq `send`, and ours `Queue.enqueue` (plus `enqueue_many` by 100), each
several times, interleaved, with enough jobs for a few seconds each.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from dataclasses import asdict
from typing import Any

import redis

from bench import api_enqueue, drive, envs
from bench.common import Ctx, private_redis
from bench.constants import (
    BATCH_SIZE,
    PEER_REQUIREMENTS,
    PRODUCER_EXPECTED_JOBS_S,
    PRODUCER_REPEATS,
    PRODUCER_WINDOW_S,
    WRK_CONNECTIONS,
    WRK_DURATION_FULL_S,
    WRK_DURATION_QUICK_S,
)

log = logging.getLogger(__name__)


async def ours_producer(url: str, n: int, batch: int, payload: str = "") -> tuple[float, float]:
    """Seconds and CPU seconds of this process for n jobs with `Queue.enqueue` (batch 1) or
    `enqueue_many` by `batch`."""
    from jobqueue import JobSpec, Queue, connect

    client = connect(url)
    try:
        q = Queue(client, drive.QUEUE)
        spec = JobSpec(type="incr", payload=payload)
        t0, c0 = time.perf_counter(), time.process_time()
        if batch == 1:
            for _ in range(n):
                await q.enqueue(spec)
        else:
            for start in range(0, n, batch):
                await q.enqueue_many([spec] * min(batch, n - start))
        return time.perf_counter() - t0, time.process_time() - c0
    finally:
        await client.aclose()


def producers(ctx: Ctx) -> list[dict[str, Any]]:
    """Each producer PRODUCER_REPEATS times, interleaved; the median run and the range."""
    envs.ensure_all()
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    errors: dict[tuple[str, str], str] = {}

    def size(key: str) -> int:
        return int(PRODUCER_EXPECTED_JOBS_S[key] * PRODUCER_WINDOW_S)

    with private_redis() as server:
        client = redis.Redis.from_url(server.url)
        cases: list[tuple[str, str, int, Any]] = [
            (
                "jobqueue",
                "Queue.enqueue, one per call",
                size("jobqueue"),
                lambda n: asyncio.run(ours_producer(server.url, n, 1)),
            ),
            (
                "jobqueue",
                f"Queue.enqueue_many, {BATCH_SIZE} per call",
                size("jobqueue_batch"),
                lambda n: asyncio.run(ours_producer(server.url, n, BATCH_SIZE)),
            ),
        ]
        calls = {
            "rq": "Queue.enqueue",
            "celery": "task.apply_async",
            "arq": "ArqRedis.enqueue_job",
            "dramatiq": "actor.send",
        }
        for p in PEER_REQUIREMENTS:
            cases.append(
                (p, calls[p], size(p), lambda n, p=p: drive.produce_peer_timed(p, server.url, n))
            )
        for r in range(PRODUCER_REPEATS):
            for system, how, n, fn in cases:
                if (system, how) in errors:
                    continue
                client.flushall()
                log.info("enqueue: round %d, %s %s, %d jobs", r + 1, system, how, n)
                try:
                    secs, cpu = fn(n)
                    runs.setdefault((system, how), []).append(
                        {
                            "system": system,
                            "how": how,
                            "jobs": n,
                            "seconds": secs,
                            "jobs_s": n / secs,
                            "cpu_us_per_job": cpu / n * 1e6,
                        }
                    )
                    log.info(
                        "  %.0f jobs/s, %.1f µs of producer CPU per job", n / secs, cpu / n * 1e6
                    )
                except Exception as exc:
                    log.exception("  failed")
                    errors[(system, how)] = f"{type(exc).__name__}: {exc}"
        client.close()
    rows: list[dict[str, Any]] = []
    for system, how, _n, _fn in cases:
        if (system, how) in errors:
            rows.append({"system": system, "how": how, "error": errors[(system, how)]})
            continue
        done = sorted(runs[(system, how)], key=lambda x: x["jobs_s"])
        row = dict(done[len(done) // 2])
        row["runs_jobs_s"] = [round(x["jobs_s"]) for x in runs[(system, how)]]
        cpus = sorted(x["cpu_us_per_job"] for x in runs[(system, how)])
        row["cpu_us_per_job"] = cpus[len(cpus) // 2]  # the median of the runs
        row["runs_cpu_us_per_job"] = [round(x["cpu_us_per_job"], 1) for x in runs[(system, how)]]
        rows.append(row)
    return rows


def api(ctx: Ctx) -> list[dict[str, Any]]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: run `make deps`")
    duration = ctx.pick(WRK_DURATION_QUICK_S, WRK_DURATION_FULL_S)
    rows: list[dict[str, Any]] = []
    work = ctx.work / "api"
    work.mkdir(parents=True, exist_ok=True)
    with private_redis() as server:
        for scenario in api_enqueue.SCENARIOS:
            log.info("enqueue: API %s, wrk %d s", scenario.name, duration)
            try:
                r = api_enqueue.run_scenario(scenario, server.url, duration, WRK_CONNECTIONS, work)
                rows.append({**asdict(r), "connections": WRK_CONNECTIONS, "duration_s": duration})
                log.info("  %.0f req/s, %.0f jobs/s", r.requests_per_s, r.jobs_per_s)
            except Exception as exc:
                log.exception("  failed")
                rows.append({"scenario": scenario.name, "error": f"{type(exc).__name__}: {exc}"})
    return rows


def run(ctx: Ctx) -> dict[str, Any]:
    return {"api": api(ctx), "producers": producers(ctx), "batch_size": BATCH_SIZE}
