"""Autoscaler reaction on the local control plane: our operator vs KEDA, same events, same Redis.

Two phases per trial, in alternating order, each on its own queue of one private redis-server:

* **jobqueue format** (our protocol): one JobQueue (our operator scales its worker Deployment,
  woken by the queue's events channel) and three identical copies of that Deployment scaled by
  KEDA ScaledObjects with a `redis` trigger on the very same list (the queue's ready list).
* **list format** (a plain Redis list `jobs`, seed 000's shape, `LPUSH`ed by the harness): two
  JobQueues with `spec.queue: {format: list, names: [jobs]}`, one woken by Redis keyspace
  notifications (`spec.redis.allowConfig: true`: the operator turns them on) and one polled
  every second (its Redis user may not run CONFIG, as on a managed Redis service, so the
  operator cannot see that the notifications are on), and three KEDA ScaledObjects on `jobs`.
  Each trial's list lives in its own Redis database, so every object is made once, up front,
  and a trial never wakes another's scalers.

KEDA runs in three configurations in both phases: its defaults (pollingInterval 30 s, the HPA's
default scale-up behaviour), pollingInterval 1 s, and pollingInterval 1 s with the HPA
scale-up behaviour tuned in the ScaledObject (`advanced.horizontalPodAutoscalerConfig.behavior`:
20 pods per 15 s, no stabilization). Every Deployment starts at 0. After a random wait (a random
phase against every poll loop) the harness enqueues 1 job (0->1), then 99 more in one call
(1->20, target 5 per worker), then empties the queue (back to 0 after the cooldown, 30 s for
all). A watch on Deployments records every change of spec.replicas; no node is needed, so
nothing consumes the jobs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
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
LIST_KEY = "jobs"  # seed 000's list
POLLER_USER = "poller"  # a Redis user refused CONFIG: the operator cannot see notifications
POLLER_PASSWORD = "bench-poller"  # a private loopback redis-server of this run only
#: The HPA scale-up behaviour of KEDA's third configuration (the ScaledObject sets it).
KEDA_BEHAVIOR: dict[str, Any] = {
    "scaleUp": {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Pods", "value": AUTOSCALE_MAX_REPLICAS, "periodSeconds": 15}],
    }
}
CASES = ("0->1", "1->20", "drain")
HPA_SYNC_PERIOD_S = 15  # kube-controller-manager's --horizontal-pod-autoscaler-sync-period
FORMATS = ("jobqueue", "list")


@dataclass(frozen=True)
class Scaler:
    key: str  # unique across formats: rows and charts are keyed by it
    format: str  # the queue format of its phase
    label: str
    ours: bool
    polling: int = 0  # KEDA pollingInterval
    behavior: bool = False  # KEDA: tuned HPA scale-up behaviour
    prefix: str = ""  # Deployment name prefix (KEDA) / JobQueue name prefix (ours)


def _keda_label(polling: int, behavior: bool) -> str:
    base = f"KEDA {keda.version()}, pollingInterval {polling} s"
    if polling == KEDA_POLLING_INTERVAL_S and not behavior:
        return base + " (defaults)"
    if behavior:
        return base + f" + HPA scale-up {AUTOSCALE_MAX_REPLICAS} pods/15 s, no stabilization"
    return base


def _kedas(fmt: str) -> list[Scaler]:
    key = "" if fmt == "jobqueue" else "list-"
    default = KEDA_POLLING_INTERVAL_S
    return [
        Scaler(f"{key}keda", fmt, _keda_label(default, False), False, default, False, "keda"),
        Scaler(f"{key}keda-tuned", fmt, _keda_label(1, False), False, 1, False, "kedafast"),
        Scaler(f"{key}keda-behavior", fmt, _keda_label(1, True), False, 1, True, "kedahpa"),
    ]


SCALERS: tuple[Scaler, ...] = (
    Scaler("jobqueue", "jobqueue", "ours, jobqueue format (events channel + 5 s poll)", True),
    *_kedas("jobqueue"),
    Scaler(
        "list-keyspace",
        "list",
        "ours, list format, keyspace notifications (+ 1 s poll)",
        True,
        prefix="lkey",
    ),
    Scaler("list-polled", "list", "ours, list format, polled every 1 s", True, prefix="lpoll"),
    *_kedas("list"),
)
#: What status.queue.wakeup should say for each of our list-format JobQueues.
EXPECTED_WAKEUP = {"list-keyspace": "keyspace-notifications", "list-polled": "polling"}


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
        self.changed = threading.Condition(self.lock)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stopping = False
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping:
            try:
                for ev in self.watch.stream(  # type: ignore[no-untyped-call]
                    self.api.list_namespaced_deployment, NAMESPACE, timeout_seconds=60
                ):
                    now = time.monotonic()
                    obj = ev["object"]
                    name = obj.metadata.name
                    reps = int(obj.spec.replicas or 0) if ev["type"] != "DELETED" else 0
                    with self.lock:
                        if self.current.get(name) != reps:
                            self.current[name] = reps
                            self.events.append((now, name, reps))
                            self.changed.notify_all()
                    if self.stopping:
                        return
            except Exception:
                if not self.stopping:
                    log.exception("watch failed, restarting")
                    time.sleep(0.5)

    def get(self, name: str) -> int | None:
        with self.lock:
            return self.current.get(name)

    def wait(self, names: list[str], pred: Any, since: float, timeout: float) -> dict[str, Any]:
        """Time (monotonic, as the watch event arrived) at which each Deployment first
        satisfied pred(replicas) after ``since``; None if it did not within timeout."""
        deadline = time.monotonic() + timeout
        hit: dict[str, float | None] = dict.fromkeys(names)
        with self.lock:
            while True:
                for n in names:
                    if hit[n] is not None:
                        continue
                    if n in self.current and pred(self.current[n]):
                        later = [t for t, m, r in self.events if m == n and t >= since and pred(r)]
                        hit[n] = later[0] if later else since
                left = deadline - time.monotonic()
                if left <= 0 or all(v is not None for v in hit.values()):
                    return hit
                self.changed.wait(timeout=min(left, 1.0))

    def path(self, name: str, t0: float, t1: float) -> list[int]:
        """The replica levels the Deployment went through in (t0, t1]."""
        with self.lock:
            return [r for t, n, r in self.events if n == name and t0 < t <= t1]

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


def _autoscaling() -> dict[str, Any]:
    return {
        "enabled": True,
        "minReplicas": 0,
        "maxReplicas": AUTOSCALE_MAX_REPLICAS,
        "targetJobsPerWorker": AUTOSCALE_TARGET_PER_WORKER,
        "cooldownSeconds": AUTOSCALE_COOLDOWN_S,
        "scaleDownStabilizationSeconds": AUTOSCALE_COOLDOWN_S,
    }


def _jobqueue(name: str, redis_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "jobqueue.io/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "redis": {"url": redis_url},
            "api": {"enabled": False},
            "autoscaling": _autoscaling(),
        },
    }


def _list_jobqueue(name: str, redis: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "jobqueue.io/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "redis": redis,
            "api": {"enabled": False},
            "queue": {"format": "list", "names": [LIST_KEY]},
            "autoscaling": _autoscaling(),
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


def _scaled_object(
    name: str, redis_port: int, list_key: str, s: Scaler, db: int = 0
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": name},
        "minReplicaCount": 0,
        "maxReplicaCount": AUTOSCALE_MAX_REPLICAS,
        "pollingInterval": s.polling,
        "cooldownPeriod": AUTOSCALE_COOLDOWN_S,
        "triggers": [
            {
                "type": "redis",
                "metadata": {
                    "address": f"127.0.0.1:{redis_port}",
                    "listName": list_key,
                    "listLength": str(AUTOSCALE_TARGET_PER_WORKER),
                    "databaseIndex": str(db),
                },
            }
        ],
    }
    if s.behavior:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": KEDA_BEHAVIOR}}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


async def _enqueue(url: str, queue: str, n: int) -> float:
    """Enqueue n jobs of our protocol in one call; the monotonic time just before the call."""
    from jobqueue import JobSpec, Queue, connect

    client = connect(url)
    try:
        q = Queue(client, queue)
        await client.ping()
        t0 = time.monotonic()
        if n == 1:
            await q.enqueue(JobSpec(type="noop"))
        else:
            await q.enqueue_many([JobSpec(type="noop")] * n)
        return t0
    finally:
        await client.aclose()


async def _purge(url: str, queue: str) -> float:
    from jobqueue import Queue, connect

    client = connect(url)
    try:
        await client.ping()
        t0 = time.monotonic()
        await Queue(client, queue).purge()
        return t0
    finally:
        await client.aclose()


def lpush(url: str, n: int, clock: Callable[[], float] = time.monotonic) -> float:
    """LPUSH n job ids onto the list in one command (seed 000's API does one per request);
    ``clock``'s time just before it."""
    r = redis.Redis.from_url(url)
    try:
        r.ping()
        ids = [str(uuid.uuid4()) for _ in range(n)]
        t0 = clock()
        r.lpush(LIST_KEY, *ids)
        return t0
    finally:
        r.close()


def _delete_list(url: str) -> float:
    r = redis.Redis.from_url(url)
    try:
        r.ping()
        t0 = time.monotonic()
        r.delete(LIST_KEY)
        return t0
    finally:
        r.close()


@dataclass
class Trial:
    index: int
    deployments: dict[str, str]  # scaler key -> Deployment
    jobqueues: dict[str, str]  # scaler key (ours) -> JobQueue name
    queue: str  # the jobqueue-format queue (namespace/name)
    list_url: str  # the list's database, default user


def _wait_deployment(c: kube.Cluster, name: str, deadline: float) -> dict[str, Any]:
    while True:
        r = c.kube.kubectl("get", "deployment", name, "-n", NAMESPACE, "-o", "json", check=False)
        if r.returncode == 0:
            doc: dict[str, Any] = yaml.safe_load(r.stdout)
            return doc
        if time.monotonic() > deadline:
            raise TimeoutError(f"the operator made no Deployment {name}")
        time.sleep(0.5)


def _prepare(c: kube.Cluster, trials: int, server: Any, ctx: Ctx) -> list[Trial]:
    from jobqueue.keys import QueueKeys

    # The polled JobQueues' user: everything but CONFIG, as on a managed Redis service.
    admin = redis.Redis.from_url(server.url)
    admin.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", POLLER_USER, "on", f">{POLLER_PASSWORD}", "~*", "&*", "+@all", "-config"
    )
    admin.close()
    c.kube.kubectl("create", "namespace", NAMESPACE, check=False)
    out: list[Trial] = []
    docs: list[dict[str, Any]] = []
    base = f"127.0.0.1:{server.port}"
    for i in range(trials):
        db = i + 1  # the jobqueue-format queues live in db 0
        jq = f"t{i}"
        deps: dict[str, str] = {}
        jqs: dict[str, str] = {}
        for s in SCALERS:
            if s.key == "jobqueue":
                jqs[s.key] = jq
                deps[s.key] = f"{jq}-worker"
            elif s.ours:
                jqs[s.key] = f"{s.prefix}{i}"
                deps[s.key] = f"{s.prefix}{i}-worker"
            else:
                deps[s.key] = f"{'l' if s.format == 'list' else ''}{s.prefix}-t{i}"
        out.append(Trial(i, deps, jqs, f"{NAMESPACE}/{jq}", f"redis://{base}/{db}"))
        docs.append(_jobqueue(jq, server.url))
        secret = f"lpoll{i}-redis"
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret, "namespace": NAMESPACE},
                "stringData": {"url": f"redis://{POLLER_USER}:{POLLER_PASSWORD}@{base}/{db}"},
            }
        )
        docs.append(
            _list_jobqueue(
                jqs["list-polled"], {"urlFrom": {"secretKeyRef": {"name": secret, "key": "url"}}}
            )
        )
        docs.append(
            _list_jobqueue(
                jqs["list-keyspace"], {"url": f"redis://{base}/{db}", "allowConfig": True}
            )
        )
    path = ctx.work / "autoscale-jobqueues.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    c.kube.kubectl("apply", "--server-side", "-f", str(path))
    deadline = time.monotonic() + 180
    for t in out:
        src = _wait_deployment(c, t.deployments["jobqueue"], deadline)
        for s in SCALERS:
            if s.ours:
                _wait_deployment(c, t.deployments[s.key], deadline)
        key = QueueKeys.for_queue(t.queue).ready_normal
        kdocs: list[dict[str, Any]] = []
        for s in SCALERS:
            if s.ours:
                continue
            name = t.deployments[s.key]
            kdocs.append(_copy_deployment(src, name))
            if s.format == "jobqueue":
                kdocs.append(_scaled_object(name, server.port, key, s))
            else:
                kdocs.append(_scaled_object(name, server.port, LIST_KEY, s, db=t.index + 1))
        if kdocs:
            kp = ctx.work / f"autoscale-keda-t{t.index}.yaml"
            kp.write_text(yaml.safe_dump_all(kdocs))
            c.kube.kubectl("apply", "--server-side", "-f", str(kp))
    return out


