"""The end-to-end latency users feel, on the real node: enqueue on an idle queue -> a job running.

Runs on the project's one-node cluster (`tests.cluster.node.up`, the images built and imported
by `tests.cluster.images`, as tests/e2e and the demo do) with a redis-server on the node
address, our operator as a host process at its defaults, and KEDA (bench/keda.py) beside it.
Every worker Deployment starts at 0 replicas with no pod; then the harness enqueues 1 job
(first job started on a new pod) and, once it runs, 99 more (until 20 pods each run a job:
jobs last JOB_SECONDS, so no pod takes a second one in the window, and the 20th pod's first job
is the 20th pod running a job). Configurations, interleaved in a rotating order per trial:

* ``ours-jobqueue``: a JobQueue at our protocol, our worker image, autoscaling min 0 (woken by
  the queue's events channel); jobs enqueued with `jobqueue.Queue`;
* on a plain list `jobs` (examples/byo/list: BLPOP worker), which KEDA's redis scaler can read:
  ``ours-list-keyspace`` (JobQueue `queue: {format: list}`, `redis.allowConfig: true`: woken by
  keyspace notifications), ``ours-list-polled`` (its Redis user may not run CONFIG: polled
  every 1 s), and KEDA ScaledObjects on the keyspace JobQueue's very Deployment (its autoscaling
  paused for the phase) at KEDA's defaults, pollingInterval 1, and pollingInterval 1 with the
  HPA scale-up behaviour tuned (20 pods per 15 s, no stabilization).

Times (all wall clock of this machine, to the millisecond or better):
* enqueue: just before the producer's call; scaler decision: a watch on Deployments;
* pod created / scheduled / IP assigned / containers running / Ready: a watch on pods
  (arrival time; the kubelet reports running after its 1 s PLEG relist);
* sandbox and container start: the start time of the pod's pause process and of the
  container's main process (/proc/<pid>/stat, the pods run on this machine);
* first Redis command of the process (its imports done, connected) and, for the list worker,
  its first BLPOP: Redis MONITOR (client address = pod IP, Redis' own microsecond clock);
* our worker's first log line: the kubelet's CRI log file (nanosecond stamps);
* job started: our protocol's claim record (`job_run`: claim time in ms and worker = pod name);
  the list worker's first BLPOP that found the list non-empty.
Between phases everything is torn down (ScaledObject deleted / autoscaler paused, Deployment
scaled to 0, pods force-deleted, their processes gone, the Redis database emptied).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from bench import autoscale, keda, kube
from bench.autoscale import LIST_KEY
from bench.common import Child, Ctx, free_port
from bench.constants import REPO_DIR
from tests.cluster import binaries, node
from tests.cluster.controlplane import ControlPlane
from tests.cluster.redis_server import RedisServer

log = logging.getLogger(__name__)

NAMESPACE = "bench-node"
STATE_DIR = binaries.cache_dir() / "e2e-cluster"  # the e2e node's dir: its images stay imported
CRD_FILE = REPO_DIR / "crds" / "jobqueue.io_jobqueues.yaml"
WORKER_IMAGE = "localhost/jobqueue-worker:dev"
LIST_IMAGE = "localhost/jobqueue-example-list:dev"
BACKLOG = 99
PODS = 20
TARGET_PER_WORKER = 5
JOB_SECONDS = 150  # longer than any scale-up window: no pod takes a second job meanwhile
FIRST_TIMEOUT_S = 90.0
BURST_TIMEOUT_S = 240.0
HPA_SYNC_PERIOD_S = 15
TRIALS_QUICK = 1
TRIALS_FULL = 3
POLLER_USER = "poller"  # may not run CONFIG: the operator cannot turn keyspace events on
POLLER_PASSWORD = "bench-poller"  # a private redis-server of this run, on this machine only
KEDA_BEHAVIOR: dict[str, Any] = {
    "scaleUp": {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Pods", "value": PODS, "periodSeconds": 15}],
    }
}
#: JobQueue name, Redis database, queue format of each JobQueue made up front.
JOBQUEUES = {"jq": (0, "jobqueue"), "lk": (1, "list"), "lp": (2, "list")}


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    jobqueue: str  # whose worker Deployment is scaled
    keda_polling: int | None = None  # None: ours; 0: KEDA's default (30 s)
    keda_behavior: bool = False

    @property
    def ours(self) -> bool:
        return self.keda_polling is None


def _keda_label(polling: int, behavior: bool) -> str:
    if polling == 0:
        return f"KEDA {keda.version()} at its defaults (pollingInterval 30 s, HPA default)"
    tail = f" + HPA scale-up {PODS} pods/15 s, no stabilization" if behavior else ""
    return f"KEDA {keda.version()}, pollingInterval {polling} s{tail}"


CONFIGS: tuple[Config, ...] = (
    Config("ours-jobqueue", "ours, jobqueue format (events channel)", "jq"),
    Config("ours-list-keyspace", "ours, list format, keyspace notifications", "lk"),
    Config("ours-list-polled", "ours, list format, polled every 1 s", "lp"),
    Config("keda-defaults", _keda_label(0, False), "lk", 0),
    Config("keda-poll1", _keda_label(1, False), "lk", 1),
    Config("keda-poll1-hpa", _keda_label(1, True), "lk", 1, True),
)


# ----------------------------------------------------------------------------- pure parts


def parse_k8s_ts(stamp: str) -> float:
    """RFC 3339 with up to nanoseconds (the CRI log's stamps) -> epoch seconds."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    base = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC).timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def parse_job_run(value: str) -> tuple[float, str]:
    """A `job_run` field "token|attempt|claimed_ms|worker" -> (claim time s, worker id)."""
    _, _, ms, worker = value.split("|", 3)
    return int(ms) / 1000.0, worker


def breakdown(t0: float, pod: dict[str, Any]) -> dict[str, float | None]:
    """Seconds from the enqueue (t0) to each step of one pod's start-up. Pure."""
    keys = ("replicas", "created", "scheduled", "sandbox", "container", "pod_ip", "running",
            "connected", "first_log", "job", "ready")  # fmt: skip
    return {k: (None if pod.get(k) is None else round(pod[k] - t0, 3)) for k in keys}


def nth_job_start(starts: dict[str, float], n: int) -> float | None:
    """The time by which ``n`` distinct pods had started a job (None: fewer did). Pure."""
    times = sorted(starts.values())
    return times[n - 1] if len(times) >= n else None


def _median(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per configuration: the medians (and ranges) of the headline times and of the first
    pod's start-up steps."""
    out = []
    for cfg in CONFIGS:
        failed = [r["error"] for r in rows if r["key"] == cfg.key and r.get("error")]
        mine = [r for r in rows if r["key"] == cfg.key and not r.get("error")]
        if not mine:
            continue

        def col(name: str, rs: list[dict[str, Any]] = mine) -> dict[str, Any]:
            vals = [r[name] for r in rs]
            ok = [v for v in vals if v is not None]
            med = _median(ok)
            return {
                "values": vals,
                "median": None if med is None else round(med, 3),
                "min": min(ok) if ok else None,
                "max": max(ok) if ok else None,
                "timeouts": len(vals) - len(ok),
            }

        steps: dict[str, Any] = {}
        for step in ("replicas", "created", "scheduled", "sandbox", "container", "connected",
                     "first_log", "job", "running", "ready"):  # fmt: skip
            vals = [(r.get("first_pod") or {}).get(step) for r in mine]
            ok = [v for v in vals if v is not None]
            steps[step] = None if not ok else round(statistics.median(ok), 3)
        out.append(
            {
                "key": cfg.key,
                "label": cfg.label,
                "ours": cfg.ours,
                "format": "jobqueue" if cfg.jobqueue == "jq" else "list",
                "trials": len(mine),
                "first_job": col("first_job_s"),
                "twenty": col("twenty_s"),
                "replicas_20": col("replicas_20_s"),
                "first_pod_steps": steps,
                "load": [r["load"] for r in mine],
                "errors": failed,
            }
        )
    return out


# ----------------------------------------------------------------------------- watches


class Recorder:
    """A watch on the namespace's Deployments and pods: the wall time each change arrived."""

    def __init__(self, kubeconfig: Path) -> None:
        from kubernetes import client, config

        api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig)
        )
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.lock = threading.Lock()
        self.replicas: list[tuple[float, str, int]] = []
        self.pods: dict[str, dict[str, Any]] = {}  # pod name -> first-seen times and facts
        self.stopping = False
        self.watches: list[Any] = []
        self.threads = [
            threading.Thread(target=self._loop, args=(self._deployments,), daemon=True),
            threading.Thread(target=self._loop, args=(self._pods,), daemon=True),
        ]
        for t in self.threads:
            t.start()

    def _loop(self, body: Any) -> None:
        from kubernetes import watch

        while not self.stopping:
            w = watch.Watch()  # type: ignore[no-untyped-call]
            self.watches.append(w)
            try:
                body(w)
            except Exception:
                if not self.stopping:
                    log.exception("watch failed, restarting")
                    time.sleep(0.5)

    def _deployments(self, w: Any) -> None:
        for ev in w.stream(self.apps.list_namespaced_deployment, NAMESPACE, timeout_seconds=120):
            now = time.time()
            obj = ev["object"]
            reps = 0 if ev["type"] == "DELETED" else int(obj.spec.replicas or 0)
            with self.lock:
                self.replicas.append((now, obj.metadata.name, reps))

    def _pods(self, w: Any) -> None:
        for ev in w.stream(self.core.list_namespaced_pod, NAMESPACE, timeout_seconds=120):
            now = time.time()
            obj = ev["object"]
            name = obj.metadata.name
            with self.lock:
                p = self.pods.setdefault(
                    name,
                    {"created": now, "labels": dict(obj.metadata.labels or {})},
                )
                if obj.spec.node_name and "scheduled" not in p:
                    p["scheduled"] = now
                st = obj.status
                if st.pod_ip and "pod_ip" not in p:
                    p["pod_ip"], p["ip"] = now, st.pod_ip
                cs = st.container_statuses or []
                if cs and all(c.state and c.state.running for c in cs) and "running" not in p:
                    p["running"] = now
                    p["container_id"] = cs[0].container_id
                conds = {c.type: c.status for c in st.conditions or []}
                if conds.get("Ready") == "True" and "ready" not in p:
                    p["ready"] = now

    def first_replicas(self, deployment: str, since: float, at_least: int) -> float | None:
        with self.lock:
            hits = [t for t, n, r in self.replicas if n == deployment and t >= since
                    and r >= at_least]  # fmt: skip
        return hits[0] if hits else None

    def pods_of(self, jobqueue: str, since: float) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {
                n: dict(p)
                for n, p in self.pods.items()
                if p["labels"].get("app.kubernetes.io/instance") == jobqueue
                and p["created"] >= since
            }

    def stop(self) -> None:
        self.stopping = True
        for w in self.watches:
            w.stop()


