"""tests/RELIABILITY.md from the figures the suite's tests record (one JSON line per test).

Pure: ``render(records, meta)`` returns the Markdown; ``__main__`` runs the suite and writes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# The order of the sections, and what each says the test proves.
SECTIONS: tuple[tuple[str, str], ...] = (
    (
        "Faults: worker processes killed (kill -9)",
        "kill -9 of a random worker every few seconds (fleet of 2-4 real worker processes, redrawn "
        "after each kill) while no-op jobs flow. Every execution is recorded in Redis, so a job "
        "that ran twice is seen; lost = enqueued and never completed. Duplicates must be jobs the "
        "killed worker held (lease ZSET read right after each kill).",
    ),
    (
        "Faults: worker pods deleted with grace 0 (real node)",
        "On the one-node cluster of tests/e2e (kubelet, containerd, the built images): a random "
        "running worker pod force-deleted (grace 0) every 3-6 s while jobs flow. The image has "
        "no task recording executions, so re-runs are read from the protocol: completed jobs "
        "with attempts > 1 (claimed more than once), each of which must have been leased by a "
        "deleted pod.",
    ),
    (
        "Faults: worker containers killed (kill -9 of the host process, real node)",
        "On the one-node cluster: kill -9 of a busy worker container's init process, its host "
        "pid read from containerd (CRI labels, task list), not the API, every 1-3 s while jobs "
        "run. The kubelet restarts the container (restarts counted through the API); the killed "
        "worker never drains, so its jobs come back when their leases expire. The pods run the "
        "chaos task module from a ConfigMap, which records every execution: duplicated = jobs "
        "run twice, each of which must have been held (leased) by a killed worker.",
    ),
    (
        "Faults: managed Redis killed (kill -9 of its container, real node)",
        "The JobQueue's own Redis (StatefulSet, AOF on a local-path volume) killed with kill -9 "
        "of its container's host process under load from 4 clients through the JobQueue's API "
        "Service; the kubelet restarts it in the same pod on the same volume. Lost = "
        "acknowledged (202) and missing afterwards. While Redis is down the API pod turns "
        "unready and leaves the Service, so clients see refused connections (other_answers) "
        "or 503; later kills wait out the kubelet's restart back-off (10 s, 20 s). everysec: "
        "host_crash_* from an strace of the Redis process's fsyncs (attached on the host by "
        "pid): the acknowledged jobs written after the last completed fsync before each kill, "
        "what a power cut then would have lost (a process crash loses nothing).",
    ),
    (
        "Faults: worker pods and JobQueues deleted, a worker volume kept (real node)",
        "A worker `persistentVolumeClaim` volume on the default StorageClass (Rancher's "
        "local-path-provisioner): a job writes a file, the pod is deleted and the next pod's "
        "job reads it; the JobQueue deleted with Retain keeps claim, volume and file, and a new "
        "JobQueue of the same name reads it; deleted with Purge, the claim, the volume and its "
        "directory on the node are gone.",
    ),
    (
        "Faults: kubelet and containerd restarted under running pods (real node)",
        "The node's kubelet and containerd stopped (SIGTERM) and started again with their own "
        "command lines every 2 s while worker pods run the chaos task module: the containers "
        "live on in their shims, so no job may be lost or run twice, and the same pods must be "
        "Running and Ready again.",
    ),
    (
        "Faults: the operator upgraded with helm upgrade under load (real node)",
        "The operator installed with its Helm chart (its image built here) and upgraded with "
        "`helm upgrade` while a producer posts jobs through the API Service and the workers run "
        "the chaos task module; three schedules fire every minute. Each upgrade rolls the "
        "operator's pods (a new image tag; full: also replicaCount 1 -> 2 with peering, a pod "
        "annotation with 2 replicas, back to 1) and starts 4 s before a minute boundary, so "
        "fire times fall in the hand-over. Children keep their uids and generations, API and "
        "worker pods their uids and restart counts; every fire time since the JobQueue's "
        "creation has exactly one job, run once (a time missed while no operator ran is caught "
        "up: fire_lags); key_hits_absorbed: fires a second operator attempted and the "
        "idempotency key turned into no-ops (from the operator pods' logs); every old operator "
        "pod stops within its 30 s grace period (no SIGKILL, exit 137).",
    ),
    (
        "Faults: redis-server killed and restarted (AOF)",
        "SIGKILL of redis-server under load from 8 HTTP clients through a real API, 2 real "
        "workers; down a few seconds, then restarted from its AOF. Lost = acknowledged (202) and "
        "missing after the restart. host_crash_* (everysec): from an strace of the server's "
        "fsyncs, the acknowledged writes not yet fsynced at the kill, i.e. what a power cut "
        "at that moment would lose (a process crash loses nothing: the page cache survives).",
    ),
    (
        "Faults: poison job (kills its worker every time)",
        "A task that SIGKILLs its own worker process; a supervisor restarts workers like a "
        "kubelet. The job must reach the DLQ after 1 + maxRetries attempts, costing at most one "
        "process per attempt, while every other job completes.",
    ),
    (
        "Load: the API over capacity (backpressure)",
        "wrk (hundreds of connections, 10 s client timeout) against an API with MAX_QUEUE_DEPTH, "
        "fed by one slow worker. Capacity = the rate the deployment drains jobs; offered load is "
        "at least 10x that. Every accepted id is checked to exist and then to complete.",
    ),
    (
        "Faults: the operator killed (SIGKILL) mid-reconcile",
        "Random creates / multi-field changes / deletes of JobQueues, SIGKILL of the operator "
        "0-1.2 s later (and sometimes more changes while it is down), restart, then the cluster "
        "must match the model: exact children, controlled by the current JobQueue, every field "
        "of the last change applied, observedGeneration current, deleted ones gone.",
    ),
    (
        "Faults: kube-apiserver restarted under the operator",
        "kube-apiserver stopped (etcd and controllers keep running) and started on the same "
        "port; right after, children are deleted and JobQueues edited, created and deleted. The "
        "same operator process (resync set to 600 s, so only re-established watches count) "
        "repairs all of it.",
    ),
    (
        "Bad input: the HTTP API",
        "Hand-made bad requests (sizes, malformed and non-UTF-8 JSON, NaN/Infinity, nesting, "
        "content types, tokens, huge batches, bad fields and paths, broken HTTP on a raw socket), "
        "each checked against a full snapshot of the queue's Redis keys; then schemathesis from "
        "the OpenAPI document, the seeded queued jobs compared after every case.",
    ),
    (
        "Bad input: JobQueue manifests",
        "Invalid JobQueues sent to the real kube-apiserver (dry-run, strict field validation); "
        "each refused with the expected words. Missing Secrets: Degraded with a message naming "
        "the Secret, then recovered once it exists.",
    ),
    (
        "Security",
        "Known secret values searched (raw and base64) in every log line, Event, status, job "
        "record and /metrics of a full lifecycle; Pod Security restricted admission of every pod; "
        "rediss:// with a self-signed CA, locally and through the operator from a Secret.",
    ),
)

# Columns of the summary table: (title, keys whose values are summed).
SUMMARY: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kills", ("kills", "worker_deaths", "sigkills", "pods_deleted")),
    ("restarts", ("restarts", "container_restarts", "apiserver_restarts", "operator_starts")),
    ("jobs", ("jobs_enqueued", "acknowledged_202", "jobs", "accepted_ids")),
    ("lost", ("lost", "lost_acknowledged")),
    ("duplicated", ("duplicated",)),
    (
        "bad inputs tried",
        ("inputs_tried", "manifests_tried", "generated_cases", "cluster_side_cases"),
    ),
    ("bad inputs rejected", ("rejected_4xx", "refused_at_admission", "degraded_reported")),
    ("503 + Retry-After", ("n503", "refused_503")),
)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 or value != int(value) else f"{int(value)}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def _test_name(nodeid: str) -> str:
    return nodeid.split("::", 1)[-1]


def summary_row(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    totals = {title: 0.0 for title, _ in SUMMARY}
    for rec in records:
        values = rec["values"]
        for title, keys in SUMMARY:
            totals[title] += sum(_num(values.get(k)) for k in keys)
    return totals


def render(records: list[dict[str, Any]], meta: Mapping[str, Any]) -> str:
    """The whole RELIABILITY.md."""
    lines = [
        "# Reliability figures",
        "",
        "Generated by `make chaos` (`python -m tests.reliability`) from the figures the tests of",
        "tests/reliability record; do not edit by hand. The fast subset of the same tests runs in",
        "`make test`.",
        "",
        f"- run: {meta.get('when', '?')} ({meta.get('mode', '?')} sizes), commit "
        f"`{meta.get('commit', '?')}`, {meta.get('seconds', 0):.0f} s",
        f"- machine: {meta.get('machine', '?')}",
        f"- pytest: {meta.get('outcome', '?')}",
        "",
        "## Summary",
        "",
    ]
    passed = sum(1 for r in records if r["values"].get("outcome") == "passed")
    totals = summary_row(records)
    head = ["runs", "passed", *totals]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    cells = [str(len(records)), str(passed), *(_fmt(int(v)) for v in totals.values())]
    lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "runs: tests that recorded figures (the schemathesis cases record one total); kills: "
        "worker processes and containers (and managed Redis containers) SIGKILLed + pods "
        "deleted + poison deaths + operator SIGKILLs; restarts: redis-server, container "
        "(kubelet), kubelet, containerd and kube-apiserver restarts + operator starts; jobs: "
        "enqueued or accepted (202); bad "
        "inputs: hand-made HTTP requests, schemathesis cases, JobQueue manifests and missing "
        "Secrets, rejected = 4xx, refused at admission or reported Degraded (schemathesis cases "
        "are checked by its own checks, not counted as rejections); 503 + Retry-After: "
        "backpressure and Redis-outage answers."
    )
    known = {s for s, _ in SECTIONS}
    extra = sorted({r["section"] for r in records} - known)
    for section, blurb in [*SECTIONS, *((s, "") for s in extra)]:
        recs = [r for r in records if r["section"] == section]
        if not recs:
            continue
        lines += ["", f"## {section}", ""]
        if blurb:
            lines += [blurb, ""]
        for rec in recs:
            values = dict(rec["values"])
            outcome = values.pop("outcome", "?")
            lines += [f"**{_test_name(rec['test'])}**: {outcome}", ""]
            lines += ["| figure | value |", "|---|---|"]
            lines += [f"| {k} | {_fmt(v)} |" for k, v in values.items()]
            lines.append("")
    notes = meta.get("notes")
    if notes:
        lines += ["", "## Not run here, and why", "", *notes]
    return "\n".join(lines).rstrip() + "\n"


def read_records(path: Path) -> list[dict[str, Any]]:
    """The figures file, keeping the last record of each test (a rerun replaces a run)."""
    latest: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                latest[rec["test"]] = rec
    return list(latest.values())
