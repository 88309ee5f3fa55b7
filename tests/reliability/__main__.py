"""`python -m tests.reliability` (`make chaos`): the reliability suite at full size, then
tests/RELIABILITY.md from the figures its tests recorded.

    python -m tests.reliability              # full sizes (JQ_CHAOS=full), every test
    python -m tests.reliability --fast       # the `make test` subset, same report
    python -m tests.reliability --no-node    # without the real-node test (no images/node)
    python -m tests.reliability -- -k redis  # extra pytest arguments after --

Exits with pytest's status; the report is written either way (failed tests show as failed).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.reliability.report import read_records, render
from tests.reliability.support import FIGURES_ENV, REPO, SOURCE_PATH

NODE_NOT_RUN = (
    "- The real-node tests (test_node_*.py: pods deleted, worker and managed Redis containers "
    "killed, worker volumes): no figures in this run (skipped with --no-node, or the node did "
    "not come up: see the pytest output). The kill -9 runs of worker processes and "
    "redis-server above cover the same protocol paths."
)
POWER_CUT = (
    "- A real power cut: with `appendfsync everysec` a process crash loses nothing (the page "
    "cache survives it); the host-crash exposure is derived from traced fsync times instead."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability", description=__doc__)
    parser.add_argument("--fast", action="store_true", help="the make-test subset")
    parser.add_argument(
        "--no-node", action="store_true", help="leave out the real-node test (no images/node)"
    )
    parser.add_argument(
        "--output", type=Path, default=REPO / "tests" / "RELIABILITY.md", help="the report"
    )
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    args = parser.parse_args(argv)

    figures = Path(tempfile.mkstemp(prefix="jq-reliability-", suffix=".jsonl")[1])
    env = dict(os.environ)
    env[FIGURES_ENV] = str(figures)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([*SOURCE_PATH, *paths])
    if args.fast:
        env.pop("JQ_CHAOS", None)
        marks = "not chaos_full"
    else:
        env["JQ_CHAOS"] = "full"
        marks = "not chaos_fast"
    if args.no_node:
        marks += " and not node"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "tests/reliability",
        "-m",
        marks,
        "-q",
        "-rfE",
        "-o",
        "timeout=3600",
        *args.pytest_args,
    ]
    started = time.monotonic()
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    result = subprocess.run(cmd, cwd=REPO, env=env, check=False)
    seconds = time.monotonic() - started
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    meta: dict[str, Any] = {
        "when": when,
        "mode": "fast" if args.fast else "full",
        "commit": commit + (" + uncommitted changes" if dirty else ""),
        "seconds": seconds,
        "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"load average at the end {os.getloadavg()[0]:.1f}",
        "outcome": "all passed" if result.returncode == 0 else f"exit {result.returncode}",
    }
    records = read_records(figures)
    notes = [POWER_CUT]
    if not any("real node)" in r["section"] for r in records):
        notes.insert(0, NODE_NOT_RUN)
    meta["notes"] = notes
    args.output.write_text(render(records, meta))
    print(f"wrote {args.output}")
    figures.unlink(missing_ok=True)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
