"""Helpers for the worker integration tests (no tests here): real `python -m jobqueue_worker`
processes against the session's real redis-server, and a task module written for the tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.cluster.redis_server import free_port
from tests.support.waiting import eventually as eventually  # re-exported: the worker tests use it

REPO = Path(__file__).resolve().parents[2]

# Tasks only the tests need; TASKS_MODULE="examples.tasks,itest_tasks" loads both modules.
TEST_TASKS = textwrap.dedent(
    '''
    """Tasks for the worker integration tests."""
    import asyncio
    import os
    import time

    from jobqueue_worker import JobContext, task

    RUNNING = 0
    PEAK = 0


    @task("track")
    async def track(payload, ctx: JobContext):
        """Records how many jobs ran at once in this process."""
        global RUNNING, PEAK
        RUNNING += 1
        PEAK = max(PEAK, RUNNING)
        try:
            await asyncio.sleep(payload["seconds"])
        finally:
            RUNNING -= 1
        return {"peak": PEAK}


    @task("stall_first")
    async def stall_first(payload, ctx: JobContext):
        """Hangs on its first attempt; later attempts return who ran them."""
        if ctx.attempt == 1:
            await asyncio.sleep(600)
        return {"attempt": ctx.attempt, "worker": os.environ["POD_NAME"]}


    @task("block_loop")
    async def block_loop(payload):
        """A badly written async task: blocks the event loop."""
        time.sleep(payload["seconds"])
        return None


    @task("until_cancelled")
    async def until_cancelled(payload, ctx: JobContext):
        """Runs until cancelled; writes `ctx.cancelled` as it saw it to payload["marker"]."""
        try:
            await asyncio.sleep(600)
        except asyncio.CancelledError:
            with open(payload["marker"], "w") as f:
                f.write(f"cancelled={ctx.cancelled}")
            raise


    @task("unjsonable")
    async def unjsonable(payload):
        return {1, 2, 3}
    '''
)


def write_test_tasks(directory: Path) -> Path:
    path = directory / "itest_tasks.py"
    path.write_text(TEST_TASKS)
    return directory


@dataclass
class WorkerProcess:
    """One `python -m jobqueue_worker` with its stderr (JSON logs) in a file."""

    proc: subprocess.Popen[bytes]
    health_port: int
    log_path: Path
    name: str
    _client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=1.0))

    @classmethod
    def start(
        cls,
        redis_url: str,
        queue_name: str,
        tmp_path: Path,
        *,
        tasks_module: str = "examples.tasks,itest_tasks",
        **env: Any,
    ) -> WorkerProcess:
        name = env.pop("POD_NAME", f"worker-{uuid.uuid4().hex[:6]}")
        port = free_port()
        write_test_tasks(tmp_path)
        full_env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "QUEUE_NAME": queue_name,
            "TASKS_MODULE": tasks_module,
            "HEALTH_PORT": str(port),
            "HEALTH_HOST": "127.0.0.1",
            "POD_NAME": name,
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
            "POLL_INTERVAL_SECONDS": "0.2",
            "HEARTBEAT_INTERVAL_SECONDS": "0.5",
            **{k.upper(): str(v) for k, v in env.items()},
        }
        log_path = tmp_path / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jobqueue_worker"],
                cwd=REPO,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return cls(proc, port, log_path, name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"raw": line})
        return out

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def get(self, path: str, timeout: float = 1.0) -> httpx.Response:
        return await self._client.get(self.url + path, timeout=timeout)

    async def wait_healthy(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                if (await self.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"worker not healthy in {timeout} s:\n{self.log_text()}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"worker still running after {timeout} s:\n{self.log_text()}")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    async def stop(self) -> None:
        """Clean up: SIGTERM, then SIGKILL if it does not go."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                await self.wait_exit(10)
            except AssertionError:
                self.proc.kill()
                self.proc.wait()
        await self._client.aclose()


async def start_worker(
    workers: list[WorkerProcess], redis_url: str, queue_name: str, tmp_path: Path, **env: Any
) -> WorkerProcess:
    """Start a worker (env as in `WorkerProcess.start`), add it to `workers`, wait until healthy."""
    w = WorkerProcess.start(redis_url, queue_name, tmp_path, **env)
    workers.append(w)
    await w.wait_healthy()
    return w


def run_worker_once(tmp_path: Path, env: dict[str, str], timeout: float = 20) -> tuple[int, str]:
    """Run `python -m jobqueue_worker` with exactly `env` added; returns (exit code, output)."""
    write_test_tasks(tmp_path)
    base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TASK_QUEUE_URL")}
    base["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO)])
    done = subprocess.run(
        [sys.executable, "-m", "jobqueue_worker", *env.pop("ARGS", "").split()],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")
