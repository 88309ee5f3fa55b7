"""Structured logging: one JSON object per line on stderr, for the API and uvicorn alike (the
line format of every image: jobqueue.contract.JsonFormatter)."""

from __future__ import annotations

import logging
import sys

from jobqueue.contract import JsonFormatter

__all__ = ["JsonFormatter", "configure_logging"]


def configure_logging(level: str) -> None:
    """Send every logger (ours, uvicorn's) through one JSON handler at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
