"""KEDA v2 (operator + metrics adapter) run as local processes against the bench control plane.

Built from its Go module by `tests/cluster/build.sh keda` (cached under
~/.cache/jobqueue-operator/bin/keda-<version>/ with its CRDs). The operator alone decides
activation (0 <-> 1); 1 -> N goes through the HPA, which reads KEDA's external metric through
the aggregation layer: the adapter must listen on a non-loopback local address (EndpointSlices
reject loopback), so it binds a bridge-link address of this machine only (the node
helper's 10.200.0.0/16 is left alone: ADAPTER_ADDRESS on a link made here and removed after).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.common import Child, free_port
from bench.kube import Cluster
from tests.cluster import binaries
from tests.cluster.pki import issue

log = logging.getLogger(__name__)

NAMESPACE = "keda"
BENCH_LINK = "jq-bench0"
#: A /32 on BENCH_LINK, local to this machine, outside every range the cluster scripts use.
ADAPTER_ADDRESS = "10.201.0.1"


def version() -> str:
    return binaries.VERSIONS.get("KEDA_VERSION", "?")


def bin_dir() -> Path:
    return binaries.cache_dir() / "bin" / f"keda-{version()}"


def ensure_built() -> Path:
    d = bin_dir()
    if not (d / "keda").exists() or not (d / "keda-adapter").exists():
        log.info("building KEDA %s from the Go module proxy (cold: ~10 min on 2 cores)", version())
        subprocess.run(["bash", str(binaries.BUILD_SCRIPT), "keda"], check=True)
    return d


def _routed(addr: str) -> list[str]:
    """Networks this machine routes or holds that contain addr (there must be none)."""
    import ipaddress
    import json

    ip = ipaddress.ip_address(addr)
    nets = []
    routes = subprocess.run(
        ["ip", "-j", "route", "show", "table", "all"], capture_output=True, text=True, check=True
    ).stdout
    for r in json.loads(routes or "[]"):
        dst = r.get("dst", "")
        if dst in ("", "default") or ":" in dst or r.get("type") == "broadcast":
            continue
        with contextlib.suppress(ValueError):
            if ip in ipaddress.ip_network(dst, strict=False):
                nets.append(dst)
    return nets


@contextlib.contextmanager
def local_address() -> Iterator[str]:
    """ADAPTER_ADDRESS/32 on a bridge link of our own, made here and removed afterwards.

    Not the node's address (tests/cluster/node.py owns 10.200.0.0/16 and its link may come
    and go while a benchmark runs); nothing outside this machine ever sees this address.
    """
    if shutil.which("ip") is None:
        raise RuntimeError("iproute2 (`ip`) is needed for KEDA's metrics adapter address")
    subprocess.run(["ip", "link", "delete", BENCH_LINK], capture_output=True, check=False)
    clash = _routed(ADAPTER_ADDRESS)
    if clash:
        raise RuntimeError(f"{ADAPTER_ADDRESS} is already routed here ({clash}); not using it")
    subprocess.run(["ip", "link", "add", BENCH_LINK, "type", "bridge"], check=True)
    try:
        subprocess.run(
            ["ip", "addr", "add", f"{ADAPTER_ADDRESS}/32", "dev", BENCH_LINK], check=True
        )
        subprocess.run(["ip", "link", "set", BENCH_LINK, "up"], check=True)
        yield ADAPTER_ADDRESS
    finally:
        subprocess.run(["ip", "link", "delete", BENCH_LINK], check=False)


@dataclass
class Keda:
    operator: Child
    adapter: Child


def _certs(c: Cluster, directory: Path, address: str) -> Path:
    """tls.crt / tls.key / ca.crt for KEDA's gRPC link and the adapter's serving endpoint."""
    directory.mkdir(parents=True, exist_ok=True)
    pair = issue(
        c.cp.ca,
        directory,
        "keda",
        cn="keda-operator",
        dns_names=("localhost", "keda-operator", "keda-metrics-apiserver.keda.svc"),
        ip_addresses=("127.0.0.1", address),
        server=True,
        client=True,
    )
    shutil.copy(pair.cert, directory / "tls.crt")
    shutil.copy(pair.key, directory / "tls.key")
    shutil.copy(c.cp.ca.cert, directory / "ca.crt")
    return directory


def _objects(address: str, port: int) -> list[dict[str, object]]:
    svc = "keda-metrics-apiserver"
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": svc, "namespace": NAMESPACE},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{svc}-local",
                "namespace": NAMESPACE,
                "labels": {"kubernetes.io/service-name": svc},
            },
            "addressType": "IPv4",
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
            "spec": {
                "service": {"name": svc, "namespace": NAMESPACE, "port": 443},
                "group": "external.metrics.k8s.io",
                "version": "v1beta1",
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "keda-external-metrics-reader"},
            "rules": [
                {"apiGroups": ["external.metrics.k8s.io"], "resources": ["*"], "verbs": ["*"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "keda-hpa-controller-external-metrics"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "keda-external-metrics-reader",
            },
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": "horizontal-pod-autoscaler",
                    "namespace": "kube-system",
                }
            ],
        },
    ]


@contextlib.contextmanager
def running(c: Cluster, work: Path) -> Iterator[Keda]:
    """KEDA's CRDs, operator and adapter; both processes stopped afterwards."""
    d = ensure_built()
    for crd in sorted((d / "crds").glob("*.yaml")):
        c.kube.kubectl("apply", "--server-side", "-f", str(crd))
    with local_address() as address:
        certs = _certs(c, work / "keda-certs", address)
        adapter_port = _free_port_on(address)
        objs = work / "keda-objects.yaml"
        objs.write_text(yaml.safe_dump_all(_objects(address, adapter_port)))
        c.kube.kubectl("apply", "--server-side", "-f", str(objs))
        grpc_port = free_port()
        env = {
            "KUBECONFIG": str(c.kube.kubeconfig),
            "POD_NAMESPACE": NAMESPACE,
            "WATCH_NAMESPACE": "",
            "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
        }
        operator = Child(
            "keda-operator",
            [
                str(d / "keda"),
                f"--metrics-bind-address=127.0.0.1:{free_port()}",
                f"--health-probe-bind-address=127.0.0.1:{free_port()}",
                f"--metrics-service-bind-address=127.0.0.1:{grpc_port}",
                f"--cert-dir={certs}",
                f"--ca-dir={certs}",
                "--enable-webhook-patching=false",
                "--enable-apiservice-patching=false",
                "--zap-log-level=info",
            ],
            env=env,
            log_dir=work / "logs",
        )
        kc = str(c.kube.kubeconfig)
        adapter = Child(
            "keda-adapter",
            [
                str(d / "keda-adapter"),
                f"--secure-port={adapter_port}",
                f"--bind-address={address}",
                f"--cert-dir={certs}",
                f"--tls-cert-file={certs / 'tls.crt'}",
                f"--tls-private-key-file={certs / 'tls.key'}",
                f"--client-ca-file={c.cp.ca.cert}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                f"--lister-kubeconfig={kc}",
                f"--metrics-service-address=127.0.0.1:{grpc_port}",
                "--metrics-service-grpc-authority=localhost",
            ],
            env=env,
            log_dir=work / "logs",
        )
        try:
            _wait_external_metrics(c, operator, adapter)
            yield Keda(operator, adapter)
        finally:
            adapter.stop()
            operator.stop()


def _free_port_on(address: str) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def _wait_external_metrics(
    c: Cluster, operator: Child, adapter: Child, timeout: float = 90
) -> None:
    """Until the aggregated external.metrics.k8s.io API answers through the apiserver."""
    deadline = time.monotonic() + timeout
    while True:
        operator.check()
        adapter.check()
        r = c.kube.kubectl("get", "--raw", "/apis/external.metrics.k8s.io/v1beta1", check=False)
        if r.returncode == 0:
            log.info("KEDA: external metrics API available")
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"KEDA's external metrics API not available: {r.stderr[-500:]}")
        time.sleep(1)
