"""Small process helpers shared by the node and image scripts: run, log to a file, time steps."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.cluster import host_tools

log = logging.getLogger("jq.cluster")


class CommandError(RuntimeError):
    """A command exited non-zero; the message carries the command and the tail of its output."""


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    logfile: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float | None = None,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `cmd`; output goes to `logfile` (appended) or is captured. Fails loudly with the tail.

    A program named without a path is a host program of hack/host-tools.txt: a missing one
    raises HostToolMissing naming its package.
    """
    args = [os.fspath(c) for c in cmd]
    if "/" not in args[0]:
        args[0] = host_tools.require(args[0])
    full_env = {**os.environ, **env} if env is not None else None
    if logfile is not None:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with logfile.open("ab") as fh:
            fh.write(f"\n$ {' '.join(args)}\n".encode())
            fh.flush()
            proc = subprocess.run(
                args,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd,
                timeout=timeout,
                input=input_bytes,
                check=False,
            )
        out = b""
    else:
        proc = subprocess.run(
            args,
            capture_output=True,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
            input=input_bytes,
            check=False,
        )
        out = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        if logfile is not None:
            out = logfile.read_bytes()[-4000:]
        tail = out.decode(errors="replace")[-4000:]
        raise CommandError(f"command failed ({proc.returncode}): {' '.join(args)}\n{tail}")
    return proc


def output(cmd: Sequence[str | os.PathLike[str]], *, cwd: Path | None = None) -> str:
    """Run `cmd` (check=True) and return its stdout as text."""
    return run(cmd, cwd=cwd).stdout.decode()


@contextmanager
def step(what: str) -> Iterator[None]:
    """Log the start and the duration of one step."""
    log.info("%s ...", what)
    t0 = time.monotonic()
    yield
    log.info("%s: done in %.1f s", what, time.monotonic() - t0)


def setup_logging(prefix: str) -> None:
    """Progress lines on stderr for the command-line entry points."""
    logging.basicConfig(
        level=logging.INFO,
        format=f"[{prefix} %(asctime)s] %(message)s",
        datefmt="%H:%M:%S",
    )
