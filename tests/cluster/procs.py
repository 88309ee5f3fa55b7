"""Long-running child processes with pid files, so a later `down` in another process can stop them.

Each process runs in its own session (a terminal's Ctrl-C or hang-up does not reach it), logs
stdout+stderr to one file, and is recorded in `<run_dir>/<name>.pid` as JSON with its pid, its
executable and a start sequence. Stopping checks /proc that the pid still runs that executable,
so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.cluster import host_tools

STOP_TIMEOUT = 15.0
LOG_TAIL_CHARS = 4000


def free_port(host: str = "0.0.0.0") -> int:
    """A TCP port free right now on every address (the default), so that a server binding
    0.0.0.0 gets it too: a port free on 127.0.0.1 may be held on another address (the node's
    kube-apiserver listens on 10.200.0.1), which made an operator's health server fail to bind.
    The one free_port of the tests, the demo and the benchmarks."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def log_tail(log: Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        with log.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - chars))
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log)"


def _proc_identity(pid: int) -> tuple[str, str, str] | None:
    """(state, start time in clock ticks, resolved executable) of pid, None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], fields[19], exe.removesuffix(" (deleted)")


def pid_runs(pid: int, exe: str, start_time: str | None = None) -> bool:
    """True if pid is a live (not zombie) process of executable exe (started at start_time).

    The executable comes from /proc/<pid>/exe, not argv: some programs (redis-server) rewrite
    their command line.
    """
    ident = _proc_identity(pid)
    if ident is None:
        return False
    state, started, real_exe = ident
    if state in ("Z", "X") or real_exe != os.path.realpath(exe):
        return False
    return start_time is None or started == start_time


@dataclass(frozen=True, slots=True)
class PidRecord:
    name: str
    pid: int
    exe: str
    start_time: str | None  # /proc/<pid>/stat field 22; None if unknown
    seq: int
    log: Path

    @property
    def running(self) -> bool:
        return pid_runs(self.pid, self.exe, self.start_time)


def read_records(run_dir: Path) -> list[PidRecord]:
    """Every pid file in run_dir, newest start first (the order to stop them in)."""
    records = []
    for pidfile in sorted(run_dir.glob("*.pid")):
        try:
            data = json.loads(pidfile.read_text())
            records.append(
                PidRecord(
                    name=pidfile.stem,
                    pid=int(data["pid"]),
                    exe=data["exe"],
                    start_time=data.get("start_time"),
                    seq=int(data["seq"]),
                    log=Path(data["log"]),
                )
            )
        except (ValueError, KeyError, OSError):
            pidfile.unlink(missing_ok=True)  # unreadable: nothing we could stop safely
    return sorted(records, key=lambda r: r.seq, reverse=True)


def terminate(record: PidRecord, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, wait up to timeout, then SIGKILL; returns when the process is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not record.running:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, sig)
        deadline = time.monotonic() + timeout
        while record.running and time.monotonic() < deadline:
            time.sleep(0.05)
    if record.running:
        raise RuntimeError(f"{record.name} (pid {record.pid}) survived SIGKILL for {timeout} s")


def _reap(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to the child when the process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ProcessGroup:
    """The processes of one state dir: start them, check them, stop them (newest first).

    die_with_parent: children get SIGTERM if this Python process dies without stopping them
    (a killed pytest leaves no control plane behind). Off for `up`, whose processes outlive it.
    """

    def __init__(self, run_dir: Path, log_dir: Path, *, die_with_parent: bool = False) -> None:
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.die_with_parent = die_with_parent
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> PidRecord:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        exe = os.path.abspath(argv[0]) if "/" in argv[0] else host_tools.require(argv[0])
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [exe, *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )
        self._children[name] = proc
        ident = _proc_identity(proc.pid)
        record = PidRecord(name, proc.pid, exe, ident[1] if ident else None, time.time_ns(), log)
        pidfile = self.run_dir / f"{name}.pid"
        tmp = pidfile.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "pid": record.pid,
                    "exe": record.exe,
                    "start_time": record.start_time,
                    "seq": record.seq,
                    "log": str(log),
                }
            )
        )
        tmp.replace(pidfile)
        return record

    def record(self, name: str) -> PidRecord | None:
        return next((r for r in read_records(self.run_dir) if r.name == name), None)

    def records(self) -> list[PidRecord]:
        return read_records(self.run_dir)

    def exited(self, name: str) -> int | None:
        """The exit code if the process has ended, else None (works from any process)."""
        proc = self._children.get(name)
        if proc is not None:
            return proc.poll()
        rec = self.record(name)
        return None if rec is not None and rec.running else -1

    def stop(self, name: str, timeout: float = STOP_TIMEOUT) -> None:
        rec = self.record(name)
        if rec is not None:
            terminate(rec, timeout)
            (self.run_dir / f"{name}.pid").unlink(missing_ok=True)
        _reap(self._children.pop(name, None))

    def stop_all(self, timeout: float = STOP_TIMEOUT) -> list[str]:
        """Stop every recorded process, newest first; return the names that were running."""
        stopped = []
        for rec in self.records():
            if rec.running:
                stopped.append(rec.name)
            self.stop(rec.name, timeout)
        for name in list(self._children):
            _reap(self._children.pop(name))
        return stopped
