"""`python -m bench [--quick] [--only worker,enqueue,...]`: run benchmarks, write RESULTS.md.

Each benchmark is a module with `run(ctx) -> dict`; its result is stored under its name in
bench/results.json together with when, how (quick or full) and the machine load around it.
A partial run (`--only`) replaces only the sections it ran, so the report always shows the
last result of every benchmark, each with its own date. bench/RESULTS.md and the PNG charts
are regenerated from results.json at the end (`--report` does only that).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
import traceback
from typing import Any

from bench import machine, report
from bench.common import Ctx
from bench.constants import ALL_BENCHMARKS, RESULTS_JSON, WORK_DIR

log = logging.getLogger("bench")

MODULES = {
    "worker": "bench.worker",
    "enqueue": "bench.enqueue",
    "payload": "bench.payload",
    "growth": "bench.growth",
    "operator": "bench.operator_scale",
    "autoscale": "bench.autoscale",
    "node-latency": "bench.node_latency",  # the real node: run under flock /tmp/jq-node.lock
}


def load_results() -> dict[str, Any]:
    if RESULTS_JSON.exists():
        data: dict[str, Any] = json.loads(RESULTS_JSON.read_text())
        return data
    return {"meta": {}, "sections": {}}


def save_results(data: dict[str, Any], sections: list[str]) -> None:
    """Write this run's ``sections`` (and its meta) over the file as it is now: a run that
    overlapped keeps the sections it wrote meanwhile."""
    current = load_results()
    current["meta"] = data["meta"]
    for name in sections:
        if name in data["sections"]:
            current["sections"][name] = data["sections"][name]
    data["sections"] = current["sections"]
    tmp = RESULTS_JSON.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(current, indent=1, sort_keys=False) + "\n")
    tmp.replace(RESULTS_JSON)


def run_one(name: str, ctx: Ctx) -> dict[str, Any]:
    module = importlib.import_module(MODULES[name])
    started = time.monotonic()
    info = machine.describe()
    section: dict[str, Any] = {
        "date": info["date"],
        "quick": ctx.quick,
        "load_before": info["load_at_start"],
    }
    try:
        section["data"] = module.run(ctx)
        section["error"] = None
    except Exception as exc:
        log.exception("%s failed", name)
        section["data"] = {}
        section["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}"
    section["seconds"] = round(time.monotonic() - started, 1)
    section["load_after"] = machine.load()
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes)")
    parser.add_argument(
        "--only",
        default=",".join(ALL_BENCHMARKS),
        help=f"comma-separated subset of {','.join(ALL_BENCHMARKS)}",
    )
    parser.add_argument("--report", action="store_true", help="only regenerate RESULTS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {','.join(ALL_BENCHMARKS)}")
    data = load_results()
    if not args.report:
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        ctx = Ctx(quick=args.quick)
        data["meta"] = machine.describe()
        data["meta"]["quick"] = args.quick
        data["meta"]["ran"] = names
        t0 = time.monotonic()
        for name in names:
            log.info("=== %s (%s)", name, "quick" if args.quick else "full")
            data["sections"][name] = run_one(name, ctx)
            save_results(data, names)  # a crash later keeps what is done
        data["meta"]["seconds"] = round(time.monotonic() - t0, 1)
        data["meta"]["load_at_end"] = machine.load()
        save_results(data, names)
    report.write(data)
    failed = [n for n in names if data["sections"].get(n, {}).get("error")]
    if failed and not args.report:
        log.error("failed: %s (see bench/RESULTS.md)", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
