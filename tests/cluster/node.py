"""A real one-node cluster on this machine: containerd + runc + CNI bridge + kubelet + kube-proxy
+ CoreDNS + kube-router (NetworkPolicy) beside the local control plane, so the pods the operator
creates really run and their NetworkPolicies are really enforced.

    python -m tests.cluster up --node      # control plane + node + images (make cluster-up NODE=1)
    python -m tests.cluster down           # tears the node down first, in the order below

Layout (under the cluster state dir, `.cluster/` by default):

    node/
      node.json          what `down` needs: names, addresses, the host state to restore
      config/            containerd.toml, kubelet.yaml, kube-proxy.yaml, Corefile, resolv.conf
      cni/net.d/         the bridge + host-local + portmap conflist (containerd adds loopback)
      cni/ipam/          host-local leases
      containerd/        root (content, snapshots: kept across up/down so imports stay cheap),
                         state, socket
      runc/              runc's state root (not the machine's /run/containerd/runc)
      kubelet/           kubelet root dir; pod-logs/ its pod logs
      pki/, kubeconfigs/ the node's client certs (system:node:<name>, system:kube-proxy,
                         system:kube-router)
      local-path/        the StorageClass's volumes (removed at down, like the cluster's etcd)
      run/, logs/        pid files and logs of containerd, kubelet, kube-proxy, coredns,
                         kube-router, local-path-provisioner

Storage: Rancher's local-path-provisioner (built from its Go module, LOCAL_PATH_PROVISIONER_VERSION)
runs as a host process beside CoreDNS, with its own client cert `system:local-path-provisioner`;
StorageClass `local-path` (the default class) gives every PersistentVolumeClaim a hostPath
volume under node/local-path/<pv>_<ns>_<claim>. It makes and removes those directories with a
short helper pod in namespace `local-path-storage`, running the worker image (on the node
already; Debian's sh, mkdir, rm) as root: nothing is pulled. A host process rather than a
Deployment because it needs no image then (no Go binary inside one of ours), and it starts and
stops with the node like CoreDNS and kube-router; its helper pods are real pods either way.

NetworkPolicy: kube-router runs as a network-policy controller only (`--run-firewall`, no
router, no service proxy): iptables chains KUBE-ROUTER-* / KUBE-POD-FW-* / KUBE-NWPLCY-* and
ipsets KUBE-SRC-* / KUBE-DST-*. Its identity is the client cert `system:kube-router`, bound to
the ClusterRole `jq-node:kube-router` (read pods, namespaces, nodes, services, endpoints,
endpointslices, networkpolicies). JQ_NODE_NETWORK_POLICY=0 leaves it out (no enforcement).

Host changes, all undone by `down` (and checked by tests/e2e/test_node_lifecycle.py):
- a bridge link `jq-node0` holding NODE_ADDRESS/32 (the kernel here has no `dummy` type);
  the apiserver binds and advertises on it, CoreDNS binds on it, pods reach it via the bridge;
- the CNI bridge `jq-cni0` (10.244.0.0/24 gateway) and a veth per pod;
- iptables: kube-proxy's chains (removed with `kube-proxy --cleanup`), the kubelet's canary
  chains, kube-router's chains and ipsets (swept by name: its own `--cleanup-config` does not
  clean the policy controller in v2.1), and chain JQ-NODE-FORWARD in the mangle table (it runs
  before kube-router's filter rules, which ACCEPT allowed pod traffic) that drops forwarded
  pod traffic that is not pod-to-pod, so nothing from a pod leaves this machine even with
  ip_forward on;
- sysctls the kubelet and the bridge plugin set (ip_forward, panic, overcommit, keys):
  recorded before and restored after;
- cgroups under /kubepods (cgroupfs driver), removed when empty.

Teardown order (the one that leaves nothing, from notes/local-cluster.md): cordon; stop the
controller-manager (nothing recreates pods); delete every pod through the API (grace 0) and
wait until containerd has no running task and no pod network namespace; stop the kubelet;
remove leftover containerd tasks and containers; stop containerd, CoreDNS, kube-proxy (then
`kube-proxy --cleanup`), kube-router, then the rest of the control plane; unmount whatever is
still mounted under node/, delete leftover netns and the two links, sweep our iptables chains
and kube-router's ipsets, restore sysctls.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import ipaddress
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import binaries, host_tools, images
from tests.cluster.controlplane import (
    CONTROLLER_MANAGER,
    DEFAULT_STATE_DIR,
    NODE_ADDRESS,
    SERVICE_CIDR,
    ControlPlane,
    Kube,
)
from tests.cluster.pki import CertPair, issue
from tests.cluster.procs import ProcessGroup, log_tail

log = logging.getLogger("jq.node")

NODE_NAME = "jq-node"
NODE_LINK = "jq-node0"
CNI_BRIDGE = "jq-cni0"
CNI_NETWORK = "jq-pods"
#: Covers NODE_ADDRESS; nothing else of this range is used, but nothing may route into it.
NODE_NET = "10.200.0.0/16"
POD_CIDR = "10.244.0.0/24"
CLUSTER_DOMAIN = "cluster.local"
CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
HOST_COMMANDS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip", "iptables",
                 "ip6tables", "iptables-save", "ip6tables-save", "mount", "umount", "conntrack",
                 *(str(CNI_BIN_DIR / p) for p in CNI_PLUGINS))  # fmt: skip
#: What kube-router's policy controller runs besides iptables (Debian package ipset).
KUBE_ROUTER_COMMANDS = ("ipset", "iptables-restore")
#: iptables-save of each iptables tool (both families are swept at down).
SAVE_COMMANDS = {"iptables": "iptables-save", "ip6tables": "ip6tables-save"}
FORWARD_CHAIN = "JQ-NODE-FORWARD"
#: The forward guard's table: mangle FORWARD runs before every filter rule (kube-router's
#: KUBE-ROUTER-FORWARD, first in filter FORWARD, ACCEPTs pod traffic a policy allows).
FORWARD_TABLE = "mangle"
#: Ports on NODE_ADDRESS (only this machine has that address, so fixed ports are safe).
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
KUBE_PROXY_HEALTHZ_PORT = 10256
KUBE_PROXY_METRICS_PORT = 10249
COREDNS_READY_PORT = 8181
DNS_PORT = 53
#: Sysctls the kubelet (setupKernelTunables) and the CNI bridge plugin write; restored at down.
TOUCHED_SYSCTLS = (
    "net/ipv4/ip_forward",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
#: Directories some component creates outside node/ if absent; removed at down when empty.
HOST_DIRS = (
    "/var/log/containers",
    "/var/log/pods",
    "/run/containerd/s",
    "/run/containerd",
    "/var/run/netns",
    "/var/lib/kubelet",
)
#: Chain prefixes our components create; swept at down if anything is left.
OWNED_CHAIN_PREFIXES = ("KUBE-", "CNI-", "JQ-NODE-")
#: ipsets kube-router's policy controller creates (IPv6 ones start with `inet6:`).
OWNED_IPSET_PREFIXES = ("KUBE-SRC-", "KUBE-DST-", "TMP-", "inet6:KUBE-", "inet6:TMP-")
#: Its top-level chain in filter FORWARD: present once the policy controller has synced.
KUBE_ROUTER_FORWARD_CHAIN = "KUBE-ROUTER-FORWARD"
KUBE_ROUTER_USER = "system:kube-router"
KUBE_ROUTER_ROLE = "jq-node:kube-router"
#: How often kube-router re-syncs every rule besides reacting to events (default 5m).
KUBE_ROUTER_SYNC_PERIOD = "1m"
NETWORK_POLICY_ENV = "JQ_NODE_NETWORK_POLICY"
NODE_READY_TIMEOUT = 120.0
DRAIN_TIMEOUT = 90.0
CONTAINERD, KUBELET, KUBE_PROXY, COREDNS = "containerd", "kubelet", "kube-proxy", "coredns"
KUBE_ROUTER = "kube-router"
LOCAL_PATH = "local-path-provisioner"
#: The default StorageClass and what its provisioner needs in the cluster (upstream's names).
STORAGE_CLASS = "local-path"
LOCAL_PATH_PROVISIONER = "rancher.io/local-path"
LOCAL_PATH_NAMESPACE = "local-path-storage"
LOCAL_PATH_CONFIGMAP = "local-path-config"
LOCAL_PATH_SERVICE_ACCOUNT = "local-path-provisioner-service-account"
LOCAL_PATH_USER = "system:local-path-provisioner"
LOCAL_PATH_ROLE = "jq-node:local-path-provisioner"
#: The image of its helper pods: always on the node (node.up imports it).
HELPER_IMAGE = images.AppImage("worker", "worker-image/Dockerfile").ref


def network_policy_enabled() -> bool:
    """NetworkPolicy enforcement (kube-router) on the node: on unless JQ_NODE_NETWORK_POLICY=0."""
    return os.environ.get(NETWORK_POLICY_ENV, "1").strip().lower() not in ("0", "false", "no")


NODE_COMPONENTS: tuple[str, ...] = ("k8s", "etcd", "coredns", LOCAL_PATH) + (
    ("kube-router",) if network_policy_enabled() else ()
)


class Attempts:
    """Runs clean-up steps so that one failing step never skips the rest; keeps each error as
    one line (what, and the error) for the caller to report."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def __call__(self, what: str, step: Callable[[], list[str] | None]) -> list[str]:
        try:
            return step() or []
        except Exception as exc:  # a clean-up step: report it, go on with the next one
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning("clean-up: %s failed: %s", what, first)
            self.problems.append(f"{what}: {first}")
            return []


