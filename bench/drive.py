"""Fill a queue, run a worker configuration until N jobs are done, and measure it the same way.

Used by the worker and growth benchmarks for our worker and every peer alike: the harness
polls one counter (the peers' and our `incr` task's INCR key, or our protocol's `completed`
counter for `noop`), subtracts its own polling calls from INFO commandstats, and reports
jobs/s over the window from the first to the N-th completion.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis

from bench import envs
from bench.common import Child, RedisSnapshot, free_port
from bench.constants import COUNTER_KEY, REPO_DIR, WORKER_TIMEOUT_S

log = logging.getLogger(__name__)

QUEUE = "bench"
POLL_S = 0.01
FILL_CHUNK = 1000


@dataclass(frozen=True)
class Setup:
    """One worker configuration to measure."""

    system: str  # "ours", "rq", "celery", "arq", "dramatiq"
    setting: str  # human text, e.g. "concurrency 256"
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    job: str = "incr"  # ours only: "noop", "incr" (tuned pool), "incr_plain", "incr_ctx"
    processes: int = 1  # processes the harness starts
    worker_processes: int = 1  # processes that run jobs (a forking peer's children): per process
    defaults: bool = False  # the settings a user gets (else: the best found)
    subscriber: bool = False  # ours: an autoscaler-like subscriber on the events channel
    expected_jobs_s: float = 5_000  # sizes the fill so that the window never runs dry

    @property
    def counted_by(self) -> str:
        if self.system == "ours" and self.job == "noop":
            return "protocol completed counter"
        return "INCR counter"

    @property
    def label(self) -> str:
        name = "jobqueue" if self.system == "ours" else self.system
        extra = {"noop": " noop", "incr_plain": " INCR plain client", "incr_ctx": " INCR ctx.redis"}
        return f"{name}{extra.get(self.job, '')} ({self.setting})"


# ----------------------------------------------------------------------------- configurations


def ours(concurrency: int, job: str = "incr", processes: int = 1) -> Setup:
    """Ours at a concurrency, per-job lines off (the growth benchmark's configuration)."""
    env = (
        ("QUEUE_NAME", QUEUE),
        ("WORKER_CONCURRENCY", str(concurrency)),
        ("TASKS_MODULE", "bench.peers.ours"),
        ("BENCH_POOL_SIZE", str(concurrency)),
        ("LOG_LEVEL", "WARNING"),
        ("JOB_LOG_LEVEL", "DEBUG"),
    )
    setting = f"concurrency {concurrency}"
    if processes > 1:
        setting += f", {processes} processes"
    return Setup("ours", setting, (sys.executable, "-m", "jobqueue_worker"), env, job, processes)


def ours_defaults(job: str) -> Setup:
    """What the operator runs: concurrency 8, prefetch by default, INFO logs with the per-job
    line, and the autoscaler subscribed to the events channel."""
    from jobqueue_worker.constants import DEFAULT_CONCURRENCY

    env = (("QUEUE_NAME", QUEUE), ("TASKS_MODULE", "bench.peers.ours"))
    expected = 25_000 if job == "noop" else 10_000
    return Setup(
        "ours",
        f"defaults: concurrency {DEFAULT_CONCURRENCY}, INFO job lines, autoscaler subscribed",
        (sys.executable, "-m", "jobqueue_worker"),
        env,
        job,
        defaults=True,
        subscriber=True,
        expected_jobs_s=expected,
    )


def ours_best(job: str) -> Setup:
    """The best settings found: every non-default named in the setting."""
    from bench.constants import OURS_BEST_CONCURRENCY

    env = (
        ("QUEUE_NAME", QUEUE),
        ("TASKS_MODULE", "bench.peers.ours"),
        ("WORKER_CONCURRENCY", str(OURS_BEST_CONCURRENCY)),
        ("JOB_LOG_LEVEL", "DEBUG"),
    )
    return Setup(
        "ours",
        f"best: concurrency {OURS_BEST_CONCURRENCY}, JOB_LOG_LEVEL=DEBUG (no per-job line), "
        "autoscaler subscribed",
        (sys.executable, "-m", "jobqueue_worker"),
        env,
        job,
        subscriber=True,
        expected_jobs_s=100_000 if job == "noop" else 20_000,
    )


def peer(system: str, best: bool) -> Setup:
    """A peer at its CLI defaults (their INFO logs included) or at the best setting found."""
    from bench.constants import (
        ARQ_BEST_MAX_JOBS,
        CELERY_BEST_PREFETCH,
        DRAMATIQ_BEST_THREADS,
    )

    cpus = os.cpu_count() or 1
    bindir = envs.env_dir(system) / "bin"
    if system == "rq":
        base: tuple[str, ...] = (str(bindir / "rq"), "worker", "--burst")
        if best:
            return Setup(
                "rq",
                "best: SimpleWorker (no fork), WARNING logs",
                (*base, "--logging_level", "WARNING", "-w", "rq.worker.SimpleWorker", QUEUE),
                expected_jobs_s=500,
            )
        return Setup(
            "rq", "defaults: fork per job, INFO logs", (*base, QUEUE), defaults=True,
            expected_jobs_s=150,
        )  # fmt: skip
    if system == "celery":
        base = (str(bindir / "celery"), "-A", "bench.peers.celery_app", "worker", "-Q", QUEUE)
        if best:
            return Setup(
                "celery",
                f"best: solo pool, acks_late, prefetch {CELERY_BEST_PREFETCH}, WARNING logs, "
                "no gossip/mingle/heartbeat",
                (*base, "--pool=solo", "-l", "WARNING", "--without-gossip", "--without-mingle",
                 "--without-heartbeat"),
                (("BENCH_PREFETCH", str(CELERY_BEST_PREFETCH)),),
                expected_jobs_s=2_000,
            )  # fmt: skip
        return Setup(
            "celery",
            f"defaults: prefork x {cpus}, prefetch 4, acks early, INFO logs",
            (*base, "-l", "INFO"),
            (("BENCH_PREFETCH", "4"), ("BENCH_ACKS_LATE", "0")),
            processes=1,
            worker_processes=cpus,
            defaults=True,
            expected_jobs_s=1_500,
        )
    if system == "arq":
        argv: tuple[str, ...] = (str(bindir / "arq"), "bench.peers.arq_tasks.WorkerSettings")
        quiet = ("--custom-log-dict", "bench.peers.arq_tasks.LOG_CONFIG")
        if best:
            return Setup(
                "arq",
                f"best: max_jobs {ARQ_BEST_MAX_JOBS}, keep_result 0, WARNING logs",
                (*argv, *quiet),
                (("BENCH_MAX_JOBS", str(ARQ_BEST_MAX_JOBS)), ("BENCH_KEEP_RESULT", "0")),
                expected_jobs_s=3_000,
            )
        return Setup(
            "arq",
            "defaults: max_jobs 10, keep_result 1 h, INFO logs",
            argv,
            defaults=True,
            expected_jobs_s=1_000,
        )
    if system == "dramatiq":
        cmd = str(bindir / "dramatiq")
        if best:
            t = DRAMATIQ_BEST_THREADS
            return Setup(
                "dramatiq",
                f"best: 1 process, {t} threads",
                (cmd, "bench.peers.dramatiq_tasks", "-p", "1", "-t", str(t)),
                expected_jobs_s=3_000,
            )
        return Setup(
            "dramatiq",
            f"defaults: {cpus} processes x 8 threads",
            (cmd, "bench.peers.dramatiq_tasks"),
            worker_processes=cpus,
            defaults=True,
            expected_jobs_s=3_000,
        )
    raise ValueError(system)


def arq_keep_result(keep: bool) -> Setup:
    """arq at its best max_jobs with and without storing results (its default keeps them 1 h)."""
    from bench.constants import ARQ_BEST_MAX_JOBS

    bindir = envs.env_dir("arq") / "bin"
    argv = (
        str(bindir / "arq"),
        "bench.peers.arq_tasks.WorkerSettings",
        "--custom-log-dict",
        "bench.peers.arq_tasks.LOG_CONFIG",
    )
    keep_s = "3600" if keep else "0"
    return Setup(
        "arq",
        f"max_jobs {ARQ_BEST_MAX_JOBS}, keep_result {'1 h' if keep else '0'}, WARNING logs",
        argv,
        (("BENCH_MAX_JOBS", str(ARQ_BEST_MAX_JOBS)), ("BENCH_KEEP_RESULT", keep_s)),
        expected_jobs_s=3_000,
    )


# ----------------------------------------------------------------------------- filling


async def _fill_ours(url: str, n: int, job: str, payload: Any) -> float:
    from jobqueue import JobSpec, Queue, connect

    client = connect(url)
    try:
        q = Queue(client, QUEUE)
        t0 = time.perf_counter()
        for start in range(0, n, FILL_CHUNK):
            count = min(FILL_CHUNK, n - start)
            await q.enqueue_many([JobSpec(type=job, payload=payload)] * count)
        return time.perf_counter() - t0
    finally:
        await client.aclose()


def fill_ours(url: str, n: int, job: str = "incr", payload_bytes: int = 0) -> float:
    """Enqueue n jobs with the protocol's enqueue_many; return the seconds it took."""
    payload = "x" * payload_bytes if payload_bytes else None
    return asyncio.run(_fill_ours(url, n, job, payload))


def peer_env(url: str) -> dict[str, str]:
    return {
        "BENCH_REDIS_URL": url,
        "BENCH_COUNTER": COUNTER_KEY,
        "BENCH_QUEUE": QUEUE,
        "PYTHONPATH": str(REPO_DIR),
    }


def produce_peer(system: str, url: str, n: int, payload_bytes: int = 0) -> float:
    """Run the peer's own producer (one call per job) in its venv; return its seconds."""
    return produce_peer_timed(system, url, n, payload_bytes)[0]


def produce_peer_timed(
    system: str, url: str, n: int, payload_bytes: int = 0
) -> tuple[float, float]:
    """produce_peer, returning its seconds and the producer's CPU seconds over them."""
    module = {
        "rq": "bench.peers.rq_tasks",
        "celery": "bench.peers.celery_app",
        "arq": "bench.peers.arq_tasks",
        "dramatiq": "bench.peers.dramatiq_tasks",
    }[system]
    out = subprocess.run(
        [str(envs.python(system)), "-m", module, "produce", str(n), str(payload_bytes)],
        env={**os.environ, **peer_env(url)},
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=WORKER_TIMEOUT_S,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{system} producer failed: {out.stderr[-2000:]}")
    done = json.loads(out.stdout.strip().splitlines()[-1])
    return float(done["seconds"]), float(done["cpu_seconds"])


# ----------------------------------------------------------------------------- draining


def session_cpu(sid: int) -> float:
    """CPU seconds of session sid: its live processes plus the children they reaped."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:
                total += sum(int(f) for f in fields[11:15]) / ticks
        except (OSError, ValueError, IndexError):
            continue
    return total


def completion_counter(client: Any, setup: Setup) -> tuple[Callable[[], int], str]:
    """How a run counts completed jobs: our no-op jobs in the queue's own counters, every
    other job by the INCR it makes; and the Redis command that reads it."""
    if setup.system == "ours" and setup.job == "noop":
        from jobqueue.keys import QueueKeys

        counters = QueueKeys.for_queue(QUEUE).counters
        return (lambda: int(cast(bytes | None, client.hget(counters, "completed")) or 0)), "hget"
    return (lambda: int(cast(bytes | None, client.get(COUNTER_KEY)) or 0)), "get"


def _subscriber(setup: Setup, url: str, log_dir: Path) -> Child | None:
    """The autoscaler-like subscriber of a setup that asks for one (else None)."""
    if not setup.subscriber:
        return None
    return Child(
        "subscriber",
        (sys.executable, "-m", "bench.subscriber", url, QUEUE),
        env=peer_env(url),
        log_dir=log_dir,
    )


def run_setup(
    setup: Setup,
    url: str,
    n: int,
    log_dir: Path,
    *,
    payload_bytes: int = 0,
    prefilled: bool = False,
    max_seconds: float = WORKER_TIMEOUT_S,
) -> dict[str, Any]:
    """Fill the queue with n jobs (unless prefilled), run the worker(s), measure; one row.

    A configuration still running after max_seconds is stopped and measured over the jobs it
    finished (the row says `capped`): a fork-per-job worker would otherwise take many minutes.
    """
    client = redis.Redis.from_url(url)
    if not prefilled:
        client.flushall()
        if setup.system == "ours":
            fill_s = fill_ours(url, n, setup.job, payload_bytes)
        else:
            fill_s = produce_peer(setup.system, url, n, payload_bytes)
    else:
        fill_s = 0.0
    count, poll_cmd = completion_counter(client, setup)
    base = count()
    target = base + n
    before = RedisSnapshot.take(client)
    polls = 0
    env = {**peer_env(url), "REDIS_URL": url, **dict(setup.env)}
    children: list[Child] = []
    sub = _subscriber(setup, url, log_dir)
    t_start = time.monotonic()
    try:
        for i in range(setup.processes):
            env_i = {**env, "HEALTH_PORT": str(free_port()), "POD_NAME": f"bench-{i}"}
            children.append(Child(f"{setup.system}-{i}", setup.argv, env=env_i, log_dir=log_dir))
        t_first: float | None = None
        c_first = 0
        cpu = 0.0
        next_cpu = t_start
        deadline = t_start + max_seconds
        capped = False
        done = base
        while True:
            done = count()
            polls += 1
            now = time.monotonic()
            if t_first is None and done > base:
                t_first, c_first = now, done
            if done >= target:
                t_end = now
                break
            if now > deadline:
                if t_first is None or done - c_first < 100:
                    raise TimeoutError(
                        f"{setup.label}: {done - base}/{n} jobs after {max_seconds} s"
                    )
                t_end, capped, target = now, True, done
                break
            for ch in children:
                if not ch.alive() and ch.proc.returncode not in (0, None):
                    ch.check()
            if now >= next_cpu:  # sampled: a burst-mode peer may exit right after the last job
                cpu = max(cpu, sum(session_cpu(ch.pid) for ch in children))
                next_cpu = now + 0.25
            time.sleep(POLL_S)
        cpu = max(cpu, sum(session_cpu(ch.pid) for ch in children))
    finally:
        for ch in children:
            ch.stop(timeout=30)
        if sub is not None:
            sub.stop(timeout=5)
    after = RedisSnapshot.take(client)
    delta = before.delta(after, ignore={poll_cmd: polls})
    assert t_first is not None
    window = max(t_end - t_first, 1e-6)
    jobs_in_window = target - c_first
    n_done = target - base
    client.close()
    return {
        "system": setup.system,
        "setting": setup.setting,
        "label": setup.label,
        "job": setup.job,
        "counted_by": setup.counted_by,
        "processes": setup.processes,
        "jobs": n_done,
        "capped": capped,
        "payload_bytes": payload_bytes,
        "jobs_s": jobs_in_window / window,
        "seconds": window,
        "wall_s_incl_startup": t_end - t_start,
        "fill_s": fill_s,
        "redis_cmds_per_job": delta.total / n_done,
        "redis_scripts_per_job": delta.scripts / n_done,
        "redis_cpu_us_per_job": delta.cpu / n_done * 1e6,
        "worker_cpu_us_per_job": cpu / n_done * 1e6,
        "redis_top_cmds": delta.top(),
    }


def run_window(
    setup: Setup, url: str, log_dir: Path, *, window_s: float, warmup_s: float
) -> dict[str, Any]:
    """Fill enough jobs for the window, start the worker, and measure a steady window: it opens
    `warmup_s` after the first completion (start-up, imports and the first claim excluded) and
    lasts `window_s`. jobs/s, worker CPU and Redis CPU and commands all cover that window only.
    A window cut short because the queue ran dry says so (`short`)."""
    n = int(setup.expected_jobs_s * (window_s + warmup_s + 1) * 1.6) + 2_000
    client = redis.Redis.from_url(url)
    client.flushall()
    if setup.system == "ours":
        fill_s = fill_ours(url, n, setup.job)
    else:
        fill_s = produce_peer(setup.system, url, n)
    count, poll_cmd = completion_counter(client, setup)
    env = {**peer_env(url), "REDIS_URL": url, **dict(setup.env)}
    children: list[Child] = []
    sub = _subscriber(setup, url, log_dir)
    t_start = time.monotonic()
    try:
        for i in range(setup.processes):
            env_i = {**env, "HEALTH_PORT": str(free_port()), "POD_NAME": f"bench-{i}"}
            children.append(Child(f"{setup.system}-{i}", setup.argv, env=env_i, log_dir=log_dir))
        deadline = t_start + WORKER_TIMEOUT_S
        while count() == 0:
            for ch in children:
                ch.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{setup.label}: no job done after {WORKER_TIMEOUT_S} s")
            time.sleep(POLL_S)
        t_first = time.monotonic()
        time.sleep(warmup_s)
        c0, t0 = count(), time.monotonic()
        cpu0 = sum(session_cpu(ch.pid) for ch in children)
        sub_cpu0 = session_cpu(sub.pid) if sub else 0.0
        before = RedisSnapshot.take(client)
        polls = 0
        short = False
        while True:
            time.sleep(POLL_S)
            done = count()
            polls += 1
            now = time.monotonic()
            if now - t0 >= window_s:
                break
            if done >= n - 10:
                short = True
                break
            for ch in children:
                ch.check()
        c1, t1 = count(), time.monotonic()
        cpu1 = sum(session_cpu(ch.pid) for ch in children)
        sub_cpu1 = session_cpu(sub.pid) if sub else 0.0
        after = RedisSnapshot.take(client)
    finally:
        for ch in children:
            ch.stop(timeout=30)
        if sub is not None:
            sub.stop(timeout=5)
    delta = before.delta(after, ignore={poll_cmd: polls})
    jobs = max(c1 - c0, 1)
    window = t1 - t0
    client.close()
    return {
        "system": setup.system,
        "setting": setup.setting,
        "label": setup.label,
        "job": setup.job,
        "defaults": setup.defaults,
        "subscriber": setup.subscriber,
        "counted_by": setup.counted_by,
        "processes": setup.processes,
        "worker_processes": setup.worker_processes,
        "jobs": c1 - c0,
        "short": short,
        "jobs_s": jobs / window,
        "jobs_s_per_process": jobs / window / setup.worker_processes,
        "seconds": window,
        "startup_s": t_first - t_start,
        "fill_s": fill_s,
        "redis_cmds_per_job": delta.total / jobs,
        "redis_scripts_per_job": delta.scripts / jobs,
        "redis_cpu_us_per_job": delta.cpu / jobs * 1e6,
        "worker_cpu_us_per_job": (cpu1 - cpu0) / jobs * 1e6,
        "subscriber_cpu_us_per_job": (sub_cpu1 - sub_cpu0) / jobs * 1e6 if sub else None,
        "redis_top_cmds": delta.top(),
    }


def run_many(
    setups: Sequence[Setup],
    url: str,
    n: int,
    log_dir: Path,
    on_error: Callable[[Setup, BaseException], dict[str, Any]],
    **kw: Any,
) -> list[dict[str, Any]]:
    rows = []
    for s in setups:
        log.info("worker: %s, %d jobs", s.label, n)
        try:
            row = run_setup(s, url, n, log_dir, **kw)
            log.info(
                "  %s: %.0f jobs/s, %.1f redis cmds/job",
                s.label,
                row["jobs_s"],
                row["redis_cmds_per_job"],
            )
        except Exception as exc:
            log.exception("  %s failed", s.label)
            row = on_error(s, exc)
        rows.append(row)
    return rows


def error_row(s: Setup, exc: BaseException) -> dict[str, Any]:
    return {
        "system": s.system,
        "setting": s.setting,
        "label": s.label,
        "job": s.job,
        "counted_by": s.counted_by,
        "processes": s.processes,
        "error": f"{type(exc).__name__}: {str(exc)[:500]}",
    }
