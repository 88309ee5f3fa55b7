"""Real-node side of the reliability suite: the operator for the node's pods, containers' host
processes found through containerd (not the API) to kill -9, the chaos task module as a
ConfigMap mounted into worker pods, and pod reads. No tests here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster import host_tools, images, node
from tests.cluster.controlplane import Kube
from tests.reliability.kube_support import KubeHttp, OperatorProc
from tests.reliability.support import CHAOS_TASKS
from tests.support.kube import install_jobqueue_crd

#: Where the chaos task module is mounted in worker pods (PYTHONPATH) and its ConfigMap.
TASKS_DIR = "/opt/chaos"
TASKS_CONFIGMAP = "chaos-tasks"
POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"


def start_operator(kube: Kube, workdir: Path, watch: str) -> OperatorProc:
    """The CRD (taken over from the chart if it is there), then the operator as a process,
    putting the images the node holds into the pods it makes."""
    install_jobqueue_crd(kube)
    refs = {i.name: i.ref for i in images.APP_IMAGES}
    return OperatorProc(
        kube,
        workdir,
        watch=watch,
        extra_env={
            "DEFAULT_API_IMAGE": refs["api"],
            "DEFAULT_WORKER_IMAGE": refs["worker"],
            "DEFAULT_REDIS_IMAGE": images.REDIS_IMAGE.ref,
            "IMAGE_PULL_POLICY": "IfNotPresent",
        },
    ).start()


@dataclass(frozen=True)
class ContainerProcess:
    """A running container of a pod, as containerd knows it: its id and its init's host pid."""

    pod: str
    container_id: str
    pid: int


def _ctr(cluster: node.NodeCluster, *args: str) -> str:
    cmd = [host_tools.require("ctr"), "--address", str(cluster.containerd_socket)]
    proc = subprocess.run(
        [*cmd, "-n", "k8s.io", *args], capture_output=True, text=True, check=False, timeout=30
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ctr {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def container_processes(
    cluster: node.NodeCluster, namespace: str, container: str
) -> list[ContainerProcess]:
    """The running `container` of every pod of `namespace`, from containerd's own records
    (CRI labels on the container, the task list for pids): what `kill -9` on the host hits."""
    wanted = (
        f'labels."{POD_NAMESPACE_LABEL}"=={namespace},labels."{CONTAINER_NAME_LABEL}"=={container}'
    )
    ids = _ctr(cluster, "containers", "ls", "-q", wanted).split()
    if not ids:
        return []
    running = {}
    for line in _ctr(cluster, "tasks", "ls").splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 3 and cols[2] == "RUNNING":
            running[cols[0]] = int(cols[1])
    out = []
    for cid in ids:
        if cid not in running:
            continue
        labels = json.loads(_ctr(cluster, "containers", "info", cid)).get("Labels", {})
        out.append(ContainerProcess(labels.get(POD_NAME_LABEL, "?"), cid, running[cid]))
    return sorted(out, key=lambda p: p.pod)


def kill9(process: ContainerProcess) -> float:
    """SIGKILL the container's init process on the host; returns the time (epoch s)."""
    when = time.time()
    os.kill(process.pid, signal.SIGKILL)
    return when


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"pid {pid} still alive {timeout:.0f} s after SIGKILL")
        time.sleep(0.05)


def tasks_configmap(api: KubeHttp, ns: str) -> None:
    """The chaos task module (every execution recorded in Redis) as a ConfigMap."""
    api.must(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": TASKS_CONFIGMAP},
            "data": {"chaos_tasks.py": CHAOS_TASKS},
        },
    )


def chaos_worker(replicas: int, concurrency: int, lease_seconds: int) -> dict[str, Any]:
    """`spec.worker` of pods that run the chaos task module from its ConfigMap."""
    return {
        "replicas": replicas,
        "concurrency": concurrency,
        "terminationGracePeriodSeconds": 5,
        "drainTimeoutSeconds": 2,
        "env": [
            {"name": "LEASE_SECONDS", "value": str(lease_seconds)},
            {"name": "TASKS_MODULE", "value": "chaos_tasks"},
            {"name": "PYTHONPATH", "value": TASKS_DIR},
        ],
        "volumes": [
            {"name": "tasks", "mountPath": TASKS_DIR, "configMap": {"name": TASKS_CONFIGMAP}}
        ],
    }


def pods(api: KubeHttp, ns: str, selector: str) -> list[dict[str, Any]]:
    return api.items(f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")


def ready_pods(api: KubeHttp, ns: str, selector: str) -> list[str]:
    """Names of the pods Running and Ready, not being deleted."""
    out = []
    for p in pods(api, ns, selector):
        conditions = {c["type"]: c["status"] for c in p["status"].get("conditions", [])}
        if (
            p["status"].get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
            and conditions.get("Ready") == "True"
        ):
            out.append(p["metadata"]["name"])
    return sorted(out)


def restart_counts(api: KubeHttp, ns: str, selector: str, container: str) -> dict[str, int]:
    """Pod name -> restartCount of `container` (the kubelet's count, read back through the API)."""
    out = {}
    for p in pods(api, ns, selector):
        for status in p["status"].get("containerStatuses", []):
            if status["name"] == container:
                out[p["metadata"]["name"]] = int(status.get("restartCount", 0))
    return out
