"""matplotlib PNG charts of the last results, written beside RESULTS.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

OURS_COLOR = "#1f77b4"
PEER_COLOR = "#9a9a9a"
KEDA_COLOR = "#d62728"


def worker(data: dict[str, Any], out: Path) -> Path | None:
    rows = [r for r in data.get("rows", []) if "jobs_s" in r]
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: r["jobs_s"])
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(rows) + 1.4))
    colors = [OURS_COLOR if r["system"] == "ours" else PEER_COLOR for r in rows]
    ax.barh([r["label"] for r in rows], [r["jobs_s"] for r in rows], color=colors)
    for i, r in enumerate(rows):
        ax.text(r["jobs_s"] * 1.05, i, f"{r['jobs_s']:,.0f}", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("jobs/s, one worker process (log scale)")
    ax.set_title("Worker throughput, one process each, same redis-server (blue: ours)")
    ax.axvline(25_000, color="green", linestyle="--", linewidth=1)
    ax.text(25_000, len(rows) - 0.4, " target 25k", color="green", fontsize=8)
    fig.tight_layout()
    path = out / "worker_throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def enqueue(data: dict[str, Any], out: Path) -> Path | None:
    bars: list[tuple[str, float, str]] = []
    for r in data.get("api", []):
        if "jobs_per_s" in r:
            bars.append((f"API {r['scenario']}", r["jobs_per_s"], OURS_COLOR))
    for r in data.get("producers", []):
        if "jobs_s" in r:
            color = OURS_COLOR if r["system"] == "jobqueue" else PEER_COLOR
            bars.append((f"{r['system']} {r['how']}", r["jobs_s"], color))
    if not bars:
        return None
    bars.sort(key=lambda b: b[1])
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(bars) + 1.4))
    ax.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    for i, b in enumerate(bars):
        ax.text(b[1] * 1.05, i, f"{b[1]:,.0f}", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("jobs/s enqueued, one process (log scale)")
    ax.set_title("Enqueue, one process: API under wrk (blue) and Python producers")
    fig.tight_layout()
    path = out / "enqueue.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def growth(data: dict[str, Any], out: Path) -> Path | None:
    rows = [r for r in data.get("rows", []) if "jobs_s" in r]
    if not rows:
        return None
    kinds = [
        ("payload_bytes", "payload bytes"),
        ("waiting", "jobs waiting"),
        ("processes", "worker processes"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, (kind, label) in zip(axes, kinds, strict=True):
        pts = [r for r in rows if r["kind"] == kind]
        pos = list(range(len(pts)))
        ax.bar(pos, [r["jobs_s"] for r in pts], color=OURS_COLOR)
        ax.set_xticks(pos, [f"{r['x']:,}" for r in pts])
        for i, r in enumerate(pts):
            ax.text(i, r["jobs_s"], f"{r['jobs_s']:,.0f}", ha="center", va="bottom", fontsize=8)
        if kind == "payload_bytes":
            ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("jobs/s" + (" (log scale)" if kind == "payload_bytes" else ""))
    fig.suptitle("How our worker's throughput grows (no-op jobs, best concurrency)")
    fig.tight_layout()
    path = out / "growth.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


AUTOSCALE_STYLES = {
    "jobqueue": (OURS_COLOR, "-"),
    "list-keyspace": (OURS_COLOR, "-"),
    "list-polled": ("#17becf", "-"),
    "keda": (KEDA_COLOR, "-"),
    "keda-tuned": ("#ff9896", "--"),
    "keda-behavior": ("#ff7f0e", ":"),
}


def autoscale(data: dict[str, Any], out: Path) -> Path | None:
    trials = [t for t in data.get("trials", []) if t.get("curve")]
    if not trials:
        return None
    cases = [c for c in ("0->1", "1->20", "drain") if any(t["case"] == c for t in trials)]
    formats = [
        f for f in ("jobqueue", "list") if any(t.get("format", "jobqueue") == f for t in trials)
    ]
    fig, axes = plt.subplots(
        len(formats), len(cases), figsize=(5 * len(cases), 3.8 * len(formats)), squeeze=False
    )
    for row, fmt in zip(axes, formats, strict=True):
        for ax, case in zip(row, cases, strict=True):
            seen: set[str] = set()
            for t in trials:
                if t["case"] != case or t.get("format", "jobqueue") != fmt:
                    continue
                key = t["scaler_key"].removeprefix("list-") if fmt == "list" else t["scaler_key"]
                color, ls = AUTOSCALE_STYLES.get(
                    t["scaler_key"], AUTOSCALE_STYLES.get(key, ("black", ":"))
                )
                xs = [p[0] for p in t["curve"]]
                ys = [p[1] for p in t["curve"]]
                label = t["scaler"] if t["scaler"] not in seen else None
                seen.add(t["scaler"])
                ax.step(xs, ys, where="post", color=color, linestyle=ls, alpha=0.8, label=label)
            ax.set_title(f"{fmt} format: {case}")
            ax.set_xlabel("seconds since the event (enqueue / queue emptied)")
            ax.set_ylabel("worker Deployment spec.replicas")
            if case == cases[-1]:  # one legend per row, where the lines leave room
                ax.legend(fontsize=7, loc="center left")
    fig.suptitle("Autoscaler reaction, same control plane, same Redis list: ours vs KEDA")
    fig.tight_layout()
    path = out / "autoscale.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