def _wakeup(c: kube.Cluster, name: str) -> str:
    r = c.kube.kubectl(
        "get",
        "jobqueue",
        name,
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.status.queue.wakeup}",
        check=False,
    )
    return r.stdout.strip() if r.returncode == 0 else ""


def _wait_wakeups(c: kube.Cluster, trials: list[Trial], timeout: float = 90) -> None:
    """Until every list-format JobQueue reports the wake-up it is meant to use (or timeout:
    the trial then records what it does use)."""
    deadline = time.monotonic() + timeout
    for t in trials:
        for key, want in EXPECTED_WAKEUP.items():
            while (got := _wakeup(c, t.jobqueues[key])) != want:
                if time.monotonic() > deadline:
                    log.warning("%s reports wakeup %r, not %r", t.jobqueues[key], got, want)
                    break
                time.sleep(1)


def _phase(
    c: kube.Cluster,
    w: ReplicaWatch,
    t: Trial,
    fmt: str,
    redis_url: str,
    rng: random.Random,
) -> list[dict[str, Any]]:
    scalers = [s for s in SCALERS if s.format == fmt]
    deps = [t.deployments[s.key] for s in scalers]
    # Everything at 0 first (ours starts at the Deployment default of 1 and scales down).
    settle = w.wait(deps, lambda r: r == 0, 0.0, timeout=4 * AUTOSCALE_COOLDOWN_S + 120)
    if any(v is None for v in settle.values()):
        raise TimeoutError(f"not all at 0 before the trial: { {d: w.get(d) for d in deps} }")
    wakeups = {s.key: _wakeup(c, t.jobqueues[s.key]) for s in scalers if s.key in EXPECTED_WAKEUP}
    time.sleep(rng.uniform(0, KEDA_POLLING_INTERVAL_S))
    load = [round(x, 2) for x in os.getloadavg()]

    def push(n: int) -> float:
        if fmt == "list":
            return lpush(t.list_url, n)
        return asyncio.run(_enqueue(redis_url, t.queue, n))

    def empty() -> float:
        if fmt == "list":
            return _delete_list(t.list_url)
        return asyncio.run(_purge(redis_url, t.queue))

    out: list[dict[str, Any]] = []
    marks: dict[str, tuple[float, float]] = {}
    hits: dict[str, dict[str, Any]] = {}

    t0 = push(1)
    hits["0->1"] = w.wait(deps, lambda r: r >= 1, t0, timeout=KEDA_POLLING_INTERVAL_S + 30)
    time.sleep(3)
    marks["0->1"] = (t0, time.monotonic())
    # A random phase against the HPA's 15 s sync too: every ScaledObject of a trial was made
    # at the same moment, so without it the push would land at a fixed offset from the syncs.
    time.sleep(rng.uniform(0, HPA_SYNC_PERIOD_S))

    t1 = push(AUTOSCALE_BACKLOG)
    hits["1->20"] = w.wait(deps, lambda r: r >= AUTOSCALE_MAX_REPLICAS, t1, timeout=150)
    time.sleep(3)
    marks["1->20"] = (t1, time.monotonic())

    t2 = empty()
    hits["drain"] = w.wait(deps, lambda r: r == 0, t2, timeout=3 * AUTOSCALE_COOLDOWN_S + 60)
    time.sleep(2)
    marks["drain"] = (t2, time.monotonic())

    for case in CASES:
        a, b = marks[case]
        for s in scalers:
            dep = t.deployments[s.key]
            hit = hits[case][dep]
            row: dict[str, Any] = {
                "case": case,
                "key": s.key,
                "format": fmt,
                "seconds": _since(hit, a),
                "curve": w.curve(dep, a, b),
                "load": load,
            }
            if case == "1->20":
                # every level the Deployment went through until it reached 20
                row["path"] = [1, *w.path(dep, a, hit if hit is not None else b)]
                row["steps"] = len(row["path"]) - 1
            if s.key in wakeups:
                row["wakeup"] = wakeups[s.key]
            out.append(row)
    return out