class TeardownIncomplete(RuntimeError):
    """Every clean-up step ran, and some failed: ``problems`` has one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class NodeError(RuntimeError):
    """The node could not be started or checked; the message says what and where the log is."""


# ------------------------------------------------------------------ pure configuration


@dataclass(frozen=True, slots=True)
class NodePaths:
    """Every path of one node, all below `root`."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "node.json"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        return self.root / "runc"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def local_path(self) -> Path:
        """Where StorageClass local-path puts its volumes."""
        return self.root / "local-path"

    @property
    def kubeconfigs(self) -> Path:
        return self.root / "kubeconfigs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def netns_dir(self) -> Path:
        """Where containerd mounts pod network namespaces (netns_mounts_under_state_dir)."""
        return self.containerd_state / "io.containerd.grpc.v1.cri" / "netns"


def cni_conflist(pod_cidr: str, ipam_dir: Path) -> dict[str, Any]:
    """bridge + host-local + portmap. No ipMasq: pod traffic is never NATed off this machine."""
    gateway = str(next(ipaddress.ip_network(pod_cidr).hosts()))
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": CNI_BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(ipam_dir),
                    "ranges": [[{"subnet": pod_cidr, "gateway": gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def containerd_config(paths: NodePaths, runc: str, pause_image: str) -> str:
    """containerd 1.6 config (version 2) with its own root, state, socket, runc root, CNI dirs."""
    return f"""\
version = 2
root = "{paths.containerd_root}"
state = "{paths.containerd_state}"
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{paths.containerd_socket}"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{paths.root / "containerd" / "opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  # This machine refuses a negative oom_score_adj; without this every sandbox fails with
  # runc's "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  # Pod network namespaces under our state dir, not the machine's /var/run/netns.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{paths.runc_root}"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{paths.cni_conf_dir}"
    max_conf_num = 1
"""


def kubelet_config(
    paths: NodePaths, ca_file: Path, serving: CertPair, node_address: str
) -> dict[str, Any]:
    """KubeletConfiguration for cgroup v1 + cgroupfs, webhook authn/authz, low eviction."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node_address,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": node_address,
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "tlsCertFile": str(serving.cert),
        "tlsPrivateKeyFile": str(serving.key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "clusterDNS": [node_address],
        "clusterDomain": CLUSTER_DOMAIN,
        # An empty resolv.conf: pods get the cluster DNS and nothing of the host's.
        "resolvConf": str(paths.config / "resolv.conf"),
        "podLogsDir": str(paths.pod_logs),
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "evictionPressureTransitionPeriod": "10s",
        # Imported images cannot be pulled back: never garbage-collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "maxPods": 60,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "shutdownGracePeriod": "0s",
        "shutdownGracePeriodCriticalPods": "0s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "enableDebuggingHandlers": True,
        "enableServer": True,
        "localStorageCapacityIsolation": True,
    }


def kube_proxy_config(kubeconfig: Path, node_address: str, pod_cidr: str) -> dict[str, Any]:
    """iptables mode; touches no conntrack sysctl and no localhost NodePort (route_localnet)."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "bindAddress": node_address,
        "healthzBindAddress": f"{node_address}:{KUBE_PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": f"{node_address}:{KUBE_PROXY_METRICS_PORT}",
        "clusterCIDR": pod_cidr,
        "nodePortAddresses": [f"{node_address}/32"],
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"syncPeriod": "30s", "minSyncPeriod": "0s"},
    }


def corefile(node_address: str, kubeconfig: Path) -> str:
    """Cluster names only (no forward plugin): nothing is resolved outside this machine."""
    return f"""\
{CLUSTER_DOMAIN}:{DNS_PORT} in-addr.arpa:{DNS_PORT} ip6.arpa:{DNS_PORT} {{
    bind {node_address}
    errors
    ready {node_address}:{COREDNS_READY_PORT}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""


def kube_router_rbac() -> list[dict[str, Any]]:
    """ClusterRole + binding of kube-router's identity: read what its informers watch. Pure."""

    def read(group: str, *resources: str) -> dict[str, Any]:
        verbs = ["get", "list", "watch"]
        return {"apiGroups": [group], "resources": list(resources), "verbs": verbs}

    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": KUBE_ROUTER_ROLE},
            "rules": [
                read("", "pods", "namespaces", "nodes", "services", "endpoints"),
                read("networking.k8s.io", "networkpolicies"),
                read("discovery.k8s.io", "endpointslices"),
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": KUBE_ROUTER_ROLE},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": KUBE_ROUTER_ROLE,
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KUBE_ROUTER_USER}
            ],
        },
    ]


