"""A real redis-server process on a free loopback port, for tests, the demo and benchmarks."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.cluster import host_tools
from tests.cluster.procs import free_port as free_port  # re-exported: its users import it here


@dataclass
class RedisServer:
    """One redis-server started from the Debian package; fails loudly if it is missing."""

    port: int = field(default_factory=free_port)
    password: str | None = None
    extra_args: tuple[str, ...] = ()
    bind: str = "127.0.0.1"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="jq-redis-")))
    proc: subprocess.Popen[bytes] | None = None
    #: Run as a Sentinel with this configuration (`sentinel monitor ...` lines) instead.
    sentinel_config: str | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.bind}:{self.port}/0"

    def command(self) -> list[str]:
        binary = host_tools.require("redis-server")
        mode: list[str] = []
        if self.sentinel_config is not None:  # Sentinel rewrites its config file: one of its own
            conf = self.workdir / "sentinel.conf"
            if not conf.exists():
                conf.write_text(self.sentinel_config)
            mode = [str(conf), "--sentinel"]
        args = [
            binary,
            *mode,
            "--port",
            str(self.port),
            "--bind",
            self.bind,
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--maxmemory-policy",
            "noeviction",
            "--logfile",
            str(self.workdir / "redis.log"),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        return args + list(self.extra_args)

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {log}")
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING in {timeout} s")

    def ping(self) -> bool:
        """True if the server answers PING (raw RESP, so it works without a client library)."""
        try:
            with socket.create_connection((self.bind, self.port), timeout=0.2) as s:
                if self.password:
                    s.sendall(f"AUTH {self.password}\r\n".encode())
                    s.recv(64)
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the server (a crash), keeping its data dir for a restart."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class SentinelGroup:
    """A Sentinel deployment in miniature: a primary, its replica and one Sentinel (quorum 1)
    that promotes the replica about a second after the primary stops answering."""

    service: str = "mymaster"
    password: str | None = None
    down_after_ms: int = 1000
    primary: RedisServer = field(init=False)
    replica: RedisServer = field(init=False)
    sentinel: RedisServer = field(init=False)

    def start(self, timeout: float = 20.0) -> SentinelGroup:
        try:
            return self._start(timeout)
        except BaseException:
            self.cleanup()
            raise

    def _start(self, timeout: float) -> SentinelGroup:
        auth = ("--masterauth", self.password) if self.password else ()
        self.primary = RedisServer(password=self.password, extra_args=auth).start()
        self.replica = RedisServer(
            password=self.password,
            extra_args=(*auth, "--replicaof", self.primary.bind, str(self.primary.port)),
        ).start()
        svc = self.service
        lines = [
            f"sentinel monitor {svc} {self.primary.bind} {self.primary.port} 1",
            f"sentinel down-after-milliseconds {svc} {self.down_after_ms}",
            f"sentinel failover-timeout {svc} 10000",
        ]
        if self.password:
            lines.append(f"sentinel auth-pass {svc} {self.password}")
        self.sentinel = RedisServer(sentinel_config="\n".join(lines) + "\n").start()
        self._wait("the replica in sync and known to the Sentinel", self._ready, timeout)
        return self

    def url(self, db: int = 0) -> str:
        """The ``redis+sentinel://`` URL of the group (the password is the primary's)."""
        auth = f":{self.password}@" if self.password else ""
        return (
            f"redis+sentinel://{auth}{self.sentinel.bind}:{self.sentinel.port}/{self.service}/{db}"
        )

    def primary_port(self) -> int:
        """The port of the server the Sentinel names as the primary now."""
        with redis.Redis(host=self.sentinel.bind, port=self.sentinel.port) as s:
            _host, port = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        return int(port)

    def client(self, server: RedisServer) -> redis.Redis:
        return redis.Redis(host=server.bind, port=server.port, password=self.password)

    def sync_replica(self, timeout_ms: int = 5000) -> None:
        """Block until the replica has every write the primary took (WAIT 1)."""
        with self.client(self.primary) as r:
            if int(r.execute_command("WAIT", 1, timeout_ms)) < 1:
                raise RuntimeError(f"the replica did not catch up in {timeout_ms} ms")

    def crash_primary(self, timeout: float = 30.0) -> None:
        """SIGKILL the primary; return once the Sentinel has promoted the replica."""
        self.primary.kill()

        def promoted() -> bool:
            with self.client(self.replica) as r:
                role = r.execute_command("ROLE")[0]
            return self.primary_port() == self.replica.port and role in (b"master", "master")

        self._wait("the Sentinel to promote the replica", promoted, timeout)

    def _ready(self) -> bool:
        with self.client(self.replica) as r:
            linked = r.info("replication").get("master_link_status") == "up"
        with redis.Redis(host=self.sentinel.bind, port=self.sentinel.port) as s:
            known = bool(s.execute_command("SENTINEL", "REPLICAS", self.service))
        return linked and known

    @staticmethod
    def _wait(what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.05)

    def cleanup(self) -> None:
        for name in ("sentinel", "replica", "primary"):
            server: RedisServer | None = getattr(self, name, None)  # None: start failed first
            if server is not None:
                server.cleanup()
