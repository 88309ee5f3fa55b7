"""Jobs/s of one worker process on no-op jobs, at several WORKER_CONCURRENCY settings.

Starts its own redis-server, enqueues the jobs first (enqueue_many), then starts one
`python -m jobqueue_worker` (TASKS_MODULE=examples.tasks, task `noop`) and measures from the
first claim (a job in flight) to the queue drained (the protocol's completed counter reaching
the total). Checks that every job completed exactly once, nothing went dead or was retried
(leases intact), and that the worker exits 0 on SIGTERM. Also reports the CPU time the worker
and redis-server used per job.

    .venv/bin/python bench/worker_throughput.py                      # 50k jobs, c = 1, 64, 256
    .venv/bin/python bench/worker_throughput.py --concurrency 256 --jobs 100000 --loop asyncio
    .venv/bin/python bench/worker_throughput.py --concurrency 256 --profile /tmp/worker.html
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis.asyncio as aioredis  # noqa: E402

from jobqueue import JobSpec, Queue  # noqa: E402
from tests.cluster.redis_server import RedisServer, free_port  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    concurrency: int
    jobs: int
    seconds: float
    jobs_per_s: float
    worker_cpu_us_per_job: float
    redis_cpu_us_per_job: float
    failed_total: int
    dead: int
    exit_code: int


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def redis_cpu(client: aioredis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def run_once(
    server: RedisServer, concurrency: int, jobs: int, loop: str, profile: str | None
) -> Result:
    client = aioredis.Redis.from_url(server.url)
    queue = Queue(client, f"bench/worker-c{concurrency}-{time.time_ns()}")
    for start in range(0, jobs, 10_000):
        await queue.enqueue_many([JobSpec("noop") for _ in range(min(10_000, jobs - start))])
    assert (await queue.stats()).ready == jobs
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "QUEUE_NAME": queue.name,
        "TASKS_MODULE": "examples.tasks",
        "WORKER_CONCURRENCY": str(concurrency),
        "HEALTH_PORT": str(free_port()),
        "HEALTH_HOST": "127.0.0.1",
        "POD_NAME": f"bench-c{concurrency}",
        "JOB_LOG_LEVEL": "DEBUG",  # per-job lines off: measure the runtime, not the log
        "WORKER_EVENT_LOOP": loop,
        "PYTHONPATH": str(REPO),
    }
    cmd = [sys.executable, "-m", "jobqueue_worker"]
    if profile:  # pyinstrument (pip install pyinstrument); .html or a text report
        renderer = "html" if profile.endswith(".html") else "text"
        cmd = [sys.executable, "-m", "pyinstrument", "-r", renderer, "-o", profile, *cmd[1:]]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL)
    try:
        t_first = None
        while True:
            s = await queue.stats()
            now = time.perf_counter()
            if t_first is None and (s.in_flight or s.completed_total):
                t_first = now
                cpu0_worker, cpu0_redis = cpu_seconds(proc.pid), await redis_cpu(client)
            if s.completed_total >= jobs:
                t_end = now
                cpu_worker = cpu_seconds(proc.pid) - cpu0_worker
                cpu_redis = await redis_cpu(client) - cpu0_redis
                break
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited early with {proc.returncode}")
            await asyncio.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    s = await queue.stats()
    assert s.completed_total == jobs and s.ready == 0 and s.in_flight == 0, s
    assert t_first is not None
    seconds = t_end - t_first
    result = Result(
        concurrency=concurrency,
        jobs=jobs,
        seconds=round(seconds, 3),
        jobs_per_s=round(jobs / seconds),
        worker_cpu_us_per_job=round(cpu_worker / jobs * 1e6, 1),
        redis_cpu_us_per_job=round(cpu_redis / jobs * 1e6, 1),
        failed_total=s.failed_total,
        dead=s.dead,
        exit_code=code,
    )
    await queue.purge()
    await queue.aclose()
    await client.aclose()
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument(
        "--serial-jobs", type=int, default=10_000, help="jobs for the concurrency-1 run"
    )
    parser.add_argument("--concurrency", default="1,64,256")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    parser.add_argument("--profile", help="write a pyinstrument profile of the worker here")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    args = parser.parse_args()
    server = RedisServer().start()
    results = []
    try:
        for conc in [int(x) for x in args.concurrency.split(",")]:
            jobs = args.serial_jobs if conc == 1 else args.jobs
            results.append(await run_once(server, conc, jobs, args.loop, args.profile))
            r = results[-1]
            print(
                f"concurrency {r.concurrency:>4}: {r.jobs:>6} jobs in {r.seconds:7.3f} s = "
                f"{r.jobs_per_s:>7} jobs/s | worker {r.worker_cpu_us_per_job} us/job, "
                f"redis {r.redis_cpu_us_per_job} us/job | failed {r.failed_total}, "
                f"dead {r.dead}, exit {r.exit_code}",
                flush=True,
            )
    finally:
        server.cleanup()
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