class Monitor:
    """Redis MONITOR in a thread: each pod address's first command, and its BLPOPs."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.prefix = prefix
        self.first: dict[str, float] = {}
        self.blpops: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.stopping = False
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise TimeoutError("MONITOR did not start")

    def _run(self) -> None:
        with self.client.monitor() as m:  # type: ignore[no-untyped-call]
            self.ready.set()
            while not self.stopping:
                try:
                    if not m.connection.can_read(timeout=0.5):
                        continue
                    cmd = m.next_command()
                except Exception:
                    if not self.stopping:
                        log.exception("MONITOR failed")
                    return
                addr = str(cmd.get("client_address", ""))
                if not addr.startswith(self.prefix):
                    continue
                with self.lock:
                    self.first.setdefault(addr, float(cmd["time"]))
                    if str(cmd.get("command", "")).upper().startswith("BLPOP"):
                        self.blpops.setdefault(addr, []).append(float(cmd["time"]))

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(timeout=5)
        self.client.close()


# ----------------------------------------------------------------------------- /proc and logs


def _boot_offset() -> float:
    """Wall time of boot, as /proc/<pid>/stat's starttime counts (CLOCK_BOOTTIME)."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def proc_start(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[19])  # field 22 overall: starttime
    return _boot_offset() + ticks / os.sysconf("SC_CLK_TCK")


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _pause_sibling(pid: int) -> int | None:
    """The pod's pause process: a child of the same runc shim as the container's process."""
    shim = _ppid(pid)
    if shim is None:
        return None
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == pid:
            continue
        with contextlib.suppress(OSError):
            if (d / "comm").read_text().strip() == "pause" and _ppid(int(d.name)) == shim:
                return int(d.name)
    return None


