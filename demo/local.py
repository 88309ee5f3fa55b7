"""`make demo` on this machine: the local cluster with its real node (kubelet + containerd), the
images built without a registry, the operator installed with its Helm chart, the two example
JobQueues applied, then the same run as on any cluster (demo/run.py).

Without a node (no root, or containerd/runc/CNI missing) it says so and falls back to local
processes: the control plane alone, the chart installed with the operator scaled to zero (its
RBAC and ServiceAccount), the operator run as a process with that ServiceAccount's token, the
API as a process, and worker processes that follow the worker Deployment's replica count (the
operator scales the Deployment; with no kubelet, nothing else would run its pods).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import yaml
from rich.console import Console

from demo import constants as c
from demo import manifests as m
from demo.burst import Target
from demo.monitor import History, Kube
from demo.run import DemoEnv
from tests.cluster import binaries, host_tools, images, node
from tests.cluster.controlplane import NODE_ADDRESS, ControlPlane
from tests.cluster.controlplane import Kube as AdminKube
from tests.cluster.procs import log_tail
from tests.cluster.redis_server import RedisServer, free_port

T = TypeVar("T")


class DemoError(RuntimeError):
    """Set-up failed; the message says what and where to look."""


# ---------------------------------------------------------------------------------------------
# Small helpers


@contextlib.contextmanager
def step(console: Console, what: str) -> Iterator[None]:
    """One set-up step: a spinner while it runs, a tick and its duration when done."""
    t0 = time.monotonic()
    with console.status(what + " ..."):
        yield
    console.print(f"[green]✓[/] {what} [dim]({time.monotonic() - t0:.1f} s)[/]", highlight=False)


@dataclass(frozen=True, slots=True)
class TeardownReport:
    """How a teardown went: the clean-up steps that failed (one line each), and what still runs."""

    problems: list[str] = field(default_factory=list)
    left_running: list[str] = field(default_factory=list)


def _attempt_all(what: str, teardown: Callable[[], None]) -> list[str]:
    """Run a teardown; its failures as one line each (every step of node.down runs anyway)."""
    try:
        teardown()
    except node.TeardownIncomplete as exc:
        return exc.problems
    except Exception as exc:  # report, never turn a finished demo into a traceback
        lines = str(exc).strip().splitlines()
        return [f"{what}: {lines[0] if lines else type(exc).__name__}"]
    return []


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = c.READY_TIMEOUT_SECONDS
) -> T:
    """Poll `probe` until it returns something truthy; DemoError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http://
            return int(response.status) == 200
    except OSError:
        return False


def node_unavailable() -> str | None:
    """Why this machine cannot run the node, or None when it can."""
    if os.geteuid() != 0:
        return "not root (the node needs network links, mounts and cgroups)"
    absent = host_tools.missing(node.HOST_COMMANDS)
    if absent:
        return f"missing {'; '.join(absent)}"
    return None


def foreign_node(state_dir: Path) -> bool:
    """True if a node of another state dir runs here (only one node fits on a machine)."""
    mine = node.Node(state_dir, ControlPlane.attach(state_dir))
    if mine.running() or mine.paths.state_file.exists():
        return False
    return node.link_exists(node.NODE_LINK) and node.port_open(NODE_ADDRESS, node.KUBELET_PORT)


def apply(kube: AdminKube, docs: list[dict[str, Any]]) -> None:
    kube.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={c.FIELD_MANAGER}",
        "-f",
        "-",
        input=m.dump(docs),
    )


