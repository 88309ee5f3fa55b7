"""What a result was measured on: machine, load, and the versions of everything compared."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata as md
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _mem_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _redis_server_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
        m = re.search(r"v=(\S+)", out)
        if m:
            return m.group(1)
    return "?"


def _wrk_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        m = re.search(r"wrk (\S+)", out.stdout + out.stderr)
        if m:
            return m.group(1)
    return "?"


def _dist(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "-"


def describe() -> dict[str, Any]:
    uname = platform.uname()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "ram_gib": _mem_gib(),
        "kernel": uname.release,
        "load_at_start": load(),
        "versions": {
            "python": platform.python_version(),
            "redis-server": _redis_server_version(),
            "redis-py (ours)": _dist("redis"),
            "uvloop": _dist("uvloop"),
            "fastapi": _dist("fastapi"),
            "uvicorn": _dist("uvicorn"),
            "kopf": _dist("kopf"),
            "wrk": _wrk_version(),
        },
    }