def local_path_manifests(volume_root: Path, helper_image: str) -> list[dict[str, Any]]:
    """What the provisioner needs in the cluster: upstream's deploy/local-path-storage.yaml
    minus its Deployment (it runs as a host process under LOCAL_PATH_USER), with the helper pod
    on `helper_image` as root, the volumes under `volume_root`, and the class the default. Pure.
    """
    rbac = "rbac.authorization.k8s.io"
    subject = [{"apiGroup": rbac, "kind": "User", "name": LOCAL_PATH_USER}]
    helper_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod"},
        "spec": {
            "priorityClassName": "system-node-critical",
            "automountServiceAccountToken": False,
            "tolerations": [
                {
                    "key": "node.kubernetes.io/disk-pressure",
                    "operator": "Exists",
                    "effect": "NoSchedule",
                }
            ],
            "containers": [
                {
                    "name": "helper-pod",
                    "image": helper_image,
                    "imagePullPolicy": "Never",
                    # mkdir/rm in a root-owned host dir; the image's own user is 10001.
                    "securityContext": {"runAsUser": 0, "runAsGroup": 0},
                }
            ],
        },
    }
    config = {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES",
                               "paths": [str(volume_root)]}],
              "cmdTimeoutSeconds": 60}  # fmt: skip
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LOCAL_PATH_NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": LOCAL_PATH_SERVICE_ACCOUNT, "namespace": LOCAL_PATH_NAMESPACE},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": LOCAL_PATH_ROLE},
            "rules": [
                {
                    "apiGroups": [""],
                    "verbs": ["get", "list", "watch"],
                    "resources": [
                        "nodes",
                        "persistentvolumeclaims",
                        "configmaps",
                        "pods",
                        "pods/log",
                    ],
                },
                {
                    "apiGroups": [""],
                    "resources": ["persistentvolumes"],
                    "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
                },
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
                {
                    "apiGroups": ["storage.k8s.io"],
                    "resources": ["storageclasses"],
                    "verbs": ["get", "list", "watch"],
                },
            ],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": LOCAL_PATH_ROLE},
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": LOCAL_PATH_ROLE},
            "subjects": subject,
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "Role",
            "metadata": {"name": LOCAL_PATH_ROLE, "namespace": LOCAL_PATH_NAMESPACE},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods"],
                    "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
                }
            ],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": LOCAL_PATH_ROLE, "namespace": LOCAL_PATH_NAMESPACE},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": LOCAL_PATH_ROLE},
            "subjects": subject,
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": LOCAL_PATH_CONFIGMAP, "namespace": LOCAL_PATH_NAMESPACE},
            "data": {
                "config.json": json.dumps(config, indent=2),
                "setup": '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
                "teardown": '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
                "helperPod.yaml": yaml.safe_dump(helper_pod, sort_keys=False),
            },
        },
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": LOCAL_PATH_PROVISIONER,
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
        },
    ]


def local_path_args(binary: Path, kubeconfig: Path, config: Path, helper_pod: Path,
                    helper_image: str) -> list[str]:  # fmt: skip
    """The provisioner as upstream's Deployment runs it, from files instead of a mounted
    ConfigMap (it re-reads them every 30 s, as it would the mount). Pure."""
    return [
        str(binary), "--debug", "start",
        "--kubeconfig", str(kubeconfig),
        "--config", str(config),
        "--helper-pod-file", str(helper_pod),
        "--helper-image", helper_image,
        "--namespace", LOCAL_PATH_NAMESPACE,
        "--configmap-name", LOCAL_PATH_CONFIGMAP,
        "--service-account-name", LOCAL_PATH_SERVICE_ACCOUNT,
        "--provisioner-name", LOCAL_PATH_PROVISIONER,
    ]  # fmt: skip


def kube_router_args(binary: Path, kubeconfig: Path, service_cidr: str) -> list[str]:
    """kube-router as a NetworkPolicy controller only: no BGP router, no service proxy (that is
    kube-proxy), no CNI config, no listening port (health and metrics off). Pure."""
    return [
        str(binary),
        "--kubeconfig", str(kubeconfig),
        "--hostname-override", NODE_NAME,
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--run-loadbalancer=false",
        "--enable-cni=false",
        "--enable-ipv4=true",
        "--enable-ipv6=false",
        "--service-cluster-ip-range", service_cidr,
        "--iptables-sync-period", KUBE_ROUTER_SYNC_PERIOD,
        "--health-port", "0",
        "--metrics-port", "0",
        "--v", "1",
    ]  # fmt: skip


def owned_ipsets(names: Iterable[str]) -> list[str]:
    """The ipsets of kube-router's policy controller among `ipset list -n` names. Pure."""
    return sorted(n for n in names if n.startswith(OWNED_IPSET_PREFIXES))


