"""Shared machinery of the reliability suite: real API/worker/operator processes, a task module
that records every execution, queue snapshots and the figures the runner turns into
tests/RELIABILITY.md. No tests here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import textwrap
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis.asyncio as aioredis

from jobqueue import Job, Queue
from tests.cluster.redis_server import RedisServer, free_port
from tests.support.services import (
    REPO,
    inherited_env,
    spawn_module,
    stop_process,
    wait_healthy,
)

# The repo's own sources first, whatever the venv's editable install points at.
SOURCE_PATH = [str(REPO / d) for d in (".", "api-image", "worker-image", "operator")]
T = TypeVar("T")

# ---------------------------------------------------------------------------------------------
# The task module the suite's workers load (TASKS_MODULE="chaos_tasks").

TRACK_HASH = "execs"  # jqtest:{<queue>}:execs   job id -> times its task body ran
BY_WORKER_HASH = "by-worker"  # jqtest:{<queue>}:by-worker  POD_NAME -> executions

CHAOS_TASKS = textwrap.dedent(
    '''
    """Tasks of the reliability suite: each execution is recorded in Redis before it returns."""
    import asyncio
    import os
    import signal

    import jobqueue
    from jobqueue_worker import JobContext, task

    _CLIENT = None
    PREFIX = "jqtest:{" + os.environ.get("QUEUE_NAME", "default") + "}:"


    def _client():
        global _CLIENT
        if _CLIENT is None:
            _CLIENT = jobqueue.connect(os.environ["REDIS_URL"])
        return _CLIENT


    @task("track")
    async def track(payload, ctx: JobContext):
        """Sleeps payload["ms"], then records this execution (one pipeline round trip)."""
        ms = payload.get("ms", 0) if isinstance(payload, dict) else 0
        if ms:
            await asyncio.sleep(ms / 1000)
        pipe = _client().pipeline(transaction=False)
        pipe.hincrby(PREFIX + "execs", ctx.job_id, 1)
        pipe.hincrby(PREFIX + "by-worker", os.environ.get("POD_NAME", "?"), 1)
        await pipe.execute()
        return None


    @task("poison")
    async def poison(payload, ctx: JobContext):
        """Kills the worker process that runs it, every time (a segfaulting native library)."""
        await _client().hincrby(PREFIX + "execs", ctx.job_id, 1)
        os.kill(os.getpid(), signal.SIGKILL)


    @task("boom")
    async def boom(payload, ctx: JobContext):
        """Fails every attempt with a fixed message."""
        raise RuntimeError("boom: deliberate failure")


    @task("write-file")
    async def write_file(payload, ctx: JobContext):
        """Writes payload["text"] to DATA_DIR/payload["name"] (a worker volume)."""
        with open(os.path.join(os.environ["DATA_DIR"], payload["name"]), "w") as f:
            f.write(payload["text"])
        return {"pod": os.environ.get("POD_NAME")}


    @task("read-file")
    async def read_file(payload, ctx: JobContext):
        """Reads DATA_DIR/payload["name"]; text None when there is no such file."""
        try:
            with open(os.path.join(os.environ["DATA_DIR"], payload["name"])) as f:
                text = f.read()
        except FileNotFoundError:
            text = None
        return {"pod": os.environ.get("POD_NAME"), "text": text}
    '''
)


def write_tasks(directory: Path) -> Path:
    """Write chaos_tasks.py into ``directory`` (put it on PYTHONPATH); returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "chaos_tasks.py").write_text(CHAOS_TASKS)
    return directory


def track_key(queue_name: str, which: str) -> str:
    return f"jqtest:{{{queue_name}}}:{which}"


async def executions(redis: aioredis.Redis, queue_name: str) -> dict[str, int]:
    raw = await redis.hgetall(track_key(queue_name, TRACK_HASH))
    return {k.decode(): int(v) for k, v in raw.items()}


async def by_worker(redis: aioredis.Redis, queue_name: str) -> dict[str, int]:
    raw = await redis.hgetall(track_key(queue_name, BY_WORKER_HASH))
    return {k.decode(): int(v) for k, v in raw.items()}


async def forget_queue(redis: aioredis.Redis, queue: Queue) -> None:
    """Delete every key of the queue and of its tracking hashes."""
    await queue.purge()
    await redis.delete(track_key(queue.name, TRACK_HASH), track_key(queue.name, BY_WORKER_HASH))


