"""Helpers shared by the benchmarks: a private redis-server, INFO deltas, child processes."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from bench.constants import REPO_DIR, WORK_DIR
from tests.cluster.redis_server import RedisServer, free_port

log = logging.getLogger(__name__)

__all__ = ["Child", "Ctx", "RedisServer", "RedisSnapshot", "free_port", "private_redis"]


@dataclass
class Ctx:
    """What every benchmark gets: the run mode and a scratch directory."""

    quick: bool
    work: Path = WORK_DIR

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full


@contextlib.contextmanager
def private_redis(*extra_args: str) -> Iterator[RedisServer]:
    """A fresh redis-server on a free loopback port, removed afterwards."""
    server = RedisServer(extra_args=extra_args).start()
    try:
        yield server
    finally:
        server.cleanup()


def info(client: redis.Redis, section: str) -> dict[str, Any]:
    """INFO <section> of a sync client, typed (redis-py types replies as maybe-awaitable)."""
    return cast(dict[str, Any], client.info(section))


def redis_pid(client: redis.Redis) -> int:
    return int(info(client, "server")["process_id"])


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class RedisSnapshot:
    """INFO commandstats + CPU of a redis-server at one moment, to subtract from a later one."""

    calls: dict[str, int]
    usec: dict[str, int]
    cpu: float  # used_cpu_user + used_cpu_sys, seconds

    @classmethod
    def take(cls, client: redis.Redis) -> RedisSnapshot:
        stats = info(client, "commandstats")
        cpu = info(client, "cpu")
        calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
        usec = {k.removeprefix("cmdstat_"): int(v["usec"]) for k, v in stats.items()}
        return cls(calls, usec, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]))

    def delta(self, later: RedisSnapshot, ignore: Mapping[str, int] | None = None) -> RedisDelta:
        """Counts between self and later, less `ignore` (the harness's own polling calls)."""
        ignore = ignore or {}
        calls = {
            k: later.calls.get(k, 0) - self.calls.get(k, 0) - ignore.get(k, 0) for k in later.calls
        }
        calls = {k: v for k, v in calls.items() if v > 0 and k != "info"}
        return RedisDelta(calls, later.cpu - self.cpu)


@dataclass
class RedisDelta:
    calls: dict[str, int]
    cpu: float
    scripts: int = field(init=False)

    def __post_init__(self) -> None:
        self.scripts = sum(
            v for k, v in self.calls.items() if k in ("eval", "evalsha", "fcall", "eval_ro")
        )

    @property
    def total(self) -> int:
        """Every command Redis ran, including the ones called inside Lua scripts."""
        return sum(self.calls.values())

    def top(self, n: int = 6) -> str:
        items = sorted(self.calls.items(), key=lambda kv: -kv[1])[:n]
        return " ".join(f"{k}={v}" for k, v in items)


class Child:
    """One child process in its own session, logged to a file, stopped by its own pid only."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_dir: Path,
        cwd: Path = REPO_DIR,
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        full_env = {**os.environ, **(env or {})}
        full_env.setdefault("PYTHONPATH", str(REPO_DIR))
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=full_env,
                cwd=cwd,
            )
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check(self) -> None:
        """Raise with the log tail if the process has exited."""
        code = self.proc.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with {code}:\n{self.tail()}")

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int:
        """Signal this process (and its session, so a forking peer's children go too)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(predicate: Any, timeout: float, interval: float = 0.02, what: str = "") -> float:
    """Poll predicate() until true; return the monotonic time it became true, or raise."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)
