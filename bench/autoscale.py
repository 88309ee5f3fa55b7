"""Autoscaler reaction on the local control plane: our operator vs KEDA, same events, same Redis.

Each trial makes one JobQueue (our operator scales its worker Deployment) and two identical
copies of that Deployment scaled by KEDA ScaledObjects with a `redis` trigger on the very same
list (the queue's ready list): one at KEDA's default 30 s pollingInterval, one tuned to 1 s.
All three start at 0. After a random wait (random phase against every poll loop) the harness
enqueues 1 job (0->1), then 98 more (a 99-job backlog, target 5 per worker: 1->20), then
empties the queue (back to 0 after the cooldown, 30 s for both). A watch on Deployments
records every change of spec.replicas; no node is needed, so nothing consumes the jobs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
import threading
import time
from typing import Any

import yaml

from bench import keda, kube
from bench.common import Ctx, private_redis
from bench.constants import (
    AUTOSCALE_BACKLOG,
    AUTOSCALE_COOLDOWN_S,
    AUTOSCALE_MAX_REPLICAS,
    AUTOSCALE_TARGET_PER_WORKER,
    AUTOSCALE_TRIALS_FULL,
    AUTOSCALE_TRIALS_QUICK,
    KEDA_POLLING_INTERVAL_S,
)

log = logging.getLogger(__name__)

NAMESPACE = "bench-auto"
SCALERS = (
    ("jobqueue", "jobqueue (event-driven + 5 s poll)"),
    ("keda", f"KEDA {keda.version()} (pollingInterval {KEDA_POLLING_INTERVAL_S} s, default)"),
    ("keda-tuned", f"KEDA {keda.version()} (pollingInterval 1 s)"),
)
CASES = ("0->1", "1->20", "drain")


class ReplicaWatch:
    """Every spec.replicas change of the Deployments in NAMESPACE, with monotonic times."""

    def __init__(self, c: kube.Cluster) -> None:
        from kubernetes import client, config, watch

        api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(c.kube.kubeconfig)
        )
        self.api = client.AppsV1Api(api_client)
        self.watch = watch.Watch()  # type: ignore[no-untyped-call]
        self.events: list[tuple[float, str, int]] = []
        self.current: dict[str, int] = {}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stopping = False
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping:
            try:
                for ev in self.watch.stream(  # type: ignore[no-untyped-call]
                    self.api.list_namespaced_deployment, NAMESPACE, timeout_seconds=60
                ):
                    obj = ev["object"]
                    name = obj.metadata.name
                    reps = int(obj.spec.replicas or 0) if ev["type"] != "DELETED" else 0
                    with self.lock:
                        if self.current.get(name) != reps:
                            self.current[name] = reps
                            self.events.append((time.monotonic(), name, reps))
                    if self.stopping:
                        return
            except Exception:
                if not self.stopping:
                    log.exception("watch failed, restarting")
                    time.sleep(0.5)

    def get(self, name: str) -> int | None:
        with self.lock:
            return self.current.get(name)

    def wait(self, names: list[str], pred: Any, timeout: float) -> dict[str, float | None]:
        """Time (monotonic) at which each Deployment first satisfied pred(replicas)."""
        deadline = time.monotonic() + timeout
        hit: dict[str, float | None] = dict.fromkeys(names)
        while time.monotonic() < deadline and any(v is None for v in hit.values()):
            with self.lock:
                for n in names:
                    if hit[n] is None and n in self.current and pred(self.current[n]):
                        hit[n] = time.monotonic()
            time.sleep(0.01)
        return hit

    def curve(self, name: str, t0: float, t1: float) -> list[list[float]]:
        with self.lock:
            evs = [(t, r) for t, n, r in self.events if n == name]
        before = [r for t, r in evs if t <= t0]
        pts = [[0.0, float(before[-1] if before else 0)]]
        pts += [[round(t - t0, 3), float(r)] for t, r in evs if t0 < t <= t1]
        pts.append([round(t1 - t0, 3), pts[-1][1]])
        return pts

    def stop(self) -> None:
        self.stopping = True
        self.watch.stop()  # type: ignore[no-untyped-call]


def _since(hit: float | None, t: float) -> float | None:
    return None if hit is None else hit - t


def _jobqueue(name: str, redis_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "jobqueue.io/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "redis": {"url": redis_url},
            "api": {"enabled": False},
            "autoscaling": {
                "enabled": True,
                "minReplicas": 0,
                "maxReplicas": AUTOSCALE_MAX_REPLICAS,
                "targetJobsPerWorker": AUTOSCALE_TARGET_PER_WORKER,
                "cooldownSeconds": AUTOSCALE_COOLDOWN_S,
                "scaleDownStabilizationSeconds": AUTOSCALE_COOLDOWN_S,
            },
        },
    }


def _copy_deployment(src: dict[str, Any], name: str) -> dict[str, Any]:
    """The operator's worker Deployment under another name and labels, at 0 replicas."""
    spec = dict(src["spec"])
    labels = {"app": name}
    template = dict(spec["template"])
    template["metadata"] = {**(template.get("metadata") or {}), "labels": labels}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": template,
            "strategy": spec.get("strategy", {}),
        },
    }


