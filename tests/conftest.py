"""Shared pytest fixtures: a real control plane and redis-server per session, a queue per test,
and the real one-node cluster (used by tests/e2e and the real-node tests of tests/reliability).

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
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.cluster import binaries, images, node
from tests.cluster.controlplane import ControlPlane, Kube
from tests.cluster.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def queue_name() -> str:
    """A queue identity no other test uses, so tests share one server without interfering."""
    return f"test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """A real Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager).

    Started fresh for the session in a temp dir and stopped at the end, or, when env
    JQ_KUBECONFIG names the admin kubeconfig of a running cluster (`make cluster-up` then
    `eval "$(python -m tests.cluster env)"`), that cluster is used and left running.
    Fails (never skips) if a binary is not built: run `make binaries`.

    Yields a `tests.cluster.controlplane.Kube` (a stable interface):
      .kubeconfig: Path   admin kubeconfig (O=system:masters), certificates embedded
      .server: str        https://127.0.0.1:<port>
      .bin_dir: Path      kubectl, kube-apiserver, kubelet, ... of the pinned release
      .kubectl(*args, input=None, check=True, timeout=120) -> CompletedProcess[str]
                          raises KubectlError (stderr in its message) when check fails
      .kubectl_json(*args) -> parsed `kubectl ... -o json`
      .env() -> os.environ + KUBECONFIG + bin_dir first on PATH, for subprocesses
    Tests share it: create what you need in your own namespace.
    """
    binaries.require()
    reuse = os.environ.get("JQ_KUBECONFIG")
    if reuse:
        kube = Kube.from_kubeconfig(Path(reuse))
        kube.kubectl("get", "--raw", "/readyz")
        yield kube
        return
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"), die_with_parent=True)
    try:
        yield plane.start()
    finally:
        plane.stop()


E2E_STATE_DIR = Path(
    os.environ.get("JQ_E2E_STATE_DIR", binaries.cache_dir() / "e2e-cluster")
).resolve()


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
    built = [*images.build_all(), images.build_redis()]  # what node.up imports
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