def helm(kube: AdminKube, *args: str) -> None:
    binaries.ensure(("helm",))
    proc = subprocess.run(
        [str(binaries.path("helm")), *args],
        env=kube.env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        raise DemoError(
            f"helm {' '.join(args[:2])} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        )


def helm_values(*, operator_replicas: int) -> list[str]:
    """The chart's values for images built on this machine (never pulled)."""
    reg, tag = c.LOCAL_REGISTRY, c.IMAGE_TAG
    sets = {
        "image.repository": f"{reg}/jobqueue-operator",
        "image.tag": tag,
        "image.pullPolicy": "Never",
        "apiImage.repository": f"{reg}/jobqueue-api",
        "apiImage.tag": tag,
        "workerImage.repository": f"{reg}/jobqueue-worker",
        "workerImage.tag": tag,
        "redisImage": redis_image_ref(),
        "childImagePullPolicy": "Never",
        "replicaCount": str(operator_replicas),
        "resyncIntervalSeconds": "10",
    }
    out = []
    for key, value in sets.items():
        out += ["--set-string" if key.endswith(("tag", "Image")) else "--set", f"{key}={value}"]
    return out


def crd_values(kube: AdminKube) -> list[str]:
    """Chart values for the CRD: none when absent or Helm's; else (applied some other way, e.g.
    `kubectl apply -f crds/`) update it from crds/ and tell the chart to leave it alone."""
    proc = kube.kubectl("get", "crd", c.CRD_NAME, "-o", "json", check=False)
    if proc.returncode != 0:
        return []
    annotations = json.loads(proc.stdout)["metadata"].get("annotations") or {}
    if (
        annotations.get("meta.helm.sh/release-name"),
        annotations.get("meta.helm.sh/release-namespace"),
    ) == (c.RELEASE, c.OPERATOR_NAMESPACE):
        return []
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(c.CRD))
    return ["--set", "crds.install=false"]


def redis_image_ref() -> str:
    return f"{c.LOCAL_REGISTRY}/jobqueue-{c.REDIS_IMAGE_NAME}:{c.IMAGE_TAG}"


def service_url(kube: AdminKube, namespace: str, name: str) -> str | None:
    """http://<ClusterIP>[:port] of a Service (reachable from this machine through kube-proxy),
    None while it does not exist."""
    proc = kube.kubectl("get", "service", name, "-n", namespace, "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    svc = json.loads(proc.stdout)
    port = int(svc["spec"]["ports"][0]["port"])
    return f"http://{svc['spec']['clusterIP']}" + ("" if port == 80 else f":{port}")


def _demo_state(state_dir: Path) -> dict[str, Any]:
    path = state_dir / c.DEMO_STATE
    return json.loads(path.read_text()) if path.is_file() else {}


def _save_demo_state(state_dir: Path, data: dict[str, Any]) -> None:
    (state_dir / c.DEMO_STATE).write_text(json.dumps(data, indent=2) + "\n")


def start_external_redis(plane: ControlPlane, bind: str) -> RedisServer:
    """A password-protected redis-server outside the cluster, recorded with the control plane's
    processes so `make cluster-down` stops it too; reused while it runs."""
    state = _demo_state(plane.state_dir)
    rec = plane.procs.record(c.REDIS_PROC)
    saved = state.get("redis")
    if rec is not None and rec.running and saved and saved.get("bind") == bind:
        return RedisServer(
            port=int(saved["port"]),
            password=saved["password"],
            bind=bind,
            workdir=Path(saved["workdir"]),
        )
    if rec is not None:
        plane.procs.stop(c.REDIS_PROC)
    workdir = plane.state_dir / "demo" / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    server = RedisServer(
        port=free_port(), password=secrets.token_urlsafe(18), bind=bind, workdir=workdir
    )
    plane.procs.start(c.REDIS_PROC, server.command())
    wait_for("the external redis-server", server.ping, 15)
    state["redis"] = {
        "port": server.port,
        "password": server.password,
        "bind": bind,
        "workdir": str(workdir),
    }
    _save_demo_state(plane.state_dir, state)
    return server


# ---------------------------------------------------------------------------------------------
# The no-node fallback: worker processes that follow the worker Deployment


@dataclass
class LocalWorkerPool:
    """Worker processes for one queue, as many as the worker Deployment's spec.replicas."""

    queue: str
    env: dict[str, str]
    log_dir: Path
    procs: list[tuple[asyncio.subprocess.Process, int, str]] = field(default_factory=list)
    stopping: list[asyncio.subprocess.Process] = field(default_factory=list)
    ready: int = 0
    _seq: int = 0

    async def reconcile(self, desired: int | None) -> None:
        self.stopping = [p for p in self.stopping if p.returncode is None]
        self.procs = [x for x in self.procs if x[0].returncode is None]
        if desired is not None:
            while len(self.procs) < desired:
                await self._start()
            while len(self.procs) > desired:
                proc, _, _ = self.procs.pop()
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)  # drains: in-flight jobs are handed back
                self.stopping.append(proc)
        ready = await asyncio.gather(*(self._ready(port) for _, port, _ in self.procs))
        self.ready = sum(ready)

    async def _start(self) -> None:
        self._seq += 1
        name = f"{self.queue}-worker-local-{self._seq}"
        port = free_port()
        env = {**self.env, "POD_NAME": name, "HEALTH_PORT": str(port), "HEALTH_HOST": "127.0.0.1"}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "jobqueue_worker",
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(c.REPO),
            )
        self.procs.append((proc, port, name))

    @staticmethod
    async def _ready(port: int) -> bool:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 0.5)
        except (OSError, TimeoutError):
            return False
        try:
            writer.write(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 1.0)
            return b" 200 " in line
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()

    async def stop_all(self, grace: float = 15.0) -> None:
        for proc, _, _ in self.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        everyone = [p for p, _, _ in self.procs] + self.stopping
        for proc in everyone:
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self.procs, self.stopping, self.ready = [], [], 0


