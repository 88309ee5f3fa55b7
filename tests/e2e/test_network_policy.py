"""The managed Redis' NetworkPolicy, really enforced on the real node (kube-router): with
`redis.managed.networkPolicy.enabled` the JobQueue's API and worker pods and the operator's pod
still reach the Redis (a job flows to completed, RedisReachable=True) while a pod of another
namespace and an unlabelled pod of the same namespace cannot open a TCP connection to it, by
Service or pod IP; `allowNamespaces` lets the other namespace in; with the policy disabled
(the NetworkPolicy pruned) the very same probe pods connect again, so the refusals come from
the enforcement, not from a broken probe.

The operator runs in-cluster, installed with its Helm chart (as `make demo` does), so its own
way through the policy (OPERATOR_NAMESPACE + OPERATOR_POD_LABELS from the chart) is tested
too. The managed Redis runs `localhost/jobqueue-redis:dev` (Debian's redis-server) on a local
PersistentVolume (this cluster has no provisioner).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.cluster import binaries, images, node
from tests.cluster.controlplane import REPO_ROOT, Kube
from tests.e2e.helpers import (
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

CRD = REPO_ROOT / "crds" / "jobqueue.io_jobqueues.yaml"
CHART = REPO_ROOT / "charts" / "jobqueue-operator"
NAME = "guarded"
REDIS = f"{NAME}-redis"
REDIS_PORT = 6379
LABELS = "app.kubernetes.io/name=jobqueue,app.kubernetes.io/instance=" + NAME
API = f"{LABELS},app.kubernetes.io/component=api"
WORKERS = f"{LABELS},app.kubernetes.io/component=worker"
REDIS_POD = f"{LABELS},app.kubernetes.io/component=redis"
STORAGE = "256Mi"
#: Connect timeout of one probe: a refused (REJECT) or dropped connection fails within it.
CONNECT_TIMEOUT = 3.0
#: A policy change reaches the node's iptables within kube-router's event-driven sync.
ENFORCE_TIMEOUT = 90.0
PROBE_SCRIPT = f"""
import json, socket, sys
out = {{}}
for host in sys.argv[2:]:
    try:
        socket.create_connection((host, int(sys.argv[1])), timeout={CONNECT_TIMEOUT}).close()
        out[host] = "connected"
    except OSError as e:
        out[host] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Setup:
    kube: Kube
    namespace: str  # the JobQueue's
    other: str  # another namespace with a probe pod
    operator_namespace: str
    release: str  # the chart's


