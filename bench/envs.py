"""Peer virtualenvs under bench/.envs/, created from PyPI by the harness itself, one per peer."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path

from bench.constants import ENVS_DIR, PEER_DIST, PEER_REQUIREMENTS

log = logging.getLogger(__name__)


def env_dir(peer: str) -> Path:
    return ENVS_DIR / peer


def python(peer: str) -> Path:
    """The interpreter of a peer's venv (call ensure() first)."""
    return env_dir(peer) / "bin" / "python"


def _stamp(peer: str) -> str:
    return hashlib.sha256("\n".join(PEER_REQUIREMENTS[peer]).encode()).hexdigest()[:16]


def ensure(peer: str) -> Path:
    """Create or update the venv of `peer` when its pins changed; return its python."""
    d = env_dir(peer)
    stamp = d / ".bench-stamp"
    if stamp.exists() and stamp.read_text() == _stamp(peer) and python(peer).exists():
        return python(peer)
    log.info("creating the %s venv in %s (pip, PyPI)", peer, d)
    d.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(d)], check=True)
    pip = [str(python(peer)), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *PEER_REQUIREMENTS[peer]], check=True)
    stamp.write_text(_stamp(peer))
    return python(peer)


def version(peer: str) -> str:
    """Installed versions of the peer and its redis client, e.g. `celery 5.7.0, redis 6.4.0`."""
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