# ---------------------------------------------------------------------------------------------
# Processes


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {**inherited_env(), **extra}
    first = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([*first, *SOURCE_PATH])
    return env


@dataclass
class Service:
    """One `python -m <module>` child with its output in a log file; kill/terminate by pid."""

    module: str
    env: dict[str, str]
    log_path: Path
    name: str = ""
    proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> Service:
        self.proc = spawn_module(self.module, _clean_env(self.env), self.log_path)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        """SIGKILL (a crash) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait, SIGKILL after ``timeout``; the exit code."""
        return stop_process(self.proc, timeout)

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, chars: int = 4000) -> str:
        return self.logs()[-chars:]


def start_worker(
    redis_url: str,
    queue_name: str,
    workdir: Path,
    *,
    name: str | None = None,
    **env: Any,
) -> Service:
    """A real `python -m jobqueue_worker` loading chaos_tasks (and examples.tasks)."""
    name = name or f"w-{uuid.uuid4().hex[:6]}"
    write_tasks(workdir)
    full = {
        "REDIS_URL": redis_url,
        "QUEUE_NAME": queue_name,
        "TASKS_MODULE": "chaos_tasks,examples.tasks",
        "HEALTH_PORT": str(free_port()),
        "HEALTH_HOST": "127.0.0.1",
        "POD_NAME": name,
        "PYTHONPATH": str(workdir),
        "POLL_INTERVAL_SECONDS": "0.2",
        "HEARTBEAT_INTERVAL_SECONDS": "1",
        "JOB_LOG_LEVEL": "DEBUG",
        "WORKER_EVENT_LOOP": "asyncio",
        **{k.upper(): str(v) for k, v in env.items()},
    }
    return Service("jobqueue_worker", full, workdir / f"{name}.log", name=name).spawn()


@dataclass
class Api(Service):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_api(redis_url: str, queue_name: str, workdir: Path, **env: Any) -> Api:
    """A real `python -m jobqueue_api` on a free loopback port; waits for /healthz."""
    port = free_port()
    full = {
        "REDIS_URL": redis_url,
        "QUEUE_NAME": queue_name,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **{k.upper(): str(v) for k, v in env.items()},
    }
    workdir.mkdir(parents=True, exist_ok=True)
    api = Api("jobqueue_api", full, workdir / f"api-{port}.log", name="api", port=port)
    api.spawn()
    assert api.proc is not None
    failure = wait_healthy(api.proc, f"{api.url}/healthz", 30, probe_timeout=1)
    if failure is None:
        return api
    api.kill()
    raise RuntimeError(f"the API {failure}:\n{api.tail()}")


# ---------------------------------------------------------------------------------------------
# A redis-server whose fsyncs are traced (strace, seccomp-filtered: only fsync/fdatasync stop)

_FSYNC_LINE = re.compile(r"^\d+\s+(\d+\.\d+) f(?:data)?sync\(\d+\)\s+= 0 <(\d+\.\d+)>$")


@dataclass
class FsyncTracedRedis(RedisServer):
    """redis-server under ``strace -e trace=fsync,fdatasync``: when each fsync started and
    ended, so the writes a host crash would lose (acknowledged, not yet on disk) can be
    measured. kill()/stop() signal redis-server itself; strace then exits."""

    traces: list[Path] = field(default_factory=list)

    def command(self) -> list[str]:
        trace = self.workdir / f"fsync-{len(self.traces)}.trace"
        self.traces.append(trace)
        strace = ["strace", "-f", "--seccomp-bpf", "-ttt", "-T"]
        return [*strace, "-e", "trace=fsync,fdatasync", "-o", str(trace), *super().command()]

    def _redis_pid(self) -> int | None:
        if self.proc is None:
            return None
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return None
        pids = [int(p) for p in children.split()]
        return pids[0] if pids else None

    def _signal(self, sig: signal.Signals) -> None:
        pid = self._redis_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGTERM)
        self.proc = None

    def fsyncs(self) -> list[tuple[float, float]]:
        """(start, end) epoch seconds of every completed fsync/fdatasync, sorted."""
        return parse_fsyncs(self.traces)