def _scaled_object(name: str, redis_port: int, list_key: str, polling: int) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"name": name},
            "minReplicaCount": 0,
            "maxReplicaCount": AUTOSCALE_MAX_REPLICAS,
            "pollingInterval": polling,
            "cooldownPeriod": AUTOSCALE_COOLDOWN_S,
            "triggers": [
                {
                    "type": "redis",
                    "metadata": {
                        "address": f"127.0.0.1:{redis_port}",
                        "listName": list_key,
                        "listLength": str(AUTOSCALE_TARGET_PER_WORKER),
                    },
                }
            ],
        },
    }


async def _enqueue(url: str, queue: str, n: int) -> None:
    from jobqueue import JobSpec, Queue, connect

    client = connect(url)
    try:
        q = Queue(client, queue)
        if n == 1:
            await q.enqueue(JobSpec(type="noop"))
        else:
            await q.enqueue_many([JobSpec(type="noop")] * n)
    finally:
        await client.aclose()


async def _purge(url: str, queue: str) -> None:
    from jobqueue import Queue, connect

    client = connect(url)
    try:
        await Queue(client, queue).purge()
    finally:
        await client.aclose()


def _prepare(
    c: kube.Cluster, trials: int, redis_url: str, redis_port: int, ctx: Ctx
) -> list[dict[str, str]]:
    from jobqueue.keys import QueueKeys

    c.kube.kubectl("create", "namespace", NAMESPACE, check=False)
    names = []
    docs = []
    for i in range(trials):
        jq = f"t{i}"
        names.append(
            {
                "jobqueue": f"{jq}-worker",
                "keda": f"keda-{jq}",
                "keda-tuned": f"kedafast-{jq}",
                "jq": jq,
                "queue": f"{NAMESPACE}/{jq}",
            }
        )
        docs.append(_jobqueue(jq, redis_url))
    path = ctx.work / "autoscale-jobqueues.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    c.kube.kubectl("apply", "--server-side", "-f", str(path))
    deadline = time.monotonic() + 120
    for n in names:
        while True:
            r = c.kube.kubectl(
                "get", "deployment", n["jobqueue"], "-n", NAMESPACE, "-o", "json", check=False
            )
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the operator made no Deployment {n['jobqueue']}")
            time.sleep(0.5)
        src = yaml.safe_load(r.stdout)
        key = QueueKeys.for_queue(n["queue"]).ready_normal
        kdocs = [
            _copy_deployment(src, n["keda"]),
            _copy_deployment(src, n["keda-tuned"]),
            _scaled_object(n["keda"], redis_port, key, KEDA_POLLING_INTERVAL_S),
            _scaled_object(n["keda-tuned"], redis_port, key, 1),
        ]
        kp = ctx.work / f"autoscale-keda-{n['jq']}.yaml"
        kp.write_text(yaml.safe_dump_all(kdocs))
        c.kube.kubectl("apply", "--server-side", "-f", str(kp))
    return names