def task_pids(socket: Path) -> dict[str, int]:
    out = subprocess.run(
        ["ctr", "--address", str(socket), "-n", "k8s.io", "tasks", "ls"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    pids = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 3 and cols[1].isdigit():
            pids[cols[0]] = int(cols[1])
    return pids


def first_log_line(pod_logs: Path, pod: str) -> float | None:
    for f in sorted(pod_logs.glob(f"{NAMESPACE}_{pod}_*/*/0.log")):
        with contextlib.suppress(OSError, ValueError), f.open() as fh:
            line = fh.readline()
            if line:
                return parse_k8s_ts(line.split(" ", 1)[0])
    return None


# ----------------------------------------------------------------------------- the cluster


@dataclass
class Env:
    cluster: node.NodeCluster
    server: RedisServer
    rec: Recorder
    work: Path
    scaled_objects: list[str] = field(default_factory=list)

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cluster.kube.kubectl(*args, check=check)

    def url(self, db: int) -> str:
        return f"redis://{self.server.bind}:{self.server.port}/{db}"


def _jobqueue(name: str, db: int, fmt: str, url: str) -> list[dict[str, Any]]:
    autoscaling = {
        "enabled": True,
        "minReplicas": 0,
        "maxReplicas": PODS,
        "targetJobsPerWorker": TARGET_PER_WORKER,
    }
    spec: dict[str, Any] = {"api": {"enabled": False}, "autoscaling": autoscaling}
    docs: list[dict[str, Any]] = []
    if fmt == "jobqueue":
        spec["redis"] = {"url": f"{url}/{db}"}
        spec["worker"] = {
            "image": WORKER_IMAGE,
            # one job per slot, no claim-ahead: each of the 20 pods takes 5 of the 100 jobs
            "concurrency": TARGET_PER_WORKER,
            "env": [{"name": "WORKER_PREFETCH", "value": "0"}],
        }
    else:
        probe = {"httpGet": {"path": "/healthz", "port": 8080}}
        spec["queue"] = {"format": "list", "names": [LIST_KEY]}
        spec["worker"] = {
            "image": LIST_IMAGE,
            "command": ["python", "/app/worker.py"],
            "env": [{"name": "WORK_SECONDS", "value": str(JOB_SECONDS)}],
            "probes": {"readiness": probe, "liveness": probe},
        }
        if name == "lk":
            spec["redis"] = {"url": f"{url}/{db}", "allowConfig": True}
        else:
            secret = f"{name}-redis"
            host = url.removeprefix("redis://")
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": secret, "namespace": NAMESPACE},
                    "stringData": {"url": f"redis://{POLLER_USER}:{POLLER_PASSWORD}@{host}/{db}"},
                }
            )
            spec["redis"] = {"urlFrom": {"secretKeyRef": {"name": secret, "key": "url"}}}
    docs.append(
        {
            "apiVersion": "jobqueue.io/v1alpha1",
            "kind": "JobQueue",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": spec,
        }
    )
    return docs


