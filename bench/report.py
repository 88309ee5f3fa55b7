"""Render bench/results.json into bench/RESULTS.md, the PNG charts beside it, and the README's
block of measured figures (so no figure in the README is typed by hand)."""

from __future__ import annotations

import logging
from typing import Any

from bench import charts, report_node
from bench.constants import (
    AUTOSCALE_COOLDOWN_S,
    BENCH_DIR,
    RESULTS_MD,
    TARGET_API_BATCH_JOBS_S,
    TARGET_API_SINGLE_RPS,
    TARGET_OPERATOR_READY_5000_S,
    TARGET_OPERATOR_READY_S,
    TARGET_OPERATOR_RSS_5000_MIB,
    TARGET_OPERATOR_RSS_MIB,
    TARGET_PAYLOAD_REDIS_CPU_RATIO,
    TARGET_PRODUCER_RATIO_DRAMATIQ,
    TARGET_RATIO_PEER_BEST,
    TARGET_RATIO_PEER_DEFAULTS,
    TARGET_SCALE_0_1_POLLED_S,
    TARGET_SCALE_0_1_S,
    TARGET_SCALE_1_20_S,
    TARGET_WORKER_BEST_JOBS_S,
    TARGET_WORKER_JOBS_S,
)

log = logging.getLogger(__name__)

README = BENCH_DIR.parent / "README.md"
README_BEGIN = (
    "<!-- bench:targets:begin (generated from bench/results.json by "
    "`python -m bench --report`; do not edit) -->"
)
README_END = "<!-- bench:targets:end -->"

PEERS = ("rq", "celery", "arq", "dramatiq")


def _n(x: Any, digits: int = 0) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _section_head(name: str, title: str, sec: dict[str, Any] | None) -> list[str]:
    lines = [f"## {title}", ""]
    if not sec:
        return [*lines, f"Not run yet: `python -m bench --only {name}`.", ""]
    mode = "quick" if sec.get("quick") else "full"
    lines.append(
        f"Run {sec['date']} ({mode}, {sec.get('seconds', '?')} s); load average before "
        f"{sec.get('load_before')}, after {sec.get('load_after')}."
    )
    lines.append("")
    if sec.get("error"):
        err = sec["error"].strip().splitlines()
        lines += ["**This benchmark failed:**", "", "```", *err[-15:], "```", ""]
    return lines


# ----------------------------------------------------------------------------- worker


def best_rows(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(system, job) -> the fastest row of that system and job (per worker process)."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if "jobs_s" not in r:
            continue
        key = (r["system"], r.get("job", "incr"))
        if key not in best or _per_process(r) > _per_process(best[key]):
            best[key] = r
    return best


def _per_process(r: dict[str, Any]) -> float:
    return float(r.get("jobs_s_per_process", r["jobs_s"]))


def _ours(rows: list[dict[str, Any]], job: str, defaults: bool) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in rows
            if r["system"] == "ours"
            and r.get("job") == job
            and bool(r.get("defaults")) == defaults
            and "jobs_s" in r
        ),
        None,
    )


def _best_peer(rows: list[dict[str, Any]], defaults: bool) -> dict[str, Any] | None:
    """The peer row with the most jobs/s per worker process, at defaults or at best."""
    peers = [
        r
        for r in rows
        if r["system"] in PEERS and "jobs_s" in r and bool(r.get("defaults")) == defaults
    ]
    return max(peers, key=_per_process, default=None)


def worker_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ours at defaults (INCR plain client, INCR on ctx.redis, no-op) per worker process
    against the best peer per process, at the peers' defaults and at their best."""
    out: list[dict[str, Any]] = []
    for defaults, target in ((True, TARGET_RATIO_PEER_DEFAULTS), (False, TARGET_RATIO_PEER_BEST)):
        peer = _best_peer(rows, defaults)
        if peer is None:
            continue
        for job in ("incr_plain", "incr_ctx", "noop"):
            ours = _ours(rows, job, True)
            if ours is None:
                continue
            out.append(
                {
                    "ours": ours["label"],
                    "job": job,
                    "peer": peer["label"],
                    "peer_defaults": defaults,
                    "ratio": _per_process(ours) / _per_process(peer),
                    "target": target,
                }
            )
    return out


def _spread(r: dict[str, Any]) -> str:
    runs = r.get("runs_jobs_s_per_process") or r.get("runs_jobs_s") or []
    if len(runs) < 2:
        return "-"
    return f"{_n(min(runs))}-{_n(max(runs))}"


