"""Fixtures of the end-to-end tests: a real one-node cluster (control plane + kubelet +
containerd + kube-proxy + CoreDNS) running the project's images, and a Redis pods can reach.

`node_cluster` starts everything once per session in $JQ_E2E_STATE_DIR (default
~/.cache/jobqueue-operator/e2e-cluster: containerd's image store survives between sessions, so a
warm start imports nothing), tears it down at the end and fails the session if the teardown
left anything behind. With JQ_KUBECONFIG naming the kubeconfig of a running node cluster
(`make cluster-up NODE=1`, then `eval "$(.venv/bin/python -m tests.cluster env)"`), that one is
used and left running. Nothing here ever skips: a missing binary or package is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import binaries, images, node
from tests.cluster.controlplane import REPO_ROOT, Kube, free_port
from tests.cluster.redis_server import RedisServer
from tests.e2e.helpers import Operator, http, wait_for

E2E_STATE_DIR = Path(
    os.environ.get("JQ_E2E_STATE_DIR", binaries.cache_dir() / "e2e-cluster")
).resolve()
#: Modules that bring up and tear down nodes of their own: they run before the shared one.
OWN_NODE_MODULES = ("test_node_lifecycle.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the lifecycle test (its own up/down cycles) before the shared node starts."""
    items.sort(key=lambda item: item.path.name not in OWN_NODE_MODULES)


def _reuse(kubeconfig: Path) -> node.NodeCluster:
    kube = Kube.from_kubeconfig(kubeconfig)
    kube.kubectl("get", "--raw", "/readyz")
    state_dir = kubeconfig.resolve().parent
    socket = node.NodePaths(state_dir / "node").containerd_socket
    if not socket.exists():
        pytest.fail(
            f"JQ_KUBECONFIG={kubeconfig} is a cluster without a node (no {socket}): "
            "start one with `make cluster-up NODE=1`"
        )
    ready = kube.kubectl_json("get", "node", node.NODE_NAME)["status"]["conditions"]
    if not any(c["type"] == "Ready" and c["status"] == "True" for c in ready):
        pytest.fail(f"node {node.NODE_NAME} of {kubeconfig} is not Ready: {json.dumps(ready)}")
    built = images.build_all()
    images.import_images(built, socket)
    return node.NodeCluster(kube, state_dir, images=tuple(b.ref for b in built))


@pytest.fixture(scope="session")
def node_cluster() -> Iterator[node.NodeCluster]:
    """Control plane (bound on the node address) + scheduler + the real node + all images.

    Yields a `tests.cluster.node.NodeCluster`: .kube (the admin `Kube`), .node_name,
    .node_address (10.200.0.1, where pods reach this machine), .pod_cidr, .images.
    """
    reuse = os.environ.get("JQ_KUBECONFIG")
    if reuse:
        yield _reuse(Path(reuse))
        return
    binaries.require(node.NODE_COMPONENTS)
    # The machine-wide lock around each snapshot and the up / down next to it, so another
    # program's node cannot come or go in between.
    with node.machine_lock():
        if node.has_node(E2E_STATE_DIR):  # a session that was killed before its teardown
            node.down(E2E_STATE_DIR)
        before = node.host_snapshot(E2E_STATE_DIR)
        cluster = node.up(E2E_STATE_DIR)
    try:
        yield cluster
    finally:
        with node.machine_lock():
            node.down(E2E_STATE_DIR)
            after = node.host_snapshot(E2E_STATE_DIR)
    left = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not left, f"the node teardown left something behind: {json.dumps(left, indent=1)}"


@pytest.fixture(scope="session")
def node_redis(node_cluster: node.NodeCluster) -> Iterator[RedisServer]:
    """A real redis-server bound on the node address: reachable from pods and from here."""
    server = RedisServer(bind=node_cluster.node_address).start()
    yield server
    server.cleanup()


CRD = REPO_ROOT / "crds" / "jobqueue.io_jobqueues.yaml"


def _deleting(kube: Kube) -> list[str]:
    items = json.loads(kube.kubectl("get", "jobqueues", "-A", "-o", "json").stdout)["items"]
    return [
        f"{jq['metadata']['namespace']}/{jq['metadata']['name']}"
        for jq in items
        if jq["metadata"].get("deletionTimestamp")
    ]


@pytest.fixture(scope="module")
def operator(
    node_cluster: node.NodeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """The CRD installed and the operator running (cluster-wide) until the module ends."""
    kube = node_cluster.kube
    # The same CRD may already be there from the chart (Helm keeps CRDs): take it over.
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kube.kubectl("wait", "--for=condition=Established", "crd/jobqueues.jobqueue.io",
                 "--timeout=60s")  # fmt: skip
    health = free_port()
    env = {
        **kube.env(),
        "HEALTH_PORT": str(health),
        "METRICS_PORT": str(free_port()),
        "DEFAULT_API_IMAGE": "localhost/jobqueue-api:dev",
        "DEFAULT_WORKER_IMAGE": "localhost/jobqueue-worker:dev",
        "IMAGE_PULL_POLICY": "IfNotPresent",
        "RESYNC_INTERVAL_SECONDS": "10",
        "LOG_LEVEL": "INFO",
    }
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobqueue_operator"],
            env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    op = Operator(proc, log)

    def healthy() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"the operator exited with {proc.returncode}:\n{op.tail()}")
        try:
            return http("GET", f"http://127.0.0.1:{health}/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    try:
        wait_for("the operator's /healthz", healthy, 60)
        yield op
        # A module's namespaces are deleted without waiting; their JobQueues carry the
        # operator's finalizer, so let it finish them rather than leave namespaces terminating
        # forever on the shared control plane.
        wait_for("JobQueues being deleted to be finalized", lambda: not _deleting(kube), 120)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
