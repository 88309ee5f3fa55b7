"""RESULTS.md's section and target rows of the real-node latency benchmark (bench/node_latency.py).

Pure: results.json's ``node-latency`` section in, Markdown lines / target tuples out.
"""

from __future__ import annotations

from typing import Any

from bench.constants import TARGET_NODE_FIRST_JOB_S

NAME = "node-latency"
TITLE = "End to end on the real node: enqueue on an idle queue -> a job running on a new pod"
#: The first pod's start-up steps, in the order they happen, with their column titles.
STEPS = (
    ("replicas", "replicas >= 1"),
    ("created", "pod created"),
    ("scheduled", "scheduled"),
    ("sandbox", "sandbox (pause) started"),
    ("container", "container process started"),
    ("connected", "first Redis command"),
    ("first_log", "first log line"),
    ("job", "first job started"),
    ("running", "kubelet: running"),
    ("ready", "pod Ready"),
)


def _s(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _cell(c: dict[str, Any]) -> str:
    if c.get("median") is None:
        return "timeout" if c.get("timeouts") else "-"
    out = f"**{_s(c['median'])}** [{_s(c['min'])}-{_s(c['max'])}]"
    if c.get("timeouts"):
        out += f" ({c['timeouts']} timed out)"
    return out


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def section(sec: dict[str, Any] | None, head: list[str]) -> list[str]:
    """The section's lines after ``head`` (the shared run/load/error header)."""
    lines = list(head)
    if not sec or not sec.get("data"):
        return lines
    d = sec["data"]
    lines += [x for para in d.get("method", []) for x in (para, "")]
    summary = d.get("summary", [])
    lines += [
        "Median seconds from the enqueue over the trials, [range]; load average (1 min) at "
        "the start of each trial's phase in the last column:",
        "",
    ]
    rows = [
        [
            x["label"],
            str(x["trials"]),
            _cell(x["first_job"]),
            _cell(x["replicas_20"]),
            _cell(x["twenty"]),
            ", ".join(str(ld[0]) for ld in x.get("load", [])),
        ]
        for x in summary
    ]
    lines += _table(
        [
            "configuration",
            "trials",
            "first job started on a new pod s",
            "after 99 more: replicas 20 s",
            "after 99 more: 20 pods running jobs s",
            "load (1 min)",
        ],
        rows,
    )
    lines += [
        "",
        "The first pod's start-up, median seconds from the enqueue at each step:",
        "",
    ]
    rows = [[x["label"], *(_s(x["first_pod_steps"].get(k)) for k, _ in STEPS)] for x in summary]
    lines += _table(["configuration", *(t for _, t in STEPS)], rows)
    lines += ["", "Each trial (seconds; first job / 20 pods running jobs):", ""]
    trials = d.get("trials", [])
    labels = {x["key"]: x["label"] for x in summary}
    rows = [
        [
            str(r["trial"]),
            labels.get(r["key"], r["key"]),
            *(
                [f"failed: {r['error']}", "-", "-", "-"]
                if r.get("error")
                else [
                    _s(r.get("first_job_s")),
                    _s(r.get("twenty_s")),
                    str(r.get("pods_with_jobs")),
                    str(r["load"][0]),
                ]
            ),
        ]
        for r in sorted(trials, key=lambda r: (r["key"], r["trial"]))
    ]
    lines += _table(
        ["trial", "configuration", "first job s", "20 pods s", "pods with jobs", "load"], rows
    )
    lines.append("")
    return lines


def targets(d: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(figure, target, measured, met): the first job on a new pod, ours, image present."""
    out: list[tuple[str, str, str, bool | None]] = []
    summary = {x["key"]: x for x in d.get("summary", [])}
    for key, what in (
        ("ours-jobqueue", "jobqueue format"),
        ("ours-list-keyspace", "list format, keyspace notifications"),
    ):
        x = summary.get(key)
        med = None if x is None else x["first_job"].get("median")
        out.append(
            (
                f"real node: enqueue on an idle queue -> first job started on a new pod, ours "
                f"({what}; image present)",
                f"< {TARGET_NODE_FIRST_JOB_S:.0f} s",
                _s(med),
                None if med is None else med < TARGET_NODE_FIRST_JOB_S,
            )
        )
    kedas = [x for x in summary.values() if not x["ours"] and x["twenty"].get("median")]
    fastest = min(kedas, key=lambda x: x["twenty"]["median"], default=None)
    for key in ("ours-jobqueue", "ours-list-keyspace"):
        x = summary.get(key)
        med = None if x is None else x["twenty"].get("median")
        best = None if fastest is None else fastest["twenty"]["median"]
        ok = None if med is None or best is None else med < best
        value = "-" if ok is None else f"{_s(med)} s vs {_s(best)} s"
        out.append(
            (
                f"real node: 99 more -> 20 pods running jobs, ours ({key.removeprefix('ours-')}) "
                "ahead of KEDA's fastest configuration (medians)",
                "ahead",
                value,
                ok,
            )
        )
    return out