def _worker(sec: dict[str, Any] | None) -> list[str]:
    lines = _section_head(
        "worker", "Worker throughput (same redis-server, per worker process)", sec
    )
    if not sec or not sec.get("data"):
        return lines
    d = sec["data"]
    rows = d.get("rows", [])
    loads = d.get("loads_per_round")
    lines.append(
        f"Every configuration ran {d.get('repeats', 1)} times, interleaved (each round runs "
        "every configuration once, so a change in the machine's load hits every system "
        "alike); the median run is shown, with the range of all runs. Each run measures a "
        f"steady window of {d.get('window_s', '?')} s that opens {d.get('warmup_s', '?')} s "
        "after the first completion (start-up, imports and the first claim excluded); jobs "
        "were queued before the worker started, enough for the whole window. jobs/s, worker "
        "CPU, Redis CPU and Redis commands all cover that window only. *Per process* divides "
        "by the processes that run jobs (Dramatiq's and Celery's defaults start one per CPU). "
        "Worker CPU includes a forking peer's children; the subscriber column is the "
        "autoscaler-like process subscribed to our events channel (`bench/subscriber.py`). "
        f"hiredis: {d.get('hiredis', '?')}."
        + (f" Load average at the start of each round and at the end: {loads}." if loads else "")
    )
    lines.append("")
    table = []
    for r in rows:
        if "jobs_s" not in r:
            table.append([r["label"], "-", f"failed: {r.get('error', '')[:120]}", *[""] * 7])
            continue
        short = " (queue ran dry)" if r.get("short") else ""
        sub = r.get("subscriber_cpu_us_per_job")
        table.append(
            [
                r["label"],
                f"**{_n(_per_process(r))}**{short}",
                _spread(r),
                _n(r["jobs_s"]),
                _n(r["redis_cmds_per_job"], 2),
                _n(r["redis_cpu_us_per_job"], 1),
                _n(r["worker_cpu_us_per_job"], 1),
                "-" if sub is None else _n(sub, 1),
                _n(r.get("startup_s"), 1),
                r.get("redis_top_cmds", ""),
            ]
        )
    lines += _table(
        [
            "configuration",
            "jobs/s per process (median)",
            "range of runs",
            "jobs/s all processes",
            "Redis cmds/job",
            "Redis CPU µs/job",
            "worker CPU µs/job",
            "subscriber CPU µs/job",
            "start-up s",
            "top Redis commands",
        ],
        table,
    )
    lines.append("")
    ratios = worker_ratios(rows)
    if ratios:
        lines += [
            "Ours at its defaults against the fastest peer per worker process, same run:",
            "",
        ]
        t = [
            [
                x["ours"],
                x["peer"],
                f"**{x['ratio']:.1f}x**",
                f">= {x['target']:.0f}x" if x["job"] != "noop" else "-",
                ("met" if x["ratio"] >= x["target"] else "**missed**")
                if x["job"] != "noop"
                else "",
            ]
            for x in ratios
        ]
        lines += _table(["ours (defaults)", "fastest peer", "ratio", "target", ""], t)
        lines.append("")
    ceil = d.get("ceiling", [])
    if ceil:
        lines += [
            "Redis ceiling (redis-benchmark, 50 clients, same machine, our own claim script "
            "by EVALSHA on a queue filled beforehand):",
            "",
        ]
        t = []
        for c in ceil:
            if "error" in c:
                t.append([c["what"], "-", f"failed: {c['error'][:100]}"])
            else:
                t.append([c["what"], _n(c["ops_s"]), _n(c["jobs_s"])])
        lines += _table(["command", "calls/s", "jobs/s"], t)
        lines.append("")
    return lines


# ----------------------------------------------------------------------------- enqueue