def _scaled_object(name: str, cfg: Config, address: str, db: int) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": "lk-worker"},
        "minReplicaCount": 0,
        "maxReplicaCount": PODS,
        "triggers": [
            {
                "type": "redis",
                "metadata": {
                    "address": address,
                    "listName": LIST_KEY,
                    "listLength": str(TARGET_PER_WORKER),
                    "databaseIndex": str(db),
                },
            }
        ],
    }
    if cfg.keda_polling:
        spec["pollingInterval"] = cfg.keda_polling
    if cfg.keda_behavior:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": KEDA_BEHAVIOR}}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def _wait(what: str, check: Any, timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _wakeup(e: Env, name: str) -> str:
    r = e.kubectl("get", "jobqueue", name, "-n", NAMESPACE, "-o",
                  "jsonpath={.status.queue.wakeup}", check=False)  # fmt: skip
    return r.stdout.strip() if r.returncode == 0 else ""


def _set_paused(e: Env, name: str, paused: bool) -> None:
    patch = json.dumps({"spec": {"autoscaling": {"paused": paused}}})
    e.kubectl("patch", "jobqueue", name, "-n", NAMESPACE, "--type", "merge", "-p", patch)


def _pod_names(e: Env, jobqueue: str) -> list[str]:
    r = e.kubectl("get", "pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={jobqueue}",
                  "-o", "jsonpath={.items[*].metadata.name}")  # fmt: skip
    return r.stdout.split()


