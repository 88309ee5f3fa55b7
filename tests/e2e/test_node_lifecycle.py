"""`up`, pods, `down`, twice: the node teardown leaves nothing on the machine (no mount, link,
network namespace, iptables rule, process, cgroup or changed sysctl) and the next `up` works."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cluster import binaries, images, node
from tests.e2e.helpers import apply, restricted_namespace, wait_for, wait_ready_count

pytestmark = [pytest.mark.node, pytest.mark.timeout(600)]

STATE_DIR = binaries.cache_dir() / "e2e-lifecycle"


def _pause_workload(cluster: node.NodeCluster) -> None:
    """Two pods of the pause image behind a Service: veths, netns, mounts, iptables rules."""
    kube = cluster.kube
    ns = restricted_namespace(kube, "cycle")
    labels = {"app": "pause"}
    apply(
        kube,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "pause", "namespace": ns},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65535,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "pause",
                                "image": images.PAUSE_IMAGE,
                                "imagePullPolicy": "Never",
                                "ports": [{"containerPort": 8080}],
                                "resources": {"limits": {"memory": "16Mi"}},
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "pause", "namespace": ns},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    wait_ready_count(kube, ns, "app=pause", 2)

    def service_rules() -> bool:
        save = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True)
        return f"{ns}/pause" in save.stdout

    wait_for("kube-proxy's rules for the Service", service_rules, 60)


def _diff(before: dict[str, object], after: dict[str, object]) -> str:
    return json.dumps({k: {"before": before[k], "after": after[k]}
                       for k in before if before[k] != after[k]}, indent=1)  # fmt: skip


def test_down_leaves_nothing_behind_and_up_works_again() -> None:
    # Holds the machine-wide node lock throughout: no other node comes or goes meanwhile.
    with node.machine_lock():
        _cycles(Path(STATE_DIR))


def _cycles(state_dir: Path) -> None:
    # A killed earlier session (this test's or the shared node's) leaves a dead node behind:
    # clear it. A live node of someone else's is theirs: fail rather than take it down.
    if node.has_node(state_dir):
        node.down(state_dir)
    try:
        node.claim_machine(state_dir)
    except node.NodeError as exc:
        pytest.fail(f"this test needs the machine to itself: {exc}")
    before = node.host_snapshot(state_dir)
    for cycle in (1, 2):
        cluster = node.up(state_dir, build_images=False)
        try:
            _pause_workload(cluster)
            during = node.host_snapshot(state_dir)
            assert during["mounts"], "pods running but nothing mounted: the check would be empty"
            assert "veth*" in during["links"]
            assert node.NODE_LINK in during["links"]
        finally:
            node.down(state_dir)
        after = node.host_snapshot(state_dir)
        assert after == before, f"cycle {cycle} left this behind:\n{_diff(before, after)}"