def overlapping(wanted: Iterable[str], in_use: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs (wanted network, network in use) that overlap. Pure."""
    pairs = []
    for w in wanted:
        wn = ipaddress.ip_network(w, strict=False)
        for u in in_use:
            un = ipaddress.ip_network(u, strict=False)
            if wn.version == un.version and wn.overlaps(un):
                pairs.append((w, u))
    return pairs


def resolv_nameservers(text: str) -> list[str]:
    """The nameserver addresses of a resolv.conf. Pure."""
    return [
        words[1]
        for line in text.splitlines()
        if len(words := line.split()) >= 2 and words[0] == "nameserver"
    ]


def normalise_iptables(dump: str) -> list[str]:
    """iptables-save output without comments and counters, for before/after comparison. Pure."""
    lines = []
    for line in dump.splitlines():
        if not line or line.startswith("#"):
            continue
        lines.append(re.sub(r"\s\[\d+:\d+\]$", "", line))
    return lines


# ------------------------------------------------------------------ host helpers


def _sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a host program (looked up in hack/host-tools.txt) or a built binary (a path)."""
    program = cmd[0] if cmd[0].startswith("/") else host_tools.require(cmd[0])
    proc = subprocess.run([program, *cmd[1:]], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def read_sysctl(key: str) -> str | None:
    try:
        return Path(f"/proc/sys/{key}").read_text().strip()
    except OSError:
        return None


def write_sysctl(key: str, value: str) -> None:
    try:
        Path(f"/proc/sys/{key}").write_text(value + "\n")
    except OSError as e:
        log.warning("could not restore sysctl %s=%s: %s", key, value, e)


def routes_in_use(exclude_links: Sequence[str]) -> list[str]:
    """Destination networks the machine routes or holds, except through our own links."""
    nets: list[str] = []
    for entry in json.loads(_sh("ip", "-j", "route", "show", "table", "all").stdout or "[]"):
        dst = entry.get("dst", "")
        if entry.get("dev") in exclude_links or dst in ("default", "") or ":" in dst:
            continue
        if entry.get("type") in ("broadcast",):
            continue
        with contextlib.suppress(ValueError):
            nets.append(str(ipaddress.ip_network(dst, strict=False)))
    for link in json.loads(_sh("ip", "-j", "addr").stdout or "[]"):
        if link.get("ifname") in exclude_links:
            continue
        for a in link.get("addr_info", []):
            if a.get("family") == "inet":
                nets.append(f"{a['local']}/{a['prefixlen']}")
    return sorted(set(nets) - {"127.0.0.0/8"})


def mounts_under(*roots: Path) -> list[str]:
    """Mount points at or below any of roots, deepest first (the order to unmount them)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(r) or point.startswith(f"{r}/") for r in roots):
            found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def owned_chains(save: str) -> dict[str, list[str]]:
    """table -> chains named with one of our prefixes, from iptables-save output. Pure."""
    chains: dict[str, list[str]] = {}
    table = ""
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            name = line[1:].split()[0]
            if name.startswith(OWNED_CHAIN_PREFIXES):
                chains.setdefault(table, []).append(name)
    return chains


def sweep_iptables() -> list[str]:
    """Remove every rule jumping to and every chain of our prefixes (iptables and ip6tables)."""
    removed = []
    for tool in ("iptables", "ip6tables"):
        save = _sh(SAVE_COMMANDS[tool], check=False).stdout
        owned = owned_chains(save)
        if not owned:
            continue
        table = ""
        for line in save.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith("-A ") and table in owned:
                words = shlex.split(line)  # comments are quoted: "kube-router netpol - ..."
                target = words[words.index("-j") + 1] if "-j" in words else ""
                if target in owned[table] and not words[1].startswith(OWNED_CHAIN_PREFIXES):
                    _sh(tool, "-t", table, "-D", *words[1:], check=False)
                    removed.append(f"{tool} -t {table} {line}")
        for table_name, chains in owned.items():
            for chain in chains:
                _sh(tool, "-t", table_name, "-F", chain, check=False)
            for chain in chains:
                if _sh(tool, "-t", table_name, "-X", chain, check=False).returncode == 0:
                    removed.append(f"{tool} -t {table_name} -X {chain}")
    return removed


def list_ipsets() -> list[str]:
    """Names of every ipset on the machine ([] without the ipset tool)."""
    if host_tools.find("ipset") is None:
        return []
    return _sh("ipset", "list", "-n", check=False).stdout.split()


def sweep_ipsets() -> list[str]:
    """Destroy kube-router's ipsets (after its iptables rules, which reference them, are gone)."""
    removed = []
    for name in owned_ipsets(list_ipsets()):
        _sh("ipset", "flush", name, check=False)
        if _sh("ipset", "destroy", name, check=False).returncode == 0:
            removed.append(f"ipset {name}")
        else:
            log.warning("could not destroy ipset %s", name)
    return removed


def iptables_tables(tool: str) -> list[str]:
    """Tables `<tool>-save` shows (with nf_tables, a table exists once something used it)."""
    save = _sh(SAVE_COMMANDS[tool], check=False).stdout
    return sorted(line[1:] for line in save.splitlines() if line.startswith("*"))


def remove_empty_nft_tables(tool: str, keep: Iterable[str]) -> list[str]:
    """Delete the nf_tables tables iptables created that hold no rule and no own chain.

    Only with the nf_tables backend (a legacy table is a kernel module and stays), and only
    where nft is installed (it is optional: without it the empty tables stay, which is harmless).
    """
    if host_tools.find("nft") is None:
        return []
    if "nf_tables" not in _sh(tool, "--version", check=False).stdout:
        return []
    family = "ip" if tool == "iptables" else "ip6"
    removed = []
    for table in iptables_tables(tool):
        if table in keep:
            continue
        rules = _sh(SAVE_COMMANDS[tool], "-t", table, check=False).stdout
        lines = normalise_iptables(rules)
        # A user chain's policy column is "-"; built-in chains have ACCEPT/DROP.
        own = [x for x in lines if x.startswith("-A") or x.split()[1:2] == ["-"]]
        if not own and _sh("nft", "delete", "table", family, table, check=False).returncode == 0:
            removed.append(f"nft table {family} {table}")
    return removed


def prune_host_dir(path: Path, node_root: Path) -> bool:
    """Remove what the node left in a host dir that did not exist before: sockets, symlinks
    into node_root (pod log links), empty dirs. True if the dir is gone."""
    if not path.is_dir():
        return True
    for entry in sorted(path.rglob("*"), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            if entry.is_symlink():
                if str(Path(os.readlink(entry))).startswith(str(node_root)):
                    entry.unlink()
            elif entry.is_socket():
                entry.unlink()
            elif entry.is_dir():
                entry.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()
    return not path.exists()


def kubepods_cgroups() -> list[Path]:
    return sorted(p for p in Path("/sys/fs/cgroup").glob("*/kubepods*") if p.is_dir())


def remove_cgroup_tree(root: Path) -> None:
    """rmdir a cgroup directory bottom-up (cgroup dirs hold only virtual files)."""
    dirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for d in [*dirs, root]:
        with contextlib.suppress(OSError):
            d.rmdir()


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return 200 <= int(r.status) < 300
    except OSError:
        return False


def host_snapshot(state_dir: Path) -> dict[str, Any]:
    """The machine state a node could leave behind: compare one taken before `up` with one
    taken after `down` (tests/e2e/test_node_lifecycle.py). Processes count when their command
    line names state_dir (other clusters on the machine are not ours)."""
    state_dir = state_dir.resolve()
    node_root = state_dir / "node"
    links = sorted(p.name for p in Path("/sys/class/net").iterdir())
    netns_dir = Path("/var/run/netns")
    procs = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            argv = (pid_dir / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(str(state_dir) in a for a in argv):
            procs.append(Path(argv[0]).name)
    return {
        # Only links a node makes (other helpers' links come and go meanwhile).
        "links": [x for x in links if x in (NODE_LINK, CNI_BRIDGE)]
        + (["veth*"] if any(x.startswith("veth") for x in links) else []),
        "mounts": mounts_under(node_root, Path("/run/containerd"), Path("/var/lib/kubelet")),
        "netns": sorted(p.name for p in netns_dir.iterdir()) if netns_dir.is_dir() else [],
        "iptables": normalise_iptables(_sh("iptables-save", check=False).stdout),
        "ip6tables": normalise_iptables(_sh("ip6tables-save", check=False).stdout),
        "ipsets": owned_ipsets(list_ipsets()),
        "processes": sorted(procs),
        "cgroups": [str(p) for p in kubepods_cgroups()],
        "sysctls": {k: read_sysctl(k) for k in TOUCHED_SYSCTLS},
        "host_dirs": [d for d in HOST_DIRS if Path(d).exists()],
    }


# ------------------------------------------------------------------ the node


@dataclass
class NodeState:
    """What `down` needs, written to node/node.json when the node starts."""

    node_name: str = NODE_NAME
    node_address: str = NODE_ADDRESS
    node_link: str = NODE_LINK
    pod_cidr: str = POD_CIDR
    sysctls: dict[str, str | None] = field(default_factory=dict)
    host_dirs_before: list[str] = field(default_factory=list)
    cgroups_before: list[str] = field(default_factory=list)
    iptables_tables_before: dict[str, list[str]] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    network_policy: bool = False


class Node:
    """containerd + kubelet + kube-proxy + CoreDNS (+ kube-router) in `<state_dir>/node`, joined
    to `plane`.

    `start()` expects the node link to exist (see `prepare_host`) and a control plane bound
    and advertised on the node address, with the scheduler. `stop()` is the first half of the
    teardown (needs the apiserver up); `cleanup_host()` the second (after the control plane).
    """

    def __init__(self, state_dir: Path, plane: ControlPlane) -> None:
        self.paths = NodePaths(state_dir.resolve() / "node")
        self.plane = plane
        self.procs = ProcessGroup(self.paths.run, self.paths.logs)
        self.state = NodeState()

    # ---- state -------------------------------------------------------------------------
    def load_state(self) -> bool:
        if not self.paths.state_file.is_file():
            return False
        data = json.loads(self.paths.state_file.read_text())
        self.state = NodeState(**data)
        return True

    def save_state(self) -> None:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self.paths.state_file.write_text(json.dumps(asdict(self.state), indent=2) + "\n")

    def running(self) -> list[str]:
        return [r.name for r in self.procs.records() if r.running]

    @property
    def kube(self) -> Kube:
        return self.plane.kube

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _sh("ctr", "--address", str(self.paths.containerd_socket), "-n", "k8s.io", *args,
                   check=check)  # fmt: skip

    # ---- host preparation (before the control plane binds on the node address) ---------
    def prepare_host(self) -> None:
        """Check ranges, record host state, create the node link and the forward guard."""
        in_use = routes_in_use(exclude_links=(NODE_LINK, CNI_BRIDGE))
        nameservers = resolv_nameservers(Path("/etc/resolv.conf").read_text())
        clashes = overlapping(
            (NODE_NET, POD_CIDR, SERVICE_CIDR), [*in_use, *(f"{n}/32" for n in nameservers)]
        )
        if clashes:
            addrs = _sh("ip", "-br", "addr", check=False).stdout
            raise NodeError(
                f"address ranges clash with what this machine routes: {clashes}; another "
                "program holds them, or change NODE_NET/POD_CIDR (tests/cluster/node.py) or "
                f"SERVICE_CIDR (controlplane.py). Addresses now:\n{addrs}"
            )
        if link_exists(NODE_LINK) or link_exists(CNI_BRIDGE):
            raise NodeError(f"{NODE_LINK}/{CNI_BRIDGE} exist: a node is up, run `down` first")
        self.state = NodeState(
            sysctls={k: read_sysctl(k) for k in TOUCHED_SYSCTLS},
            host_dirs_before=[d for d in HOST_DIRS if Path(d).exists()],
            cgroups_before=[str(p) for p in kubepods_cgroups()],
            iptables_tables_before={t: iptables_tables(t) for t in ("iptables", "ip6tables")},
        )
        self.save_state()
        _sh("ip", "link", "add", NODE_LINK, "type", "bridge")
        _sh("ip", "addr", "add", f"{NODE_ADDRESS}/32", "dev", NODE_LINK)
        _sh("ip", "link", "set", NODE_LINK, "up")
        # Forwarded traffic of the pod range stays between pods: nothing leaves the machine.
        ipt = ("iptables", "-t", FORWARD_TABLE)
        _sh(*ipt, "-N", FORWARD_CHAIN)
        _sh(*ipt, "-A", FORWARD_CHAIN, "-s", POD_CIDR, "-d", POD_CIDR, "-j", "RETURN")
        _sh(*ipt, "-A", FORWARD_CHAIN, "-s", POD_CIDR, "-j", "DROP")
        _sh(*ipt, "-A", FORWARD_CHAIN, "-d", POD_CIDR, "-j", "DROP")
        _sh(*ipt, "-I", "FORWARD", "1", "-j", FORWARD_CHAIN)
        log.info("node link %s holds %s/32", NODE_LINK, NODE_ADDRESS)

    # ---- start -------------------------------------------------------------------------
    def start(self, built: Sequence[images.BuiltImage]) -> None:
        t0 = time.monotonic()
        binaries.require(NODE_COMPONENTS)
        self._preflight()
        self.load_state()
        self.state.network_policy = network_policy_enabled()
        self.save_state()
        for sub in ("config", "pki", "kubeconfigs", "run", "logs", "kubelet", "pod-logs", "cni"):
            shutil.rmtree(self.paths.root / sub, ignore_errors=True)
        self._write_configs()
        self._start_containerd()
        pause = [b for b in built if b.ref == images.PAUSE_IMAGE]
        images.import_images(pause, self.paths.containerd_socket)
        self._start(KUBELET, [
            str(binaries.path("kubelet")),
            "--config", str(self.paths.config / "kubelet.yaml"),
            "--kubeconfig", str(self.paths.kubeconfigs / "kubelet.yaml"),
            "--root-dir", str(self.paths.kubelet_root),
            "--cert-dir", str(self.paths.pki),
            "--hostname-override", NODE_NAME,
            "--node-ip", NODE_ADDRESS,
            "--v", "1",
        ])  # fmt: skip
        self._start(KUBE_PROXY, [
            str(binaries.path("kube-proxy")),
            "--config", str(self.paths.config / "kube-proxy.yaml"),
            "--v", "1",
        ])  # fmt: skip
        self._start(COREDNS, [
            str(binaries.path("coredns")),
            "-conf", str(self.paths.config / "Corefile"),
            "-dns.port", str(DNS_PORT),
        ])  # fmt: skip
        self._wait(KUBELET, "node Ready", self._node_ready, NODE_READY_TIMEOUT)
        log.info("node %s Ready (%.1f s after containerd)", NODE_NAME, time.monotonic() - t0)
        self._wait(
            KUBE_PROXY,
            "/healthz",
            lambda: _http_ok(f"http://{NODE_ADDRESS}:{KUBE_PROXY_HEALTHZ_PORT}/healthz"),
            NODE_READY_TIMEOUT,
        )
        self._wait(COREDNS, "/ready", lambda: _http_ok(
            f"http://{NODE_ADDRESS}:{COREDNS_READY_PORT}/ready"), NODE_READY_TIMEOUT)  # fmt: skip
        if self.state.network_policy:
            self._start_kube_router()
        apps = [b for b in built if b.ref != images.PAUSE_IMAGE]
        if apps:
            images.import_images(apps, self.paths.containerd_socket)
        self._start_local_path()
        self.state.images = {b.ref: b.digest for b in built}
        self.save_state()
        log.info("node up in %.1f s", time.monotonic() - t0)

    def _preflight(self) -> None:
        if os.geteuid() != 0:
            raise NodeError("the node needs root (network links, mounts, cgroups)")
        commands = HOST_COMMANDS + (KUBE_ROUTER_COMMANDS if network_policy_enabled() else ())
        absent = host_tools.missing(commands)
        if absent:
            raise NodeError(f"missing: {'; '.join(absent)}")
        if not link_exists(NODE_LINK):
            raise NodeError(f"link {NODE_LINK} missing: call prepare_host() first")

    def _write_configs(self) -> None:
        p = self.paths
        dirs = (p.config, p.cni_conf_dir, p.cni_ipam_dir, p.containerd_root, p.containerd_state,
                p.runc_root, p.kubelet_root, p.pod_logs, p.kubeconfigs)  # fmt: skip
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
        runc = host_tools.require("runc")
        (p.config / "containerd.toml").write_text(containerd_config(p, runc, images.PAUSE_IMAGE))
        (p.cni_conf_dir / "10-jq-pods.conflist").write_text(
            json.dumps(cni_conflist(POD_CIDR, p.cni_ipam_dir), indent=2) + "\n"
        )
        (p.config / "resolv.conf").write_text("")
        ca = self.plane.ca
        kubelet_client = issue(ca, p.pki, "kubelet-client", cn=f"system:node:{NODE_NAME}",
                               orgs=("system:nodes",))  # fmt: skip
        serving = issue(ca, p.pki, "kubelet-serving", cn=f"system:node:{NODE_NAME}",
                        ip_addresses=(NODE_ADDRESS,), dns_names=(NODE_NAME,),
                        server=True, client=False)  # fmt: skip
        proxy_client = issue(ca, p.pki, "kube-proxy", cn="system:kube-proxy")
        self.plane.write_kubeconfig(
            p.kubeconfigs / "kubelet.yaml", f"system:node:{NODE_NAME}", kubelet_client
        )
        proxy_kc = self.plane.write_kubeconfig(
            p.kubeconfigs / "kube-proxy.yaml", "system:kube-proxy", proxy_client
        )
        router_client = issue(ca, p.pki, "kube-router", cn=KUBE_ROUTER_USER)
        self.plane.write_kubeconfig(p.kubeconfigs / "kube-router.yaml", KUBE_ROUTER_USER,
                                    router_client)  # fmt: skip
        (p.config / "kubelet.yaml").write_text(
            yaml.safe_dump(kubelet_config(p, ca.cert, serving, NODE_ADDRESS))
        )
        (p.config / "kube-proxy.yaml").write_text(
            yaml.safe_dump(kube_proxy_config(proxy_kc, NODE_ADDRESS, POD_CIDR))
        )
        (p.config / "Corefile").write_text(corefile(NODE_ADDRESS, self.plane.kubeconfig))

    def _start(self, name: str, argv: list[str]) -> None:
        self.procs.start(name, argv)

    def _start_containerd(self) -> None:
        sock = self.paths.containerd_socket
        sock.unlink(missing_ok=True)
        self._start(
            CONTAINERD, ["containerd", "--config", str(self.paths.config / "containerd.toml")]
        )

        def answers() -> bool:
            return sock.exists() and self.ctr("version", check=False).returncode == 0

        self._wait(CONTAINERD, "its socket", answers, 30.0)

    def _start_kube_router(self) -> None:
        """RBAC for its identity, then kube-router (it reads the Node object: after Ready);
        ready once its chain hangs in filter FORWARD and ends with the ACCEPT of allowed
        traffic (both written by its first full sync)."""
        t0 = time.monotonic()
        self.kube.kubectl("apply", "--server-side", "--force-conflicts",
                          "--field-manager=jq-node", "-f", "-",
                          input=yaml.safe_dump_all(kube_router_rbac()))  # fmt: skip
        kubeconfig = self.paths.kubeconfigs / "kube-router.yaml"
        self._start(KUBE_ROUTER, kube_router_args(binaries.path("kube-router"), kubeconfig,
                                                  SERVICE_CIDR))  # fmt: skip

        def synced() -> bool:
            hook = _sh("iptables", "-t", "filter", "-S", "FORWARD", check=False).stdout
            chain = _sh("iptables", "-t", "filter", "-S", KUBE_ROUTER_FORWARD_CHAIN,
                        check=False).stdout  # fmt: skip
            return f"-j {KUBE_ROUTER_FORWARD_CHAIN}" in hook and "-j ACCEPT" in chain

        self._wait(KUBE_ROUTER, f"its {KUBE_ROUTER_FORWARD_CHAIN} chain", synced,
                   NODE_READY_TIMEOUT)  # fmt: skip
        log.info("kube-router enforces NetworkPolicy (%.1f s)", time.monotonic() - t0)

    def _start_local_path(self) -> None:
        """RBAC, namespace, ConfigMap and the default StorageClass, then the provisioner."""
        t0 = time.monotonic()
        p = self.paths
        p.local_path.mkdir(parents=True, exist_ok=True)
        docs = local_path_manifests(p.local_path, HELPER_IMAGE)
        self.kube.kubectl("apply", "--server-side", "--force-conflicts",
                          "--field-manager=jq-node", "-f", "-",
                          input=yaml.safe_dump_all(docs))  # fmt: skip
        data = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
        (p.config / "local-path.json").write_text(data["config.json"])
        (p.config / "local-path-helper-pod.yaml").write_text(data["helperPod.yaml"])
        client = issue(self.plane.ca, p.pki, "local-path-provisioner", cn=LOCAL_PATH_USER)
        kubeconfig = self.plane.write_kubeconfig(p.kubeconfigs / "local-path.yaml",
                                                 LOCAL_PATH_USER, client)  # fmt: skip
        self._start(LOCAL_PATH, local_path_args(
            binaries.path(LOCAL_PATH), kubeconfig, p.config / "local-path.json",
            p.config / "local-path-helper-pod.yaml", HELPER_IMAGE))  # fmt: skip
        logf = p.logs / f"{LOCAL_PATH}.log"

        def started() -> bool:
            return logf.is_file() and "Provisioner started" in logf.read_text(errors="replace")

        self._wait(LOCAL_PATH, "its start", started, NODE_READY_TIMEOUT)
        log.info("StorageClass %s (default) served by %s (%.1f s)", STORAGE_CLASS, LOCAL_PATH,
                 time.monotonic() - t0)  # fmt: skip

    def _node_ready(self) -> bool:
        proc = self.kube.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
        if proc.returncode != 0:
            return False
        conditions = json.loads(proc.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _wait(self, name: str, what: str, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            code = self.procs.exited(name)
            logf = self.paths.logs / f"{name}.log"
            if code is not None:
                raise NodeError(f"{name} exited ({code}) before {what}; {logf}:\n{log_tail(logf)}")
            if time.monotonic() > deadline:
                raise NodeError(f"{name}: {what} not reached in {timeout:.0f} s; {logf}:\n"
                                f"{log_tail(logf)}")  # fmt: skip
            time.sleep(0.25)

    # ---- restart (tests: the node's own services fail under running pods) ----------------
    def restart(self, *names: str) -> None:
        """Stop the named node processes (SIGTERM, in the order given) and start each again with
        its own command line, in reverse order: what a supervisor does when a service crashes
        or is restarted. Pods keep running in their shims meanwhile; containerd answers again
        and the kubelet reports the node Ready again before this returns."""
        argvs = {}
        for name in names:
            rec = self.procs.record(name)
            if rec is None or not rec.running:
                raise NodeError(f"{name} is not running: nothing to restart")
            raw = Path(f"/proc/{rec.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            argvs[name] = [a.decode() for a in raw]
        for name in names:
            self.procs.stop(name)
        for name in reversed(names):
            if name == CONTAINERD:
                self.paths.containerd_socket.unlink(missing_ok=True)
            self.procs.start(name, argvs[name])
            if name == CONTAINERD:
                self._wait(CONTAINERD, "its socket", self._containerd_answers, 30.0)
        if KUBELET in names:
            # The kubelet exits when containerd's CRI service is not initialised yet (a moment
            # after its socket answers); started again like systemd's Restart=always would.
            healthz = f"http://{NODE_ADDRESS}:{KUBELET_HEALTHZ_PORT}/healthz"
            deadline = time.monotonic() + NODE_READY_TIMEOUT
            while not _http_ok(healthz):
                if time.monotonic() > deadline:
                    logf = self.paths.logs / f"{KUBELET}.log"
                    raise NodeError(f"the kubelet did not come back; {logf}:\n{log_tail(logf)}")
                if self.procs.exited(KUBELET) is not None:
                    time.sleep(1.0)
                    self.procs.start(KUBELET, argvs[KUBELET])
                time.sleep(0.25)
        self._wait(KUBELET, "node Ready", self._node_ready, NODE_READY_TIMEOUT)

    # ---- stop --------------------------------------------------------------------------
    def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Cordon, delete every pod of this node through the API (grace 0), wait until the
        kubelet has stopped all of them: no running task, no pod network namespace left."""
        if not self.plane.status()["apiserver_ready"]:
            log.warning("apiserver not answering: cannot delete pods through the API")
            return
        kube = self.kube
        kube.kubectl("cordon", NODE_NAME, check=False)
        # No controller may replace what we delete (a DaemonSet pod tolerates the cordon).
        self.plane.procs.stop(CONTROLLER_MANAGER)
        t0 = time.monotonic()
        selector = f"spec.nodeName={NODE_NAME}"
        kube.kubectl("delete", "pods", "--all-namespaces", "--field-selector", selector,
                     "--grace-period=0", "--force", "--wait=false", check=False)  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            tasks = self._running_tasks() if self._containerd_up() else []
            netns = list(self.paths.netns_dir.iterdir()) if self.paths.netns_dir.is_dir() else []
            if not tasks and not netns:
                break
            if time.monotonic() > deadline:
                log.warning("after %.0f s still %d tasks, %d netns: going on", timeout,
                            len(tasks), len(netns))  # fmt: skip
                break
            time.sleep(0.5)
        log.info("pods stopped by the kubelet in %.1f s", time.monotonic() - t0)

    def _containerd_answers(self) -> bool:
        sock = self.paths.containerd_socket
        return sock.exists() and self.ctr("version", check=False).returncode == 0

    def _containerd_up(self) -> bool:
        rec = self.procs.record(CONTAINERD)
        return rec is not None and rec.running and self.paths.containerd_socket.exists()

    def _running_tasks(self) -> list[str]:
        proc = self.ctr("tasks", "ls", "-q", check=False)
        return proc.stdout.split() if proc.returncode == 0 else []

    def remove_containers(self) -> None:
        """Kill and delete every task and container left in containerd's k8s.io namespace."""
        if not self._containerd_up():
            return
        for task in self._running_tasks():
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
        deadline = time.monotonic() + 15
        for task in self._running_tasks():
            while time.monotonic() < deadline:
                if self.ctr("tasks", "delete", task, check=False).returncode == 0:
                    break
                time.sleep(0.2)
        containers = self.ctr("containers", "ls", "-q", check=False).stdout.split()
        for c in containers:
            self.ctr("containers", "rm", c, check=False)
        if containers:
            log.info("removed %d leftover containerd containers", len(containers))

    def stop(self) -> list[str]:
        """First half of the teardown, while the control plane still runs. Idempotent."""
        self.load_state()
        alive = self.running()
        if not alive:
            return []
        # No helper pod may start while the pods are drained.
        self.procs.stop(LOCAL_PATH)
        if KUBELET in alive:
            self.drain()
        self.procs.stop(KUBELET)
        self.remove_containers()
        for name in (CONTAINERD, COREDNS, KUBE_PROXY, KUBE_ROUTER):
            self.procs.stop(name)
        self._kube_proxy_cleanup()
        return alive

    def _kube_proxy_cleanup(self) -> None:
        proxy = binaries.path("kube-proxy")
        if proxy.exists():
            proc = _sh(str(proxy), "--cleanup", "--v", "0", check=False)
            if proc.returncode != 0:
                log.warning("kube-proxy --cleanup: %s", proc.stderr.strip()[-500:])

    def cleanup_host(self, *, force: bool = False, attempts: Attempts | None = None) -> list[str]:
        """Second half: unmount, netns, links, iptables, cgroups, sysctls, dirs. Idempotent.

        The machine-wide part only if this state dir owns the node (or `force`: debris). Every
        step runs even when an earlier one failed; failures land in ``attempts`` (by default
        raised together as :class:`TeardownIncomplete` at the end).
        """
        self.load_state()
        own = attempts if attempts is not None else Attempts()
        owner = node_owner()
        if not force and owner is not None and owner != self.paths.root.parent:
            log.warning("the node links belong to %s: leaving them", owner)
            own("unmount the node's dirs", lambda: self._unmount(lazy=True))
            return []
        done = own("kill containerd shims", self._kill_shims)
        done += own("unmount the node's dirs", self._unmount)
        done += own("delete pod network namespaces", self._delete_netns)
        done += own("delete the node links", self._delete_links)
        done += own("remove iptables rules and chains", self._sweep_iptables)
        done += own("destroy ipsets", sweep_ipsets)
        done += own("remove pod cgroups", self._remove_cgroups)
        done += own("restore sysctls", self._restore_sysctls)
        for tool in ("iptables", "ip6tables"):
            keep = self.state.iptables_tables_before.get(tool, [])
            what = f"remove empty {tool} nf_tables tables"
            done += own(what, functools.partial(remove_empty_nft_tables, tool, keep))
        done += own("remove host dirs the node made", self._prune_host_dirs)
        # Pod network namespaces and sandboxes are per run; containerd's root stays (images).
        # The volumes go with the cluster's etcd (which `up` starts empty).
        for d in (self.paths.containerd_state, self.paths.kubelet_root, self.paths.cni_ipam_dir,
                  self.paths.runc_root, self.paths.local_path):  # fmt: skip
            shutil.rmtree(d, ignore_errors=True)
        self.paths.state_file.unlink(missing_ok=True)
        _set_owner(None)
        if attempts is None and own.problems:
            raise TeardownIncomplete(own.problems)
        return done

    def _kill_shims(self) -> list[str]:
        done = []
        for pid in self._leftover_shims():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            done.append(f"killed shim {pid}")
        return done

    def _unmount(self, *, lazy: bool = False) -> list[str]:
        done = []
        for point in mounts_under(self.paths.root):
            if lazy or _sh("umount", point, check=False).returncode != 0:
                _sh("umount", "-l", point, check=False)
            done.append(f"umount {point}")
        return done

    @staticmethod
    def _delete_netns() -> list[str]:
        done = []
        netns_root = Path("/var/run/netns")
        if netns_root.is_dir():
            for ns in netns_root.glob("cni-*"):
                _sh("ip", "netns", "delete", ns.name, check=False)
                done.append(f"netns {ns.name}")
        return done

    @staticmethod
    def _delete_links() -> list[str]:
        done = []
        for link in (CNI_BRIDGE, NODE_LINK):
            if link_exists(link):
                _sh("ip", "link", "delete", link, check=False)
                done.append(f"link {link}")
        return done

    @staticmethod
    def _sweep_iptables() -> list[str]:
        for table in (FORWARD_TABLE, "filter"):  # filter: a node started by an older version
            jump = ("iptables", "-t", table, "FORWARD", "-j", FORWARD_CHAIN)
            if _sh(*jump[:3], "-C", *jump[3:], check=False).returncode == 0:
                _sh(*jump[:3], "-D", *jump[3:], check=False)
        return sweep_iptables()

    def _remove_cgroups(self) -> list[str]:
        before = set(self.state.cgroups_before)
        for cg in kubepods_cgroups():
            if str(cg) not in before:
                remove_cgroup_tree(cg)
        return []

    def _restore_sysctls(self) -> list[str]:
        done = []
        for key, value in self.state.sysctls.items():
            if value is not None and read_sysctl(key) != value:
                write_sysctl(key, value)
                done.append(f"sysctl {key}={value}")
        return done

    def _prune_host_dirs(self) -> list[str]:
        done = []
        existed = set(self.state.host_dirs_before)
        for d in HOST_DIRS:
            if d not in existed and Path(d).exists():
                if prune_host_dir(Path(d), self.paths.root):
                    done.append(f"rmdir {d}")
                else:
                    log.warning("%s is not empty after down: left in place", d)
        return done

    def _leftover_shims(self) -> list[int]:
        """containerd-shim processes started for our containerd (by its socket in argv)."""
        sock = str(self.paths.containerd_socket)
        pids = []
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                argv = (pid_dir / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and sock.encode() in argv:
                pids.append(int(pid_dir.name))
        return pids

    def status(self) -> dict[str, Any]:
        return {
            "node": NODE_NAME,
            "address": NODE_ADDRESS,
            "ready": bool(self.running()) and self._node_ready(),
            "processes": {
                r.name: {"pid": r.pid, "running": r.running, "log": str(r.log)}
                for r in self.procs.records()
            },
        }


# ------------------------------------------------------------------ whole cluster


@dataclass(frozen=True, slots=True)
class NodeCluster:
    """A running control plane + node: what `node_cluster` (tests/e2e) yields."""

    kube: Kube
    state_dir: Path
    node_name: str = NODE_NAME
    node_address: str = NODE_ADDRESS
    pod_cidr: str = POD_CIDR
    images: tuple[str, ...] = ()

    @property
    def containerd_socket(self) -> Path:
        return NodePaths(self.state_dir / "node").containerd_socket


# ------------------------------------------------------------------ one node per machine
#
# The node's links, address, ports, iptables chains and sysctls are machine-wide, while its
# processes and files live in a state dir. So one node at a time: `up` and `down` take a
# machine-wide lock, and an owner record names the state dir whose node holds the links. An
# `up` in another state dir then fails with a clear message instead of taking the links of a
# running node for leftovers.

_lock_depth = 0
_lock_file: Any = None


def _owner_file() -> Path:
    return binaries.cache_dir() / "node-owner.json"


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """Hold the machine-wide node lock (reentrant in one process); waits for another holder."""
    global _lock_depth, _lock_file
    if _lock_depth == 0:
        path = binaries.cache_dir() / "node.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = path.open("w")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another node up/down runs on this machine: waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        _lock_file = fh
    _lock_depth += 1
    try:
        yield
    finally:
        _lock_depth -= 1
        if _lock_depth == 0 and _lock_file is not None:
            fcntl.flock(_lock_file, fcntl.LOCK_UN)
            _lock_file.close()
            _lock_file = None


def node_owner() -> Path | None:
    """The state dir whose node holds the links now (None: no node, or only debris)."""
    path = _owner_file()
    if not (link_exists(NODE_LINK) or link_exists(CNI_BRIDGE)) or not path.is_file():
        return None
    with contextlib.suppress(ValueError, KeyError, OSError):
        return Path(json.loads(path.read_text())["state_dir"])
    return None


def _set_owner(state_dir: Path | None) -> None:
    path = _owner_file()
    if state_dir is None:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"state_dir": str(state_dir), "pid": os.getpid()}) + "\n")


def claim_machine(state_dir: Path) -> None:
    """Clear debris of a dead node; raise NodeError when another state dir's node is alive."""
    owner = node_owner()
    if owner is not None and owner != state_dir:
        other = Node(owner, ControlPlane.attach(owner))
        if other.running():
            raise NodeError(
                f"a node from {owner} is up on this machine (one node at a time: links, "
                f"address {NODE_ADDRESS}, ports). Stop it with `python -m tests.cluster down "
                f"--state-dir {owner}`, or use it: JQ_KUBECONFIG={owner / 'kubeconfig'}"
            )
        log.warning("the node of %s died without a teardown: cleaning up after it", owner)
        down(owner)
    elif link_exists(NODE_LINK) or link_exists(CNI_BRIDGE):
        log.warning("leftover node links without processes: cleaning up first")
        Node(state_dir, ControlPlane.attach(state_dir)).cleanup_host(force=True)


def up(
    state_dir: Path = DEFAULT_STATE_DIR,
    image_names: Sequence[str] | None = None,
    *,
    build_images: bool = True,
) -> NodeCluster:
    """Images (cached), host link, control plane on the node address + scheduler, node, import.

    image_names: which app images (default: env JQ_NODE_IMAGES=api,worker,... or all three and
    the managed Redis image); the worker image always (the StorageClass's helper pods run it).
    Reuses a running, healthy node cluster in state_dir; stops a half-running one first; fails
    if a node of another state dir is up (one node per machine).
    """
    state_dir = state_dir.resolve()
    binaries.ensure(NODE_COMPONENTS)
    t0 = time.monotonic()
    if image_names is None and os.environ.get("JQ_NODE_IMAGES"):
        image_names = [n for n in os.environ["JQ_NODE_IMAGES"].split(",") if n]
    if image_names is not None and "worker" not in image_names:
        image_names = [*image_names, "worker"]  # the StorageClass's helper pods run it
    built = images.build_all(image_names) if build_images else [images.ensure_pause()]
    if build_images and image_names is None:
        # The managed Redis of a JobQueue (the chart's redisImage on this cluster).
        built.append(images.build_redis())
    t_images = time.monotonic() - t0
    with machine_lock():
        plane = ControlPlane.attach(state_dir)
        node = Node(state_dir, plane)
        if node.running() or plane.running():
            if node.running() and plane.status()["apiserver_ready"] and node._node_ready():
                log.info("node cluster already running in %s", state_dir)
                images.import_images(built, node.paths.containerd_socket)
                return NodeCluster(plane.kube, state_dir, images=tuple(b.ref for b in built))
            log.warning("a partial cluster runs in %s: tearing it down first", state_dir)
            down(state_dir)
        claim_machine(state_dir)
        node.prepare_host()
        _set_owner(state_dir)
        try:
            plane = ControlPlane(
                state_dir,
                bind_address=NODE_ADDRESS,
                advertise_address=NODE_ADDRESS,
                with_scheduler=True,
            )
            node.plane = plane
            plane.start()
            try:
                node.start(built)
            except images.ImageStoreError as exc:
                # containerd's store survives between sessions; one left inconsistent by an
                # unclean stop is emptied, and the node started again (imports everything)
                log.warning("%s: emptying containerd's image store and starting again", exc)
                node.stop()
                shutil.rmtree(node.paths.containerd_root, ignore_errors=True)
                node.start(built)
        except BaseException:
            log.error("node cluster failed to start: tearing down")
            down(state_dir)
            raise
    log.info(
        "node cluster up in %.1f s (images %.1f s): %s",
        time.monotonic() - t0,
        t_images,
        plane.server,
    )
    return NodeCluster(plane.kube, state_dir, images=tuple(b.ref for b in built))


def down(state_dir: Path = DEFAULT_STATE_DIR) -> list[str]:
    """The full teardown in the order that leaves nothing behind; returns what it did.

    Machine-wide cleanup (links, iptables, sysctls) only when this state dir's node owns them.
    Every step runs even when one fails; then :class:`TeardownIncomplete` lists the failures.
    """
    state_dir = state_dir.resolve()
    with machine_lock():
        plane = ControlPlane.attach(state_dir)
        node = Node(state_dir, plane)
        owns = node_owner() in (None, state_dir)
        has = node.paths.state_file.exists() or bool(node.running())
        attempts = Attempts()
        done = attempts("stop the node's processes", node.stop) if has else []
        done += attempts("stop the control plane", plane.stop)
        if has or (owns and (link_exists(NODE_LINK) or link_exists(CNI_BRIDGE))):
            done += node.cleanup_host(attempts=attempts)
        if attempts.problems:
            raise TeardownIncomplete(attempts.problems)
        return done


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
    """Poll `check` until true; raise NodeError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise NodeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def has_node(state_dir: Path = DEFAULT_STATE_DIR) -> bool:
    """True if state_dir holds a node (running or not yet cleaned up)."""
    state_dir = state_dir.resolve()
    node = Node(state_dir, ControlPlane.attach(state_dir))
    return node.paths.state_file.exists() or bool(node.running()) or node_owner() == state_dir


def status(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, Any]:
    node = Node(state_dir.resolve(), ControlPlane.attach(state_dir.resolve()))
    return node.status()