def parse_fsyncs(traces: Iterable[Path]) -> list[tuple[float, float]]:
    """(start, end) epoch seconds of every completed fsync/fdatasync in `strace -f -ttt -T`
    output files, sorted."""
    out = []
    for trace in traces:
        if not trace.exists():
            continue
        for line in trace.read_text().splitlines():
            m = _FSYNC_LINE.match(line.strip())
            if m:
                start = float(m.group(1))
                out.append((start, start + float(m.group(2))))
    return sorted(out)


# ---------------------------------------------------------------------------------------------
# TLS: a throwaway CA and a redis-server that only speaks TLS


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


def make_pki(directory: Path, name: str = "jq-test") -> Pki:
    """A self-signed CA and a server certificate for 127.0.0.1/localhost signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        f"/CN={name}-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    return Pki(ca, cert, key)


@dataclass
class TlsRedis(RedisServer):
    """redis-server with TLS only (no plaintext port); clients need not present a certificate."""

    pki: Pki | None = None

    def command(self) -> list[str]:
        assert self.pki is not None
        args = super().command()
        args[args.index("--port") + 1] = "0"
        return [
            *args,
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(self.pki.cert),
            "--tls-key-file",
            str(self.pki.key),
            "--tls-ca-cert-file",
            str(self.pki.ca),
            "--tls-auth-clients",
            "no",
        ]

    def ping(self) -> bool:
        assert self.pki is not None
        ctx = ssl.create_default_context(cafile=str(self.pki.ca))
        try:
            with (
                socket.create_connection((self.bind, self.port), timeout=0.5) as raw,
                ctx.wrap_socket(raw, server_hostname=self.bind) as s,
            ):
                if self.password:
                    s.sendall(f"AUTH {self.password}\r\n".encode())
                    s.recv(64)
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except (OSError, ssl.SSLError):
            return False

    def tls_url(self, *, ca_in_url: bool = False, ca: Path | None = None) -> str:
        """rediss:// URL trusting ``ca`` (default: its own CA), as a file path or inline PEM."""
        assert self.pki is not None
        ca = ca or self.pki.ca
        auth = f":{self.password}@" if self.password else ""
        if ca_in_url:
            query = "ssl_ca_data=" + urllib.parse.quote(ca.read_text(), safe="")
        else:
            query = "ssl_ca_certs=" + urllib.parse.quote(str(ca), safe="/")
        return f"rediss://{auth}127.0.0.1:{self.port}/0?{query}"


# ---------------------------------------------------------------------------------------------
# Waiting


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = 60.0,
    interval: float = 0.2,
    on_fail: Callable[[], str] = lambda: "",
) -> T:
    """Poll ``probe`` until it returns something truthy; AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # a probe may race with what it observes
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what} (last error: {last!r})"
                f"\n{on_fail()}"
            )
        time.sleep(interval)


async def await_until(
    what: str,
    probe: Callable[[], Any],
    timeout: float = 60.0,
    interval: float = 0.2,
    on_fail: Callable[[], str] = lambda: "",
) -> Any:
    """Async ``wait_until``: ``probe`` is a coroutine function."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = await probe()
            if value:
                return value
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what} (last error: {last!r})"
                f"\n{on_fail()}"
            )
        await asyncio.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Queue state


