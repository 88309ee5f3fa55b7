"""`make demo`, compact and non-interactive, on the real node: the operator installed with its
Helm chart, the two example JobQueues (managed Redis, and a Redis URL from a Secret), a burst
through the API Services, autoscaling up and back to the minimum, every job read back.

Runs `python -m demo --burst 200 --no-live` as a user would, in the e2e node cluster's state
dir: the demo finds the cluster running, so it reuses it and at the end removes only what it
added (its namespace, the Helm release, its redis-server).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from demo import constants as c
from tests.cluster import binaries, node
from tests.cluster.controlplane import REPO_ROOT

pytestmark = [pytest.mark.node, pytest.mark.timeout(420)]

BURST = 200


def test_demo_runs_to_its_summary_with_every_job_as_planned(
    node_cluster: node.NodeCluster, tmp_path: Path
) -> None:
    summary_json = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "demo", "--burst", str(BURST), "--no-live",
         "--state-dir", str(node_cluster.state_dir), "--summary-json", str(summary_json)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=360, check=False,
        env={**os.environ, "KEEP": "0"},
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "demo summary: PASSED" in out, out[-4000:]
    assert "node jq-node" in out, "the demo must say it runs on the node, not fall back"
    result = json.loads(summary_json.read_text())
    assert result["ok"] is True
    assert result["sent"] == BURST
    assert result["status"] == {"completed": BURST - 1, "dead": 1}, result
    assert result["retried"] >= 2  # the flaky jobs (one retry each) and the DLQ job
    assert result["wrong"] == [] and result["errors"] == []
    # Workers scaled up beyond the minimum and came back (the drain and settle times exist).
    assert result["peak_desired_workers"][c.MANAGED_QUEUE] > c.WORKER_BOUNDS[c.MANAGED_QUEUE][0]
    assert result["timings"]["drained"] is not None and result["timings"]["settled"] is not None
    assert result["scale_events"] >= 2  # a ScaledUp and a ScaledDown Event at least

    # The demo removed what it added and left the cluster it found.
    kube = node_cluster.kube
    assert kube.kubectl("get", "namespace", c.NAMESPACE, check=False).returncode != 0
    releases = subprocess.run(
        [str(binaries.path("helm")), "list", "-A", "-q"], env=kube.env(),
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert c.RELEASE not in releases
    assert kube.kubectl("get", "--raw", "/readyz").stdout == "ok"
