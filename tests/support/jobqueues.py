"""The operator's integration tests on the real control plane: one operator for a test module
(the `operator` fixture, watching ``jqop-*`` namespaces), a restricted namespace per test
(`ns`), JobQueue and Secret manifests, and reads of what the operator made (`get`,
`must_get`, `env_value`, ...). A module uses the fixtures by importing them
(``__all__ = ["crd", "ns", "operator"]``). No tests here."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from jobqueue_operator import constants as c

from tests.cluster.controlplane import Kube
from tests.cluster.procs import free_port
from tests.cluster.redis_server import RedisServer
from tests.support import waiting
from tests.support.kube import apply, install_jobqueue_crd
from tests.support.operator import OperatorProcess, start_operator

T = TypeVar("T")
WAIT = 60.0
RESYNC = 3.0
OPERATOR_NAMESPACE = "jq-system"
OPERATOR_POD_LABELS = "app.kubernetes.io/name=jobqueue-operator,app.kubernetes.io/instance=jq"
NS_PREFIX = "jqop-"
CHILD_KINDS = "deploy,svc,secret,sts,pvc"
SECRETS_NEVER_LOGGED = ("hunter22", "tok-s3cret")  # secret values the tests put in Secrets

_running: list[OperatorProcess] = []  # the operator of the current module, for log tails


def operator_tail() -> str:
    return "--- operator log tail ---\n" + (_running[-1].tail() if _running else "")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    """`waiting.wait_for` that tolerates probe errors (a probe may race with creation/deletion)
    and shows the operator's log tail on timeout."""
    return waiting.wait_for(
        what, probe, timeout, interval=0.2, tolerate=(Exception,), diagnose=operator_tail
    )


@pytest.fixture(scope="module")
def crd(kube: Kube) -> None:
    install_jobqueue_crd(kube)


@pytest.fixture(scope="module")
def operator(
    kube: Kube, crd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator for the module's tests; no secret value of theirs may reach its log."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    env = {
        "RESYNC_INTERVAL_SECONDS": str(RESYNC),
        "HEALTH_PORT": str(free_port()),
        "METRICS_PORT": str(free_port()),
        "DEFAULT_API_IMAGE": "localhost/jobqueue-api:test",
        "DEFAULT_WORKER_IMAGE": "localhost/jobqueue-worker:test",
        "DEFAULT_REDIS_IMAGE": "localhost/redis:test",
        "OPERATOR_NAMESPACE": OPERATOR_NAMESPACE,  # as the chart sets them in a pod
        "OPERATOR_POD_LABELS": OPERATOR_POD_LABELS,
    }
    running = start_operator(kube, f"{NS_PREFIX}*", log, env)
    _running.append(running)
    try:
        yield running
    finally:
        running.stop()
        _running.remove(running)
    leaked = [s for s in SECRETS_NEVER_LOGGED if s in running.text()]
    assert not leaked, f"secret values in the operator log: {leaked}"


@pytest.fixture
def ns(kube: Kube, operator: OperatorProcess) -> Iterator[str]:
    """A namespace enforcing Pod Security ``restricted``, watched by the operator; its
    JobQueues are deleted while the operator runs (their finalizer), then the namespace."""
    name = f"{NS_PREFIX}{uuid.uuid4().hex[:8]}"
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    apply(
        kube,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
    )
    yield name
    kube.kubectl("delete", "jq", "--all", "-n", name, "--wait=true", "--timeout=60s", check=False)
    kube.kubectl("delete", "namespace", name, "--wait=false")


# -- manifests and reads ------------------------------------------------------------------------


def get(kube: Kube, kind: str, ns: str, name: str) -> dict[str, Any] | None:
    out = kube.kubectl("get", kind, name, "-n", ns, "-o", "json", "--ignore-not-found").stdout
    return json.loads(out) if out.strip() else None


def must_get(kube: Kube, kind: str, ns: str, name: str) -> dict[str, Any]:
    return wait_for(f"{kind} {ns}/{name}", lambda: get(kube, kind, ns, name))


def secret(ns: str, name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "Opaque",
        "stringData": data,
    }


def jobqueue(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def admit(kube: Kube, ns: str, name: str, spec: dict[str, Any], *extra: str) -> Any:
    """`kubectl apply` of one JobQueue, its result returned whether admitted or refused (extra
    kubectl arguments in ``extra``, e.g. ``--dry-run=server``)."""
    body = json.dumps(jobqueue(ns, name, spec))
    return kube.kubectl("apply", *extra, "-f", "-", input=body, check=False)


def decode(obj: dict[str, Any], key: str) -> str:
    return base64.b64decode(obj["data"][key]).decode()


def container(workload: dict[str, Any]) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"]["containers"][0])


def env_value(workload: dict[str, Any], name: str) -> str | None:
    for item in container(workload).get("env", []):
        if item["name"] == name:
            return None if item.get("value") is None else str(item["value"])
    return None


def checksum(workload: dict[str, Any]) -> str:
    return str(
        workload["spec"]["template"]["metadata"]["annotations"][c.ANNOTATION_SECRET_CHECKSUM]
    )


def labelled(kube: Kube, ns: str, name: str, kinds: str = CHILD_KINDS) -> list[str]:
    out = kube.kubectl(
        "get", kinds, "-n", ns, "-l", f"{c.LABEL_INSTANCE}={name}", "-o", "name"
    ).stdout
    return out.split()


def children_ready(kube: Kube, ns: str, name: str, *, api: bool = True) -> bool:
    wanted = {f"deployment.apps/{name}-worker", f"secret/{name}-worker"}
    if api:
        wanted |= {f"deployment.apps/{name}-api", f"service/{name}-api", f"secret/{name}-api"}
    return wanted <= set(labelled(kube, ns, name, "deploy,svc,secret"))


def observed(kube: Kube, ns: str, name: str) -> dict[str, Any] | None:
    """The JobQueue once its status describes its current generation."""
    jq = get(kube, "jq", ns, name)
    if jq and (jq.get("status") or {}).get("observedGeneration") == jq["metadata"]["generation"]:
        return jq
    return None


def events_json(kube: Kube, ns: str) -> str:
    return str(kube.kubectl("get", "events", "-n", ns, "-o", "json").stdout)


def url_for(redis: RedisServer, db: int = 0) -> str:
    return f"redis://127.0.0.1:{redis.port}/{db}"


def pods_of(kube: Kube, ns: str, name: str) -> dict[str, int]:
    """The JobQueue's pods, counted by component."""
    items = kube.kubectl_json("get", "pods", "-n", ns, "-l", f"{c.LABEL_INSTANCE}={name}")["items"]
    counts: dict[str, int] = {}
    for pod in items:
        component = pod["metadata"]["labels"][c.LABEL_COMPONENT]
        counts[component] = counts.get(component, 0) + 1
    return counts
