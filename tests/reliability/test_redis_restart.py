"""redis-server killed (SIGKILL) and restarted under load, behind a real API and real workers.

* ``appendfsync always``: every job the API acknowledged with a 202 completes; none is lost.
* ``appendfsync everysec``: the same run; the acknowledged jobs missing after the restart are
  counted and the loss window (kill time minus the oldest lost acknowledgement) is recorded.
* While Redis is down the API answers 503 with ``Retry-After`` (never a hang, never another
  status), and serves 202 again by itself once Redis is back; the same worker processes
  (same pids, never restarted) go on completing jobs after every restart.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from jobqueue import Queue
from tests.cluster.redis_server import RedisServer
from tests.reliability.support import (
    CLIENT_TIMEOUT,
    CLIENTS,
    Figures,
    FsyncTracedRedis,
    Load,
    await_until,
    by_worker,
    count_status,
    host_crash_exposure,
    job_records,
    sizes,
    start_api,
    start_worker,
    stop_all,
)

SECTION = "Faults: redis-server killed and restarted (AOF)"
JOB = {"type": "track", "payload": {"ms": 1}, "max_retries": 10}


@dataclass(frozen=True)
class Size:
    restarts: int
    run_s: float  # load before the first kill and between restarts
    down_s: float  # how long Redis stays down each time


FAST = Size(restarts=1, run_s=2.0, down_s=2.5)
FULL = Size(restarts=4, run_s=6.0, down_s=4.0)


async def inconsistent_ids(redis: aioredis.Redis, queue: Queue) -> list[str]:
    """Ids referenced by a ready list, the lease or delayed set but without a job record."""
    ids: list[bytes] = []
    for key in queue.keys.ready:
        ids += await redis.lrange(key, 0, -1)
    ids += await redis.zrange(queue.keys.lease, 0, -1)
    ids += await redis.zrange(queue.keys.delayed, 0, -1)
    if not ids:
        return []
    specs = await redis.hmget(queue.keys.job_spec, ids)
    return [i.decode() for i, s in zip(ids, specs, strict=True) if s is None]


@pytest.fixture
def traced() -> Iterator[list[RedisServer]]:
    servers: list[RedisServer] = []
    yield servers
    for server in servers:
        server.cleanup()


@pytest.mark.parametrize("fsync", ["always", "everysec"])
@pytest.mark.parametrize("size", sizes(FAST, FULL))
async def test_redis_restarts_lose_no_acknowledged_job(
    size: Size,
    fsync: str,
    redis_factory: Callable[..., RedisServer],
    workdir: Path,
    figures: Figures,
    traced: list[RedisServer],
) -> None:
    args = ("--appendonly", "yes", "--appendfsync", fsync)
    if fsync == "everysec":  # trace fsyncs: what a host crash (not just a process crash) loses
        server: RedisServer = FsyncTracedRedis(extra_args=args).start()
        traced.append(server)
    else:
        server = redis_factory(*args)
    redis = aioredis.Redis.from_url(server.url)
    queue = Queue(redis, f"chaos-redis/{uuid.uuid4().hex[:8]}")
    api = start_api(server.url, queue.name, workdir)
    workers = [
        start_worker(server.url, queue.name, workdir, LEASE_SECONDS=3, WORKER_CONCURRENCY=4)
        for _ in range(2)
    ]
    pids = {w.name: w.pid for w in workers}
    load = Load(api.url, JOB)
    kills: list[tuple[float, float]] = []  # (killed at, restart began at)
    outage_ready: list[int] = []
    after_restart: dict[str, int] = {}
    half_written: list[str] = []
    tasks = [asyncio.create_task(load.client()) for _ in range(CLIENTS)]
    try:
        await asyncio.sleep(size.run_s)
        for _ in range(size.restarts):
            server.kill()
            t_kill = time.time()
            await asyncio.sleep(size.down_s / 2)
            async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http:
                outage_ready.append((await http.get(f"{api.url}/readyz")).status_code)
            await asyncio.sleep(size.down_s / 2)
            t_start = time.time()  # down until here, for sure
            await asyncio.to_thread(server.start)
            kills.append((t_kill, t_start))
            half_written += await inconsistent_ids(redis, queue)
            after_restart = await by_worker(redis, queue.name)
            await asyncio.sleep(size.run_s)

        # Workers reconnect on jittered delays (up to the worker's REDIS_RETRY_MAX, 5 s), so
        # keep the load on until each one completes jobs again; one that never does fails here.
        async def every_worker_back() -> bool:
            now = await by_worker(redis, queue.name)
            return all(now.get(name, 0) > after_restart.get(name, 0) for name in pids)

        await await_until(
            "every worker completing jobs again after the last restart",
            every_worker_back,
            timeout=30,
            on_fail=lambda: "\n".join(w.tail(2000) for w in workers),
        )
        load.stop.set()
        await asyncio.gather(*tasks)
        accepted = [s.job_id for s in load.accepted() if s.job_id]

        async def settled() -> dict[str, int] | None:
            counts = await count_status(queue, accepted)
            pending = sum(counts.get(s, 0) for s in ("queued", "processing", "failed"))
            return counts if pending == 0 else None

        statuses = await await_until(
            "every accepted job finished",
            settled,
            timeout=180,
            on_fail=lambda: "\n".join(w.tail(2000) for w in workers),
        )
        final = await by_worker(redis, queue.name)
        workers_alive = {w.name: w.alive and w.pid == pids[w.name] for w in workers}
    finally:
        load.stop.set()
        for t in tasks:
            t.cancel()
        stop_all([api, *workers])

    results = load.results
    lost_ids: set[str] = set()
    if statuses.get("missing"):
        records = await job_records(queue, accepted)
        lost_ids = {j for j, job in records.items() if job is None}
    lost_acks = [s for s in load.accepted() if s.job_id in lost_ids]
    # the loss window: from the oldest lost acknowledgement to the kill that lost it
    window_ms = max(
        ((k - s.done) * 1000 for s in lost_acks for k, _ in kills if s.done <= k), default=0.0
    )
    during = [s for s in results for k, up in kills if k + 0.2 <= s.started and s.done <= up]
    recovery = [
        min((s.done - up for s in results if s.status == 202 and s.started >= up), default=-1)
        for _, up in kills
    ]
    if isinstance(server, FsyncTracedRedis):
        window, at_risk = host_crash_exposure(server.fsyncs(), kills, load.accepted())
        figures.set(host_crash_window_ms=round(window), host_crash_acks_at_risk=at_risk)
    figures.set(
        appendfsync=fsync,
        restarts=len(kills),
        requests=len(results),
        acknowledged_202=len(load.accepted()),
        refused_503=sum(s.status == 503 for s in results),
        completed=statuses.get("completed", 0),
        lost_acknowledged=len(lost_acks),
        loss_window_ms=round(window_ms),
        seconds_to_first_202_after_restart=[round(r, 2) for r in recovery],
        requests_while_down=len(during),
        half_written_jobs=len(half_written),
        worker_restarts=sum(not ok for ok in workers_alive.values()),
    )
    # while Redis was down: 503 + Retry-After, nothing else, and no request hung
    assert during, "no request was sent while Redis was down"
    bad = [s for s in during if s.status != 503 or not s.retry_after]
    assert not bad, bad[:5]
    assert all(s.status in (202, 503) for s in results), {s.status for s in results}
    assert all(s.status != 503 or s.retry_after for s in results)
    assert outage_ready and all(code == 503 for code in outage_ready)
    # it recovered by itself: 202s after every restart
    assert all(r >= 0 for r in recovery), recovery
    # the same worker processes went on completing jobs after the last restart
    assert all(workers_alive.values()), workers_alive
    for name in pids:
        assert final.get(name, 0) > after_restart.get(name, 0), (name, after_restart, final)
    assert not half_written, half_written[:5]
    assert statuses.get("dead", 0) == 0, statuses
    if fsync == "always":
        assert not lost_acks, f"{len(lost_acks)} acknowledged jobs lost with appendfsync always"
        assert statuses == {"completed": len(load.accepted())}, statuses
    else:
        assert statuses.get("completed", 0) + len(lost_acks) == len(load.accepted()), statuses
    await queue.aclose()
    await redis.aclose()
