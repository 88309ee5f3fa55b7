"""GET /jobs page latency on a queue of a million jobs: bounded work per page, whatever the length.

    .venv/bin/python -m bench.jobs_listing [--jobs 1000000] [--pages 200] [--json out.json]

Fills a private redis-server with ``--jobs`` queued jobs and as many completed ones (claimed
and acknowledged in batches of 1,000, so the finished index holds 1,000 batches), plus a
small queue of 1,000 of each for comparison, then starts one API process and times
``--pages`` sequential GET /jobs calls (limit 50), and the same pages through
``Queue.list_jobs`` alone (the Redis script without HTTP; with the server's own time per
script call from INFO commandstats), at each of these places: the first page,
pages starting half-way and at the very end of the queue (cursors built as the API builds
them), a type filter that matches one job in a million (a page examines at most 1,000 jobs
and comes back empty with a cursor), and the completed jobs, newest first, from the top and
from half-way down. Prints p50/p99/max per place. Not part of `make bench`: run it by hand;
its last figures are in bench/NOTES.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from jobqueue_api.cursors import Cursor

import jobqueue
from bench.common import Child, private_redis, wait_until
from bench.constants import REPO_DIR
from jobqueue import JobSpec, Queue
from jobqueue.browse import ListState
from tests.cluster.redis_server import free_port

BIG = "bench/listing-big"
SMALL = "bench/listing-small"
LIMIT = 50
BATCH = 1000


async def fill(queue: Queue, n: int, *, complete: bool) -> None:
    """n queued jobs (type "common", one "rare" in the middle); with ``complete``, another n
    claimed and acknowledged first, a batch of BATCH per round trip."""
    if complete:
        for start in range(0, n, BATCH):
            await queue.enqueue_many([JobSpec("done", start + i) for i in range(BATCH)])
            claimed = await queue.claim("bench", BATCH)
            await queue.complete([(c.id, c.token, None) for c in claimed])
    for start in range(0, n, BATCH):
        specs = [JobSpec("common", start + i) for i in range(BATCH)]
        if start == (n // 2 // BATCH) * BATCH:
            specs[0] = JobSpec("rare", start)
        await queue.enqueue_many(specs)


def cursor_at(queue: str, state: ListState, position: str) -> str:
    return Cursor(queue, state, position).encode()


def summary(times: list[float], jobs: int) -> dict[str, Any]:
    times = sorted(times)
    return {
        "pages": len(times),
        "jobs_per_page": round(jobs / len(times), 1),
        "p50_ms": round(statistics.median(times) * 1000, 2),
        "p99_ms": round(times[max(0, int(len(times) * 0.99) - 1)] * 1000, 2),
        "max_ms": round(times[-1] * 1000, 2),
    }


def time_pages(client: httpx.Client, params: dict[str, Any], pages: int) -> dict[str, Any]:
    """Time ``pages`` GET /jobs calls, each following the previous page's cursor."""
    times: list[float] = []
    jobs = 0
    p = dict(params)
    for _ in range(pages):
        t0 = time.perf_counter()
        r = client.get("/jobs", params=p)
        times.append(time.perf_counter() - t0)
        r.raise_for_status()
        body = r.json()
        jobs += len(body["jobs"])
        if body["next_cursor"] is None:
            p.pop("cursor", None)  # start over: keep timing the same kind of page
        else:
            p["cursor"] = body["next_cursor"]
    return summary(times, jobs)


def time_protocol(redis_url: str, params: dict[str, Any], pages: int) -> dict[str, Any]:
    """The same pages through ``Queue.list_jobs`` alone: the Redis script and its decoding,
    without HTTP and the API's JSON."""
    state = ListState(params["state"])
    position = Cursor.decode(params["cursor"], state).position if "cursor" in params else None

    async def run() -> dict[str, Any]:
        client = jobqueue.connect(redis_url)
        queue = Queue(client, params["queue"])
        times: list[float] = []
        jobs = 0
        cursor = position or None
        await client.config_resetstat()
        for _ in range(pages):
            t0 = time.perf_counter()
            page = await queue.list_jobs(
                state, job_type=params.get("type"), limit=params["limit"], cursor=cursor
            )
            times.append(time.perf_counter() - t0)
            jobs += len(page.jobs)
            cursor = page.cursor
        stats = await client.info("commandstats")
        await client.aclose()
        out = summary(times, jobs)
        # Redis's own time in the script per page: what bounded work means for the server
        out["redis_us_per_page"] = stats.get("cmdstat_evalsha", {}).get("usec_per_call")
        return out

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    n = args.jobs
    work = Path(tempfile.mkdtemp(prefix="jq-bench-listing-"))
    with private_redis() as server:
        client = jobqueue.connect(server.url)

        async def prepare() -> None:
            t0 = time.monotonic()
            await fill(Queue(client, BIG), n, complete=True)
            await fill(Queue(client, SMALL), 1000, complete=True)
            big = await Queue(client, BIG).stats()
            print(f"filled in {time.monotonic() - t0:.0f} s: {big.ready} queued, "
                  f"{big.completed_total} completed", flush=True)  # fmt: skip
            await client.aclose()

        asyncio.run(prepare())
        port = free_port()
        env = {
            "REDIS_URL": server.url,
            "QUEUE_NAME": BIG,
            "JOB_ROUTES": json.dumps({"small": SMALL}),  # the small queue as a pool
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(REPO_DIR / "api-image"), str(REPO_DIR)]),
        }
        results: dict[str, Any] = {"jobs": n, "limit": LIMIT}
        with Child("api", [sys.executable, "-m", "jobqueue_api"], env=env, log_dir=work) as api:
            url = f"http://127.0.0.1:{port}"

            def healthy() -> bool:
                api.check()
                try:
                    return httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(healthy, 30, interval=0.1, what="the API to start")
            q = ListState.QUEUED
            places: dict[str, dict[str, Any]] = {
                "queued, small queue (1,000), first pages": {"queue": SMALL},
                "queued, first pages": {"queue": BIG},
                "queued, from half-way": {"queue": BIG, "cursor": cursor_at(BIG, q, f"1|{n // 2}")},
                "queued, from the end": {"queue": BIG, "cursor": cursor_at(BIG, q, f"1|{n - 60}")},
                "queued, type=rare (1 in a million)": {"queue": BIG, "type": "rare"},
                "completed, small queue, newest first": {"queue": SMALL, "state": "completed"},
                "completed, newest first": {"queue": BIG, "state": "completed"},
            }
            with httpx.Client(base_url=url, timeout=30) as http:
                # the completed index from half-way: walk there page by page once (1,000
                # batches), then time the pages that follow
                walk = {"queue": BIG, "state": "completed", "limit": 500}
                for _ in range(n // 500 // 2):
                    walk["cursor"] = http.get("/jobs", params=walk).json()["next_cursor"]
                places["completed, from half-way down"] = {**walk, "limit": LIMIT}
                for name, params in places.items():
                    params = {"state": "queued", "limit": LIMIT, **params}
                    results[name] = {
                        "http": time_pages(http, params, args.pages),
                        "protocol": time_protocol(server.url, params, args.pages),
                    }
                    print(f"{name:45} {results[name]}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