def _median(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    summary = []
    for s in SCALERS:
        for case in CASES:
            rows = [r for r in results if r["key"] == s.key and r["case"] == case]
            if not rows:
                continue
            vals = [r["seconds"] for r in rows]
            ok = [v for v in vals if v is not None]
            med = _median(ok)
            entry: dict[str, Any] = {
                "scaler": s.label,
                "scaler_key": s.key,
                "format": s.format,
                "ours": s.ours,
                "case": case,
                "trials": str(len(vals)),
                "values": ", ".join("timeout" if v is None else f"{v:.2f}" for v in vals),
                "median": "-" if med is None else f"{med:.2f}",
                "median_s": med,
                "min_s": min(ok) if ok else None,
                "max_s": max(ok) if ok else None,
                "timeouts": len(vals) - len(ok),
            }
            if case == "1->20":
                entry["steps"] = [r.get("steps") for r in rows]
                entry["paths"] = ["-".join(str(x) for x in r.get("path", [])) for r in rows]
            wk = sorted({r["wakeup"] for r in rows if r.get("wakeup") is not None})
            if wk:
                entry["wakeup"] = ", ".join(x or "(none)" for x in wk)
            summary.append(entry)
    return summary


def run(ctx: Ctx) -> dict[str, Any]:
    trials = ctx.pick(AUTOSCALE_TRIALS_QUICK, AUTOSCALE_TRIALS_FULL)
    keda.ensure_built()
    rng = random.Random()
    results: list[dict[str, Any]] = []
    with kube.cluster() as c, private_redis() as redis_server, keda.running(c, ctx.work):
        # the operator at a user's defaults (INFO logs and Events)
        op = kube.start_operator(c, ctx.work / "logs", LOG_LEVEL="INFO", EVENT_LEVEL="INFO")
        w = ReplicaWatch(c)
        try:
            plan = _prepare(c, trials, redis_server, ctx)
            _wait_wakeups(c, plan)
            for t in plan:
                order = FORMATS if t.index % 2 == 0 else FORMATS[::-1]
                for fmt in order:
                    log.info("autoscale: trial %d/%d, %s format", t.index + 1, trials, fmt)
                    op.check()
                    for row in _phase(c, w, t, fmt, redis_server.url, rng):
                        row["trial"] = t.index
                        results.append(row)
                        log.info(
                            "  %s %s: %s s%s",
                            row["key"],
                            row["case"],
                            None if row["seconds"] is None else round(row["seconds"], 3),
                            f" path {row['path']}" if "path" in row else "",
                        )
        finally:
            w.stop()
            op.stop(timeout=30)
    labels = {s.key: s.label for s in SCALERS}
    for r in results:
        r["scaler"] = labels[r["key"]]
        r["scaler_key"] = r["key"]
    method = [
        f"{trials} trials on the benchmarks' own control plane (no node: each Deployment's "
        "spec.replicas is read by a watch on Deployments, timed when the watch event arrives). "
        "Each trial has two phases, in alternating order, on one private redis-server; in "
        "each phase the Deployments of one pod template start at 0 and are scaled by our "
        "operator (JobQueue autoscaling: min 0, max "
        f"{AUTOSCALE_MAX_REPLICAS}, target {AUTOSCALE_TARGET_PER_WORKER} jobs/worker, "
        f"stabilization and cooldown {AUTOSCALE_COOLDOWN_S} s; the operator at its default "
        "INFO logs and Events) and by KEDA ScaledObjects (redis trigger on the same list, "
        f"listLength {AUTOSCALE_TARGET_PER_WORKER}, cooldownPeriod {AUTOSCALE_COOLDOWN_S} s) in "
        f"three configurations: pollingInterval {KEDA_POLLING_INTERVAL_S} s with the HPA's "
        "default behaviour (KEDA's defaults); pollingInterval 1 s; pollingInterval 1 s with "
        "`advanced.horizontalPodAutoscalerConfig.behavior.scaleUp: {stabilizationWindowSeconds: "
        f"0, policies: [{{type: Pods, value: {AUTOSCALE_MAX_REPLICAS}, periodSeconds: 15}}]}}`. "
        "The HPA controller of kube-controller-manager runs at its defaults (15 s sync).",
        "*jobqueue format*: one JobQueue (our protocol, woken by its events channel, 5 s "
        "poll) and KEDA on the queue's ready list; jobs enqueued by `jobqueue.Queue`. "
        f"*list format*: a plain Redis list `{LIST_KEY}` (seed 000's shape), `LPUSH`ed by the "
        f"harness; two JobQueues with `queue: {{format: list, names: [{LIST_KEY}]}}` and "
        "`api.enabled: false`: one with `spec.redis.allowConfig: true` (the operator turns "
        "keyspace notifications on and is woken by them), one whose Redis user may not run "
        "CONFIG, as on a managed Redis service, so it polls every 1 s (the default "
        "pollIntervalSeconds for foreign formats); `wakeup` is what each reports in "
        "status.queue.wakeup. Each trial's list is in its own Redis database.",
        f"After a random 0-{KEDA_POLLING_INTERVAL_S} s wait (a random phase against every poll "
        f"loop): enqueue 1 job (0->1: seconds to spec.replicas >= 1), then {AUTOSCALE_BACKLOG} "
        f"in one call onto the 1 replica, 3-{HPA_SYNC_PERIOD_S + 3} s after the last scaler "
        f"reached 1 (3 s plus a random phase against the HPA's {HPA_SYNC_PERIOD_S} s sync; "
        f"{AUTOSCALE_BACKLOG + 1} waiting; 1->20: seconds to "
        f"spec.replicas = {AUTOSCALE_MAX_REPLICAS}, and the levels it went through), then empty "
        "the queue (drain: back to 0). Seconds from just before the enqueue (LPUSH) / purge "
        "command to the watch event.",
    ]
    return {
        "trials": results,
        "summary": summarize(results),
        "method": method,
        "keda_behavior": KEDA_BEHAVIOR,
        "versions": {
            "KEDA": keda.version(),
            "kubernetes": __import__("tests.cluster.binaries", fromlist=["x"]).VERSIONS.get(
                "K8S_VERSION", "?"
            ),
        },
    }