def _trial(
    w: ReplicaWatch, n: dict[str, str], url: str, rng: random.Random
) -> list[dict[str, Any]]:
    deps = [n[k] for k, _ in SCALERS]
    # Everything at 0 first (ours starts at the Deployment default of 1 and scales down).
    settle = w.wait(deps, lambda r: r == 0, timeout=4 * AUTOSCALE_COOLDOWN_S + 120)
    if any(v is None for v in settle.values()):
        raise TimeoutError(f"not all at 0 before the trial: { {d: w.get(d) for d in deps} }")
    time.sleep(rng.uniform(0, KEDA_POLLING_INTERVAL_S))
    out: list[dict[str, Any]] = []
    marks: dict[str, tuple[float, float]] = {}

    t0 = time.monotonic()
    asyncio.run(_enqueue(url, n["queue"], 1))
    hit = w.wait(deps, lambda r: r >= 1, timeout=KEDA_POLLING_INTERVAL_S + 30)
    for key, _label in SCALERS:
        out.append(
            {
                "case": "0->1",
                "key": key,
                "seconds": _since(hit[n[key]], t0),
            }
        )
    time.sleep(3)
    marks["0->1"] = (t0, time.monotonic())

    t1 = time.monotonic()
    asyncio.run(_enqueue(url, n["queue"], AUTOSCALE_BACKLOG - 1))
    hit = w.wait(deps, lambda r: r >= AUTOSCALE_MAX_REPLICAS, timeout=150)
    for key, _label in SCALERS:
        out.append(
            {
                "case": "1->20",
                "key": key,
                "seconds": _since(hit[n[key]], t1),
            }
        )
    time.sleep(3)
    marks["1->20"] = (t1, time.monotonic())

    t2 = time.monotonic()
    asyncio.run(_purge(url, n["queue"]))
    hit = w.wait(deps, lambda r: r == 0, timeout=3 * AUTOSCALE_COOLDOWN_S + 60)
    for key, _label in SCALERS:
        out.append(
            {
                "case": "drain",
                "key": key,
                "seconds": _since(hit[n[key]], t2),
            }
        )
    time.sleep(2)
    marks["drain"] = (t2, time.monotonic())
    for row in out:
        a, b = marks[row["case"]]
        row["curve"] = w.curve(n[row["key"]], a, b)
    return out


def run(ctx: Ctx) -> dict[str, Any]:
    trials = ctx.pick(AUTOSCALE_TRIALS_QUICK, AUTOSCALE_TRIALS_FULL)
    keda.ensure_built()
    rng = random.Random()
    results: list[dict[str, Any]] = []
    with kube.cluster() as c, private_redis() as redis_server, keda.running(c, ctx.work):
        op = kube.start_operator(c, ctx.work / "logs")
        w = ReplicaWatch(c)
        try:
            names = _prepare(c, trials, redis_server.url, redis_server.port, ctx)
            for i, n in enumerate(names):
                log.info("autoscale: trial %d/%d", i + 1, trials)
                op.check()
                for row in _trial(w, n, redis_server.url, rng):
                    row["trial"] = i
                    results.append(row)
                    log.info("  %s %s: %s s", row["key"], row["case"], row["seconds"])
        finally:
            w.stop()
            op.stop(timeout=30)
    labels = dict(SCALERS)
    summary = []
    for key, label in SCALERS:
        for case in CASES:
            vals = [r["seconds"] for r in results if r["key"] == key and r["case"] == case]
            ok = [v for v in vals if v is not None]
            med = statistics.median(ok) if ok else None
            summary.append(
                {
                    "scaler": label,
                    "scaler_key": key,
                    "case": case,
                    "trials": str(len(vals)),
                    "values": ", ".join("timeout" if v is None else f"{v:.2f}" for v in vals),
                    "median": "-" if med is None else f"{med:.2f}",
                    "median_s": med,
                }
            )
    for r in results:
        r["scaler"] = labels[r["key"]]
        r["scaler_key"] = r["key"]
    method = [
        f"{trials} trials; in each, three Deployments of the same pod template start at 0 on "
        "the benchmarks' own control plane (no node: replicas are read from spec.replicas by a "
        "watch): one scaled by our operator (JobQueue autoscaling: min 0, max "
        f"{AUTOSCALE_MAX_REPLICAS}, target {AUTOSCALE_TARGET_PER_WORKER} jobs/worker, "
        f"stabilization and cooldown {AUTOSCALE_COOLDOWN_S} s) and two by KEDA ScaledObjects "
        "(redis trigger on the same queue's ready list, listLength "
        f"{AUTOSCALE_TARGET_PER_WORKER}, cooldownPeriod {AUTOSCALE_COOLDOWN_S} s; "
        f"pollingInterval {KEDA_POLLING_INTERVAL_S} s and 1 s; the HPA controller of "
        "kube-controller-manager at its defaults). After a random 0-30 s wait: enqueue 1 job "
        f"(0->1), then {AUTOSCALE_BACKLOG - 1} more ({AUTOSCALE_BACKLOG} waiting, 1->20), then "
        "empty the queue (drain: back to 0). Seconds from the enqueue/purge call to "
        "spec.replicas reaching the level."
    ]
    return {
        "trials": results,
        "summary": summary,
        "method": method,
        "versions": {
            "KEDA": keda.version(),
            "kubernetes": __import__("tests.cluster.binaries", fromlist=["x"]).VERSIONS.get(
                "K8S_VERSION", "?"
            ),
        },
    }
