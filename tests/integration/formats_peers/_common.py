"""Shared by the peer helpers (runs under any peer venv: standard library only)."""

from __future__ import annotations

import json
import os
import sys

URL = os.environ["PEER_REDIS_URL"]
QUEUE = os.environ["PEER_QUEUE"]
STARTED = os.environ.get("PEER_STARTED", f"{QUEUE}:started")  # INCRed by every task that starts


def emit(value: object) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()
