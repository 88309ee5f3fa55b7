"""Operator scale: N JobQueues applied at once on the local control plane.

Measures the time from `kubectl apply --server-side` of N JobQueues to all of them Ready, the
operator's RSS (/proc), and the API requests it makes per minute while idle, counted from the
kube-apiserver's audit log of the operator's own user (writes reported separately: an idle
operator should make none). The JobQueues run workers only (api.enabled false), autoscaled
from 0 on a private redis-server, so no node is needed and Ready means: children applied,
Deployments as desired, Redis reachable.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import yaml

from bench import kube
from bench.common import Ctx, private_redis, proc_rss_bytes
from bench.constants import (
    OPERATOR_IDLE_WINDOW_FULL_S,
    OPERATOR_IDLE_WINDOW_QUICK_S,
    OPERATOR_QUEUES_FULL,
    OPERATOR_QUEUES_QUICK,
    OPERATOR_READY_TIMEOUT_S,
)

log = logging.getLogger(__name__)

NAMESPACE = "bench-scale"
QUIET_S = 15.0  # the idle window starts once the operator made no write for this long
QUIET_MAX_S = 180.0


def _wait_quiet(c: kube.Cluster, op: Any, ready_at: float) -> float:
    """Seconds after ready_at until the operator made no API write for QUIET_S."""
    deadline = time.monotonic() + QUIET_MAX_S
    while time.monotonic() < deadline:
        op.check()
        time.sleep(2.0)
        now = time.time()
        kube.wait_audit_flush(c.audit_log, now)
        writes = [
            e
            for e in kube.audit_events(c.audit_log, ready_at - 60, now)
            if e["verb"] in kube.WRITE_VERBS
        ]
        last = max((kube.event_time(e) for e in writes), default=ready_at)
        if now - last >= QUIET_S:
            return max(0.0, last - ready_at)
    return QUIET_MAX_S


def manifests(n: int, redis_url: str) -> str:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    ]
    for i in range(n):
        docs.append(
            {
                "apiVersion": "jobqueue.io/v1alpha1",
                "kind": "JobQueue",
                "metadata": {"name": f"q{i:04d}", "namespace": NAMESPACE},
                "spec": {
                    "redis": {"url": redis_url},
                    "api": {"enabled": False},
                    # Created at minReplicas (0); no stabilization/cooldown either, so no
                    # scale-down window can hold Ready back: Ready measures the operator.
                    "autoscaling": {
                        "enabled": True,
                        "minReplicas": 0,
                        "maxReplicas": 2,
                        "scaleDownStabilizationSeconds": 0,
                        "cooldownSeconds": 0,
                    },
                },
            }
        )
    return yaml.safe_dump_all(docs)


def _ready_count(c: kube.Cluster) -> tuple[int, int]:
    items = c.kube.kubectl_json("get", "jobqueues", "-n", NAMESPACE, timeout=120)["items"]
    ready = 0
    for it in items:
        conds = (it.get("status") or {}).get("conditions") or []
        if any(x.get("type") == "Ready" and x.get("status") == "True" for x in conds):
            ready += 1
    return ready, len(items)


def measure(c: kube.Cluster, n: int, idle_s: float, ctx: Ctx) -> dict[str, Any]:
    row: dict[str, Any] = {"queues": n}
    with private_redis() as redis_server:
        op = kube.start_operator(c, ctx.work / "logs")
        try:
            time.sleep(3)  # the operator is up and watching before the apply
            op.check()
            path = ctx.work / f"jobqueues-{n}.yaml"
            path.write_text(manifests(n, redis_server.url))
            t0 = time.monotonic()
            c.kube.kubectl("apply", "--server-side", "-f", str(path), timeout=900)
            row["apply_s"] = time.monotonic() - t0
            log.info("operator: applied %d JobQueues in %.1f s", n, row["apply_s"])
            deadline = t0 + OPERATOR_READY_TIMEOUT_S
            rss_peak = 0
            while True:
                op.check()
                rss_peak = max(rss_peak, proc_rss_bytes(op.pid))
                ready, _total = _ready_count(c)
                if ready >= n:
                    row["ready_s"] = time.monotonic() - t0
                    break
                if time.monotonic() > deadline:
                    row["ready_s"] = None
                    row["not_ready"] = n - ready
                    log.warning(
                        "operator: only %d/%d Ready after %.0f s",
                        ready,
                        n,
                        OPERATOR_READY_TIMEOUT_S,
                    )
                    break
                time.sleep(0.5)
            log.info("operator: %s s to all Ready", row.get("ready_s"))
            row["settled_s"] = _wait_quiet(c, op, time.time())
            log.info(
                "operator: no writes for %.0f s, %.1f s after all Ready", QUIET_S, row["settled_s"]
            )
            start = time.time()
            end_mono = time.monotonic() + idle_s
            while time.monotonic() < end_mono:
                op.check()
                rss_peak = max(rss_peak, proc_rss_bytes(op.pid))
                time.sleep(1.0)
            end = time.time()
            row["rss_mib"] = proc_rss_bytes(op.pid) / 2**20
            row["rss_peak_mib"] = rss_peak / 2**20
            kube.wait_audit_flush(c.audit_log, end)
            s = kube.summarize(kube.audit_events(c.audit_log, start, end), end - start)
            row["idle_window_s"] = end - start
            row["idle_requests_per_min"] = s["requests_per_min"]
            row["idle_writes_per_min"] = s["writes_per_min"]
            row["idle_by_verb"] = s["by_verb"]
            log.info("operator: idle %s", s)
        finally:
            op.stop(timeout=30)
            c.kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
    return row


def run(ctx: Ctx) -> dict[str, Any]:
    n = ctx.pick(OPERATOR_QUEUES_QUICK, OPERATOR_QUEUES_FULL)
    idle_s = ctx.pick(OPERATOR_IDLE_WINDOW_QUICK_S, OPERATOR_IDLE_WINDOW_FULL_S)
    with kube.cluster() as c:
        rows = [measure(c, n, idle_s, ctx)]
    method = [
        f"{n:,} JobQueues (workers only, autoscaled from 0, one private redis-server) applied "
        "with one `kubectl apply --server-side` on the benchmarks' own control plane (etcd, "
        "kube-apiserver, kube-controller-manager; no node). Ready = the operator's Ready "
        f"condition True on every one. Idle = a window starting once the operator made no API "
        f"write for {QUIET_S:.0f} s after all were Ready (`settled` says when its last write "
        "was); requests are counted from the kube-apiserver audit log of the operator's "
        "own user (watches counted when opened; the log is read once it has caught up, as "
        "the apiserver batches it). The worker Deployments are created at minReplicas (0) "
        "and handed to the autoscaler; stabilization and cooldown are 0 here. The operator "
        "runs with its default resync interval."
    ]
    return {"rows": rows, "method": method}
