"""A real Kubernetes control plane as local processes: etcd, kube-apiserver, controller-manager.

The envtest approach plus the controller-manager, so garbage collection and the Deployment /
ReplicaSet / namespace / service-account controllers are real. Everything lives under one state
dir; processes are recorded in pid files, so `stop()` works from another Python process too:

    state_dir/
      cluster.json        addresses, ports, binaries (ControlPlane.attach reads it)
      kubeconfig          admin (CN=kubernetes-admin, O=system:masters), certs embedded
      pki/                CA, apiserver serving cert, client certs, front-proxy CA, SA key pair
      kubeconfigs/        one per control-plane client (controller-manager, scheduler)
      etcd/               etcd data
      logs/<name>.log     stdout+stderr of each component
      run/<name>.pid      what `stop()` / `python -m tests.cluster down` stops

Without a node the apiserver binds 127.0.0.1 with `--endpoint-reconciler-type none` (loopback
cannot be advertised). A node helper passes `bind_address=NODE_ADDRESS` (the serving cert
already carries it) so pods reach the API through the `kubernetes` Service, adds
`with_scheduler=True`, and issues its own certs with `issue_client_cert` / `write_kubeconfig`.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import binaries
from tests.cluster.pki import CertPair, issue, new_ca, new_rsa_key_pair
from tests.cluster.procs import ProcessGroup, log_tail
from tests.cluster.procs import free_port as free_port  # re-exported: its users import it here

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
#: `python -m tests.cluster up` / `make cluster-up` keep their state here (git-ignored).
DEFAULT_STATE_DIR = REPO_ROOT / ".cluster"

SERVICE_CIDR = "10.0.0.0/24"
#: First address of SERVICE_CIDR: the `kubernetes` Service's ClusterIP.
KUBERNETES_SERVICE_IP = "10.0.0.1"
#: The address a future local node gets (a bridge link on this machine only).
NODE_ADDRESS = "10.200.0.1"
CLUSTER_NAME = "jobqueue-local"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc"
APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
FRONT_PROXY_CLIENT_CN = "front-proxy-client"
READY_TIMEOUT = 90.0
START_ATTEMPTS = 3
#: Start order; stop is the reverse.
ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
)


class ControlPlaneError(RuntimeError):
    """A component failed to start or become ready; the message has the tail of its log."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; str() includes its stderr (CalledProcessError's does not)."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}\nstdout: {self.stdout}"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig_document(server: str, ca: Path, user: str, client: CertPair) -> dict[str, Any]:
    """A self-contained kubeconfig (certificates embedded, so it can be copied anywhere)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert),
                    "client-key-data": _b64(client.key),
                },
            }
        ],
        "contexts": [{"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": CLUSTER_NAME,
    }


@dataclass(frozen=True, slots=True)
class Kube:
    """Access to a running cluster: what the `kube` pytest fixture yields.

    Stable interface for every helper:
      kubeconfig  admin kubeconfig (system:masters), certificates embedded
      server      https://<address>:<port> of the kube-apiserver
      bin_dir     directory of kubectl, kube-apiserver, kubelet, ... (the pinned release)
      kubectl(*args, input=None, check=True, timeout=120) -> CompletedProcess[str]
      kubectl_json(*args) -> parsed `-o json` output
      env() -> environment for a subprocess (KUBECONFIG set, bin_dir first on PATH)
    """

    kubeconfig: Path
    server: str
    bin_dir: Path

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path, bin_dir: Path | None = None) -> Kube:
        doc = yaml.safe_load(kubeconfig.read_text())
        context = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])
        cluster = next(c for c in doc["clusters"] if c["name"] == context["context"]["cluster"])
        return cls(
            kubeconfig=kubeconfig.resolve(),
            server=str(cluster["cluster"]["server"]),
            bin_dir=bin_dir or binaries.component_dir("k8s"),
        )

    @property
    def kubectl_path(self) -> Path:
        return self.bin_dir / "kubectl"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this cluster; raise KubectlError if check and rc != 0."""
        cmd = [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def kubectl_json(self, *args: str, timeout: float = 120.0) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout).stdout)

    def wait_established(self, *crds: str, timeout: float = 60.0) -> None:
        """Wait until every CRD named (``jobqueues.jobqueue.io``) is Established. Polls: `kubectl
        wait --for=condition=Established` fails outright while a just-applied CRD has no
        status conditions yet."""
        deadline = time.monotonic() + timeout
        pending = [name.removeprefix("crd/") for name in crds]
        while pending:
            crd = self.kubectl_json("get", "crd", pending[0])
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(x["type"] == "Established" and x["status"] == "True" for x in conditions):
                pending.pop(0)
            elif time.monotonic() > deadline:
                raise TimeoutError(f"CRD {pending[0]} not Established after {timeout:.0f} s")
            else:
                time.sleep(0.2)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager (+ optional kube-scheduler) in state_dir.

    `start()` makes fresh certs and etcd data, starts each component on free ports, waits until
    it is ready (raising ControlPlaneError with the component's log tail otherwise) and returns a
    Kube. `stop()` stops every process recorded under state_dir, newest first, and is safe to
    call twice or from another process (`ControlPlane.attach(state_dir).stop()`).

    bind_address / advertise_address: where the apiserver listens and what it advertises; with
    a loopback bind and no advertise address the endpoint reconciler is off (no node).
    with_scheduler: also run kube-scheduler (a node helper needs it; without nodes it is idle).
    extra_sans: more IPs in the serving cert (default: the future node address).
    apiserver_args / controller_manager_args: appended to the component's flags.
    die_with_parent: components get SIGTERM if this process dies (the pytest fixture uses it).
    """

    def __init__(
        self,
        state_dir: Path,
        bind_address: str = "127.0.0.1",
        advertise_address: str | None = None,
        *,
        with_scheduler: bool = False,
        extra_sans: Sequence[str] = (NODE_ADDRESS,),
        apiserver_args: Sequence[str] = (),
        controller_manager_args: Sequence[str] = (),
        ready_timeout: float = READY_TIMEOUT,
        die_with_parent: bool = False,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.bind_address = bind_address
        self.advertise_address = advertise_address
        self.with_scheduler = with_scheduler
        self.extra_sans = tuple(extra_sans)
        self.apiserver_args = tuple(apiserver_args)
        self.controller_manager_args = tuple(controller_manager_args)
        self.ready_timeout = ready_timeout
        self.pki_dir = self.state_dir / "pki"
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.state_file = self.state_dir / "cluster.json"
        self.procs = ProcessGroup(
            self.state_dir / "run", self.state_dir / "logs", die_with_parent=die_with_parent
        )
        self.server = ""
        self.etcd_url = ""

    # ---- paths of the PKI (valid after start) -------------------------------------------
    @property
    def ca(self) -> CertPair:
        return CertPair(self.pki_dir / "ca.crt", self.pki_dir / "ca.key")

    @property
    def admin(self) -> CertPair:
        return CertPair(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")

    @property
    def kube(self) -> Kube:
        return Kube(self.kubeconfig, self.server, binaries.component_dir("k8s"))

    def issue_client_cert(self, name: str, cn: str, orgs: tuple[str, ...] = ()) -> CertPair:
        """A client cert from the cluster CA, e.g. a node's: cn=system:node:<n>, O=system:nodes."""
        return issue(self.ca, self.pki_dir, name, cn=cn, orgs=orgs)

    def write_kubeconfig(self, path: Path, user: str, client: CertPair) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = kubeconfig_document(self.server, self.ca.cert, user, client)
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    # ---- lifecycle ----------------------------------------------------------------------
    @classmethod
    def attach(cls, state_dir: Path) -> ControlPlane:
        """The control plane recorded in state_dir (to stop it or ask its status)."""
        cp = cls(state_dir)
        if cp.state_file.exists():
            state = json.loads(cp.state_file.read_text())
            cp.bind_address = state["bind_address"]
            cp.advertise_address = state["advertise_address"]
            cp.with_scheduler = state["with_scheduler"]
            cp.server = state["server"]
            cp.etcd_url = state["etcd_url"]
            cp.apiserver_args = tuple(state.get("apiserver_args", ()))
        return cp

    def running(self) -> list[str]:
        """Names of the recorded processes that are alive."""
        return [r.name for r in self.procs.records() if r.running]

    def start(self) -> Kube:
        alive = self.running()
        if alive:
            raise ControlPlaneError(
                f"{self.state_dir} already has running processes {alive}: stop them first"
            )
        binaries.require()
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return self._start_once()
            except ControlPlaneError as e:
                # A free port can be taken between our probe and the component's bind (other
                # test sessions run on this machine too): that, and only that, is retried.
                if "address already in use" not in str(e) or attempt == START_ATTEMPTS:
                    raise
                log.warning("port collision, starting again (%d/%d)", attempt, START_ATTEMPTS)
        raise AssertionError("unreachable")

    def _start_once(self) -> Kube:
        t0 = time.monotonic()
        for sub in ("pki", "etcd", "logs", "run", "kubeconfigs"):
            shutil.rmtree(self.state_dir / sub, ignore_errors=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._make_pki()
            self._start_etcd()
            self._start_apiserver()
            log.info("kube-apiserver ready at %s (%.1f s)", self.server, time.monotonic() - t0)
            self.write_kubeconfig(self.kubeconfig, "kubernetes-admin", self.admin)
            self._write_state()
            self._start_controller_manager()
            if self.with_scheduler:
                self._start_scheduler()
            self._wait_for(
                CONTROLLER_MANAGER,
                "the default ServiceAccount (serviceaccount controller)",
                lambda: self._get("/api/v1/namespaces/default/serviceaccounts/default") == 200,
            )
        except BaseException:
            self.stop()
            raise
        log.info("control plane ready in %.1f s (in %s)", time.monotonic() - t0, self.state_dir)
        return self.kube

    def stop(self) -> list[str]:
        """Stop every process recorded in state_dir, newest first; return those that ran."""
        stopped = self.procs.stop_all()
        if stopped:
            log.info("stopped %s", ", ".join(stopped))
        return stopped

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver alone (etcd and the controllers keep running): restart tests."""
        self.procs.stop(APISERVER)

    def start_apiserver(self) -> None:
        """Start kube-apiserver again with its flags and port; returns once /readyz is 200."""
        self._start_apiserver(urllib.parse.urlsplit(self.server).port)

    def status(self) -> dict[str, Any]:
        ready = bool(self.server) and self._get("/readyz", timeout=2.0) == 200
        return {
            "state_dir": str(self.state_dir),
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "apiserver_ready": ready,
            "processes": {
                r.name: {"pid": r.pid, "running": r.running, "log": str(r.log)}
                for r in self.procs.records()
            },
        }

    # ---- internals ----------------------------------------------------------------------
    def _make_pki(self) -> None:
        pki = self.pki_dir
        ca = new_ca(pki, "ca", "jobqueue-local-ca")
        sans = {KUBERNETES_SERVICE_IP, "127.0.0.1", self.bind_address, *self.extra_sans}
        if self.advertise_address:
            sans.add(self.advertise_address)
        issue(ca, pki, "apiserver", cn="kube-apiserver", dns_names=APISERVER_DNS_NAMES,
              ip_addresses=tuple(sorted(sans)), server=True, client=False)  # fmt: skip
        issue(ca, pki, "admin", cn="kubernetes-admin", orgs=("system:masters",))
        issue(ca, pki, "apiserver-kubelet-client", cn="kube-apiserver-kubelet-client",
              orgs=("system:masters",))  # fmt: skip
        issue(ca, pki, CONTROLLER_MANAGER, cn="system:kube-controller-manager")
        issue(ca, pki, SCHEDULER, cn="system:kube-scheduler")
        front = new_ca(pki, "front-proxy-ca", "jobqueue-local-front-proxy-ca")
        issue(front, pki, "front-proxy-client", cn=FRONT_PROXY_CLIENT_CN)
        new_rsa_key_pair(pki, "sa")

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        self.procs.start(ETCD, [
            str(binaries.path("etcd")),
            "--name", "default",
            "--data-dir", str(self.state_dir / "etcd"),
            "--listen-client-urls", self.etcd_url,
            "--advertise-client-urls", self.etcd_url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"default={peer_url}",
            "--initial-cluster-state", "new",
            "--unsafe-no-fsync",  # throwaway data: no fsync keeps a shared disk fast
            "--log-level", "warn",
        ])  # fmt: skip

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=1) as r:
                    return bool(json.load(r).get("health") == "true")
            except (OSError, ValueError):
                return False

        self._wait_for(ETCD, "/health", healthy)

    def _start_apiserver(self, port: int | None = None) -> None:
        pki = self.pki_dir
        port = port or free_port(self.bind_address)
        host = self.bind_address
        self.server = f"https://{host}:{port}"
        args = [
            str(binaries.path("kube-apiserver")),
            "--etcd-servers", self.etcd_url,
            "--bind-address", host,
            "--secure-port", str(port),
            "--cert-dir", str(pki),
            "--tls-cert-file", str(pki / "apiserver.crt"),
            "--tls-private-key-file", str(pki / "apiserver.key"),
            "--client-ca-file", str(pki / "ca.crt"),
            "--service-account-key-file", str(pki / "sa.pub"),
            "--service-account-signing-key-file", str(pki / "sa.key"),
            "--service-account-issuer", SERVICE_ACCOUNT_ISSUER,
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--authorization-mode", "RBAC,Node",
            "--enable-admission-plugins", "NodeRestriction",
            "--allow-privileged=true",
            "--kubelet-client-certificate", str(pki / "apiserver-kubelet-client.crt"),
            "--kubelet-client-key", str(pki / "apiserver-kubelet-client.key"),
            "--kubelet-preferred-address-types", "InternalIP",
            # API aggregation (e.g. KEDA's metrics adapter): front-proxy CA and client cert.
            "--requestheader-client-ca-file", str(pki / "front-proxy-ca.crt"),
            "--requestheader-allowed-names", FRONT_PROXY_CLIENT_CN,
            "--requestheader-username-headers", "X-Remote-User",
            "--requestheader-group-headers", "X-Remote-Group",
            "--requestheader-extra-headers-prefix", "X-Remote-Extra-",
            "--proxy-client-cert-file", str(pki / "front-proxy-client.crt"),
            "--proxy-client-key-file", str(pki / "front-proxy-client.key"),
            "--enable-aggregator-routing=true",
            "--profiling=false",
        ]  # fmt: skip
        if ipaddress.ip_address(host).is_loopback and self.advertise_address is None:
            # Loopback cannot be advertised; with no node nothing needs the Endpoints.
            args += ["--endpoint-reconciler-type", "none"]
        elif self.advertise_address is not None:
            args += ["--advertise-address", self.advertise_address]
        self.procs.start(APISERVER, [*args, *self.apiserver_args])
        self._wait_for(APISERVER, "/readyz", lambda: self._get("/readyz") == 200)

    def _component_kubeconfig(self, name: str) -> Path:
        pair = CertPair(self.pki_dir / f"{name}.crt", self.pki_dir / f"{name}.key")
        user = f"system:{name}"
        return self.write_kubeconfig(self.state_dir / "kubeconfigs" / f"{name}.yaml", user, pair)

    def _start_controller_manager(self) -> None:
        pki = self.pki_dir
        self.procs.start(CONTROLLER_MANAGER, [
            str(binaries.path("kube-controller-manager")),
            "--kubeconfig", str(self._component_kubeconfig(CONTROLLER_MANAGER)),
            "--controllers", "*",  # a short list misses clusterrole-aggregation etc.
            "--service-account-private-key-file", str(pki / "sa.key"),
            "--root-ca-file", str(pki / "ca.crt"),
            "--cluster-signing-cert-file", str(pki / "ca.crt"),
            "--cluster-signing-key-file", str(pki / "ca.key"),
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--cluster-name", CLUSTER_NAME,
            "--use-service-account-credentials",
            "--leader-elect=false",
            "--secure-port", "0",
            "--profiling=false",
            *self.controller_manager_args,
        ])  # fmt: skip

    def _start_scheduler(self) -> None:
        self.procs.start(SCHEDULER, [
            str(binaries.path("kube-scheduler")),
            "--kubeconfig", str(self._component_kubeconfig(SCHEDULER)),
            "--leader-elect=false",
            "--secure-port", "0",
            "--profiling=false",
        ])  # fmt: skip

    def _write_state(self) -> None:
        state = {
            "server": self.server,
            "etcd_url": self.etcd_url,
            "bind_address": self.bind_address,
            "advertise_address": self.advertise_address,
            "with_scheduler": self.with_scheduler,
            "apiserver_args": list(self.apiserver_args),
            "bin_dir": str(binaries.component_dir("k8s")),
            "versions": {c: binaries.version_of(c) for c in binaries.CONTROL_PLANE_COMPONENTS},
        }
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca.cert))
        ctx.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return ctx

    def _get(self, path: str, timeout: float = 2.0) -> int:
        """HTTP status of an admin GET on the apiserver, 0 if it does not answer."""
        try:
            with urllib.request.urlopen(
                f"{self.server}{path}", timeout=timeout, context=self._ssl_context()
            ) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)
        except (OSError, ssl.SSLError):
            return 0

    def _wait_for(self, name: str, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            code = self.procs.exited(name)
            if code is not None:
                raise ControlPlaneError(
                    f"{name} exited with {code} before {what} was ready; "
                    f"log {self.procs.log_dir / (name + '.log')}:\n"
                    f"{log_tail(self.procs.log_dir / (name + '.log'))}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{name}: {what} not ready after {self.ready_timeout:.0f} s; "
                    f"log {self.procs.log_dir / (name + '.log')}:\n"
                    f"{log_tail(self.procs.log_dir / (name + '.log'))}"
                )
            time.sleep(0.1)
