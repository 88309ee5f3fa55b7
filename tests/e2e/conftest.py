"""Fixtures of the end-to-end tests: the operator running against the real one-node cluster.

The node itself (`node_cluster`, `node_redis`) is a session fixture of tests/conftest.py, so the
real-node tests of tests/reliability share the one node of a `pytest tests` session.
Nothing here ever skips: a missing binary or package is a failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.cluster import node
from tests.cluster.controlplane import Kube, free_port
from tests.e2e.helpers import Operator, wait_for
from tests.support.operator import start_operator

#: Modules that bring up and tear down nodes of their own: they run before the shared one.
OWN_NODE_MODULES = ("test_node_lifecycle.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the lifecycle test (its own up/down cycles) before the shared node starts."""
    items.sort(key=lambda item: item.path.name not in OWN_NODE_MODULES)


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
    # The same CRD may already be there from the chart (Helm keeps CRDs): start_operator's
    # server-side apply takes it over.
    env = {
        "HEALTH_PORT": str(free_port()),
        "METRICS_PORT": str(free_port()),
        "DEFAULT_API_IMAGE": "localhost/jobqueue-api:dev",
        "DEFAULT_WORKER_IMAGE": "localhost/jobqueue-worker:dev",
        "IMAGE_PULL_POLICY": "IfNotPresent",
        "RESYNC_INTERVAL_SECONDS": "10",
    }
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    op = start_operator(kube, "", log, env)  # "": every namespace
    try:
        yield op
        # A module's namespaces are deleted without waiting; their JobQueues carry the
        # operator's finalizer, so let it finish them rather than leave namespaces terminating
        # forever on the shared control plane.
        wait_for("JobQueues being deleted to be finalized", lambda: not _deleting(kube), 120)
    finally:
        op.stop()
