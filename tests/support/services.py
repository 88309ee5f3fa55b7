"""The project's services as child processes (`python -m jobqueue_api` and friends) for the
integration and reliability tests: a clean environment, output in a log file, a health wait
and a bounded stop. No tests here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.cluster.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
HEALTH_POLL = 0.05  # seconds between two /healthz probes

# Environment the images read: never inherited from the developer's shell.
SERVICE_ENV = (
    "REDIS_URL",
    "TASK_QUEUE_URL",
    "QUEUE_NAME",
    "PORT",
    "HOST",
    "API_TOKEN",
    "MAX_PAYLOAD_BYTES",
    "MAX_BATCH_BYTES",
    "MAX_BATCH",
    "MAX_QUEUE_DEPTH",
    "LOG_LEVEL",
    "ACCESS_LOG",
    "COALESCE_ENQUEUES",
    "WORKER_CONCURRENCY",
    "TASKS_MODULE",
    "JOB_TIMEOUT_SECONDS",
    "DRAIN_TIMEOUT_SECONDS",
    "HEALTH_PORT",
    "POD_NAME",
    "LEASE_SECONDS",
)


def inherited_env() -> dict[str, str]:
    """This process's environment without any variable a service reads."""
    return {k: v for k, v in os.environ.items() if k not in SERVICE_ENV}


def spawn_module(module: str, env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m <module>` from the repo root with exactly `env`, stdin closed, stdout and
    stderr appended to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=REPO,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float) -> int | None:
    """SIGTERM and wait, SIGKILL after `timeout`; the exit code (None: never started)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_healthy(
    proc: subprocess.Popen[bytes], url: str, timeout: float, *, probe_timeout: float
) -> str | None:
    """Poll GET `url` until it answers 200: None then, else why not (the process exited, or
    `timeout` seconds passed). The process is left as it is."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            return f"exited with {proc.returncode}"
        try:
            if httpx.get(url, timeout=probe_timeout).status_code == 200:
                return None
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            return f"did not answer {httpx.URL(url).path} in {timeout:g} s"
        time.sleep(HEALTH_POLL)


WORKING_TREE_PATH = os.pathsep.join([str(REPO / "api-image"), str(REPO)])


@dataclass
class ApiProcess:
    """One API server process on a free loopback port; its stderr (JSON logs) kept in a file."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(
        default_factory=lambda: Path(tempfile.mkstemp(prefix="jq-api-", suffix=".log")[1])
    )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> subprocess.Popen[bytes]:
        env = {**inherited_env(), "HOST": "127.0.0.1", "PORT": str(self.port), **self.env}
        env["PYTHONPATH"] = WORKING_TREE_PATH  # this checkout's code, however the venv points
        self.proc = spawn_module("jobqueue_api", env, self.log_path)
        return self.proc

    def start(self, timeout: float = 20.0) -> ApiProcess:
        failure = wait_healthy(self.spawn(), f"{self.url}/healthz", timeout, probe_timeout=0.5)
        if failure is None:
            return self
        logs = self.logs()
        self.cleanup()
        raise RuntimeError(f"the API {failure}:\n{logs}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; the exit code (SIGKILL after `timeout`)."""
        return stop_process(self.proc, timeout)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.logs().splitlines() if line.strip()]

    def cleanup(self) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)
