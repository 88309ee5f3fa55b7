"""kill -9 of random worker processes while jobs flow: no job is lost, and the only jobs that
run twice are jobs the killed worker held at the moment it died.

Real `python -m jobqueue_worker` processes (2 to 4 at a time, the fleet size drawn at random
after every kill) on the session's real redis-server. The `track` task records each execution
in a Redis hash (HINCRBY per job id), so a job that ran twice is seen even though the
protocol acknowledges it only once. Right after each SIGKILL the lease ZSET tells which jobs
the dead worker held: those, and only those, may run again.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from jobqueue import JobSpec, Queue
from tests.cluster.redis_server import RedisServer
from tests.reliability.support import (
    Figures,
    Service,
    await_until,
    count_status,
    executions,
    forget_queue,
    leased_by,
    sizes,
    start_worker,
    stop_all,
)

SECTION = "Faults: worker processes killed (kill -9)"
LEASE_SECONDS = 3
CONCURRENCY = 8
MAX_RETRIES = 20  # a job in flight at several kills must not reach the DLQ: this is about loss


@dataclass(frozen=True)
class Size:
    jobs: int
    feed_per_s: int  # enqueue pace, so the run lasts long enough for the kills
    kill_every: tuple[float, float]  # seconds between kills, uniform
    min_kills: int
    job_ms: int


# Jobs of 50 ms keep the fleet saturated (feed > capacity), so kills land on busy workers.
FAST = Size(jobs=5_000, feed_per_s=600, kill_every=(0.7, 1.4), min_kills=4, job_ms=50)
FULL = Size(jobs=100_000, feed_per_s=2_000, kill_every=(0.8, 2.0), min_kills=20, job_ms=2)


def _fleet_log(workers: list[Service]) -> str:
    return "\n".join(f"--- {w.name} rc={w.returncode}\n{w.tail(1500)}" for w in workers[-6:])


@pytest.mark.parametrize("size", sizes(FAST, FULL))
async def test_kill_9_of_random_workers_loses_no_job(
    size: Size, redis_server: RedisServer, workdir: Path, figures: Figures
) -> None:
    rng = random.Random()
    redis = aioredis.Redis.from_url(redis_server.url)
    queue = Queue(redis, f"chaos-kill/{uuid.uuid4().hex[:8]}")
    ids = [uuid.uuid4().hex for _ in range(size.jobs)]
    env = {"LEASE_SECONDS": LEASE_SECONDS, "WORKER_CONCURRENCY": CONCURRENCY}
    workers = [start_worker(redis_server.url, queue.name, workdir, **env) for _ in range(3)]
    killed: set[str] = set()
    held_at_kills: list[list[str]] = []
    started = time.monotonic()

    async def feed() -> None:
        chunk = 500
        for i in range(0, len(ids), chunk):
            specs = [
                JobSpec("track", {"ms": size.job_ms}, job_id=j, max_retries=MAX_RETRIES)
                for j in ids[i : i + chunk]
            ]
            await queue.enqueue_many(specs)
            await asyncio.sleep(chunk / size.feed_per_s)

    feeder = asyncio.create_task(feed())
    try:
        while True:
            stats = await queue.stats()
            if feeder.done() and stats.completed_total >= size.jobs:
                break
            assert time.monotonic() - started < 900, "the run did not finish in 15 min"
            await asyncio.sleep(rng.uniform(*size.kill_every))
            alive = [w for w in workers if w.alive]
            crashed = [w for w in workers if not w.alive and w.name not in killed]
            assert not crashed, f"a worker died on its own:\n{_fleet_log(crashed)}"
            victim = rng.choice(alive)
            victim.kill()
            killed.add(victim.name)
            # the dead worker can change nothing any more: what it held is what may run twice
            held_at_kills.append(await leased_by(redis, queue, victim.name))
            target = rng.randint(2, 4)
            while sum(w.alive for w in workers) < target:
                workers.append(start_worker(redis_server.url, queue.name, workdir, **env))
        await feeder

        async def quiet() -> bool:
            s = await queue.stats()
            return s.ready == 0 and s.in_flight == 0 and s.delayed == 0

        await await_until("an empty queue", quiet, timeout=120, on_fail=lambda: _fleet_log(workers))
        elapsed = time.monotonic() - started
        statuses = await count_status(queue, ids)
        runs = await executions(redis, queue.name)
        stats = await queue.stats()
    finally:
        if not feeder.done():
            feeder.cancel()
        stop_all(workers)

    completed = statuses.get("completed", 0)
    lost = size.jobs - completed
    in_flight_ids = {j for held in held_at_kills for j in held}
    duplicated = {j: n for j, n in runs.items() if n > 1}
    figures.set(
        jobs_enqueued=size.jobs,
        jobs_completed=completed,
        lost=lost,
        duplicated=len(duplicated),
        extra_executions=sum(n - 1 for n in duplicated.values()),
        kills=len(held_at_kills),
        in_flight_at_kills=sum(len(h) for h in held_at_kills),
        max_in_flight_at_a_kill=max((len(h) for h in held_at_kills), default=0),
        worker_processes=len(workers),
        dead=statuses.get("dead", 0),
        seconds=round(elapsed, 1),
    )
    try:
        assert statuses == {"completed": size.jobs}, statuses
        assert lost == 0
        assert stats.completed_total == size.jobs  # each job acknowledged exactly once
        assert set(runs) == set(ids), "a job never ran, or an unknown id ran"
        unexplained = set(duplicated) - in_flight_ids
        assert not unexplained, (
            f"{len(unexplained)} jobs ran twice without being in flight at a kill"
        )
        assert len(duplicated) <= sum(len(h) for h in held_at_kills)
        assert len(held_at_kills) >= size.min_kills, "too few kills to mean anything"
        assert sum(len(h) for h in held_at_kills) > 0, "no kill ever hit a busy worker"
    finally:
        await forget_queue(redis, queue)
        await queue.aclose()
        await redis.aclose()
