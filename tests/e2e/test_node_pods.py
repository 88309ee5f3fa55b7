"""The project's images run as real pods on the real node, without the operator: the API
behind a Service under Pod Security `restricted`, a worker that processes what the API
accepted, and pod networking (cluster DNS, Services through kube-proxy, Redis on the node)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.cluster import node
from tests.cluster.controlplane import KUBERNETES_SERVICE_IP, KubectlError
from tests.cluster.redis_server import RedisServer
from tests.e2e.helpers import (
    apply,
    cluster_ip,
    describe,
    http,
    restricted_deployment,
    restricted_namespace,
    service,
    wait_for,
    wait_ready_count,
    wait_service_answers,
)

pytestmark = [pytest.mark.node, pytest.mark.timeout(900)]

API_IMAGE = "localhost/jobqueue-api:dev"
WORKER_IMAGE = "localhost/jobqueue-worker:dev"


@dataclass(frozen=True)
class Workload:
    cluster: node.NodeCluster
    namespace: str
    queue: str
    api_ip: str


@pytest.fixture(scope="module")
def workload(node_cluster: node.NodeCluster, node_redis: RedisServer) -> Iterator[Workload]:
    """API (2 replicas) + Service and one worker, in a `restricted` namespace, on one queue."""
    kube = node_cluster.kube
    ns = restricted_namespace(kube, "pods")
    queue = f"{ns}/jobs"
    env = {"REDIS_URL": node_redis.url, "QUEUE_NAME": queue, "LOG_LEVEL": "INFO"}
    apply(
        kube,
        restricted_deployment(ns, "api", API_IMAGE, env=env, replicas=2),
        service(ns, "api"),
        restricted_deployment(ns, "worker", WORKER_IMAGE, env={**env, "POD_NAME": "worker"}),
    )
    try:
        wait_ready_count(kube, ns, "app=api", 2)
        wait_ready_count(kube, ns, "app=worker", 1)
    except BaseException:
        print(describe(kube, ns))
        raise
    api_ip = cluster_ip(kube, ns, "api")
    wait_service_answers(f"http://{api_ip}")
    yield Workload(node_cluster, ns, queue, api_ip)
    kube.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_api_pods_are_ready_with_probes_passing_under_restricted_pod_security(
    workload: Workload,
) -> None:
    kube = workload.cluster.kube
    pods = wait_ready_count(kube, workload.namespace, "app=api", 2)
    for pod in pods:
        assert pod["spec"]["nodeName"] == workload.cluster.node_name
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] and status["restartCount"] == 0, status
        pod_ip = ipaddress.ip_address(pod["status"]["podIP"])
        assert pod_ip in ipaddress.ip_network(workload.cluster.pod_cidr)
    # Pod Security is really enforced here: the same namespace refuses a root pod.
    with pytest.raises(KubectlError, match="violates PodSecurity"):
        kube.kubectl(
            "run", "rooted", "-n", workload.namespace, "--image", API_IMAGE,
            "--image-pull-policy=Never", "--overrides",
            '{"spec":{"securityContext":{"runAsUser":0}}}',
        )  # fmt: skip


def test_job_posted_to_the_api_service_is_processed_by_the_worker_pod(workload: Workload) -> None:
    base = f"http://{workload.api_ip}"
    status, body = http("POST", f"{base}/jobs", {"type": "email", "payload": {"to": "a@b.c"}})
    assert status == 202, body
    job_id = body["job_id"]

    def completed() -> dict[str, object] | None:
        code, job = http("GET", f"{base}/jobs/{job_id}")
        assert code == 200, job
        return job if job["status"] == "completed" else None

    job = wait_for(f"job {job_id} completed by the worker pod", completed, 60)
    assert job["result"] == {"sent": True, "to": "a@b.c"}
    assert job["attempts"] == 1


def test_pods_resolve_cluster_names_and_reach_services_and_the_node(workload: Workload) -> None:
    kube = workload.cluster.kube
    pod = kube.kubectl_json("get", "pods", "-n", workload.namespace, "-l", "app=api")["items"][0]
    script = f"""
import socket
print(socket.gethostbyname("api.{workload.namespace}.svc.cluster.local"))
print(socket.gethostbyname("kubernetes.default.svc.cluster.local"))
socket.create_connection(("{KUBERNETES_SERVICE_IP}", 443), timeout=5).close()
print("apiserver-reachable")
try:
    socket.gethostbyname("example.com")
    print("outside-name-resolved")
except OSError:
    print("outside-name-refused")
"""
    out = kube.kubectl(
        "exec", "-n", workload.namespace, pod["metadata"]["name"], "--",
        "python", "-c", script,
    ).stdout.split()  # fmt: skip
    assert out == [workload.api_ip, KUBERNETES_SERVICE_IP, "apiserver-reachable",
                   "outside-name-refused"]  # fmt: skip
