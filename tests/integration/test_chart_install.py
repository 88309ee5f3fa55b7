"""`helm install` into a real control plane, then the operator PROCESS run with nothing but the
chart's ServiceAccount token, through a whole JobQueue lifecycle: the chart's RBAC is proven
sufficient (any 403 in the operator's log fails the test) and shown to be narrow (`kubectl auth
can-i` as that ServiceAccount for things the operator must not do). Then `helm uninstall`.

The chart installs cluster-scoped objects (the CRD, a ClusterRole) and, with crds.keep=false,
uninstalling deletes the CRD and with it every JobQueue in the cluster; the cluster-wide
operator would also act on other tests' JobQueues. So this module runs its own control plane
(etcd + kube-apiserver + kube-controller-manager, ~10 s to start) instead of the shared `kube`.
There is no node: the operator's own pod stays Pending (it is admitted by Pod Security
"restricted", which is checked), and the operator runs here as a process with the env the
chart's Deployment gives it (only the two listen ports changed, to free ones).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import yaml

from jobqueue import JobSpec, Queue, connect
from tests.cluster import binaries
from tests.cluster.controlplane import ControlPlane, Kube, free_port
from tests.cluster.redis_server import RedisServer
from tests.integration import gateway_api
from tests.support import waiting
from tests.support.kube import apply
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.cluster

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "jobqueue-operator"
RELEASE, RELEASE_NS = "jq", "jq-system"
FULLNAME = f"{RELEASE}-jobqueue-operator"
SERVICE_ACCOUNT = f"system:serviceaccount:{RELEASE_NS}:{FULLNAME}"
CRD = "jobqueues.jobqueue.io"
FINALIZER = "jobqueue.io/finalizer"
CHILDREN = "deploy,sts,svc,secret,ingress,httproute,networkpolicy"
WAIT = 60.0
#: What in the operator's log means a call was refused: the API's 403 (any client), kopf's
#: "Not enough permissions" fallbacks, the Status reason.
FORBIDDEN = re.compile(r"\b403\b|forbidden|not enough permissions", re.IGNORECASE)


@dataclass(frozen=True)
class Mode:
    """One way to install: cluster-wide (the default values) or namespaced (watchNamespaces)."""

    name: str
    apps_ns: str
    namespaced: bool
    keep_crd: bool

    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = {"resyncIntervalSeconds": 5, "crds": {"keep": self.keep_crd}}
        if self.namespaced:
            values["watchNamespaces"] = [self.apps_ns]
        return values


# Cluster-wide first: it keeps the CRD on uninstall; the namespaced install then adopts that
# CRD (same release) and, with crds.keep=false, its uninstall deletes it.
MODES = [
    Mode("clusterwide", "apps-wide", namespaced=False, keep_crd=True),
    Mode("namespaced", "apps-ns", namespaced=True, keep_crd=False),
]


# -- plumbing ----------------------------------------------------------------------------------


def refused(operator: OperatorProcess) -> list[str]:
    """The operator's log lines about calls the API server refused."""
    return [line for line in operator.text().splitlines() if FORBIDDEN.search(line)]


CURRENT: OperatorProcess | None = None


def no_refusals(what: str) -> None:
    """Fail at once when the operator's log shows a refused call."""
    refused_calls = refused(CURRENT) if CURRENT is not None else []
    assert not refused_calls, f"refused while waiting for {what}:\n" + "\n".join(refused_calls)


def log_tail() -> str:
    return "--- log ---\n" + (CURRENT.text()[-6000:] if CURRENT else "")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    """`waiting.wait_for` that tolerates probe errors (a probe may race with creation /
    deletion), fails at once on a refused call and shows the operator's log tail on timeout."""
    return waiting.wait_for(
        what,
        probe,
        timeout,
        interval=0.25,
        tolerate=(Exception,),
        check=partial(no_refusals, what),
        diagnose=log_tail,
    )


