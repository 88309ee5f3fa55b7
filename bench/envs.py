"""Peer virtualenvs, one per peer, created from PyPI by ``tests.cluster.peers`` (shared with the
queue-format tests; cached under ``~/.cache/jobqueue-operator/peers/``, keyed by the pins)."""

from __future__ import annotations

from tests.cluster.peers import ensure, ensure_all, env_dir, python, version

__all__ = ["ensure", "ensure_all", "env_dir", "python", "version"]