def _deployment_replicas(e: Env, name: str) -> int:
    r = e.kubectl("get", "deployment", name, "-n", NAMESPACE, "-o", "jsonpath={.spec.replicas}")
    return int(r.stdout or 0)


def _reset(e: Env, cfg: Config, pids: list[int]) -> None:
    """Back to idle: nobody scales, 0 replicas, no pod, no process, an empty database."""
    if not cfg.ours:
        so = f"lk-{cfg.key}"
        e.kubectl("delete", "scaledobject", so, "-n", NAMESPACE, "--ignore-not-found")
        _wait(
            "KEDA's HPA to go",
            lambda: (
                e.kubectl("get", "hpa", f"keda-hpa-{so}", "-n", NAMESPACE, check=False).returncode
                != 0
            ),
            60,
        )
    else:
        _set_paused(e, cfg.jobqueue, True)
    dep = f"{cfg.jobqueue}-worker"
    e.kubectl("scale", "deployment", dep, "-n", NAMESPACE, "--replicas=0")
    e.kubectl("delete", "pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={cfg.jobqueue}",
              "--grace-period=0", "--force", "--wait=false")  # fmt: skip
    _wait("the pods to go", lambda: not _pod_names(e, cfg.jobqueue), 120, 0.5)
    _wait("the pods' processes to exit", lambda: all(proc_start(p) is None for p in pids), 120, 0.5)
    db = JOBQUEUES[cfg.jobqueue][0]
    r = redis.Redis.from_url(e.url(db))
    try:
        r.flushdb()
    finally:
        r.close()
    time.sleep(2)


def _arm(e: Env, cfg: Config, db: int, trial: int) -> None:
    """The configuration's scaler in charge of its Deployment, which is at 0 with no pod."""
    if cfg.ours:
        _set_paused(e, cfg.jobqueue, False)
        if cfg.jobqueue == "lk":
            # paused since the last KEDA phase: let the autoscaler see it is in charge again
            time.sleep(1)
    else:
        _set_paused(e, "lk", True)
        so = f"lk-{cfg.key}"
        path = e.work / f"node-latency-{so}.yaml"
        address = f"{e.server.bind}:{e.server.port}"
        path.write_text(yaml.safe_dump(_scaled_object(so, cfg, address, db)))
        e.kubectl("apply", "-f", str(path))
        _wait(
            "KEDA's HPA",
            lambda: (
                e.kubectl("get", "hpa", f"keda-hpa-{so}", "-n", NAMESPACE, check=False).returncode
                == 0
            ),
            60,
        )
    time.sleep(3)  # the scaler has seen the change (the operator's watch, KEDA's first poll)
    if _deployment_replicas(e, f"{cfg.jobqueue}-worker") != 0:
        raise RuntimeError(f"{cfg.jobqueue}-worker is not at 0 before the {cfg.key} phase")


async def _enqueue(url: str, n: int) -> float:
    from jobqueue import JobSpec, Queue, connect

    client = connect(url)
    try:
        q = Queue(client, f"{NAMESPACE}/jq")
        await client.ping()
        spec = JobSpec(type="slow", payload={"seconds": JOB_SECONDS, "steps": 1})
        t0 = time.time()
        await (q.enqueue(spec) if n == 1 else q.enqueue_many([spec] * n))
        return t0
    finally:
        await client.aclose()