def _enqueue(sec: dict[str, Any] | None) -> list[str]:
    lines = _section_head("enqueue", "Enqueue throughput (one process)", sec)
    if not sec or not sec.get("data"):
        return lines
    d = sec["data"]
    api = d.get("api", [])
    if api:
        dur = next((r.get("duration_s") for r in api if "duration_s" in r), "?")
        conns = next((r.get("connections") for r in api if "connections" in r), "?")
        lines += [
            "One `python -m jobqueue_api` at its defaults (uvicorn, 1 worker, INFO logs, access "
            f"log off as shipped) under wrk (1 thread, {conns} "
            f"connections, {dur} s after a 1 s warm-up; Lua script for the POST body), "
            "private redis-server. `in Redis` checks that every accepted job was stored.",
            "",
        ]
        t = []
        for r in api:
            if "error" in r:
                t.append([r["scenario"], "-", "-", "-", "-", "-", f"failed: {r['error'][:100]}"])
                continue
            t.append(
                [
                    r["scenario"],
                    f"**{_n(r['requests_per_s'])}**",
                    f"**{_n(r['jobs_per_s'])}**",
                    f"{_n(r['latency_p50_ms'], 2)} / {_n(r['latency_p99_ms'], 2)}",
                    _n(r["api_cpu_s_per_1k_jobs"], 3),
                    _n(r["jobs_per_round_trip"], 1),
                    f"{_n(r['jobs_in_redis'])} / {_n(r['jobs_expected'])}; non-2xx {r['non_2xx']}",
                ]
            )
        lines += _table(
            [
                "scenario",
                "req/s",
                "jobs/s",
                "p50 / p99 ms",
                "API CPU s per 1k jobs",
                "jobs per Redis round trip",
                "in Redis / accepted",
            ],
            t,
        )
        lines.append("")
    prod = d.get("producers", [])
    if prod:
        lines += [
            "Each system's own Python producer, one process, one call per job (each producer "
            "ran several times, interleaved with the others; the median run and the range):",
            "",
        ]
        t = []
        for r in prod:
            if "error" in r:
                t.append([r["system"], r["how"], "-", f"failed: {r['error'][:100]}", "-", "-"])
            else:
                t.append(
                    [
                        r["system"],
                        r["how"],
                        _n(r["jobs"]),
                        f"**{_n(r['jobs_s'])}**",
                        _spread({"runs_jobs_s": r.get("runs_jobs_s", [])}),
                        _n(r.get("cpu_us_per_job"), 1),
                    ]
                )
        lines += _table(
            [
                "system",
                "call",
                "jobs per run",
                "jobs/s (median)",
                "range of runs",
                "producer CPU µs/job (median)",
            ],
            t,
        )
        lines.append("")
    return lines


# ----------------------------------------------------------------------------- payload


def payload_ratio(rows: list[dict[str, Any]], size: int) -> dict[str, Any] | None:
    """Ours against the peer with the least Redis CPU per job at payload `size`."""
    at = [r for r in rows if r.get("x") == size and "redis_cpu_us_per_job" in r]
    ours = next((r for r in at if r["system"] == "ours"), None)
    peers = [r for r in at if r["system"] != "ours"]
    if ours is None or not peers:
        return None
    best = min(peers, key=lambda r: r["redis_cpu_us_per_job"])
    return {
        "ours": ours["redis_cpu_us_per_job"],
        "peer": best["system"],
        "peer_cpu": best["redis_cpu_us_per_job"],
        "ratio": ours["redis_cpu_us_per_job"] / best["redis_cpu_us_per_job"],
    }


def _payload(sec: dict[str, Any] | None) -> list[str]:
    lines = _section_head("payload", "Payload sizes, every system (Redis CPU per job)", sec)
    if not sec or not sec.get("data"):
        return lines
    d = sec["data"]
    lines += [
        f"Each system enqueues {_n(d.get('jobs'))} jobs with its own producer (one call per "
        "job; ours `Queue.enqueue`), then its worker at its defaults drains them with the "
        "same one-INCR task. Redis CPU is the private redis-server's user + sys time over the "
        "enqueue and over the drain (the whole life of a job as Redis sees it), less Redis' "
        "idle CPU over the same time (sampled before each run). Medians of "
        f"{d.get('rounds')} interleaved rounds (the run with the median Redis CPU; every run's "
        "figure in brackets). Redis bytes per job: used_memory after the enqueue, per job.",
        "",
    ]
    t = []
    for r in d.get("rows", []):
        name = "jobqueue" if r["system"] == "ours" else r["system"]
        if "redis_cpu_us_per_job" not in r:
            t.append([_n(r["x"]), name, "-", "-", "-", "-", f"failed: {r.get('error', '')[:80]}"])
            continue
        t.append(
            [
                _n(r["x"]),
                f"{name} ({r['setting']})",
                f"**{_n(r['redis_cpu_us_per_job'], 1)}** "
                f"({', '.join(_n(x, 0) for x in r.get('runs_redis_cpu_us_per_job', []))})",
                f"{_n(r['enqueue_redis_cpu_us_per_job'], 1)} / "
                f"{_n(r['drain_redis_cpu_us_per_job'], 1)}",
                _n(r["redis_bytes_per_job"]),
                f"{_n(r['enqueue_jobs_s'])} / {_n(r['jobs_s'])}",
                _n(r["worker_cpu_us_per_job"], 1),
            ]
        )
    lines += _table(
        [
            "payload bytes",
            "system (settings)",
            "Redis CPU µs/job (runs)",
            "of it: enqueue / drain",
            "Redis bytes/job",
            "enqueue / drain jobs/s",
            "worker CPU µs/job (start-up included)",
        ],
        t,
    )
    lines.append("")
    return lines


