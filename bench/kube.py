"""The benchmarks' own local control plane (bench/.work/cluster), audit-logged, and our operator.

Its own state dir and ports, so it never touches a cluster `make cluster-up` or pytest runs.
The kube-apiserver writes an audit log (metadata only) of the requests made by the operator's
own user, which is how requests per minute are counted per client: apiserver_request_total
has no user or user-agent label.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Child, free_port
from bench.constants import AUDIT_CATCH_UP_S, REPO_DIR, WORK_DIR
from tests.cluster import binaries
from tests.cluster.controlplane import ControlPlane, Kube

log = logging.getLogger(__name__)

STATE_DIR = WORK_DIR / "cluster"
OPERATOR_USER = "jobqueue-operator-bench"
CRD_FILE = REPO_DIR / "crds" / "jobqueue.io_jobqueues.yaml"
AUDIT_POLICY = f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: ["{OPERATOR_USER}"]
- level: None
"""
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass
class Cluster:
    cp: ControlPlane
    kube: Kube
    audit_log: Path
    operator_kubeconfig: Path


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """A fresh control plane with the CRD installed; stopped (by pid file) afterwards."""
    binaries.ensure()
    old = ControlPlane.attach(STATE_DIR) if (STATE_DIR / "cluster.json").exists() else None
    if old is not None and old.running():
        old.stop()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    policy = STATE_DIR / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY)
    audit_log = STATE_DIR / "audit.log"
    audit_log.unlink(missing_ok=True)
    cp = ControlPlane(
        STATE_DIR,
        apiserver_args=(
            "--audit-policy-file",
            str(policy),
            "--audit-log-path",
            str(audit_log),
            "--audit-log-format",
            "json",
            "--audit-log-maxsize",
            "2000",
            "--audit-log-mode",
            "batch",
            "--audit-log-batch-max-wait",
            "1s",
            # One Service per JobQueue API: room for the operator bench's 5,000 (the default
            # /24 of the test clusters fills at ~250).
            "--service-cluster-ip-range",
            "10.0.0.0/16",
        ),
    )
    kube = cp.start()
    try:
        cert = cp.issue_client_cert("operator-bench", cn=OPERATOR_USER, orgs=("system:masters",))
        op_kc = cp.write_kubeconfig(STATE_DIR / "operator.kubeconfig", OPERATOR_USER, cert)
        kube.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
        wait_established(kube, "jobqueues.jobqueue.io")
        yield Cluster(cp, kube, audit_log, op_kc)
    finally:
        cp.stop()


def wait_established(kube: Kube, crd: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = kube.kubectl_json("get", "crd", crd)
        conds = (doc.get("status") or {}).get("conditions") or []
        if any(x["type"] == "Established" and x["status"] == "True" for x in conds):
            return
        time.sleep(0.2)
    raise TimeoutError(f"CRD {crd} not Established after {timeout} s")


def start_operator(c: Cluster, log_dir: Path, **env: str) -> Child:
    """`python -m jobqueue_operator` as its own user (for the audit log), quiet logs."""
    full = {
        "KUBECONFIG": str(c.operator_kubeconfig),
        "HEALTH_PORT": str(free_port()),
        "METRICS_PORT": str(free_port()),
        "LOG_LEVEL": "WARNING",
        "EVENT_LEVEL": "WARNING",
        **env,
    }
    return Child("operator", [sys.executable, "-m", "jobqueue_operator"], env=full, log_dir=log_dir)


def event_time(ev: dict[str, Any]) -> float:
    import datetime as dt

    stamp = ev["requestReceivedTimestamp"].replace("Z", "+00:00")
    return dt.datetime.fromisoformat(stamp).timestamp()


def audit_events(path: Path, since: float, until: float) -> list[dict[str, Any]]:
    """Audit events (ResponseComplete / ResponseStarted) received in [since, until), epoch s."""
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    with path.open() as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            t = event_time(ev)
            if since <= t < until and ev.get("stage") in ("ResponseComplete", "ResponseStarted"):
                if ev.get("stage") == "ResponseStarted" and ev.get("verb") != "watch":
                    continue
                out.append(ev)
    return out


def summarize(events: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    by = Counter(
        f"{e['verb']} {e.get('objectRef', {}).get('resource', '?')}"
        + (f"/{e['objectRef']['subresource']}" if e.get("objectRef", {}).get("subresource") else "")
        for e in events
    )
    writes = sum(1 for e in events if e["verb"] in WRITE_VERBS)
    per_min = 60.0 / seconds if seconds > 0 else 0.0
    return {
        "requests_per_min": len(events) * per_min,
        "writes_per_min": writes * per_min,
        "by_verb": ", ".join(f"{k}: {v}" for k, v in by.most_common(8)),
    }


def wait_audit_flush(path: Path | None = None, until: float | None = None) -> None:
    """Wait for the audit log to hold what was received before ``until`` (epoch s).

    Batch mode flushes every second when the apiserver keeps up, but under load its buffer
    lags by many seconds. Received-times are what the log orders by, so the log has caught
    up once it holds an event received at or after ``until`` (the operator's idle reads
    keep coming); without ``path``, or if none comes within AUDIT_CATCH_UP_S, just the
    flush interval."""
    time.sleep(2.5)  # batch mode flushes at most every second
    if path is None or until is None:
        return
    deadline = time.monotonic() + AUDIT_CATCH_UP_S
    while time.monotonic() < deadline:
        if audit_events(path, until, float("inf")):
            return
        time.sleep(1.0)
    log.warning("the audit log holds nothing received after %.0f: counting what it has", until)
