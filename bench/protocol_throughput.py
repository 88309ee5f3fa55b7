"""Throughput of the queue protocol in one Python process against a local redis-server.

Run: ``python -m bench.protocol_throughput [--jobs 100000] [--uvloop]``

Starts its own redis-server (tests/cluster/redis_server.py), enqueues no-op jobs with
``enqueue_many`` and then drains them with a claim(N) / complete(batch) loop, full life
cycle with leases, for N in 1, 10, 100. Prints jobs/s, Redis commands per job (INFO
commandstats delta, commands run inside scripts included) and Redis CPU per job.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis.asyncio as aioredis

from jobqueue import JobSpec, Queue, connect
from jobqueue.codec import JSON_BACKEND
from tests.cluster.redis_server import RedisServer

ENQUEUE_BATCH = 1000


@dataclass
class Sample:
    label: str
    jobs: int
    seconds: float
    commands: int
    cpu: float
    py_cpu: float

    def line(self) -> str:
        rate = self.jobs / self.seconds if self.seconds else 0.0
        return (
            f"{self.label:<28} {self.jobs:>8} jobs {self.seconds:7.2f} s {rate:>10,.0f} jobs/s "
            f"{self.commands / self.jobs:6.2f} redis cmds/job "
            f"{1e6 * self.cpu / self.jobs:6.1f} us redis cpu/job "
            f"{1e6 * self.py_cpu / self.jobs:6.1f} us python cpu/job"
        )


async def _counters(r: aioredis.Redis) -> tuple[int, float]:
    stats: dict[str, Any] = await r.info("commandstats")
    calls = sum(int(v["calls"]) for k, v in stats.items() if not k.endswith("info"))
    cpu: dict[str, Any] = await r.info("cpu")
    return calls, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


async def measure(r: aioredis.Redis, label: str, jobs: int, work: Any) -> Sample:
    c0, cpu0 = await _counters(r)
    p0 = time.process_time()
    t0 = time.perf_counter()
    done = await work()
    seconds = time.perf_counter() - t0
    py_cpu = time.process_time() - p0
    c1, cpu1 = await _counters(r)
    # the INFO calls of _counters are not counted (filtered), nothing else runs
    return Sample(label, done if done is not None else jobs, seconds, c1 - c0, cpu1 - cpu0, py_cpu)


async def enqueue(q: Queue, jobs: int, batch: int) -> int:
    specs = [JobSpec("noop") for _ in range(jobs)]
    for i in range(0, jobs, batch):
        await q.enqueue_many(specs[i : i + batch])
    return jobs


async def drain(q: Queue, n: int, limit: int) -> int:
    done = 0
    while done < limit:
        claimed = await q.claim("bench-worker", min(n, limit - done))
        if not claimed:
            break
        acks = await q.complete([(c.id, c.token, None) for c in claimed])
        if not all(acks):
            raise RuntimeError("a lease was lost during the benchmark")
        done += len(claimed)
    return done


async def run(jobs: int, n1_jobs: int) -> None:
    server = RedisServer().start()
    try:
        r = connect(server.url)
        q = Queue(r, "bench/throughput")
        await q.purge()
        info = await r.info("server")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"redis {info['redis_version']}, python {sys.version.split()[0]}, json={JSON_BACKEND}, "
            f"loop={type(asyncio.get_running_loop()).__module__}, {os.cpu_count()} cpus, "
            f"load average {load} (wall-clock rates depend on it; CPU per job much less)"
        )
        samples: list[Sample] = []

        async def one_call() -> int:
            await q.enqueue_many([JobSpec("noop") for _ in range(jobs)])
            return jobs

        samples.append(await measure(r, "enqueue_many (1 call)", jobs, one_call))
        await q.purge()

        async def batched() -> int:
            return await enqueue(q, jobs, ENQUEUE_BATCH)

        samples.append(await measure(r, f"enqueue_many x{ENQUEUE_BATCH}", jobs, batched))
        for n in (1, 10, 100):
            stats = await q.stats()
            limit = n1_jobs if n == 1 else jobs
            if stats.ready < limit:
                await enqueue(q, limit - stats.ready, ENQUEUE_BATCH)

            async def cycle(n: int = n, limit: int = limit) -> int:
                return await drain(q, n, limit)

            samples.append(await measure(r, f"claim({n}) + complete", limit, cycle))

        # the same with finished records expiring at once: the reaper's cost included
        reaping = Queue(r, "bench/throughput", result_ttl=0.001)
        await enqueue(reaping, jobs, ENQUEUE_BATCH)

        async def reaped() -> int:
            return await drain(reaping, 100, jobs)

        samples.append(await measure(r, "claim(100) + complete, TTL~0", jobs, reaped))
        for s in samples:
            print(s.line())
        stats = await q.stats()
        print(f"final: {stats}")
        await q.purge()
        await r.aclose()
    finally:
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--n1-jobs", type=int, default=20_000, help="jobs for the N=1 run")
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(run(args.jobs, args.n1_jobs))


if __name__ == "__main__":
    main()
