"""The pure parts of the real-node latency benchmark (bench/node_latency.py, bench/report_node.py):
time parsing, the claim record, the 20th pod, the summary and the report rows."""

from __future__ import annotations

import datetime as dt
import os
import time

from bench import node_latency as nl
from bench import report_node


def test_parse_k8s_ts_keeps_nanosecond_stamps_to_the_microsecond() -> None:
    want = dt.datetime(2026, 12, 7, 21, 33, 9, 123456, tzinfo=dt.UTC).timestamp()
    assert abs(nl.parse_k8s_ts("2026-12-07T21:33:09.123456789Z") - want) < 1e-6
    assert nl.parse_k8s_ts("2026-12-07T21:33:09Z") == want - 0.123456


def test_parse_job_run_reads_the_claim_time_and_the_worker() -> None:
    assert nl.parse_job_run("3|1|1765143189123|jq-worker-abc|x") == (
        1765143189.123,
        "jq-worker-abc|x",
    )


def test_nth_job_start_is_the_time_the_nth_pod_started_one() -> None:
    starts = {"a": 5.0, "b": 1.0, "c": 3.0}
    assert nl.nth_job_start(starts, 1) == 1.0
    assert nl.nth_job_start(starts, 3) == 5.0
    assert nl.nth_job_start(starts, 4) is None


def test_breakdown_is_relative_to_the_enqueue_and_leaves_missing_steps_empty() -> None:
    b = nl.breakdown(100.0, {"created": 100.5, "job": 102.25, "labels": {}})
    assert b["created"] == 0.5 and b["job"] == 2.25
    assert b["sandbox"] is None and "labels" not in b


def _row(key: str, trial: int, first: float | None, twenty: float | None) -> dict[str, object]:
    return {
        "key": key,
        "trial": trial,
        "load": [3.0, 2.0, 1.0],
        "first_job_s": first,
        "twenty_s": twenty,
        "replicas_20_s": 1.0,
        "pods_with_jobs": 20,
        "first_pod": {"created": 0.1, "job": first},
    }


def test_summary_and_report_take_medians_and_judge_the_target() -> None:
    rows = [
        _row("ours-jobqueue", 0, 2.0, 9.0),
        _row("ours-jobqueue", 1, 2.5, None),
        _row("ours-jobqueue", 2, 1.5, 7.0),
        _row("keda-defaults", 0, 20.0, 50.0),
        {"key": "keda-defaults", "trial": 1, "error": "TimeoutError('x')"},
    ]
    summary = nl.summarize(rows)
    ours = next(x for x in summary if x["key"] == "ours-jobqueue")
    assert ours["first_job"]["median"] == 2.0
    assert ours["twenty"]["median"] == 8.0 and ours["twenty"]["timeouts"] == 1
    assert ours["first_pod_steps"]["job"] == 2.0
    targets = report_node.targets({"summary": summary})
    assert targets[0][2:] == ("2.00", True)
    assert targets[1][3] is None  # the keyspace configuration was not run
    assert targets[2][2:] == ("8.00 s vs 50.00 s", True)  # ahead of KEDA's fastest
    keda = next(x for x in summary if x["key"] == "keda-defaults")
    assert keda["trials"] == 1 and keda["errors"] == ["TimeoutError('x')"]
    sec = {"date": "now", "data": {"summary": summary, "trials": rows, "method": ["m"]}}
    text = "\n".join(report_node.section(sec, ["## head"]))
    assert "**2.00** [1.50-2.50]" in text and "(1 timed out)" in text
    assert "failed: TimeoutError('x')" in text


def test_proc_start_of_this_process_is_its_start_time() -> None:
    started = nl.proc_start(os.getpid())
    assert started is not None and started <= time.time()
    assert nl.proc_start(2**22 + 12345) is None
