"""`jobqueue --kube` on the real node: a JobQueue reached by name through the Kubernetes API
(kubectl port-forward to its API Service), the token read from the Secret its spec names, so
`jobqueue --kube -n <ns> stats emails` needs nothing but a kubeconfig."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster import node
from tests.cluster.redis_server import RedisServer
from tests.e2e.helpers import Operator, apply, restricted_namespace, wait_for, wait_ready_count

pytestmark = [pytest.mark.node, pytest.mark.timeout(600)]

NAME = "emails"
API = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=api"
WORKERS = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=worker"
JOBQUEUE = Path(sys.executable).parent / "jobqueue"  # the console script `make setup` installs


@dataclass(frozen=True)
class Target:
    cluster: node.NodeCluster
    namespace: str

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`jobqueue --kube -n <ns> <args>` with the cluster's kubeconfig and kubectl on PATH."""
        kube = self.cluster.kube
        argv = [str(JOBQUEUE), "--kube", "-n", self.namespace, *args]
        env = {k: v for k, v in kube.env().items() if not k.startswith("JOBQUEUE_")}
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    def ok(self, *args: str) -> str:
        done = self.cli(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def target(
    node_cluster: node.NodeCluster, node_redis: RedisServer, operator: Operator
) -> Iterator[Target]:
    """A JobQueue `emails` whose API wants a token (from a Secret), one API pod, one worker."""
    kube = node_cluster.kube
    ns = restricted_namespace(kube, "cli")
    apply(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "redis-creds", "namespace": ns},
            "stringData": {"url": node_redis.url},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "api-token", "namespace": ns},
            "stringData": {"token": "e2e-cli-token"},
        },
        {
            "apiVersion": "jobqueue.io/v1alpha1",
            "kind": "JobQueue",
            "metadata": {"name": NAME, "namespace": ns},
            "spec": {
                "redis": {"urlFrom": {"secretKeyRef": {"name": "redis-creds", "key": "url"}}},
                "api": {
                    "replicas": 1,
                    "authTokenSecretRef": {"name": "api-token", "key": "token"},
                },
                "worker": {"replicas": 1, "concurrency": 2},
                "autoscaling": {"enabled": False},
            },
        },
    )
    wait_ready_count(kube, ns, API, 1)
    wait_ready_count(kube, ns, WORKERS, 1)
    yield Target(node_cluster, ns)
    kube.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_stats_enqueue_get_and_workers_through_the_kubernetes_api(target: Target) -> None:
    stats = target.ok("stats", NAME).splitlines()
    assert stats[0].split()[:2] == ["QUEUE", "POOL"]
    assert any(line.startswith(f"{target.namespace}/{NAME}") for line in stats[1:]), stats

    job_id = target.ok("enqueue", NAME, "email", '{"to": "kube@example.com"}').strip()
    wait_for(
        "the job completed by the worker pod",
        lambda: json.loads(target.ok("--json", "get", NAME, job_id))["status"] == "completed",
        60,
    )
    rows = target.ok("workers", NAME).splitlines()
    assert len(rows) == 2, rows  # the header and the one worker pod
    assert target.ok("dlq", "ls", NAME).splitlines()[-1] == "0 dead"


def test_the_api_image_serves_the_dashboard(target: Target) -> None:
    """The image ships the dashboard's files (read through the API server's service proxy)."""
    base = f"/api/v1/namespaces/{target.namespace}/services/{NAME}-api:80/proxy/ui"
    kube = target.cluster.kube
    page = kube.kubectl("get", "--raw", f"{base}/").stdout
    assert "<title>jobqueue</title>" in page and 'src="app.js"' in page
    script = kube.kubectl("get", "--raw", f"{base}/api.js").stdout
    assert "export async function followEvents" in script


def test_a_wrong_token_or_name_is_a_clear_error(target: Target) -> None:
    wrong = target.cli("--token", "nope", "stats", NAME)
    assert wrong.returncode == 1 and "401" in wrong.stderr
    missing = target.cli("stats", "no-such-queue")
    assert missing.returncode == 1
    assert "no-such-queue" in missing.stderr and "NotFound" in missing.stderr