def _claims(url: str) -> dict[str, float]:
    """Our protocol: pod name -> its first claim time."""
    from jobqueue.keys import QueueKeys

    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        runs: dict[str, str] = r.hgetall(QueueKeys.for_queue(f"{NAMESPACE}/jq").job_run)  # type: ignore[assignment]
    finally:
        r.close()
    first: dict[str, float] = {}
    for value in runs.values():
        t, worker = parse_job_run(value)
        first[worker] = min(t, first.get(worker, t))
    return first


def _job_starts(e: Env, cfg: Config, mon: Monitor, pods: dict[str, dict[str, Any]],
                since: float) -> dict[str, float]:  # fmt: skip
    """Pod name -> the time it started its first job (after ``since``)."""
    db = JOBQUEUES[cfg.jobqueue][0]
    if cfg.jobqueue == "jq":
        return {p: t for p, t in _claims(e.url(db)).items() if t >= since}
    by_ip = {p["ip"]: name for name, p in pods.items() if p.get("ip")}
    out = {}
    with mon.lock:
        for addr, times in mon.blpops.items():
            ip = addr.split(":")[0]
            later = [t for t in times if t >= since]
            if ip in by_ip and later:
                out[by_ip[ip]] = later[0]
    return out


def _pod_facts(e: Env, cfg: Config, mon: Monitor, since: float) -> dict[str, dict[str, Any]]:
    pods = e.rec.pods_of(cfg.jobqueue, since)
    pids = task_pids(e.cluster.containerd_socket)
    pod_logs = node.NodePaths(e.cluster.state_dir / "node").pod_logs
    with mon.lock:
        first_cmd = {a.split(":")[0]: t for a, t in mon.first.items()}
    for name, p in pods.items():
        cid = (p.get("container_id") or "").removeprefix("containerd://")
        pid = pids.get(cid)
        p["pid"] = pid
        if pid is not None:
            p["container"] = proc_start(pid)
            pause = _pause_sibling(pid)
            p["sandbox"] = None if pause is None else proc_start(pause)
        p["connected"] = first_cmd.get(p.get("ip", ""))
        p["first_log"] = first_log_line(pod_logs, name) if cfg.jobqueue == "jq" else None
    return pods