# ----------------------------------------------------------------------------- growth


def _growth(sec: dict[str, Any] | None) -> list[str]:
    lines = _section_head("growth", "How cost grows (our worker, no-op, best concurrency)", sec)
    if not sec or not sec.get("data"):
        return lines
    t = []
    for r in sec["data"].get("rows", []):
        what = {
            "payload_bytes": "payload bytes",
            "waiting": "jobs already waiting",
            "processes": "worker processes",
        }[r["kind"]]
        if "jobs_s" not in r:
            t.append([what, _n(r["x"]), "-", f"failed: {r.get('error', '')[:100]}", "", ""])
            continue
        t.append(
            [
                what,
                _n(r["x"]),
                _n(r["jobs"]),
                f"**{_n(r['jobs_s'])}**",
                _n(r["redis_cpu_us_per_job"], 1),
                _n(r["worker_cpu_us_per_job"], 1),
            ]
        )
    lines += _table(
        [
            "varied",
            "value",
            "jobs",
            "jobs/s",
            "Redis CPU µs/job",
            "worker CPU µs/job (all processes)",
        ],
        t,
    )
    lines.append("")
    return lines


# ----------------------------------------------------------------------------- operator


def _operator(sec: dict[str, Any] | None) -> list[str]:
    lines = _section_head("operator", "Operator scale (local control plane)", sec)
    if not sec or not sec.get("data"):
        return lines
    d = sec["data"]
    lines += list(d.get("method", []))
    lines.append("")
    t = []
    for r in d.get("rows", []):
        t.append(
            [
                _n(r["queues"]),
                f"**{_n(r.get('ready_s'), 1)}**",
                _n(r.get("floor_s"), 1),
                _n(r.get("create_s", r.get("apply_s")), 1),
                _n(r.get("settled_s"), 1),
                f"**{_n(r.get('rss_mib'), 0)}** (peak {_n(r.get('rss_peak_mib'), 0)})",
                _n(r.get("idle_window_s"), 0),
                _n(r.get("idle_requests_per_min"), 1),
                f"**{_n(r.get('idle_writes_per_min'), 1)}**",
                r.get("idle_by_verb", ""),
                f"{_n(r.get('restart_requests'))} / **{_n(r.get('restart_writes'))}**",
            ]
        )
    lines += _table(
        [
            "JobQueues",
            "first create -> all Ready s",
            "floor: the same objects, no operator s",
            "creating them s",
            "last write after Ready s",
            "operator RSS MiB",
            "idle window s",
            "API requests/min idle",
            "API writes/min idle",
            "idle requests by verb/resource",
            "after a SIGKILL and restart: requests / writes",
        ],
        t,
    )
    lines.append("")
    return lines


# ----------------------------------------------------------------------------- autoscale


AUTOSCALE_FORMATS = (
    ("jobqueue", "jobqueue format (our protocol)"),
    ("list", "list format (a plain Redis list, seed 000's shape)"),
)


def _range(x: dict[str, Any], digits: int = 2) -> str:
    lo, hi = x.get("min_s"), x.get("max_s")
    if lo is None or hi is None:
        return "-"
    return f"{lo:.{digits}f}-{hi:.{digits}f}"


def _case(summary: list[dict[str, Any]], key: str, case: str) -> dict[str, Any] | None:
    return next((x for x in summary if x["scaler_key"] == key and x["case"] == case), None)