def helm(kube: Kube, *args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(binaries.path("helm")), "--kubeconfig", str(kube.kubeconfig), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    return proc


def get(kube: Kube, kind: str, name: str, ns: str | None = None) -> dict[str, Any] | None:
    where = ["-n", ns] if ns else []
    out = kube.kubectl("get", kind, name, *where, "-o", "json", "--ignore-not-found").stdout
    return json.loads(out) if out.strip() else None


def names(kube: Kube, kinds: str, ns: str, selector: str) -> set[str]:
    out = kube.kubectl("get", kinds, "-n", ns, "-l", selector, "-o", "name").stdout
    return set(out.split())


def namespace(kube: Kube, name: str, **labels: str) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    apply(kube, body)


def token_kubeconfig(kube: Kube, path: Path) -> Path:
    """A kubeconfig holding only a TokenRequest token of the chart's ServiceAccount + the CA."""
    token = kube.kubectl("create", "token", FULLNAME, "-n", RELEASE_NS, "--duration=2h").stdout
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": kube.server,
                    "certificate-authority-data": cluster["cluster"]["certificate-authority-data"],
                },
            }
        ],
        "users": [{"name": "operator", "user": {"token": token.strip()}}],
        "contexts": [
            {
                "name": "operator",
                "context": {"cluster": "local", "user": "operator", "namespace": RELEASE_NS},
            }
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def can_i(kube: Kube, kubeconfig: Path, *args: str) -> bool:
    """`kubectl auth can-i ...` as whoever ``kubeconfig`` authenticates."""
    proc = subprocess.run(
        [str(kube.kubectl_path), "--kubeconfig", str(kubeconfig), "auth", "can-i", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), proc.stdout + proc.stderr
    return answer == "yes"


def operator_env(manifest: list[dict[str, Any]], kubeconfig: Path) -> dict[str, str]:
    """The env the chart's Deployment gives the operator container, plus the token kubeconfig;
    no in-cluster variables and no admin credentials leak in from this process."""
    (deployment,) = [d for d in manifest if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "JQ_"))}
    namespace = deployment["metadata"].get("namespace", RELEASE_NS)
    for item in container["env"]:
        source = item.get("valueFrom")
        if source == {"fieldRef": {"fieldPath": "metadata.namespace"}}:  # the downward API
            env[item["name"]] = namespace
            continue
        assert "value" in item, f"env {item['name']} is not a plain value: extend this test"
        env[item["name"]] = item["value"]
    env["HEALTH_PORT"], env["METRICS_PORT"] = str(free_port()), str(free_port())
    env["KUBECONFIG"] = str(kubeconfig)
    return env


def enqueue(url: str, queue: str, count: int) -> None:
    async def main() -> None:
        client = connect(url)
        try:
            await Queue(client, queue).enqueue_many([JobSpec(type="t") for _ in range(count)])
        finally:
            await client.aclose()

    asyncio.run(main())


def drain(url: str, queue: str, worker_id: str) -> int:
    """Claim and complete every ready job (a purge would also wipe the heartbeats)."""

    async def main() -> int:
        client = connect(url)
        try:
            q = Queue(client, queue)
            claimed = await q.claim(worker_id, 1000)
            done = await q.complete([(job.id, job.token, None) for job in claimed])
            assert all(done)
            return len(claimed)
        finally:
            await client.aclose()

    return asyncio.run(main())


def heartbeat(url: str, queue: str, workers: list[str]) -> None:
    """Idle heartbeats, as workers running in those pods would send (id = pod name)."""

    async def main() -> None:
        client = connect(url)
        try:
            for worker_id in workers:
                await Queue(client, queue).heartbeat(worker_id, busy=False, in_flight=0, ttl=120)
        finally:
            await client.aclose()

    asyncio.run(main())


