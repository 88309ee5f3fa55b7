"""Kubernetes side of the reliability suite: a direct HTTPS client for the kube-apiserver
(one TLS connection, no kubectl process per call), the operator as a killable process, and
the checks of a JobQueue's children. No tests here."""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import ssl
import tempfile
import urllib.parse
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from jobqueue_operator import constants as c

from tests.cluster.controlplane import Kube
from tests.cluster.redis_server import free_port
from tests.reliability.support import SOURCE_PATH, http_get_text, wait_until
from tests.support.kube import condition as condition  # re-exported: the chaos tests use it
from tests.support.operator import OperatorProcess, operator_env

GROUP_PATH = f"/apis/{c.GROUP}/{c.VERSION}"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
CHILD_LISTS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "Service": "/api/v1/namespaces/{ns}/services",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
}


class KubeHttp:
    """Raw REST calls with the admin client certificate; reconnects when the server restarts."""

    def __init__(self, kube: Kube) -> None:
        doc = yaml.safe_load(kube.kubeconfig.read_text())
        context = next(x for x in doc["contexts"] if x["name"] == doc["current-context"])
        cluster = next(x for x in doc["clusters"] if x["name"] == context["context"]["cluster"])
        user = next(x for x in doc["users"] if x["name"] == context["context"]["user"])["user"]
        url = urllib.parse.urlsplit(cluster["cluster"]["server"])
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 443
        self._dir = Path(tempfile.mkdtemp(prefix="jq-kubehttp-"))
        for name, key in (("ca", "certificate-authority-data"),):
            (self._dir / f"{name}.pem").write_bytes(base64.b64decode(cluster["cluster"][key]))
        (self._dir / "cert.pem").write_bytes(base64.b64decode(user["client-certificate-data"]))
        (self._dir / "key.pem").write_bytes(base64.b64decode(user["client-key-data"]))
        self.ctx = ssl.create_default_context(cafile=str(self._dir / "ca.pem"))
        self.ctx.load_cert_chain(str(self._dir / "cert.pem"), str(self._dir / "key.pem"))
        self._conn: http.client.HTTPSConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, context=self.ctx, timeout=timeout
                )
            try:
                self._conn.request(method, path, body=data, headers=headers)
                resp = self._conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
                continue
            try:
                return resp.status, json.loads(raw) if raw else None
            except ValueError:
                return resp.status, raw.decode(errors="replace")
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- conveniences
    def get(self, path: str) -> Any | None:
        status, body = self.request("GET", path)
        if status == 404:
            return None
        assert status == 200, (status, body)
        return body

    def must(self, method: str, path: str, body: Any = None, ctype: str = "application/json"):
        status, answer = self.request(method, path, body, ctype)
        assert 200 <= status < 300, (method, path, status, answer)
        return answer

    def jq_path(self, ns: str, name: str = "") -> str:
        base = f"{GROUP_PATH}/namespaces/{ns}/{c.PLURAL}"
        return f"{base}/{name}" if name else base

    def create_jq(self, ns: str, name: str, spec: dict[str, Any], dry_run: bool = False):
        query = "?fieldValidation=Strict" + ("&dryRun=All" if dry_run else "")
        body = {
            "apiVersion": c.API_VERSION,
            "kind": c.KIND,
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }
        return self.request("POST", self.jq_path(ns) + query, body)

    def patch_jq(self, ns: str, name: str, patch: dict[str, Any]) -> Any:
        return self.must("PATCH", self.jq_path(ns, name), patch, "application/merge-patch+json")

    def delete(self, path: str) -> int:
        status, _ = self.request("DELETE", path)
        return status

    def namespace(self, prefix: str, labels: dict[str, str] | None = None) -> str:
        name = f"{prefix}{uuid.uuid4().hex[:8]}"
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}},
        }
        self.must("POST", "/api/v1/namespaces", body)
        return name

    def secret(self, ns: str, name: str, data: dict[str, str]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": name, "namespace": ns},
            "stringData": data,
        }
        status, answer = self.request("POST", f"/api/v1/namespaces/{ns}/secrets", body)
        if status == 409:
            path = f"/api/v1/namespaces/{ns}/secrets/{name}"
            self.must("PUT", path, {**body, "data": None})
            return
        assert status == 201, answer

    def items(self, path: str) -> list[dict[str, Any]]:
        return list(self.must("GET", path)["items"])

    def events(self, ns: str | None = None) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{ns}/events" if ns else "/api/v1/events"
        return self.items(path)