async def snapshot_keys(redis: aioredis.Redis, queue: Queue) -> dict[str, Any]:
    """Every key of the queue with its full content (type-aware), for before/after equality."""
    out: dict[str, Any] = {}
    for key in queue.keys.all_keys:
        kind = (await redis.type(key)).decode()
        if kind == "none":
            continue
        if kind == "hash":
            out[key] = {k: v for k, v in (await redis.hgetall(key)).items()}
        elif kind == "list":
            out[key] = await redis.lrange(key, 0, -1)
        elif kind == "zset":
            out[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "string":
            out[key] = await redis.get(key)
        else:
            out[key] = (kind, await redis.dump(key))
    return out


async def job_records(queue: Queue, ids: Sequence[str]) -> dict[str, Job | None]:
    jobs = await queue.get_many(list(ids))
    return dict(zip(ids, jobs, strict=True))


async def count_status(queue: Queue, ids: Sequence[str]) -> dict[str, int]:
    """How many of ``ids`` are in each status ("missing" for unknown ids)."""
    out: dict[str, int] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        for job in await queue.get_many(chunk):
            key = "missing" if job is None else job.status.value
            out[key] = out.get(key, 0) + 1
    return out


async def leased_by(redis: aioredis.Redis, queue: Queue, worker: str) -> list[str]:
    """Ids whose lease is held by ``worker`` right now (lease ZSET + run column)."""
    ids = [i.decode() for i in await redis.zrange(queue.keys.lease, 0, -1)]
    if not ids:
        return []
    runs = await redis.hmget(queue.keys.job_run, ids)
    held = []
    for job_id, run in zip(ids, runs, strict=True):
        if run is not None and run.decode().split("|", 3)[3] == worker:
            held.append(job_id)
    return held


# ---------------------------------------------------------------------------------------------
# Load through an API while Redis fails (the process and the pod Redis tests)

CLIENTS = 8
CLIENT_TIMEOUT = 10.0


@dataclass
class Sent:
    started: float
    done: float
    status: int  # 0: transport error or client timeout
    job_id: str | None = None
    retry_after: str | None = None
    error: str | None = None


@dataclass
class Load:
    """CLIENTS concurrent producers posting jobs until stopped; every outcome kept."""

    url: str
    job: dict[str, Any]
    results: list[Sent] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=CLIENT_TIMEOUT) as http:
            while not self.stop.is_set():
                t0 = time.time()
                try:
                    r = await http.post("/jobs", json=self.job)
                except httpx.HTTPError as exc:
                    self.results.append(Sent(t0, time.time(), 0, error=repr(exc)))
                    await asyncio.sleep(0.05)
                    continue
                job_id = r.json().get("job_id") if r.status_code == 202 else None
                self.results.append(
                    Sent(t0, time.time(), r.status_code, job_id, r.headers.get("retry-after"))
                )
                if r.status_code != 202:
                    await asyncio.sleep(0.05)  # a client honouring 503 would wait Retry-After

    def accepted(self) -> list[Sent]:
        return [s for s in self.results if s.status == 202]


def host_crash_exposure(
    fsyncs: list[tuple[float, float]], kills: list[tuple[float, float]], acks: list[Sent]
) -> tuple[float, int]:
    """The worst window (ms) and the acknowledged jobs written after the last completed fsync
    before each kill: what a power cut at that moment (not a process crash) would lose."""
    worst, at_risk = 0.0, 0
    for killed, _ in kills:
        done = [start for start, end in fsyncs if end <= killed]
        if not done:
            continue
        last = done[-1]
        worst = max(worst, (killed - last) * 1000)
        at_risk += sum(1 for s in acks if last < s.done <= killed)
    return worst, at_risk


# ---------------------------------------------------------------------------------------------
# Figures: every test records its numbers; `python -m tests.reliability` renders them.

FIGURES_ENV = "JQ_RELIABILITY_FIGURES"


def figures_path() -> Path:
    path = os.environ.get(FIGURES_ENV)
    if path:
        return Path(path)
    return Path(tempfile.gettempdir()) / f"jq-reliability-figures-{os.getpid()}.jsonl"


def record_figures(test: str, section: str, values: dict[str, Any]) -> None:
    """Append one JSON line {test, section, values, at} to the figures file."""
    line = json.dumps(
        {"test": test, "section": section, "values": values, "at": time.time()}, default=str
    )
    with figures_path().open("a") as f:
        f.write(line + "\n")


@dataclass
class Figures:
    """What a test hands to the `figures` fixture; written when the test ends (pass or fail)."""

    test: str
    section: str
    values: dict[str, Any] = field(default_factory=dict)

    def set(self, **values: Any) -> None:
        self.values.update(values)

    def add(self, **values: int) -> None:
        for k, v in values.items():
            self.values[k] = int(self.values.get(k, 0)) + v


# ---------------------------------------------------------------------------------------------
# Small helpers


def http_get_text(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback only
        return str(response.read().decode())


def stop_all(services: Iterable[Service]) -> None:
    for s in services:
        with contextlib.suppress(Exception):
            s.kill()


def sizes(fast: Any, full: Any) -> list[Any]:
    """Parameters for a test with a fast (make test) and a full (make chaos) variant."""
    return [
        pytest.param(fast, id="fast", marks=pytest.mark.chaos_fast),
        pytest.param(full, id="full", marks=pytest.mark.chaos_full),
    ]