def _phase(e: Env, cfg: Config, trial: int, rng: random.Random) -> dict[str, Any]:
    db = JOBQUEUES[cfg.jobqueue][0]
    dep = f"{cfg.jobqueue}-worker"
    mon: Monitor | None = None
    pids: list[int] = []
    try:
        _arm(e, cfg, db, trial)
        time.sleep(rng.uniform(0, 30 if cfg.keda_polling == 0 else 1))  # vs every poll loop
        load = [round(x, 2) for x in os.getloadavg()]
        mon = Monitor(e.url(db), "10.244.")
        if cfg.jobqueue == "jq":

            def push(n: int) -> float:
                return asyncio.run(_enqueue(e.url(db), n))
        else:

            def push(n: int) -> float:
                return autoscale.lpush(e.url(db), n, clock=time.time)

        start = time.time()
        t0 = push(1)
        box: dict[str, float] = {}

        def first_started() -> bool:
            pods = e.rec.pods_of(cfg.jobqueue, start)
            got = _job_starts(e, cfg, mon, pods, t0)
            if got:
                box.update(got)
            return bool(got)

        with contextlib.suppress(TimeoutError):
            _wait("the first job to start", first_started, FIRST_TIMEOUT_S, 0.1)
        first = min(box.values()) if box else None
        time.sleep(2 + rng.uniform(0, HPA_SYNC_PERIOD_S))  # a random phase against HPA syncs
        t1 = push(BACKLOG)
        starts: dict[str, float] = {}

        def twenty() -> bool:
            pods = e.rec.pods_of(cfg.jobqueue, start)
            starts.clear()
            starts.update(_job_starts(e, cfg, mon, pods, t0))
            return len(starts) >= PODS

        with contextlib.suppress(TimeoutError):
            _wait(f"{PODS} pods to run jobs", twenty, BURST_TIMEOUT_S, 0.25)
        time.sleep(1)
        pods = _pod_facts(e, cfg, mon, start)
        pids = [p["pid"] for p in pods.values() if p.get("pid")]
    finally:
        if mon is not None:
            mon.stop()
        _reset(e, cfg, pids)
    for name, p in pods.items():
        p["job"] = starts.get(name)
    first_pod_name = min(pods, key=lambda n: pods[n]["created"]) if pods else None
    fp = dict(pods[first_pod_name]) if first_pod_name else {}
    fp["replicas"] = e.rec.first_replicas(dep, t0, 1)
    twentieth = nth_job_start(starts, PODS)
    r20 = e.rec.first_replicas(dep, t1, PODS)
    row = {
        "key": cfg.key,
        "trial": trial,
        "load": load,
        "first_job_s": None if first is None else round(first - t0, 3),
        "twenty_s": None if twentieth is None else round(twentieth - t1, 3),
        "replicas_20_s": None if r20 is None else round(r20 - t1, 3),
        "pods_with_jobs": len(starts),
        "first_pod": breakdown(t0, fp),
        "pods": {n: breakdown(t1, p) for n, p in sorted(pods.items()) if n != first_pod_name},
    }
    log.info(
        "  %s trial %d: first job %s s, %d pods running jobs %s s after the 99 (load %s)",
        cfg.key, trial, row["first_job_s"], PODS, row["twenty_s"], load,
    )  # fmt: skip
    log.info("    first pod: %s", row["first_pod"])
    return row


@contextlib.contextmanager
def _operator(c: node.NodeCluster, work: Path) -> Iterator[Child]:
    env = {
        **c.kube.env(),
        "HEALTH_PORT": str(free_port()),
        "METRICS_PORT": str(free_port()),
        "DEFAULT_WORKER_IMAGE": WORKER_IMAGE,
        "DEFAULT_API_IMAGE": "localhost/jobqueue-api:dev",
        "IMAGE_PULL_POLICY": "IfNotPresent",
    }
    argv = [sys.executable, "-m", "jobqueue_operator"]
    op = Child("operator", argv, env=env, log_dir=work / "logs")
    try:
        yield op
    finally:
        op.stop(timeout=30)


def _prepare(e: Env) -> None:
    admin = redis.Redis.from_url(e.url(0))
    admin.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", POLLER_USER, "on", f">{POLLER_PASSWORD}", "~*", "&*", "+@all", "-config"
    )
    admin.close()
    e.kubectl("create", "namespace", NAMESPACE, check=False)
    docs: list[dict[str, Any]] = []
    base = f"redis://{e.server.bind}:{e.server.port}"
    for name, (db, fmt) in JOBQUEUES.items():
        docs += _jobqueue(name, db, fmt, base)
    path = e.work / "node-latency-jobqueues.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    e.kubectl("apply", "--server-side", "-f", str(path))
    for name in JOBQUEUES:
        _wait(
            f"Deployment {name}-worker",
            lambda n=name: (
                e.kubectl(
                    "get", "deployment", f"{n}-worker", "-n", NAMESPACE, check=False
                ).returncode
                == 0
            ),
            180,
        )
    want = {"lk": "keyspace-notifications", "lp": "polling"}
    for name, w in want.items():
        _wait(f"{name} to report wakeup {w}", lambda n=name, w=w: _wakeup(e, n) == w, 120, 1)