# ---------------------------------------------------------------------------------------------
# The operator process


@dataclass
class OperatorProc:
    """The operator (tests/support/operator.py's `OperatorProcess`) against the test cluster,
    restartable: kill -9 and start again, its output appended to one log."""

    kube: Kube
    workdir: Path
    watch: str
    resync: float = 3.0
    log_level: str = "INFO"
    extra_env: dict[str, str] = field(default_factory=dict)
    process: OperatorProcess | None = None
    starts: int = 0
    health_port: int = 0
    metrics_port: int = 0

    def start(self) -> OperatorProc:
        self.health_port, self.metrics_port = free_port(), free_port()
        env = {
            "RESYNC_INTERVAL_SECONDS": str(self.resync),
            "HEALTH_PORT": str(self.health_port),
            "METRICS_PORT": str(self.metrics_port),
            "LOG_LEVEL": self.log_level,
            "DEFAULT_API_IMAGE": "localhost/jobqueue-api:test",
            "DEFAULT_WORKER_IMAGE": "localhost/jobqueue-worker:test",
            "DEFAULT_REDIS_IMAGE": "localhost/redis:test",
            "PYTHONPATH": os.pathsep.join(SOURCE_PATH),  # this checkout's code
            **self.extra_env,
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        settings = operator_env(self.kube, self.watch, env)
        self.process = OperatorProcess(settings, self.workdir / "operator.log")
        self.starts += 1
        self.process.wait_healthy()
        return self

    def metrics(self) -> str:
        return http_get_text(f"http://127.0.0.1:{self.metrics_port}/metrics")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(20)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.proc.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.proc.poll() is None

    def logs(self) -> str:
        return self.process.text() if self.process else ""

    def tail(self) -> str:
        return f"--- operator log tail ---\n{self.logs()[-5000:]}"


# ---------------------------------------------------------------------------------------------
# A JobQueue's children


def labelled_children(api: KubeHttp, ns: str) -> list[dict[str, Any]]:
    """Every object in ``ns`` the operator manages (by the managed-by label)."""
    selector = urllib.parse.quote(f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}")
    out: list[dict[str, Any]] = []
    for kind, path in CHILD_LISTS.items():
        for item in api.items(path.format(ns=ns) + f"?labelSelector={selector}"):
            item["kind"] = kind
            out.append(item)
    return out


def env_of(workload: dict[str, Any]) -> dict[str, str | None]:
    container = workload["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def wait_settled(what: str, probe: Any, timeout: float = 90.0, on_fail: Any = None) -> Any:
    return wait_until(what, probe, timeout=timeout, interval=0.3, on_fail=on_fail or (lambda: ""))


# ---------------------------------------------------------------------------------------------
# A model of what was asked for, and the check that the cluster matches it

IMAGES = ("reg.example/w:1", "reg.example/w:2", "reg.example/w:3")


@dataclass(frozen=True)
class Want:
    """What the model says one JobQueue should have."""

    api: bool = True
    api_replicas: int = 1
    worker_replicas: int = 1
    concurrency: int = 4
    image: str = IMAGES[0]

    def spec(self, url: str) -> dict[str, Any]:
        return {
            "redis": {"url": url},
            "api": {"enabled": self.api, "replicas": self.api_replicas},
            "worker": {
                "replicas": self.worker_replicas,
                "concurrency": self.concurrency,
                "image": self.image,
            },
            "autoscaling": {"enabled": False},
        }

    def children(self, name: str) -> set[tuple[str, str]]:
        out = {("Deployment", f"{name}-worker"), ("Secret", f"{name}-worker")}
        if self.api:
            out |= {
                ("Deployment", f"{name}-api"),
                ("Service", f"{name}-api"),
                ("Secret", f"{name}-api"),
            }
        return out


def problems(api: KubeHttp, ns: str, model: dict[str, Want], url: str) -> list[str]:
    """Every way the cluster differs from the model (empty: converged)."""
    out: list[str] = []
    jqs = {j["metadata"]["name"]: j for j in api.items(api.jq_path(ns))}
    if set(jqs) != set(model):
        out.append(f"JobQueues {sorted(jqs)} != {sorted(model)}")
    children = labelled_children(api, ns)
    by_name: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for child in children:
        by_name.setdefault((child["kind"], child["metadata"]["name"]), []).append(child)
    expected = {k for n, w in model.items() for k in w.children(n)}
    if set(by_name) != expected:
        out.append(
            f"orphaned {sorted(set(by_name) - expected)}, missing {sorted(expected - set(by_name))}"
        )
    for key, objs in by_name.items():
        if len(objs) > 1:
            out.append(f"duplicated {key}")
        for obj in objs:
            owners = [r for r in obj["metadata"].get("ownerReferences", []) if r.get("controller")]
            owner = jqs.get(obj["metadata"]["labels"].get(c.LABEL_INSTANCE, ""))
            if not owner or [r["uid"] for r in owners] != [owner["metadata"]["uid"]]:
                out.append(f"{key} not controlled by its current JobQueue")
            if obj["metadata"].get("deletionTimestamp"):
                out.append(f"{key} is being deleted")
    for name, want in model.items():
        jq = jqs.get(name)
        if jq is None:
            continue
        status = jq.get("status") or {}
        if status.get("observedGeneration") != jq["metadata"]["generation"]:
            out.append(f"{name}: status.observedGeneration not current")
        worker = (by_name.get(("Deployment", f"{name}-worker")) or [None])[0]
        if worker is not None:
            container = worker["spec"]["template"]["spec"]["containers"][0]
            got = (
                worker["spec"]["replicas"],
                container["image"],
                env_of(worker).get(c.ENV_WORKER_CONCURRENCY),
            )
            if got != (want.worker_replicas, want.image, str(want.concurrency)):
                out.append(f"{name}-worker half-updated: {got} != {want}")
        api_dep = (by_name.get(("Deployment", f"{name}-api")) or [None])[0]
        if want.api and api_dep is not None and api_dep["spec"]["replicas"] != want.api_replicas:
            out.append(f"{name}-api replicas {api_dep['spec']['replicas']} != {want.api_replicas}")
        for kind_name in (f"{name}-worker", f"{name}-api"):
            secret = (by_name.get(("Secret", kind_name)) or [None])[0]
            if secret is not None and "REDIS_URL" not in secret.get("data", {}):
                out.append(f"Secret {kind_name} without REDIS_URL")
    return out


def random_change(rng: random.Random, want: Want) -> Want:
    """A change of one to four fields at once (a half-applied one is visible)."""
    fields = rng.sample(
        ["api", "api_replicas", "worker_replicas", "concurrency", "image"], rng.randint(1, 4)
    )
    new = want
    for f in fields:
        if f == "api":
            new = replace(new, api=not new.api)
        elif f == "api_replicas":
            new = replace(new, api_replicas=rng.choice([0, 1, 2]))
        elif f == "worker_replicas":
            new = replace(new, worker_replicas=rng.choice([0, 1, 2, 3]))
        elif f == "concurrency":
            new = replace(new, concurrency=rng.choice([1, 2, 8, 16]))
        else:
            new = replace(new, image=rng.choice(IMAGES))
    return new