def _median_cell(x: dict[str, Any] | None, digits: int = 2) -> str:
    if x is None:
        return "-"
    cell = f"**{_n(x.get('median_s'), digits)}** ({_range(x, digits)})"
    if x.get("timeouts"):
        cell += f", {x['timeouts']} timeout(s)"
    return cell


def _wake_cell(x: dict[str, Any], fmt: str) -> str:
    if not x.get("ours", x["scaler_key"] == "jobqueue"):
        return "-"
    return str(x.get("wakeup", "-")) if fmt == "list" else "events (our channel)"


def autoscale_comparison(summary: list[dict[str, Any]], fmt: str) -> list[dict[str, Any]]:
    """Per configuration of ours and case: its median against KEDA's fastest, in one format."""
    out = []
    rows = [
        x
        for x in summary
        if x.get("format", "jobqueue") == fmt
        and x["case"] in ("0->1", "1->20")
        and x.get("median_s") is not None
    ]
    ours = [x for x in rows if x.get("ours", x["scaler_key"] == "jobqueue")]
    kedas = [x for x in rows if x not in ours]
    for o in ours:
        rivals = [k for k in kedas if k["case"] == o["case"]]
        if not rivals:
            continue
        fast = min(rivals, key=lambda x: x["median_s"])
        out.append({"case": o["case"], "ours": o, "keda": fast, "kedas": len(rivals)})
    return out


def _autoscale(sec: dict[str, Any] | None) -> list[str]:
    lines = _section_head("autoscale", "Autoscaler reaction: ours vs KEDA", sec)
    if not sec or not sec.get("data"):
        return lines
    d = sec["data"]
    for para in d.get("method", []):
        lines += [para, ""]
    summary = d.get("summary", [])
    for fmt, title in AUTOSCALE_FORMATS:
        rows = [x for x in summary if x.get("format", "jobqueue") == fmt]
        keys = list(dict.fromkeys(x["scaler_key"] for x in rows))
        if not keys:
            continue
        lines += [
            f"**{title}**: median seconds over the trials (range of the trials in brackets).",
            "",
        ]
        t = []
        for key in keys:
            first = next(x for x in rows if x["scaler_key"] == key)
            up = _case(rows, key, "1->20")
            steps = (up or {}).get("paths") or []
            t.append(
                [
                    first["scaler"],
                    first["trials"],
                    _median_cell(_case(rows, key, "0->1")),
                    _median_cell(up),
                    ", ".join(steps) if steps else "-",
                    _median_cell(_case(rows, key, "drain"), 1),
                    _wake_cell(first, fmt),
                ]
            )
        lines += _table(
            [
                "scaler",
                "trials",
                "0->1 s",
                "1->20 s",
                "1->20 levels, each trial",
                "back to 0 s",
                "wake-up (status.queue.wakeup)",
            ],
            t,
        )
        lines.append("")
        for c in autoscale_comparison(summary, fmt):
            o, k = c["ours"], c["keda"]
            ratio = k["median_s"] / o["median_s"] if o["median_s"] > 0 else float("inf")
            lines.append(
                f"- {c['case']}: {o['scaler']}, {o['median_s']:.2f} s, against KEDA's fastest "
                f"of {c['kedas']} ({k['scaler']}, {k['median_s']:.2f} s): "
                + (
                    f"ours {ratio:.1f}x faster"
                    if ratio >= 1
                    else f"**KEDA {1 / ratio:.1f}x faster**"
                )
                + "."
            )
        lines.append("")
    lines += ["Seconds, each trial (trial order):", ""]
    t = [
        [x.get("format", "jobqueue"), x["scaler"], x["case"], x["values"], f"**{x['median']}**"]
        for x in summary
    ]
    lines += _table(["format", "scaler", "case", "seconds, each trial", "median s"], t)
    lines.append("")
    return lines