def run(ctx: Ctx) -> dict[str, Any]:
    trials = ctx.pick(TRIALS_QUICK, TRIALS_FULL)
    keda.ensure_built()
    work = ctx.work
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random()
    rows: list[dict[str, Any]] = []
    cluster = node.up(STATE_DIR, ["worker", "example-list"])
    try:
        cluster.kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
        cluster.kube.wait_established("jobqueues.jobqueue.io")
        cp = ControlPlane.attach(STATE_DIR)
        kc = kube.Cluster(cp, cluster.kube, work / "no-audit.log", cluster.kube.kubeconfig)
        server = RedisServer(bind=cluster.node_address).start()
        try:
            with keda.running(kc, work), _operator(cluster, work) as op:
                rec = Recorder(cluster.kube.kubeconfig)
                e = Env(cluster, server, rec, work)
                try:
                    _prepare(e)
                    for i in range(trials):
                        shift = i % len(CONFIGS)
                        order = CONFIGS[shift:] + CONFIGS[:shift]
                        for cfg in order:
                            op.check()
                            log.info("node latency: trial %d/%d, %s", i + 1, trials, cfg.key)
                            try:
                                rows.append(_phase(e, cfg, i, rng))
                            except Exception as exc:  # one phase failing leaves the others
                                log.exception("%s trial %d failed", cfg.key, i)
                                rows.append({"key": cfg.key, "trial": i, "error": repr(exc)})
                finally:
                    rec.stop()
        finally:
            server.cleanup()
    finally:
        node.down(STATE_DIR)
    return {
        "trials": rows,
        "summary": summarize(rows),
        "method": METHOD,
        "keda_behavior": KEDA_BEHAVIOR,
        "versions": {
            "KEDA": keda.version(),
            "kubernetes": binaries.VERSIONS.get("K8S_VERSION", "?"),
        },
    }


METHOD = [
    "On the real one-node cluster of tests/cluster (containerd + runc + kubelet on this "
    "machine, images built by tests.cluster.images and already imported: no pull), a "
    "redis-server on the node address, our operator at its defaults as a host process and "
    f"KEDA {keda.version()} (operator + metrics adapter) beside it. Each configuration starts "
    "with its worker Deployment at 0 and no pod; the harness enqueues 1 job (after a random "
    "0-1 s wait, 0-30 s for KEDA's defaults, against every poll loop), and once a pod runs it, "
    f"after 2-17 s (a random phase against the HPA's 15 s sync), {BACKLOG} more in one call. "
    f"Jobs last {JOB_SECONDS} s, so no pod takes a second one in the window; the target is "
    f"{TARGET_PER_WORKER} jobs per worker, max {PODS} replicas. Times are seconds from just "
    "before the producer's call.",
    "*ours, jobqueue format*: a JobQueue with our worker image (WORKER_CONCURRENCY 5 = the "
    "target, WORKER_PREFETCH 0: so that 20 pods share the 100 jobs), autoscaling min 0, woken "
    "by the queue's events channel; jobs `jobqueue.Queue.enqueue` of the `slow` task; job start "
    "= the claim record's time (Redis clock) and worker (pod name). *list format*: "
    "examples/byo/list's BLPOP worker (WORK_SECONDS 150) under a JobQueue with `queue: "
    "{format: list, names: [jobs]}`, jobs `LPUSH`ed; job start = the pod's first BLPOP in "
    "Redis MONITOR. Ours woken by keyspace notifications (`redis.allowConfig: true`) or polled "
    "at 1 s (a Redis user without CONFIG); KEDA's ScaledObject (redis trigger, listLength 5) "
    "scales the keyspace JobQueue's own worker Deployment while that JobQueue's autoscaling is "
    "paused, made fresh for each phase: at KEDA's defaults (pollingInterval 30 s, HPA default "
    "behaviour), pollingInterval 1, and pollingInterval 1 + HPA scale-up 20 pods/15 s without "
    "stabilization. kube-controller-manager's HPA sync is its default 15 s.",
    "First pod's start-up, seconds from the enqueue: *replicas* the Deployment's spec.replicas "
    ">= 1 (watch), *created* the pod (watch), *scheduled* spec.nodeName set (watch), *sandbox* "
    "the pod's pause process started, *container* the container's process started "
    "(/proc start times), *connected* its first Redis command (MONITOR: imports done), "
    "*first log* our worker's first log line (CRI log stamp), *job* its first job started, "
    "*running* / *ready* the kubelet reporting the container running / the pod Ready (watch; "
    "the kubelet's PLEG relists every 1 s, so these lag the /proc times).",
]
