"""Render bench/results.json into bench/RESULTS.md and the PNG charts beside it."""

from __future__ import annotations

import logging
from typing import Any

from bench import charts
from bench.constants import (
    AUTOSCALE_COOLDOWN_S,
    BENCH_DIR,
    RESULTS_MD,
    TARGET_API_BATCH_JOBS_S,
    TARGET_API_SINGLE_RPS,
    TARGET_OPERATOR_READY_S,
    TARGET_OPERATOR_RSS_MIB,
    TARGET_RATIO_DRAMATIQ,
    TARGET_RATIO_OTHERS,
    TARGET_SCALE_0_1_S,
    TARGET_SCALE_1_20_S,
    TARGET_WORKER_JOBS_S,
)

log = logging.getLogger(__name__)

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
    """(system, job) -> the fastest row of that system and job."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if "jobs_s" not in r:
            continue
        key = (r["system"], r.get("job", "incr"))
        if key not in best or r["jobs_s"] > best[key]["jobs_s"]:
            best[key] = r
    return best


def worker_ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """peer -> {"noop": ours-noop-best / peer-best, "incr": ours-incr-best / peer-best}."""
    best = best_rows(rows)
    out: dict[str, dict[str, float]] = {}
    for p in PEERS:
        pb = best.get((p, "incr"))
        if not pb:
            continue
        out[p] = {}
        for job in ("noop", "incr"):
            ob = best.get(("ours", job))
            if ob:
                out[p][job] = ob["jobs_s"] / pb["jobs_s"]
    return out


def _worker(sec: dict[str, Any] | None) -> list[str]:
    lines = _section_head("worker", "Worker throughput (one process, same redis-server)", sec)
    if not sec or not sec.get("data"):
        return lines
    d = sec["data"]
    rows = d.get("rows", [])
    lines.append(
        f"{d.get('jobs', 0):,} jobs per peer configuration and for ours at concurrency 1, "
        f"{d.get('jobs_ours', d.get('jobs', 0)):,} for ours at high concurrency (it finishes "
        "20k in well under a second), all queued before the worker starts; a configuration "
        "still running after the time cap is stopped and measured over the jobs it finished "
        f"(`capped`). Each configuration ran {d.get('repeats', 1)} time(s); the median run is "
        "shown. jobs/s "
        "from the first to the last completion (the harness polls the counter every 10 ms). "
        "Redis commands per job are INFO commandstats deltas and include the commands run "
        "inside Lua scripts (the harness's own polling is subtracted); Redis and worker CPU "
        "are per job, from INFO cpu and /proc (worker CPU includes a forking peer's children). "
        "'Jobs per worker CPU-second' is 1 s divided by the worker CPU per job: what one "
        "dedicated "
        "core would do, the figure least disturbed by other load on a shared machine. The "
        "life-cycle ceiling is 1 s divided by the "
        "Redis CPU per job: the rate at which that configuration would saturate one Redis core."
    )
    lines.append("")
    table = []
    for r in rows:
        if "jobs_s" not in r:
            table.append(
                [
                    r["label"],
                    r.get("counted_by", ""),
                    "-",
                    f"failed: {r.get('error', '')[:120]}",
                    *[""] * 6,
                ]
            )
            continue
        capped = " (capped)" if r.get("capped") else ""
        table.append(
            [
                r["label"],
                r["counted_by"],
                _n(r["jobs"]) + capped,
                f"**{_n(r['jobs_s'])}**",
                _n(r["redis_cmds_per_job"], 2),
                _n(r["redis_cpu_us_per_job"], 1),
                _n(r["worker_cpu_us_per_job"], 1),
                _n(1e6 / r["worker_cpu_us_per_job"]) if r["worker_cpu_us_per_job"] > 0 else "-",
                _n(1e6 / r["redis_cpu_us_per_job"]) if r["redis_cpu_us_per_job"] > 0 else "-",
                r.get("redis_top_cmds", ""),
            ]
        )
    lines += _table(
        [
            "configuration",
            "counted by",
            "jobs",
            "jobs/s",
            "Redis cmds/job",
            "Redis CPU µs/job",
            "worker CPU µs/job",
            "jobs per worker CPU-second",
            "life-cycle ceiling jobs/s",
            "top Redis commands",
        ],
        table,
    )
    lines.append("")
    ratios = worker_ratios(rows)
    if ratios:
        lines += ["Ours / peer, same run, each at its best setting:", ""]
        t = []
        for p, rr in ratios.items():
            target = TARGET_RATIO_DRAMATIQ if p == "dramatiq" else TARGET_RATIO_OTHERS
            noop = rr.get("noop")
            incr = rr.get("incr")
            t.append(
                [
                    p,
                    f"{noop:.1f}x" if noop else "-",
                    f"{incr:.1f}x" if incr else "-",
                    f">= {target:.0f}x",
                    "met"
                    if incr and incr >= target
                    else ("met by no-op only" if noop and noop >= target else "missed"),
                ]
            )
        lines += _table(
            [
                "peer",
                "ours no-op / peer INCR",
                "ours INCR / peer INCR (like for like)",
                "target",
                "",
            ],
            t,
        )
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
        best = best_rows(rows).get(("ours", "noop"))
        claims = [c for c in ceil if "jobs_s" in c and c.get("what", "").startswith("EVALSHA")]
        claim100 = max(claims, key=lambda c: c["batch"], default=None)
        if best and claim100:
            lines.append(
                f"Our best no-op run reached {best['jobs_s'] / claim100['jobs_s']:.0%} of the "
                f"claim-only ceiling at {claim100['batch']} jobs per call "
                f"({_n(claim100['jobs_s'])} jobs/s; redis-benchmark's own 50 clients share the "
                "same two cores), "
                f"and {best['jobs_s'] * best['redis_cpu_us_per_job'] / 1e6:.0%} of one Redis "
                "core by CPU (jobs/s x Redis CPU per job)."
            )
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
            f"One `python -m jobqueue_api` (uvicorn, 1 worker) under wrk (1 thread, {conns} "
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
        lines += ["Each system's own Python producer, one process, one call per job:", ""]
        t = []
        for r in prod:
            if "error" in r:
                t.append([r["system"], r["how"], "-", f"failed: {r['error'][:100]}"])
            else:
                t.append([r["system"], r["how"], _n(r["jobs"]), f"**{_n(r['jobs_s'])}**"])
        lines += _table(["system", "call", "jobs", "jobs/s"], t)
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
                _n(r.get("apply_s"), 1),
                _n(r.get("settled_s"), 1),
                f"**{_n(r.get('rss_mib'), 0)}** (peak {_n(r.get('rss_peak_mib'), 0)})",
                _n(r.get("idle_window_s"), 0),
                _n(r.get("idle_requests_per_min"), 1),
                f"**{_n(r.get('idle_writes_per_min'), 1)}**",
                r.get("idle_by_verb", ""),
            ]
        )
    lines += _table(
        [
            "JobQueues",
            "apply -> all Ready s",
            "apply s",
            "last write after Ready s",
            "operator RSS MiB",
            "idle window s",
            "API requests/min idle",
            "API writes/min idle",
            "idle requests by verb/resource",
        ],
        t,
    )
    lines.append("")
    return lines


# ----------------------------------------------------------------------------- autoscale


def _autoscale(sec: dict[str, Any] | None) -> list[str]:
    lines = _section_head("autoscale", "Autoscaler reaction: ours vs KEDA", sec)
    if not sec or not sec.get("data"):
        return lines
    d = sec["data"]
    lines += list(d.get("method", []))
    lines.append("")
    summary = d.get("summary", [])
    if summary:
        t = [
            [s["scaler"], s["case"], s["trials"], s["values"], f"**{s['median']}**"]
            for s in summary
        ]
        lines += _table(["scaler", "case", "trials", "seconds, each trial", "median s"], t)
        lines.append("")
    return lines


# ----------------------------------------------------------------------------- summary


def _targets(data: dict[str, Any]) -> list[str]:
    s = data.get("sections", {})
    rows: list[list[str]] = []

    def add(figure: str, target: str, value: str, ok: bool | None) -> None:
        rows.append(
            [figure, target, value, {True: "met", False: "**missed**", None: "not measured"}[ok]]
        )

    w = (s.get("worker") or {}).get("data") or {}
    best = best_rows(w.get("rows", []))
    noop = best.get(("ours", "noop"))
    add(
        "worker no-op jobs/s, one process",
        f">= {TARGET_WORKER_JOBS_S:,}",
        _n(noop["jobs_s"]) if noop else "-",
        (noop["jobs_s"] >= TARGET_WORKER_JOBS_S) if noop else None,
    )
    for p, rr in worker_ratios(w.get("rows", [])).items():
        target = TARGET_RATIO_DRAMATIQ if p == "dramatiq" else TARGET_RATIO_OTHERS
        incr = rr.get("incr")
        add(
            f"ours / {p}, same INCR task",
            f">= {target:.0f}x",
            f"{incr:.1f}x (no-op: {rr.get('noop', 0):.1f}x)" if incr else "-",
            (incr >= target) if incr else None,
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
    a = (s.get("autoscale") or {}).get("data") or {}
    for case, target in (("0->1", TARGET_SCALE_0_1_S), ("1->20", TARGET_SCALE_1_20_S)):
        m = next(
            (
                x
                for x in a.get("summary", [])
                if x["scaler_key"] == "jobqueue" and x["case"] == case
            ),
            None,
        )
        med = m.get("median_s") if m else None
        add(
            f"autoscale {case}, ours",
            f"< {target} s",
            _n(med, 2),
            None if med is None else med < target,
        )
    m = next(
        (x for x in a.get("summary", []) if x["scaler_key"] == "jobqueue" and x["case"] == "drain"),
        None,
    )
    med = m.get("median_s") if m else None
    add(
        "autoscale back to 0 after drain, ours",
        f"the cooldown ({AUTOSCALE_COOLDOWN_S} s) + one poll (5 s)",
        _n(med, 1),
        None if med is None else med <= AUTOSCALE_COOLDOWN_S + 5,
    )
    o = (s.get("operator") or {}).get("data") or {}
    big = max(o.get("rows", []), key=lambda r: r["queues"], default=None)
    if big:
        add(
            f"operator: {big['queues']:,} JobQueues all Ready",
            f"< {TARGET_OPERATOR_READY_S:.0f} s",
            _n(big.get("ready_s"), 1),
            None if big.get("ready_s") is None else big["ready_s"] < TARGET_OPERATOR_READY_S,
        )
        add(
            "operator RSS",
            f"< {TARGET_OPERATOR_RSS_MIB:.0f} MiB",
            _n(big.get("rss_mib")),
            None if big.get("rss_mib") is None else big["rss_mib"] < TARGET_OPERATOR_RSS_MIB,
        )
        add(
            "operator API writes while idle",
            "0 /min",
            _n(big.get("idle_writes_per_min"), 1),
            None if big.get("idle_writes_per_min") is None else big["idle_writes_per_min"] == 0,
        )
    else:
        add("operator: JobQueues all Ready", f"< {TARGET_OPERATOR_READY_S:.0f} s", "-", None)
    return _table(["figure", "target", "measured", ""], rows)


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
        "## Targets (issue 12)",
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
    if (s.get("growth") or {}).get("data"):
        lines += ["![growth](growth.png)", ""]
    lines += _growth(s.get("growth"))
    lines += _operator(s.get("operator"))
    if (s.get("autoscale") or {}).get("data"):
        lines += ["![autoscale](autoscale.png)", ""]
    lines += _autoscale(s.get("autoscale"))
    if notes:
        lines += [notes.rstrip(), ""]
    return "\n".join(lines) + "\n"


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