# ---------------------------------------------------------------------------------------------
# Set-up and teardown


@dataclass
class LocalDemo:
    """What `make demo` started, so it can stop exactly that."""

    state_dir: Path
    console: Console
    with_node: bool = False
    started_cluster: bool = False
    plane: ControlPlane | None = None
    pools: dict[str, LocalWorkerPool] = field(default_factory=dict)
    kube: Kube | None = None
    fallback_reason: str | None = None
    created_operator_namespace: bool = False

    @property
    def admin(self) -> AdminKube:
        assert self.plane is not None
        return self.plane.kube

    # ---- the cluster ---------------------------------------------------------------------
    def _check_no_foreign_node(self) -> None:
        if foreign_node(self.state_dir):
            raise DemoError(
                f"another node cluster runs on this machine ({node.NODE_LINK} holds "
                f"{NODE_ADDRESS}, its kubelet answers): only one fits. Stop it first "
                "(the e2e tests' one stops when they end; or `make cluster-down` in its repo)."
            )

    def _cluster_up(self, force_no_node: bool) -> None:
        reason = "--no-node was given" if force_no_node else node_unavailable()
        self.with_node = reason is None
        self.fallback_reason = reason
        plane = ControlPlane.attach(self.state_dir)
        self.started_cluster = not plane.running()
        if not self.with_node:
            with step(
                self.console,
                "local control plane (etcd, kube-apiserver, controller-manager; no node)",
            ):
                from tests.cluster.__main__ import up

                if plane.running() and node.Node(self.state_dir, plane).running():
                    raise DemoError(f"a node cluster runs in {self.state_dir}: stop it first")
                self.plane = up(self.state_dir)
            return
        self._check_no_foreign_node()
        with step(
            self.console,
            "images api, worker, operator, redis: the Dockerfiles built with buildah, "
            "no registry (cached; the first build takes a few minutes)",
        ):
            built = images.build_all()
            layout, base = images.ensure_base()
            built.append(
                images.ensure_app(
                    images.AppImage(c.REDIS_IMAGE_NAME, c.REDIS_DOCKERFILE), layout, base
                )
            )
        self._check_no_foreign_node()  # a build takes a while: check again right before
        with step(
            self.console,
            "local cluster: etcd, kube-apiserver, controller-manager, scheduler and a real "
            "node (kubelet, containerd, kube-proxy, CoreDNS); images imported",
        ):
            if plane.running() and not node.Node(self.state_dir, plane).running():
                # A control plane without a node (`make cluster-up NODE=0`): restart it bound
                # on the node address, with the node.
                node.down(self.state_dir)
                self.started_cluster = True
            node.up(self.state_dir)
            self.plane = ControlPlane.attach(self.state_dir)
            # A node that was already up keeps older images: import whatever changed.
            images.import_images(built, node.NodePaths(self.state_dir / "node").containerd_socket)

    # ---- the operator --------------------------------------------------------------------
    def _install_operator(self) -> None:
        kube = self.admin
        replicas = 1 if self.with_node else 0
        what = "operator installed with its Helm chart" + (
            "" if self.with_node else " (scaled to 0: RBAC + ServiceAccount only)"
        )
        self.created_operator_namespace = (
            kube.kubectl("get", "namespace", c.OPERATOR_NAMESPACE, check=False).returncode != 0
        )
        with step(self.console, what):
            crd = crd_values(kube)
            if crd:
                self.console.print(
                    "  [dim]the JobQueue CRD was installed without Helm: applied from crds/, "
                    "chart installed with crds.install=false[/]"
                )
            try:
                helm(kube, "upgrade", "--install", c.RELEASE, str(c.CHART),
                     "--namespace", c.OPERATOR_NAMESPACE, "--create-namespace",
                     *helm_values(operator_replicas=replicas), *crd,
                     "--wait", "--timeout", c.HELM_TIMEOUT)  # fmt: skip
            except DemoError as exc:
                logs = kube.kubectl("logs", "-n", c.OPERATOR_NAMESPACE, "--tail=20",
                                    "-l", f"app.kubernetes.io/instance={c.RELEASE}",
                                    check=False)  # fmt: skip
                raise DemoError(
                    f"{exc}\nthe operator pod's log:\n{logs.stdout}{logs.stderr}"
                ) from None
        if not self.with_node:
            with step(self.console, "operator process with the chart's ServiceAccount token"):
                self._run_operator_process()

    def _run_operator_process(self) -> None:
        assert self.plane is not None
        kube = self.admin
        token = kube.kubectl(
            "create", "token", c.RELEASE, "-n", c.OPERATOR_NAMESPACE, "--duration", "24h"
        ).stdout.strip()
        cfg = yaml.safe_load(kube.kubeconfig.read_text())
        cfg["users"] = [{"name": "operator", "user": {"token": token}}]
        for ctx in cfg["contexts"]:
            ctx["context"]["user"] = "operator"
        path = self.state_dir / "demo" / "operator.kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        env = {
            **os.environ,
            "KUBECONFIG": str(path),
            "DEFAULT_API_IMAGE": f"{c.LOCAL_REGISTRY}/jobqueue-api:{c.IMAGE_TAG}",
            "DEFAULT_WORKER_IMAGE": f"{c.LOCAL_REGISTRY}/jobqueue-worker:{c.IMAGE_TAG}",
            "HEALTH_PORT": str(free_port()),
            "METRICS_PORT": "0",
            "RESYNC_INTERVAL_SECONDS": "10",
        }
        procs = self.plane.procs
        if procs.record(c.OPERATOR_PROC) is not None:
            procs.stop(c.OPERATOR_PROC)
        procs.start(
            c.OPERATOR_PROC, [sys.executable, "-m", "jobqueue_operator"], env=env, cwd=c.REPO
        )
        port = env["HEALTH_PORT"]

        def healthy() -> bool:
            record = procs.record(c.OPERATOR_PROC)
            if record is None or not record.running:
                tail = log_tail(record.log) if record is not None else "(no log)"
                raise DemoError(f"the operator process exited:\n{tail}")
            return http_ok(f"http://127.0.0.1:{port}/healthz")

        wait_for("the operator's /healthz", healthy, 60)

    # ---- the JobQueues -------------------------------------------------------------------
    def _apply_jobqueues(self) -> list[dict[str, Any]]:
        assert self.plane is not None
        kube = self.admin
        bind = NODE_ADDRESS if self.with_node else "127.0.0.1"
        with step(self.console, f"external redis-server on {bind} (the Secret example's Redis)"):
            redis = start_external_redis(self.plane, bind)
        docs = m.demo_manifests(
            [*m.load(c.EXAMPLE_MANAGED), *m.load(c.EXAMPLE_SECRET)],
            external_redis_url=redis.url,
            redis_image=redis_image_ref() if self.with_node else None,
            managed=self.with_node,
        )
        names = [d["metadata"]["name"] for d in docs if d["kind"] == "JobQueue"]
        with step(self.console, f"JobQueues {', '.join(names)} applied (examples/ + demo timings)"):
            # The managed Redis' claim gets its volume from the node's default StorageClass
            # (local-path); deleting the namespace deletes the claim and so the volume.
            apply(kube, [m.namespace_manifest()])
            apply(kube, docs)
        return docs

    def _wait_ready(self, docs: list[dict[str, Any]]) -> list[Target]:
        kube = self.admin
        token = m.api_token(docs)
        targets = []
        for doc in docs:
            if doc["kind"] != "JobQueue":
                continue
            name = doc["metadata"]["name"]
            low, high = c.WORKER_BOUNDS[name]
            what = (
                f"{name}: API pods Ready, answering through their Service"
                if self.with_node
                else f"{name}: API answering (a local process)"
            )
            with step(self.console, what):
                if self.with_node:
                    url = wait_for(
                        f"the {name}-api Service",
                        partial(service_url, kube, c.NAMESPACE, f"{name}-api"),
                    )
                    wait_for(
                        f"{url}/readyz (the {name} API through kube-proxy)",
                        partial(http_ok, f"{url}/readyz"),
                    )
                else:
                    url = self._local_api(name, doc, token)
            targets.append(
                Target(name, c.NAMESPACE, url, token if name == c.SECRET_QUEUE else None, low, high)
            )
        return targets

    def _local_api(self, name: str, doc: dict[str, Any], token: str | None) -> str:
        assert self.plane is not None
        redis = _demo_state(self.state_dir)["redis"]
        url = RedisServer(port=redis["port"], password=redis["password"], bind=redis["bind"]).url
        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": url,
            "QUEUE_NAME": f"{c.NAMESPACE}/{name}",
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
        }
        if token and name == c.SECRET_QUEUE:
            env["API_TOKEN"] = token
        proc_name = f"demo-api-{name}"
        procs = self.plane.procs
        if procs.record(proc_name) is not None:
            procs.stop(proc_name)
        procs.start(proc_name, [sys.executable, "-m", "jobqueue_api"], env=env, cwd=c.REPO)
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/readyz", lambda: http_ok(f"{base}/readyz"), 60)
        self.pools[name] = LocalWorkerPool(
            name,
            {
                **os.environ,
                "REDIS_URL": url,
                "QUEUE_NAME": f"{c.NAMESPACE}/{name}",
                "WORKER_CONCURRENCY": str(c.WORKER_CONCURRENCY),
                "TASKS_MODULE": "examples.tasks",
                "LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(c.REPO),
            },
            self.state_dir / "demo" / "logs",
        )
        return base

    # ---- public --------------------------------------------------------------------------
    def setup(self, *, force_no_node: bool = False) -> DemoEnv:
        t0 = time.monotonic()
        self._cluster_up(force_no_node)
        if not self.with_node:
            self.console.print(
                f"[bold yellow]No node on this machine[/] ({self.fallback_reason}): the API, the "
                "workers and the operator run as local processes; the operator still scales the "
                "worker Deployment, and the demo starts one worker process per replica it sets. "
                "The managed-Redis example needs a node and is left out.",
                highlight=False,
            )
        self._install_operator()
        docs = self._apply_jobqueues()
        targets = self._wait_ready(docs)
        self.kube = Kube(self.admin.kubeconfig)
        pools = self.pools

        async def tick(history: History) -> None:
            for name, pool in pools.items():
                last = history.per_queue[name].last
                await pool.reconcile(last.workers.desired if last else None)

        if self.with_node:
            note = (
                f"node {node.NODE_NAME}: the operator, the APIs, the workers and the managed "
                "Redis run as pods (images built on this machine); the Secret example's "
                f"Redis is a redis-server on {NODE_ADDRESS}"
            )
        else:
            note = (
                f"NO NODE ({self.fallback_reason}): API, workers and operator are local "
                "processes; worker processes follow the Deployment's replicas"
            )
        return DemoEnv(
            title="jobqueue-operator demo",
            mode_note=note,
            targets=targets,
            kube=self.kube,
            setup_seconds=time.monotonic() - t0,
            tick=tick if pools else None,
            ready_override=(lambda t: pools[t.queue].ready) if pools else None,
            poke=self.poke(targets),
            close=self.stop_local_workers if pools else None,
        )

    def poke(self, targets: list[Target]) -> list[str]:
        kubectl_dir = binaries.component_dir("k8s")
        lines = [
            f"export KUBECONFIG={self.admin.kubeconfig}",
            f'export PATH={kubectl_dir}:"$PATH"',
            f"kubectl get jq -n {c.NAMESPACE} -o wide",
            f"kubectl get pods -n {c.NAMESPACE}"
            if self.with_node
            else f"kubectl get deploy -n {c.NAMESPACE}",
            f"kubectl get events -n {c.NAMESPACE} --field-selector involvedObject.kind=JobQueue",
        ]
        for t in targets:
            auth = f" -H 'Authorization: Bearer {t.token}'" if t.token else ""
            lines += [
                f"curl -s{auth} {t.base_url}/stats",
                f"curl -s{auth} -X POST {t.base_url}/jobs -H 'Content-Type: application/json' "
                '-d \'{"type": "email", "payload": {"to": "you@example.com"}}\'',
            ]
        return lines

    async def stop_local_workers(self) -> None:
        await asyncio.gather(*(p.stop_all() for p in self.pools.values()))

    def teardown(self) -> TeardownReport:
        """Stop what the demo started: everything if it started the cluster, else its parts.

        Never raises: a failing clean-up step is one line in the report and the others still
        run; what is still running afterwards is named in ``left_running``.
        """
        if self.kube is not None:
            self.kube.close()
        if self.plane is None:
            return TeardownReport()
        t0 = time.monotonic()
        if self.started_cluster:
            what = "teardown: " + ("pods, node, " if self.with_node else "")
            what += "control plane, processes, Redis"
            problems = _attempt_all(what, self._teardown_cluster)
        else:
            what = "teardown: the demo's namespace, the operator and the Redis "
            what += "(the cluster was running before: left up)"
            problems = _attempt_all(what, self._teardown_parts)
        took = f"[dim]({time.monotonic() - t0:.1f} s)[/]"
        if problems:
            self.console.print(f"[yellow]![/] {what}: {len(problems)} step(s) failed {took}:")
            for line in problems:
                self.console.print(f"  [yellow]-[/] {line}", highlight=False, soft_wrap=True)
        else:
            self.console.print(f"[green]✓[/] {what} {took}", highlight=False)
        return TeardownReport(problems, self._left_running())

    def _teardown_cluster(self) -> None:
        assert self.plane is not None
        if self.with_node:
            node.down(self.state_dir)
        else:
            self.plane.stop()

    def _teardown_parts(self) -> None:
        assert self.plane is not None
        kube = self.admin
        kube.kubectl(
            "delete", "namespace", c.NAMESPACE, "--wait=true", "--timeout=120s", check=False
        )
        try:
            helm(kube, "uninstall", c.RELEASE, "--namespace", c.OPERATOR_NAMESPACE, "--wait")
        except DemoError as exc:  # e.g. set-up failed before the install
            self.console.print(f"[yellow]{exc}[/]")
        if self.created_operator_namespace:
            kube.kubectl("delete", "namespace", c.OPERATOR_NAMESPACE, "--wait=false",
                         check=False)  # fmt: skip
        for name in [r.name for r in self.plane.procs.records()]:
            if name.startswith("demo-"):
                self.plane.procs.stop(name)

    def _left_running(self) -> list[str]:
        """The demo's own processes still alive (all of them if it started the cluster)."""
        assert self.plane is not None
        records = list(self.plane.procs.records())
        if self.started_cluster and self.with_node:
            records += node.Node(self.state_dir, self.plane).procs.records()
        return sorted(
            f"{r.name} (pid {r.pid})"
            for r in records
            if r.running and (self.started_cluster or r.name.startswith("demo-"))
        )