def _helm(kube: Kube, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binaries.path("helm")), *args],
        env=kube.env(), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def _probe_pod(namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """A pod that idles (the worker image has python): probes run in it with kubectl exec."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": "localhost/jobqueue-worker:dev",
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", "import time; time.sleep(86400)"],
                    "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "5m"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def setup(node_cluster: node.NodeCluster) -> Iterator[Setup]:
    """Redis image imported; the operator installed with its chart (watching our namespace);
    probe pods in our namespace (unlabelled) and in another one."""
    kube = node_cluster.kube
    assert node.network_policy_enabled(), (
        f"{node.NETWORK_POLICY_ENV}=0: the node enforces no NetworkPolicy, nothing to test"
    )
    images.import_images([images.build_redis()], node_cluster.containerd_socket)
    ns = restricted_namespace(kube, "np")
    other = restricted_namespace(kube, "np-other")
    op_ns = restricted_namespace(kube, "np-op")
    release = f"np-{uuid.uuid4().hex[:6]}"
    # The CRD may be there from another test or the demo's release: take it over from crds/.
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kube.wait_established("jobqueues.jobqueue.io")
    values = {
        "image.repository": "localhost/jobqueue-operator",
        "image.tag": "dev",
        "image.pullPolicy": "Never",
        "apiImage.repository": "localhost/jobqueue-api",
        "apiImage.tag": "dev",
        "workerImage.repository": "localhost/jobqueue-worker",
        "workerImage.tag": "dev",
        "redisImage": images.REDIS_IMAGE.ref,
        "childImagePullPolicy": "Never",
        "resyncIntervalSeconds": "10",
        "crds.install": "false",
        "watchNamespaces[0]": ns,
    }
    # Strings stay strings (a tag "dev", a number-like name); booleans and numbers do not.
    sets = [
        arg
        for k, v in values.items()
        for arg in ("--set-string" if k.endswith(("tag", "Image")) else "--set", f"{k}={v}")
    ]
    try:
        proc = _helm(kube, "install", release, str(CHART), "--namespace", op_ns, *sets,
                     "--wait", "--timeout", "180s")  # fmt: skip
        assert proc.returncode == 0, (
            proc.stdout + proc.stderr + describe(kube, op_ns)
            + pod_logs(kube, op_ns, f"app.kubernetes.io/instance={release}")
        )  # fmt: skip
        apply(
            kube,
            _probe_pod(ns, "stranger", {"role": "probe"}),
            _probe_pod(other, "outsider", {"role": "probe"}),
        )
        wait_ready_count(kube, ns, "role=probe", 1, timeout=120)
        wait_ready_count(kube, other, "role=probe", 1, timeout=120)
        yield Setup(kube, ns, other, op_ns, release)
    finally:
        kube.kubectl("delete", "jobqueue", NAME, "-n", ns, "--timeout=120s", check=False)
        _helm(kube, "uninstall", release, "--namespace", op_ns, "--wait", "--timeout", "120s")
        for namespace in (ns, other, op_ns):
            kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        for namespace in (ns, other, op_ns):
            kube.kubectl("wait", "--for=delete", f"namespace/{namespace}", "--timeout=120s",
                         check=False)  # fmt: skip


def _jobqueue(namespace: str, *, enabled: bool, allow: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "jobqueue.io/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "redis": {
                "managed": {
                    "storage": STORAGE,
                    "networkPolicy": {"enabled": enabled, "allowNamespaces": allow},
                }
            },
            "api": {"replicas": 1},
            "worker": {"replicas": 1, "concurrency": 2},
            "autoscaling": {"enabled": False},
        },
    }


def _set_policy(s: Setup, *, enabled: bool, allow: list[str] | None = None) -> None:
    patch = {"spec": {"redis": {"managed": {"networkPolicy": {
        "enabled": enabled, "allowNamespaces": allow or []}}}}}  # fmt: skip
    s.kube.kubectl("patch", "jobqueue", NAME, "-n", s.namespace, "--type=merge",
                   "-p", json.dumps(patch))  # fmt: skip


def _policy(s: Setup) -> dict[str, Any] | None:
    proc = s.kube.kubectl("get", "networkpolicy", REDIS, "-n", s.namespace, "-o", "json",
                          check=False)  # fmt: skip
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _condition(s: Setup, kind: str) -> str | None:
    found = condition(s.kube.kubectl_json("get", "jobqueue", NAME, "-n", s.namespace), kind)
    return None if found is None else str(found["status"])


def _explain(s: Setup) -> str:
    kube = s.kube
    queue = kube.kubectl("get", "jobqueue", NAME, "-n", s.namespace, "-o", "yaml", check=False)
    rules = subprocess.run(
        ["iptables-save", "-t", "filter"], capture_output=True, text=True, check=False
    )
    operator = pod_logs(kube, s.operator_namespace, f"app.kubernetes.io/instance={s.release}")
    return "\n".join(
        [
            describe(kube, s.namespace, ("pods", "statefulsets", "networkpolicies", "pvc")),
            queue.stdout,
            "--- operator",
            operator[-3000:],
            "--- iptables",
            rules.stdout[-4000:],
        ]
    )


def _targets(s: Setup) -> list[str]:
    """The managed Redis' Service ClusterIP and its pod's IP. The pod is Ready (the kubelet's
    TCP probe from this machine passes), so a refusal is never kube-proxy's "no endpoints"."""
    pods = wait_ready_count(s.kube, s.namespace, REDIS_POD, 1, timeout=60)
    svc = s.kube.kubectl_json("get", "service", REDIS, "-n", s.namespace)["spec"]["clusterIP"]
    return [str(svc), str(pods[0]["status"]["podIP"])]


def _probe(s: Setup, namespace: str, pod: str, targets: list[str]) -> dict[str, str]:
    """From inside `pod`: host -> "connected" or the connect error."""
    proc = s.kube.kubectl("exec", "-n", namespace, pod, "--", "python", "-c", PROBE_SCRIPT,
                          str(REDIS_PORT), *targets, timeout=60)  # fmt: skip
    result: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _wait_probe(
    s: Setup, namespace: str, pod: str, targets: list[str], *, connects: bool
) -> dict[str, str]:
    """Probe until every target connects (or none does): policy changes take a moment."""
    last: dict[str, dict[str, str]] = {}

    def settled() -> bool:
        last["r"] = _probe(s, namespace, pod, targets)
        return all((v == "connected") == connects for v in last["r"].values())

    try:
        wait_for(f"{namespace}/{pod} {'reaching' if connects else 'refused by'} the Redis",
                 settled, ENFORCE_TIMEOUT)  # fmt: skip
    except BaseException:
        print(f"last probe of {namespace}/{pod}: {last.get('r')}\n{_explain(s)}")
        raise
    print(f"probe {namespace}/{pod} -> {last['r']}")  # the evidence, with pytest -s
    return last["r"]


@pytest.fixture(scope="module")
def guarded(setup: Setup) -> Setup:
    """The JobQueue with the policy enabled, its Redis, API and worker pods Running and Ready."""
    apply(setup.kube, _jobqueue(setup.namespace, enabled=True, allow=[]))
    try:
        wait_ready_count(setup.kube, setup.namespace, REDIS_POD, 1, timeout=240)
        wait_ready_count(setup.kube, setup.namespace, API, 1, timeout=180)
        wait_ready_count(setup.kube, setup.namespace, WORKERS, 1, timeout=180)
    except BaseException:
        print(_explain(setup))
        raise
    return setup


def test_policy_on_the_queue_still_works_and_the_operator_reaches_redis(guarded: Setup) -> None:
    s = guarded
    policy = wait_for("NetworkPolicy guarded-redis", lambda: _policy(s), 60)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    wait_for("RedisReachable=True (the operator pod through the policy)",
             lambda: _condition(s, "RedisReachable") == "True", 120)  # fmt: skip
    # Enforcement is on before the job goes through: the stranger is refused.
    _wait_probe(s, s.namespace, "stranger", _targets(s), connects=False)
    svc = s.kube.kubectl_json("get", "services", "-n", s.namespace, "-l", API)["items"]
    assert len(svc) == 1
    base = f"http://{svc[0]['spec']['clusterIP']}:{svc[0]['spec']['ports'][0]['port']}"
    wait_service_answers(base)
    status, body = http("POST", f"{base}/jobs", {"type": "email", "payload": {"to": "np@x.y"}})
    assert status == 202, body
    job_id = body["job_id"]

    def completed() -> dict[str, Any] | None:
        code, job = http("GET", f"{base}/jobs/{job_id}")
        assert code == 200, job
        return job if job["status"] == "completed" else None

    try:
        job = wait_for(f"job {job_id} completed", completed, 90)
    except BaseException:
        print(pod_logs(s.kube, s.namespace, WORKERS)[-3000:], _explain(s))
        raise
    assert job["result"] == {"sent": True, "to": "np@x.y"}
    assert _condition(s, "RedisReachable") == "True"


def test_pods_outside_the_queue_cannot_connect_to_redis(guarded: Setup) -> None:
    s = guarded
    _set_policy(s, enabled=True)
    wait_for("NetworkPolicy guarded-redis", lambda: _policy(s), 60)
    targets = _targets(s)
    stranger = _wait_probe(s, s.namespace, "stranger", targets, connects=False)
    outsider = _wait_probe(s, s.other, "outsider", targets, connects=False)
    for result in (stranger, outsider):
        assert set(result) == set(targets)
        # REJECT (refused) or a drop (timeout): never connected.
        refused = ("ConnectionRefusedError", "TimeoutError")
        assert all(v.startswith(refused) for v in result.values()), result


def test_allow_namespaces_lets_only_that_namespace_in(guarded: Setup) -> None:
    s = guarded
    _set_policy(s, enabled=True, allow=[s.other])
    wait_for("allowNamespaces in the NetworkPolicy",
             lambda: s.other in json.dumps(_policy(s) or {}), 60)  # fmt: skip
    targets = _targets(s)
    _wait_probe(s, s.other, "outsider", targets, connects=True)
    assert all(v != "connected" for v in _probe(s, s.namespace, "stranger", targets).values())


def test_without_the_policy_the_same_probes_connect(guarded: Setup) -> None:
    s = guarded
    _set_policy(s, enabled=False)
    wait_for("NetworkPolicy guarded-redis pruned", lambda: _policy(s) is None, 60)
    targets = _targets(s)
    assert _wait_probe(s, s.namespace, "stranger", targets, connects=True)
    assert _wait_probe(s, s.other, "outsider", targets, connects=True)
    # And back on: refused again (enforcement follows the policy both ways).
    _set_policy(s, enabled=True)
    wait_for("NetworkPolicy guarded-redis re-created", lambda: _policy(s), 60)
    _wait_probe(s, s.namespace, "stranger", targets, connects=False)
    _wait_probe(s, s.other, "outsider", targets, connects=False)
