"""The peer job libraries (RQ, Celery, arq, Dramatiq from PyPI; BullMQ from npm), each installed
at its pinned version in its own environment under ``~/.cache/jobqueue-operator/``.

The peers cannot share one environment with the project or with each other (arq 0.28 needs
``redis<6``, the project ``redis>=5.2,<7``), so each gets a virtualenv of its own, named by the
peer and a hash of its pins: a changed pin builds a new venv beside the old one, and a cached one
is reused as is. Benchmarks (``bench/envs.py``) and the format tests use the same venvs. A
missing ``npm`` or a failed install raises: callers fail, they never skip.

Creation is serialised by an exclusive ``flock`` per environment, so parallel test processes
and a benchmark build one venv once; it is complete only when its stamp file exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

#: The root of every cached peer environment (``JQ_CACHE_DIR`` overrides ``~/.cache/...``).
CACHE_DIR: Final = Path(
    os.environ.get("JQ_CACHE_DIR", str(Path.home() / ".cache" / "jobqueue-operator"))
)
PEERS_DIR: Final = CACHE_DIR / "peers"

# name -> pip requirement lines. Exact pins keep runs comparable over time; the format
# adapters (operator/jobqueue_operator/formats.py) cite these versions' sources.
PEER_REQUIREMENTS: Final[dict[str, tuple[str, ...]]] = {
    "rq": ("rq==3.0.0",),
    "celery": ("celery[redis]==5.7.0",),
    "arq": ("arq==0.28.0", "redis<6"),
    "dramatiq": ("dramatiq[redis]==2.2.1",),
}
#: The distribution whose version names each peer.
PEER_DIST: Final[dict[str, str]] = {
    "rq": "rq",
    "celery": "celery",
    "arq": "arq",
    "dramatiq": "dramatiq",
}
#: BullMQ from npm (run with node), pinned the same way, with the Redis driver it loads
#: (an optional peer dependency since BullMQ 6).
BULLMQ_VERSION: Final = "6.7.6"
IOREDIS_VERSION: Final = "5.9.3"
STAMP: Final = ".peer-stamp"


def _digest(lines: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]


def env_dir(peer: str) -> Path:
    """The venv of ``peer`` for its current pins (call :func:`ensure` before using it)."""
    return PEERS_DIR / f"{peer}-{_digest(PEER_REQUIREMENTS[peer])}"


def python(peer: str) -> Path:
    """The interpreter of a peer's venv (call :func:`ensure` first)."""
    return env_dir(peer) / "bin" / "python"


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<target>.lock`` (one creator per environment)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure(peer: str) -> Path:
    """Create the venv of ``peer`` unless its pins' venv exists; return its python."""
    d = env_dir(peer)
    stamp = d / STAMP
    want = "\n".join(PEER_REQUIREMENTS[peer])
    with _locked(d):
        if stamp.exists() and stamp.read_text() == want and python(peer).exists():
            return python(peer)
        log.info("creating the %s venv in %s (pip, PyPI)", peer, d)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(d)], check=True)
        pip = [str(python(peer)), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *PEER_REQUIREMENTS[peer]], check=True)
        stamp.write_text(want)
    return python(peer)


def version(peer: str) -> str:
    """Installed versions of the peer and its redis client, e.g. ``celery 5.7.0, redis 6.4.0``."""
    code = (
        "import importlib.metadata as m, json, sys;"
        "print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))"
    )
    out = subprocess.run(
        [str(python(peer)), "-c", code, PEER_DIST[peer], "redis"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    versions: dict[str, str] = json.loads(out)
    return ", ".join(f"{k} {v}" for k, v in versions.items())


def ensure_all(peers: tuple[str, ...] = tuple(PEER_REQUIREMENTS)) -> dict[str, str]:
    """Ensure every peer venv; return peer -> version string."""
    return {p: (ensure(p), version(p))[1] for p in peers}


def bullmq_dir(version: str = BULLMQ_VERSION) -> Path:
    """The npm project holding ``node_modules/bullmq`` at ``version``."""
    return CACHE_DIR / f"bullmq-{version}-ioredis-{IOREDIS_VERSION}"


def ensure_bullmq(version: str = BULLMQ_VERSION) -> Path:
    """Install bullmq@``version`` from npm into its cache dir unless there; return the dir
    (run node with it as the working directory, or ``NODE_PATH=<dir>/node_modules``)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are needed for BullMQ: install nodejs and npm")
    d = bullmq_dir(version)
    stamp = d / STAMP
    with _locked(d):
        if stamp.exists() and stamp.read_text() == version:
            return d
        log.info("installing bullmq@%s from npm into %s", version, d)
        d.mkdir(parents=True, exist_ok=True)
        (d / "package.json").write_text(
            json.dumps({"name": "jq-bullmq-peer", "private": True, "version": "0.0.0"})
        )
        subprocess.run(
            [
                *(npm, "install", "--no-fund", "--no-audit", "--save-exact"),
                *(f"bullmq@{version}", f"ioredis@{IOREDIS_VERSION}"),
            ],
            cwd=d,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        stamp.write_text(version)
    return d
