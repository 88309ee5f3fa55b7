"""The operator on a real node: a JobQueue applied gives Running, Ready API and worker pods; a
job posted to the API Service is processed by a worker pod; scaling the workers changes the
running worker pods; deleting the JobQueue stops them all.

The operator runs as `python -m jobqueue_operator` on this machine against the node cluster's
kubeconfig (the chart's in-cluster install is tested with the chart); the pods it creates run
the locally built images on the node.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.cluster import node
from tests.cluster.redis_server import RedisServer
from tests.e2e.helpers import (
    Operator,
    apply,
    describe,
    http,
    pod_logs,
    restricted_namespace,
    wait_for,
    wait_ready_count,
    wait_service_answers,
)
from tests.support.kube import condition

pytestmark = [pytest.mark.node, pytest.mark.timeout(900)]

NAME = "emails"
API = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=api"
WORKERS = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=worker"
EVERYTHING = f"app.kubernetes.io/instance={NAME}"


@dataclass(frozen=True)
class Queue:
    cluster: node.NodeCluster
    namespace: str
    operator: Operator


@pytest.fixture(scope="module")
def jobqueue(
    node_cluster: node.NodeCluster, node_redis: RedisServer, operator: Operator
) -> Iterator[Queue]:
    """A JobQueue `emails` (1 API pod, 2 workers, autoscaling off) in a restricted namespace,
    its Redis URL in a Secret pointing at the redis-server on the node address."""
    kube = node_cluster.kube
    ns = restricted_namespace(kube, "jq")
    apply(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "redis-creds", "namespace": ns},
            "stringData": {"url": node_redis.url},
        },
        {
            "apiVersion": "jobqueue.io/v1alpha1",
            "kind": "JobQueue",
            "metadata": {"name": NAME, "namespace": ns},
            "spec": {
                "redis": {"urlFrom": {"secretKeyRef": {"name": "redis-creds", "key": "url"}}},
                "api": {"replicas": 1},
                "worker": {"replicas": 2, "concurrency": 4},
                "autoscaling": {"enabled": False},
            },
        },
    )
    yield Queue(node_cluster, ns, operator)
    kube.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _explain(q: Queue) -> str:
    kube = q.cluster.kube
    return (
        describe(kube, q.namespace)
        + "\n--- jobqueue\n"
        + kube.kubectl("get", "jobqueue", NAME, "-n", q.namespace, "-o", "yaml", check=False).stdout
        + "\n--- operator log\n"
        + q.operator.tail()
    )


def _ready(q: Queue, selector: str, count: int, timeout: float = 180.0) -> list[dict[str, Any]]:
    try:
        return wait_ready_count(q.cluster.kube, q.namespace, selector, count, timeout)
    except BaseException:
        print(_explain(q))
        raise


def _api_base(q: Queue) -> str:
    kube = q.cluster.kube
    services = kube.kubectl_json("get", "services", "-n", q.namespace, "-l", API)["items"]
    assert len(services) == 1, f"expected one API Service, got {len(services)}"
    spec = services[0]["spec"]
    base = f"http://{spec['clusterIP']}:{spec['ports'][0]['port']}"
    wait_service_answers(base)
    return base


def _condition(q: Queue, kind: str) -> str | None:
    found = condition(q.cluster.kube.kubectl_json("get", "jobqueue", NAME, "-n", q.namespace), kind)
    return None if found is None else str(found["status"])


def test_jobqueue_gives_running_ready_api_and_worker_pods(jobqueue: Queue) -> None:
    api = _ready(jobqueue, API, 1)
    workers = _ready(jobqueue, WORKERS, 2)
    for pod in [*api, *workers]:
        assert pod["spec"]["nodeName"] == jobqueue.cluster.node_name
        assert all(s["ready"] for s in pod["status"]["containerStatuses"])
    wait_for("the JobQueue's Ready condition", lambda: _condition(jobqueue, "Ready") == "True", 60)


def test_job_posted_to_the_api_service_is_processed_by_a_worker_pod(jobqueue: Queue) -> None:
    _ready(jobqueue, API, 1)
    _ready(jobqueue, WORKERS, 2)
    base = _api_base(jobqueue)
    status, body = http("POST", f"{base}/jobs", {"type": "email", "payload": {"to": "e2e@x.y"}})
    assert status == 202, body
    job_id = body["job_id"]

    def completed() -> dict[str, object] | None:
        code, job = http("GET", f"{base}/jobs/{job_id}")
        assert code == 200, job
        return job if job["status"] == "completed" else None

    try:
        job = wait_for(f"job {job_id} completed", completed, 90)
    except BaseException:
        print(pod_logs(jobqueue.cluster.kube, jobqueue.namespace, WORKERS)[-4000:])
        raise
    assert job["result"] == {"sent": True, "to": "e2e@x.y"}


def test_scaling_the_workers_changes_the_running_worker_pods(jobqueue: Queue) -> None:
    kube = jobqueue.cluster.kube
    _ready(jobqueue, WORKERS, 2)
    for replicas in (3, 1):
        kube.kubectl(
            "patch", "jobqueue", NAME, "-n", jobqueue.namespace, "--type=merge",
            "-p", f'{{"spec":{{"worker":{{"replicas":{replicas}}}}}}}',
        )  # fmt: skip
        _ready(jobqueue, WORKERS, replicas)


def test_deleting_the_jobqueue_stops_all_its_pods(jobqueue: Queue) -> None:
    kube = jobqueue.cluster.kube
    _ready(jobqueue, API, 1)
    t0 = time.monotonic()
    kube.kubectl("delete", "jobqueue", NAME, "-n", jobqueue.namespace, "--timeout=120s")
    wait_ready_count(kube, jobqueue.namespace, EVERYTHING, 0, timeout=120)
    left = kube.kubectl(
        "get", "deployments,services,secrets", "-n", jobqueue.namespace, "-l", EVERYTHING,
        "-o", "name",
    ).stdout.split()  # fmt: skip
    assert left == [], f"still there {time.monotonic() - t0:.0f} s after the delete: {left}"