def jobqueue(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "jobqueue.io/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def worker(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    deployment = get(kube, "deployment", f"{name}-worker", ns)
    assert deployment is not None
    return deployment


def worker_env(deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def jobqueue_events(kube: Kube, ns: str, name: str) -> list[str]:
    items = kube.kubectl_json("get", "events", "-n", ns)["items"]
    return [
        f"{e['reason']}: {e.get('message', '')}"
        for e in items
        if e["involvedObject"].get("kind") == "JobQueue" and e["involvedObject"]["name"] == name
    ]


def scaling_events(kube: Kube, ns: str, name: str) -> list[str] | None:
    """The JobQueue's Events once the autoscaler has posted both a scale-up and a scale-down."""
    events = jobqueue_events(kube, ns, name)
    reasons = {e.split(":", 1)[0] for e in events}
    return events if {"ScaledUp", "ScaledDown"} <= reasons else None


def absent(kube: Kube, kind: str, name: str, ns: str) -> bool:
    return get(kube, kind, name, ns) is None


def children_gone(kube: Kube, ns: str, name: str) -> bool:
    return not names(kube, f"{CHILDREN},pvc", ns, f"app.kubernetes.io/instance={name}")


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """A control plane of this module's own (see the module docstring)."""
    binaries.require((*binaries.CONTROL_PLANE_COMPONENTS, "helm"))
    plane = ControlPlane(tmp_path_factory.mktemp("chart-controlplane"), die_with_parent=True)
    try:
        kube = plane.start()
        gateway_api.install(kube)  # so the operator's HTTPRoute path runs too
        yield kube
    finally:
        plane.stop()


@pytest.fixture
def release(cluster: Kube) -> Iterator[None]:
    """Uninstalls what a failed test left installed, so one mode's failure is not the next's
    too (helm: 'cannot re-use a name that is still in use')."""
    yield
    helm(cluster, "uninstall", RELEASE, "-n", RELEASE_NS, "--ignore-not-found", "--wait")


# -- the test ----------------------------------------------------------------------------------


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", MODES, ids=[m.name for m in MODES])
@pytest.mark.usefixtures("release")
def test_install_then_operator_lifecycle_with_only_the_charts_rbac_then_uninstall(
    cluster: Kube, redis_server: RedisServer, tmp_path: Path, mode: Mode
) -> None:
    global CURRENT
    kube = cluster
    ns = mode.apps_ns
    namespace(kube, RELEASE_NS, **{"pod-security.kubernetes.io/enforce": "restricted"})
    namespace(kube, ns)
    namespace(kube, f"{ns}-other")

    # -- helm install -----------------------------------------------------------------------
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(mode.values()))
    installed = helm(kube, "install", RELEASE, CHART, "-n", RELEASE_NS, "-f", values)
    ns_flag = f"-n {ns} " if mode.namespaced else ""  # NOTES: the next command, where it works
    assert f"kubectl apply {ns_flag}-f examples/jobqueue-managed.yaml" in installed.stdout
    kube.wait_established(CRD)
    manifest = [
        d
        for d in yaml.safe_load_all(helm(kube, "get", "manifest", RELEASE, "-n", RELEASE_NS).stdout)
        if d
    ]
    # The operator's pod is admitted under Pod Security "restricted" (and stays Pending).
    pods = wait_for(
        "the operator pod",
        lambda: kube.kubectl_json("get", "pods", "-n", RELEASE_NS)["items"],
    )
    assert [p["status"]["phase"] for p in pods] == ["Pending"]

    # -- the operator, with the ServiceAccount's token only ---------------------------------
    kubeconfig = token_kubeconfig(kube, tmp_path / "operator.kubeconfig")
    whoami = subprocess.run(
        [str(kube.kubectl_path), "--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == SERVICE_ACCOUNT
    env = operator_env(manifest, kubeconfig)
    assert env["WATCH_NAMESPACES"] == (ns if mode.namespaced else "")
    CURRENT = operator = OperatorProcess(env, tmp_path / "operator.log")
    try:
        wait_for("the operator's /healthz", operator.healthy)
        lifecycle(kube, mode, redis_server)
        assert operator.proc.poll() is None, "the operator died during the lifecycle"
    finally:
        code = operator.stop()
        CURRENT = None
    log = operator.text()
    assert "jobqueue-operator started" in log
    refused_calls = refused(operator)
    assert not refused_calls, "calls refused by the chart's RBAC:\n" + "\n".join(refused_calls)
    assert code == 0, log[-4000:]

    # -- what the ServiceAccount may and may not do ------------------------------------------
    check_permissions(kube, kubeconfig, mode)

    # -- helm uninstall ---------------------------------------------------------------------
    helm(kube, "uninstall", RELEASE, "-n", RELEASE_NS, "--wait", "--timeout", "120s")
    for kind, name, where in [
        ("deployment", FULLNAME, RELEASE_NS),
        ("serviceaccount", FULLNAME, RELEASE_NS),
        ("service", f"{FULLNAME}-metrics", RELEASE_NS),
        ("clusterrole", FULLNAME, None),
        ("clusterrolebinding", FULLNAME, None),
        ("role", FULLNAME, ns),
        ("rolebinding", FULLNAME, ns),
    ]:
        assert get(kube, kind, name, where) is None, f"{kind} {name} left after uninstall"
    if mode.keep_crd:
        crd = get(kube, "crd", CRD)
        assert crd is not None, "crds.keep=true, yet the CRD went with the release"
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    else:
        kube.kubectl("wait", "--for=delete", f"crd/{CRD}", "--timeout=60s")
    kube.kubectl("delete", "namespace", ns, f"{ns}-other", "--wait=false")


def lifecycle(kube: Kube, mode: Mode, redis_server: RedisServer) -> None:
    """Create, update, scale (by hand, then by the autoscaler), a managed Redis, delete."""
    ns = mode.apps_ns
    url = redis_server.url
    queue = f"{ns}/emails"
    apply(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "redis-source", "namespace": ns},
            "stringData": {"url": url},
        },
        jobqueue(
            ns,
            "emails",
            {
                "redis": {"urlFrom": {"secretKeyRef": {"name": "redis-source", "key": "url"}}},
                "api": {
                    "ingress": {"host": "emails.example.com"},
                    "httpRoute": {"parentRefs": [{"name": "gw"}], "hostnames": ["emails.example"]},
                },
                "worker": {"concurrency": 2, "replicas": 1},
                "autoscaling": {"enabled": False},
                "deletionPolicy": "Purge",
            },
        ),
    )
    if mode.namespaced:  # one the operator must leave alone (and never get a 403 over)
        apply(kube, jobqueue(f"{ns}-other", "ignored", {"redis": {"url": url}}))

    # create: children, finalizer, status with Redis reachable
    children = {
        "deployment.apps/emails-api",
        "deployment.apps/emails-worker",
        "service/emails-api",
        "secret/emails-api",
        "secret/emails-worker",
        "ingress.networking.k8s.io/emails-api",
        "httproute.gateway.networking.k8s.io/emails-api",
    }
    selector = "app.kubernetes.io/instance=emails"
    wait_for("the children", lambda: children <= names(kube, CHILDREN, ns, selector))

    def reachable() -> dict[str, Any] | None:
        jq = get(kube, "jobqueue", "emails", ns)
        status = (jq or {}).get("status") or {}
        conds = {c["type"]: c["status"] for c in status.get("conditions") or []}
        return jq if conds.get("RedisReachable") == "True" else None

    jq = wait_for("status RedisReachable=True", reachable)
    assert FINALIZER in jq["metadata"]["finalizers"]
    assert jq["status"]["observedGeneration"] == jq["metadata"]["generation"]

    # update: concurrency and image reach the worker Deployment
    kube.kubectl(
        "patch", "jobqueue", "emails", "-n", ns, "--type=merge",
        "-p", json.dumps({"spec": {"worker": {"concurrency": 5, "image": "example.org/w:2"}}}),
    )  # fmt: skip
    wait_for(
        "the update on the worker Deployment",
        lambda: (
            worker_env(worker(kube, ns, "emails")).get("WORKER_CONCURRENCY") == "5"
            and worker(kube, ns, "emails")["spec"]["template"]["spec"]["containers"][0]["image"]
            == "example.org/w:2"
        ),
    )

    # scale by hand: the scale subresource of the JobQueue (autoscaling off)
    kube.kubectl("scale", "jobqueue/emails", "-n", ns, "--replicas=3")
    wait_for("3 workers", lambda: worker(kube, ns, "emails")["spec"]["replicas"] == 3)

    # scale by the autoscaler: jobs in Redis -> up (deployments/scale), empty -> down to zero,
    # annotating the (Pending) worker pods first (pods list/patch), with Events and status.
    autoscaling = {
        "enabled": True,
        "minReplicas": 0,
        "maxReplicas": 4,
        "targetJobsPerWorker": 1,
        "pollIntervalSeconds": 1,
        "scaleDownStabilizationSeconds": 0,
        "cooldownSeconds": 0,
    }
    kube.kubectl(
        "patch", "jobqueue", "emails", "-n", ns, "--type=merge",
        "-p", json.dumps({"spec": {"autoscaling": autoscaling}}),
    )  # fmt: skip
    enqueue(url, queue, 6)
    wait_for("4 workers (capped)", lambda: worker(kube, ns, "emails")["spec"]["replicas"] == 4)
    worker_pods = "app.kubernetes.io/instance=emails,app.kubernetes.io/component=worker"
    # (a stalled rolling update may hold pods of two ReplicaSets: count any, not exactly 4)
    pods = wait_for("worker pods", lambda: names(kube, "pods", ns, worker_pods))
    # Idle heartbeats from those pods, so the scale-down first annotates each as cheapest to
    # delete (pods patch; a 403 there blocks the scale-down), then the jobs done.
    pod_names = sorted(p.removeprefix("pod/") for p in pods)
    heartbeat(url, queue, pod_names)
    assert drain(url, queue, pod_names[0]) == 6
    wait_for("scale to zero", lambda: worker(kube, ns, "emails")["spec"]["replicas"] == 0)
    events = wait_for("the scaling events", partial(scaling_events, kube, ns, "emails"))
    assert any("from 4 to 0" in e for e in events), events

    # a managed Redis: StatefulSet, its claim (made by the StatefulSet controller), its
    # NetworkPolicy, Purge
    apply(
        kube,
        jobqueue(
            ns,
            "cache",
            {
                "redis": {"managed": {"storage": "1Gi", "networkPolicy": {"enabled": True}}},
                "api": {"enabled": False},
                "worker": {
                    "volumes": [
                        {
                            "name": "scratch",
                            "mountPath": "/scratch",
                            "persistentVolumeClaim": {"size": "1Gi"},
                        }
                    ]
                },
                "autoscaling": {"enabled": False},
                "deletionPolicy": "Purge",
            },
        ),
    )
    wait_for(
        "the managed Redis and its claim",
        lambda: (
            {
                "statefulset.apps/cache-redis",
                "networkpolicy.networking.k8s.io/cache-redis",
                "persistentvolumeclaim/data-cache-redis-0",
                "persistentvolumeclaim/cache-worker-scratch",
            }
            <= names(kube, "sts,pvc,networkpolicy", ns, "app.kubernetes.io/instance=cache")
        ),
    )

    # delete: children gone, finalizer removed, the claim and the Redis keys purged
    enqueue(url, queue, 2)
    client = redis.Redis.from_url(url)
    try:
        assert client.keys(f"jq:{{{queue}}}:*")
        kube.kubectl("delete", "jobqueue", "emails", "cache", "-n", ns, "--wait=false")
        for name in ("emails", "cache"):  # the finalizer ran and was removed
            wait_for(f"{name} gone", partial(absent, kube, "jobqueue", name, ns))
            wait_for(f"{name}'s children gone", partial(children_gone, kube, ns, name))
        assert client.keys(f"jq:{{{queue}}}:*") == [], "deletionPolicy Purge left Redis keys"
    finally:
        client.close()
    source = get(kube, "secret", "redis-source", ns)
    assert source is not None, "the source Secret is the user's: it stays"

    if mode.namespaced:
        ignored = get(kube, "jobqueue", "ignored", f"{ns}-other")
        assert ignored is not None and not ignored["metadata"].get("finalizers")
        assert not names(kube, "deploy", f"{ns}-other", "app.kubernetes.io/instance=ignored")
        kube.kubectl("delete", "jobqueue", "ignored", "-n", f"{ns}-other")


def check_permissions(kube: Kube, kubeconfig: Path, mode: Mode) -> None:
    """What the ServiceAccount can do, asked of the API server (SelfSubjectAccessReview)."""
    ns = mode.apps_ns

    def allowed(*args: str) -> bool:
        return can_i(kube, kubeconfig, *args)

    # Needed, so granted (in the namespace it serves).
    for args in [
        ("patch", "deployments.apps", "--subresource=scale"),
        ("patch", "jobqueues.jobqueue.io", "--subresource=status"),
        ("watch", "secrets"),
        ("create", "events"),
        ("delete", "persistentvolumeclaims"),
        ("create", "persistentvolumeclaims"),
    ]:
        assert allowed(*args, "-n", ns), f"cannot {' '.join(args)} in {ns}"
    assert allowed("watch", "customresourcedefinitions.apiextensions.k8s.io")

    # Never needed, so refused: no exec, no pod creation, no PUT, no RBAC or CRD writes, no
    # deleting JobQueues or namespaces, no ConfigMaps, nodes or tokens.
    for args in [
        ("delete", "namespaces"),
        ("create", "pods"),
        ("delete", "pods"),
        ("create", "pods", "--subresource=exec"),
        ("get", "configmaps"),
        ("update", "deployments.apps"),
        ("update", "secrets"),
        ("delete", "jobqueues.jobqueue.io"),
        ("create", "jobqueues.jobqueue.io"),
        ("create", "serviceaccounts", "--subresource=token"),
        ("create", "roles.rbac.authorization.k8s.io"),
        ("bind", "clusterroles.rbac.authorization.k8s.io"),
        ("escalate", "roles.rbac.authorization.k8s.io"),
        ("patch", "statefulsets.apps", "--subresource=scale"),
    ]:
        assert not allowed(*args, "-n", ns), f"may {' '.join(args)} in {ns}"
    for args in [
        ("list", "nodes"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
        ("patch", "clusterroles.rbac.authorization.k8s.io"),
    ]:
        assert not allowed(*args), f"may {' '.join(args)}"
    if mode.namespaced:
        # Nothing outside the watched namespace except reading CRDs and namespace names.
        assert allowed("list", "namespaces")
        for args in [
            ("get", "secrets", "-n", "kube-system"),
            ("list", "secrets", "--all-namespaces"),
            ("create", "deployments.apps", "-n", f"{ns}-other"),
            ("patch", "jobqueues.jobqueue.io", "-n", f"{ns}-other"),
        ]:
            assert not allowed(*args), f"may {' '.join(args)}"
    else:
        assert not allowed("list", "namespaces"), "cluster-wide kopf never lists namespaces"