def autoscale_targets(a: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(figure, target, measured, met) for the autoscale section."""
    summary = a.get("summary", [])
    out: list[tuple[str, str, str, bool | None]] = []
    ours = [
        ("jobqueue", "jobqueue format, events channel", TARGET_SCALE_0_1_S),
        ("list-keyspace", "list format, keyspace notifications", TARGET_SCALE_0_1_S),
        ("list-polled", "list format, polled", TARGET_SCALE_0_1_POLLED_S),
    ]
    for key, what, target in ours:
        m = _case(summary, key, "0->1")
        med = m.get("median_s") if m else None
        out.append(
            (
                f"autoscale 0->1, ours ({what})",
                f"< {target} s",
                _n(med, 2),
                None if med is None else med < target,
            )
        )
    for key, what, _ in ours:
        m = _case(summary, key, "1->20")
        med = m.get("median_s") if m else None
        steps = [x for x in (m or {}).get("steps", []) if x is not None]
        one = bool(steps) and all(x == 1 for x in steps)
        value = _n(med, 2) + (f" (steps {', '.join(map(str, steps))})" if steps else "")
        ok = None if med is None else med < TARGET_SCALE_1_20_S and (one or not steps)
        out.append(
            (
                f"autoscale 1->20 in one step, ours ({what})",
                f"< {TARGET_SCALE_1_20_S} s",
                value,
                ok,
            )
        )
    for fmt, _title in AUTOSCALE_FORMATS:
        comp = autoscale_comparison(summary, fmt)
        for key in dict.fromkeys(c["ours"]["scaler_key"] for c in comp):
            mine = [c for c in comp if c["ours"]["scaler_key"] == key]
            value = "; ".join(
                f"{c['case']}: {c['ours']['median_s']:.2f} s vs {c['keda']['median_s']:.2f} s"
                for c in mine
            )
            out.append(
                (
                    f"autoscale 0->1 and 1->20, {mine[0]['ours']['scaler']}: ahead of KEDA's "
                    f"fastest of its {mine[0]['kedas']} configurations (medians)",
                    "ahead",
                    value,
                    all(c["ours"]["median_s"] < c["keda"]["median_s"] for c in mine),
                )
            )
    m = _case(summary, "jobqueue", "drain")
    med = m.get("median_s") if m else None
    out.append(
        (
            "autoscale back to 0 after drain, ours (jobqueue format)",
            f"the cooldown ({AUTOSCALE_COOLDOWN_S} s) + one poll (5 s)",
            _n(med, 1),
            None if med is None else med <= AUTOSCALE_COOLDOWN_S + 5,
        )
    )
    return out


# ----------------------------------------------------------------------------- summary


def _targets(data: dict[str, Any]) -> list[str]:
    s = data.get("sections", {})
    rows: list[list[str]] = []

    def add(figure: str, target: str, value: str, ok: bool | None) -> None:
        rows.append(
            [figure, target, value, {True: "met", False: "**missed**", None: "not measured"}[ok]]
        )

    w = (s.get("worker") or {}).get("data") or {}
    wrows = w.get("rows", [])
    noop = _ours(wrows, "noop", True)
    add(
        "worker no-op jobs/s, one process, at defaults (c 8, INFO, subscribed)",
        f">= {TARGET_WORKER_JOBS_S:,}",
        _n(noop["jobs_s"]) if noop else "-",
        (noop["jobs_s"] >= TARGET_WORKER_JOBS_S) if noop else None,
    )
    noop_best = _ours(wrows, "noop", False)
    add(
        "worker no-op jobs/s, one process, best settings",
        f">= {TARGET_WORKER_BEST_JOBS_S:,}",
        _n(noop_best["jobs_s"]) if noop_best else "-",
        (noop_best["jobs_s"] >= TARGET_WORKER_BEST_JOBS_S) if noop_best else None,
    )
    for x in worker_ratios(wrows):
        if x["job"] == "noop":
            continue
        which = "its defaults" if x["peer_defaults"] else "its best"
        client = "a plain redis.asyncio client" if x["job"] == "incr_plain" else "ctx.redis"
        add(
            f"ours INCR on {client} (defaults) / fastest peer at {which}, per process",
            f">= {x['target']:.0f}x",
            f"{x['ratio']:.1f}x ({x['peer']})",
            x["ratio"] >= x["target"],
        )
    e = (s.get("enqueue") or {}).get("data") or {}
    prod = {(r["system"], r["how"]): r for r in e.get("producers", []) if "jobs_s" in r}
    ours_single = next(
        (r for (sy, how), r in prod.items() if sy == "jobqueue" and "one" in how), None
    )
    dram = next((r for (sy, _), r in prod.items() if sy == "dramatiq"), None)
    ratio = ours_single["jobs_s"] / dram["jobs_s"] if ours_single and dram else None
    add(
        "producer: Queue.enqueue / Dramatiq send, one call per job",
        f">= {TARGET_PRODUCER_RATIO_DRAMATIQ:.0f}x",
        "-" if ratio is None else f"{ratio:.2f}x",
        None if ratio is None else ratio >= TARGET_PRODUCER_RATIO_DRAMATIQ,
    )
    e = (s.get("enqueue") or {}).get("data") or {}
    api = [r for r in e.get("api", []) if "requests_per_s" in r]
    single = max(
        (r["requests_per_s"] for r in api if r["scenario"].startswith("POST /jobs (")), default=None
    )
    batch = max((r["jobs_per_s"] for r in api if "batch" in r["scenario"]), default=None)
    add(
        "API single-job POST /jobs req/s",
        f">= {TARGET_API_SINGLE_RPS:,}",
        _n(single),
        None if single is None else single >= TARGET_API_SINGLE_RPS,
    )
    add(
        "API batch POST /jobs:batch jobs/s",
        f">= {TARGET_API_BATCH_JOBS_S:,}",
        _n(batch),
        None if batch is None else batch >= TARGET_API_BATCH_JOBS_S,
    )
    p = payload_ratio(((s.get("payload") or {}).get("data") or {}).get("rows", []), 100_000)
    add(
        "100 KB payloads: our Redis CPU per job / the best peer's",
        f"<= {TARGET_PAYLOAD_REDIS_CPU_RATIO:.0f}x",
        "-"
        if p is None
        else f"{p['ratio']:.2f}x ({_n(p['ours'])} / {_n(p['peer_cpu'])} µs, {p['peer']})",
        None if p is None else p["ratio"] <= TARGET_PAYLOAD_REDIS_CPU_RATIO,
    )
    a = (s.get("autoscale") or {}).get("data") or {}
    for figure, target, value, ok in autoscale_targets(a):
        add(figure, target, value, ok)
    nl = (s.get(report_node.NAME) or {}).get("data") or {}
    for figure, target, value, ok in report_node.targets(nl):
        add(figure, target, value, ok)
    o = (s.get("operator") or {}).get("data") or {}
    sizes = o.get("rows", [])
    # the targets are set at 1,000 JobQueues (issue 21); else the largest size measured
    big = next((r for r in sizes if r["queues"] == 1_000), None) or max(
        sizes, key=lambda r: r["queues"], default=None
    )
    if big:
        for item in _size_targets(big, TARGET_OPERATOR_READY_S, TARGET_OPERATOR_RSS_MIB, ""):
            add(*item)
        add(
            "operator API writes while idle",
            "0 /min",
            _n(big.get("idle_writes_per_min"), 1),
            None if big.get("idle_writes_per_min") is None else big["idle_writes_per_min"] == 0,
        )
        per_100 = big.get("idle_requests_per_min")
        per_100 = None if per_100 is None else per_100 * 100 / big["queues"]
        add(
            "operator API requests while idle, per 100 JobQueues",
            "< 1 /min",
            _n(per_100, 2),
            None if per_100 is None else per_100 < 1,
        )
        add(
            "operator API writes after a SIGKILL and restart",
            "0",
            _n(big.get("restart_writes")),
            None if big.get("restart_writes") is None else big["restart_writes"] == 0,
        )
    else:
        add("operator: JobQueues all Ready", f"< {TARGET_OPERATOR_READY_S:.0f} s", "-", None)
    huge = next((r for r in sizes if r["queues"] == 5_000), None)
    if huge:
        targets = (TARGET_OPERATOR_READY_5000_S, TARGET_OPERATOR_RSS_5000_MIB)
        for item in _size_targets(huge, *targets, " at 5,000"):
            add(*item)
    return _table(["figure", "target", "measured", ""], rows)


def _size_targets(
    row: dict[str, Any], ready_s: float, rss_mib: float, rss_at: str
) -> list[tuple[str, str, str, bool | None]]:
    """The Ready and RSS targets of one operator size (figure, target, measured, met)."""
    ready, rss = row.get("ready_s"), row.get("rss_mib")
    return [
        (
            f"operator: {row['queues']:,} JobQueues all Ready",
            f"< {ready_s:.0f} s",
            _n(ready, 1) + _floor_note(row),
            None if ready is None else ready < ready_s,
        ),
        (
            f"operator RSS{rss_at}",
            f"< {rss_mib:.0f} MiB",
            _n(rss),
            None if rss is None else rss < rss_mib,
        ),
    ]


def _floor_note(row: dict[str, Any]) -> str:
    """The control plane's own time for the same objects with no operator (operator_scale)."""
    floor = row.get("floor_s")
    return "" if floor is None else f" (no operator: {_n(floor, 1)})"


def _meta(data: dict[str, Any]) -> list[str]:
    m = data.get("meta", {})
    if not m:
        return ["No run recorded yet: `make bench-quick`.", ""]
    v = dict(m.get("versions", {}))
    for sec in data.get("sections", {}).values():
        for k, val in ((sec.get("data") or {}).get("peer_versions") or {}).items():
            v[k] = val
        for k, val in ((sec.get("data") or {}).get("versions") or {}).items():
            v[k] = val
    quick = " --quick" if m.get("quick") else ""
    ran = ",".join(m.get("ran", []))
    lines = [
        f"Last run: {m.get('date')} ({'quick' if m.get('quick') else 'full'}: "
        f"`python -m bench{quick} --only {ran}`, "
        f"{m.get('seconds', '?')} s).",
        "",
        f"Machine: {m.get('nproc')} CPUs ({m.get('cpu')}), {m.get('ram_gib')} GiB RAM, "
        f"Linux {m.get('kernel')}; load average at start {m.get('load_at_start')}, "
        f"at end {m.get('load_at_end')}.",
        "",
        "Versions: " + "; ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
    ]
    return lines


def render(data: dict[str, Any], notes: str) -> str:
    s = data.get("sections", {})
    lines = [
        "# Benchmarks: jobqueue-operator side by side with RQ, Celery, arq, Dramatiq and KEDA",
        "",
        "Generated by `python -m bench` (`make bench` / `make bench-quick`) from "
        "`bench/results.json`; do not edit by hand (the analysis is in `bench/NOTES.md`, "
        "included at the end). Peers run in their own venvs under `bench/.envs/`, built from "
        "PyPI by the harness. Benchmarks never run in `make test` or CI.",
        "",
        *_meta(data),
        "## Targets (issues 12 and 20)",
        "",
        *_targets(data),
        "",
    ]
    if (s.get("worker") or {}).get("data"):
        lines += ["![worker throughput](worker_throughput.png)", ""]
    lines += _worker(s.get("worker"))
    if (s.get("enqueue") or {}).get("data"):
        lines += ["![enqueue](enqueue.png)", ""]
    lines += _enqueue(s.get("enqueue"))
    lines += _payload(s.get("payload"))
    if (s.get("growth") or {}).get("data"):
        lines += ["![growth](growth.png)", ""]
    lines += _growth(s.get("growth"))
    lines += _operator(s.get("operator"))
    if (s.get("autoscale") or {}).get("data"):
        lines += ["![autoscale](autoscale.png)", ""]
    lines += _autoscale(s.get("autoscale"))
    lines += report_node.section(
        s.get(report_node.NAME),
        _section_head(report_node.NAME, report_node.TITLE, s.get(report_node.NAME)),
    )
    if notes:
        lines += [notes.rstrip(), ""]
    return "\n".join(lines) + "\n"


def readme_block(data: dict[str, Any]) -> str:
    """The README's block of measured figures: every target of bench/RESULTS.md, met or not."""
    return "\n".join([README_BEGIN, *_targets(data), README_END])


def with_readme_block(readme: str, data: dict[str, Any]) -> str:
    """``readme`` with its generated block replaced by the one of ``data``. Pure."""
    head, sep, rest = readme.partition(README_BEGIN)
    if not sep:
        raise ValueError(f"README.md has no {README_BEGIN!r} line")
    _, sep, tail = rest.partition(README_END)
    if not sep:
        raise ValueError(f"README.md has no {README_END!r} line")
    return head + readme_block(data) + tail


def write(data: dict[str, Any]) -> None:
    s = data.get("sections", {})
    for name, fn in (
        ("worker", charts.worker),
        ("enqueue", charts.enqueue),
        ("growth", charts.growth),
        ("autoscale", charts.autoscale),
    ):
        d = (s.get(name) or {}).get("data")
        if d:
            try:
                fn(d, BENCH_DIR)
            except Exception:
                log.exception("chart %s failed", name)
    notes_path = BENCH_DIR / "NOTES.md"
    notes = notes_path.read_text() if notes_path.exists() else ""
    RESULTS_MD.write_text(render(data, notes))
    log.info("wrote %s", RESULTS_MD)
    README.write_text(with_readme_block(README.read_text(), data))
    log.info("updated the measured figures in %s", README)
