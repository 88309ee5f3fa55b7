"""Small helpers of the end-to-end tests: manifests that pass Pod Security `restricted`,
apply / wait / read through the real kubectl, and HTTP to ClusterIPs from this machine."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import yaml

from tests.cluster.controlplane import Kube
from tests.support import waiting
from tests.support.operator import OperatorProcess

T = TypeVar("T")
Operator = OperatorProcess  # what the `operator` fixture (conftest.py) yields
POLL = 0.5


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 120.0) -> T:
    """`waiting.wait_for` polling every `POLL` seconds, 120 s by default."""
    return waiting.wait_for(what, probe, timeout, interval=POLL)


def apply(kube: Kube, *docs: Mapping[str, Any]) -> None:
    """Server-side apply of the given objects (one kubectl call)."""
    kube.kubectl(
        "apply",
        "--server-side",
        "--field-manager=e2e",
        "-f",
        "-",
        input=yaml.safe_dump_all([dict(d) for d in docs]),
    )


def restricted_namespace(kube: Kube, prefix: str = "e2e") -> str:
    """A fresh namespace enforcing Pod Security `restricted` (a non-compliant pod is refused)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    apply(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        },
    )
    return name


def restricted_deployment(
    namespace: str,
    name: str,
    image: str,
    *,
    env: Mapping[str, str],
    replicas: int = 1,
    probes: bool = True,
) -> dict[str, Any]:
    """A Deployment of one of our images as Pod Security `restricted` requires it: non-root,
    read-only root fs, all capabilities dropped, seccomp RuntimeDefault, a memory limit."""
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "ports": [{"name": "http", "containerPort": 8080}],
        "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if probes:
        container["readinessProbe"] = {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 2,
            "failureThreshold": 2,
        }
        container["livenessProbe"] = {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 5,
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 5,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        },
    }


def service(namespace: str, name: str, port: int = 80) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": "http"}]},
    }


def pods(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.kubectl_json("get", "pods", "-n", namespace, "-l", selector)[
        "items"
    ]
    return items


def is_running_ready(pod: Mapping[str, Any]) -> bool:
    """Running, every container ready (its readiness probe passed), not being deleted."""
    status = pod.get("status", {})
    if pod["metadata"].get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
    return conditions.get("Ready") == "True"


def running_ready(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    return [p for p in pods(kube, namespace, selector) if is_running_ready(p)]


def wait_ready_count(
    kube: Kube, namespace: str, selector: str, count: int, timeout: float = 180.0
) -> list[dict[str, Any]]:
    """Wait until exactly `count` pods match: all Running and Ready, none terminating."""

    def probe() -> list[dict[str, Any]] | None:
        every = pods(kube, namespace, selector)
        ready = [p for p in every if is_running_ready(p)]
        return ready if len(ready) == count and len(every) == count else None

    if count == 0:
        wait_for(f"no pods {selector} in {namespace}",
                 lambda: not pods(kube, namespace, selector), timeout)  # fmt: skip
        return []
    return wait_for(f"{count} running, ready pods {selector} in {namespace}", probe, timeout)


def cluster_ip(kube: Kube, namespace: str, name: str) -> str:
    ip: str = kube.kubectl_json("get", "service", name, "-n", namespace)["spec"]["clusterIP"]
    return ip


def http(method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    """One HTTP request from this machine; (status, parsed JSON body or text)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = int(r.status), r.read()
    except urllib.error.HTTPError as e:
        status, raw = int(e.code), e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_service_answers(base_url: str, path: str = "/readyz", timeout: float = 60.0) -> None:
    """Wait until a Service answers through kube-proxy: its rules follow the endpoints a
    moment after the pods turn Ready (until then its ClusterIP rejects connections)."""

    def answers() -> bool:
        try:
            return http("GET", f"{base_url}{path}", timeout=2)[0] == 200
        except OSError:
            return False

    wait_for(f"{base_url}{path} to answer 200 through kube-proxy", answers, timeout)


def pod_logs(kube: Kube, namespace: str, selector: str) -> str:
    proc = kube.kubectl("logs", "-n", namespace, "-l", selector, "--tail=-1", "--prefix",
                        check=False)  # fmt: skip
    return proc.stdout + proc.stderr


def describe(kube: Kube, namespace: str, kinds: Sequence[str] = ("pods", "deployments")) -> str:
    """For failure messages: what the cluster says about the namespace."""
    out = []
    for kind in kinds:
        out.append(kube.kubectl("describe", kind, "-n", namespace, check=False).stdout[-3000:])
    out.append(kube.kubectl("get", "events", "-n", namespace, check=False).stdout[-3000:])
    return "\n".join(out)
