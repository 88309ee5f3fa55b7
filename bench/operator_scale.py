"""Operator scale: N JobQueues created at once on the local control plane, at the operator's
default settings (issue 21).

The JobQueues are created as a fast client would: CREATE_THREADS concurrent create requests
(the kubernetes Python client over a pool of that many connections). Measures the time the
creates take (``create_s``: the first request sent to the last answered) and from the first
create to all of them Ready (``ready_s``, which includes the creates), the
operator's RSS (/proc), the API requests it makes per minute while idle (a window holding two
resync passes), and what a restarted operator does after a SIGKILL, counted from the
kube-apiserver's audit log of the operator's own user (writes reported separately: an idle
operator should make none). The JobQueues are what a user writes without tuning: the Redis URL
from a Secret, the API enabled (at 0 replicas: no node runs pods here), workers autoscaled from 0
with the default stabilization and cooldown; the operator runs with its default log and Event
levels (INFO) and resync interval. Ready means: children applied, Deployments as desired, Redis
reachable.

``BENCH_OPERATOR_QUEUES=100,500,1000`` runs several sizes (one fresh control plane each), and
``BENCH_OPERATOR_IDLE_S`` sets the idle window (one number, or one per size, e.g.
``120,120,660``; the report says each length).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from bench import kube
from bench.common import Ctx, free_port, private_redis, proc_rss_bytes
from bench.constants import (
    OPERATOR_IDLE_WINDOW_FULL_S,
    OPERATOR_IDLE_WINDOW_QUICK_S,
    OPERATOR_QUEUES_FULL,
    OPERATOR_QUEUES_QUICK,
    OPERATOR_READY_TIMEOUT_S,
    OPERATOR_RESTART_WINDOW_S,
    RESULTS_JSON,
)

log = logging.getLogger(__name__)

NAMESPACE = "bench-scale"
SOURCE_SECRET = "redis-url"
#: The operator's defaults: bench/kube.start_operator quiets logs and Events; these undo that.
DEFAULT_LEVELS = {"LOG_LEVEL": "INFO", "EVENT_LEVEL": "INFO"}
QUIET_S = 15.0  # the idle window starts once the operator made no write for this long
QUIET_MAX_S = 180.0
JOBQUEUES = ("jobqueue.io", "v1alpha1", NAMESPACE, "jobqueues")  # group, version, ns, plural
FLOOR_FINALIZER = "bench.jobqueue.io/floor"  # as long as the operator's (no operator removes it)
CREATE_THREADS = 32  # concurrent create requests, each on its own connection


def _wait_quiet(c: kube.Cluster, op: Any, ready_at: float) -> float:
    """Seconds after ready_at until the operator made no API write for QUIET_S."""
    deadline = time.monotonic() + QUIET_MAX_S
    while time.monotonic() < deadline:
        op.check()
        time.sleep(2.0)
        now = time.time()
        kube.wait_audit_flush(c.audit_log, now)
        writes = [
            e
            for e in kube.audit_events(c.audit_log, ready_at - 60, now)
            if e["verb"] in kube.WRITE_VERBS
        ]
        last = max((kube.event_time(e) for e in writes), default=ready_at)
        if now - last >= QUIET_S:
            return max(0.0, last - ready_at)
    return QUIET_MAX_S


def prelude(redis_url: str) -> str:
    """The namespace and the Secret holding the Redis URL (created before the timed part)."""
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SOURCE_SECRET, "namespace": NAMESPACE},
            "stringData": {"url": redis_url},
        },
    ]
    return yaml.safe_dump_all(docs)


def jobqueue(i: int) -> dict[str, Any]:
    """The i-th JobQueue as a user writes it untuned."""
    return {
        "apiVersion": "jobqueue.io/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": f"q{i:04d}", "namespace": NAMESPACE},
        "spec": {
            "redis": {"urlFrom": {"secretKeyRef": {"name": SOURCE_SECRET, "key": "url"}}},
            # The API's Deployment and Service are made; 0 pods (no node here).
            "api": {"replicas": 0},
            # Created at minReplicas (0); stabilization and cooldown at their defaults.
            "autoscaling": {"enabled": True, "minReplicas": 0, "maxReplicas": 2},
        },
    }


def create_all(kubeconfig: Path, n: int) -> None:
    """Create the n JobQueues with CREATE_THREADS requests in flight (admin credentials, so
    the audit log's operator user sees none of them)."""
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = CREATE_THREADS
    with client.ApiClient(cfg) as api_client:
        api = client.CustomObjectsApi(api_client)

        def create(i: int) -> None:
            api.create_namespaced_custom_object(
                *JOBQUEUES, jobqueue(i),
                _request_timeout=120,
            )  # fmt: skip

        with ThreadPoolExecutor(CREATE_THREADS) as pool:
            list(pool.map(create, range(n)))


def _is_ready(obj: dict[str, Any]) -> bool:
    conds = (obj.get("status") or {}).get("conditions") or []
    return any(x.get("type") == "Ready" and x.get("status") == "True" for x in conds)


def floor(kubeconfig: Path, n: int, redis_url: str) -> dict[str, Any]:
    """The control plane's share alone: the n JobQueues created as in the timed run, and for
    each, as soon as it exists, the writes an operator that already knew everything would
    make (its five children, built by the operator's own builders; the finalizer; one status
    write with Ready; one Event), CREATE_THREADS JobQueues in flight, through the operator's
    own Kubernetes layer. No operator runs, so nothing reads, watches or decides: what is left
    is what the API server, etcd and the controller-manager spend on these objects, the floor
    under any operator's Ready time on this machine."""
    import asyncio

    from jobqueue_operator import builders
    from jobqueue_operator.adapters import KubernetesReporter
    from jobqueue_operator.kube import Kube
    from jobqueue_operator.kubetypes import JobQueueRef
    from jobqueue_operator.settings import get_settings
    from jobqueue_operator.spec import parse_spec
    from kubernetes import client, config

    ours = get_settings()
    images = builders.Images(
        ours.default_api_image, ours.default_worker_image, ours.default_redis_image
    )
    material = builders.SecretMaterial(redis_url=redis_url)
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = CREATE_THREADS
    ready = {"type": "Ready", "status": "True", "reason": "Ready", "message": "floor",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip

    async def one(kube: Kube, i: int, gate: asyncio.Semaphore) -> int:
        async with gate:
            body = await kube.create("JobQueue", NAMESPACE, dict(jobqueue(i))) or {}
            ref = JobQueueRef.from_body(body)
            spec = parse_spec(body["spec"])
            start = builders.initial_replicas(ref, spec)
            writes = 0
            for manifest in builders.desired_children(ref, spec, material, images):
                name = manifest["metadata"]["name"]
                if manifest["kind"] == "Deployment" and name in start:
                    manifest["spec"]["replicas"] = start[name]  # type: ignore[typeddict-unknown-key]
                await kube.apply(manifest)
                writes += 1
            finalizers = {"metadata": {"finalizers": [FLOOR_FINALIZER]}}
            await kube.patch("JobQueue", ref.namespace, ref.name, finalizers)
            await kube.patch_status(ref.namespace, ref.name, {"conditions": [ready]}, None)
            reporter = KubernetesReporter(kube, ref.namespace, ref.name, uid=ref.uid)
            await reporter.event("Normal", "Ready", "floor")
            return writes + 3

    async def run_all() -> tuple[float, int]:
        kube = Kube(client.ApiClient(cfg), CREATE_THREADS)
        gate = asyncio.Semaphore(CREATE_THREADS)
        t0 = time.monotonic()
        try:
            writes = await asyncio.gather(*(one(kube, i, gate) for i in range(n)))
        finally:
            kube.close()
        return time.monotonic() - t0, sum(writes)

    seconds, writes = asyncio.run(run_all())
    log.info("operator floor: %d JobQueues and their objects in %.1f s", n, seconds)
    return {"floor_s": seconds, "floor_writes_per_queue": writes / n}


def _ready_count(c: kube.Cluster) -> tuple[int, int]:
    items = c.kube.kubectl_json("get", "jobqueues", "-n", NAMESPACE, timeout=120)["items"]
    return sum(1 for it in items if _is_ready(it)), len(items)


class ReadyWatch:
    """The names of the Ready JobQueues, kept by one watch stream (admin credentials).

    A watch costs the API server one event per change; a LIST polled every half second
    re-encodes every JobQueue each time (1,000 of them with their managedFields: megabytes,
    and a kubectl process decoding them), CPU the operator under test would not get."""

    def __init__(self, kubeconfig: Path) -> None:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        self._api = client.CustomObjectsApi(client.ApiClient(cfg))
        self.ready: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ready-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from kubernetes import watch

        version = ""
        while not self._stop.is_set():
            if not version:  # (re)list: the watch resumes from its resourceVersion
                listed = self._api.list_namespaced_custom_object(*JOBQUEUES)
                self.ready = {i["metadata"]["name"] for i in listed["items"] if _is_ready(i)}
                version = listed["metadata"]["resourceVersion"]
            stream = watch.Watch().stream(
                self._api.list_namespaced_custom_object,
                *JOBQUEUES,
                resource_version=version,
                timeout_seconds=60,
                allow_watch_bookmarks=True,
            )
            try:
                for event in stream:
                    obj = event["object"]
                    version = obj["metadata"].get("resourceVersion", version)
                    if event["type"] == "BOOKMARK":
                        continue
                    name = obj["metadata"]["name"]
                    if event["type"] != "DELETED" and _is_ready(obj):
                        self.ready.add(name)
                    else:
                        self.ready.discard(name)
                    if self._stop.is_set():
                        return
            except Exception as exc:  # 410 Gone and the like: list again
                log.debug("ready watch: %s; listing again", exc)
                version = ""

    def close(self) -> None:
        self._stop.set()


def _idle(c: kube.Cluster, op: Any, seconds: float) -> tuple[dict[str, Any], int]:
    """Requests and writes of the operator over ``seconds`` of doing nothing; its RSS peak."""
    start = time.time()
    end_mono = time.monotonic() + seconds
    rss_peak = 0
    while time.monotonic() < end_mono:
        op.check()
        rss_peak = max(rss_peak, proc_rss_bytes(op.pid))
        time.sleep(1.0)
    end = time.time()
    kube.wait_audit_flush(c.audit_log, end)
    return kube.summarize(kube.audit_events(c.audit_log, start, end), end - start), rss_peak


def _wait_ready(watcher: ReadyWatch, op: Any, n: int, t0: float, row: dict[str, Any]) -> int:
    """Wait until all n are Ready (row["ready_s"]) or the timeout; returns the RSS peak."""
    deadline = t0 + OPERATOR_READY_TIMEOUT_S
    rss_peak = 0
    while True:
        op.check()
        rss_peak = max(rss_peak, proc_rss_bytes(op.pid))
        ready = len(watcher.ready)
        if ready >= n:
            row["ready_s"] = time.monotonic() - t0
            return rss_peak
        if time.monotonic() > deadline:
            row["ready_s"] = None
            row["not_ready"] = n - ready
            log.warning(
                "operator: only %d/%d Ready after %.0f s", ready, n, OPERATOR_READY_TIMEOUT_S
            )
            return rss_peak
        time.sleep(0.2)


def _creation_writes(c: kube.Cluster, n: int, since: float, row: dict[str, Any]) -> None:
    """The operator's writes from the first create until it went quiet, per JobQueue."""
    until = time.time()
    kube.wait_audit_flush(c.audit_log, until)
    writes = [
        e for e in kube.audit_events(c.audit_log, since, until) if e["verb"] in kube.WRITE_VERBS
    ]
    row["create_writes_per_queue"] = len(writes) / n
    row["create_writes_by_verb"] = kube.summarize(writes, 60.0)["by_verb"]
    log.info(
        "operator: %.1f writes per JobQueue (%s)", len(writes) / n, row["create_writes_by_verb"]
    )


def _resumed(port: int) -> float:
    """How many JobQueues the operator has reconciled on its resume (its own metrics)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("jobqueue_operator_reconciles_total{") and all(
            label in name for label in ('trigger="event"', 'result="ok"')
        ):
            total += float(value)
    return total


def _restart(c: kube.Cluster, op: Any, n: int, ctx: Ctx, row: dict[str, Any]) -> Any:
    """SIGKILL the operator, start a new one: how long until it has reconciled every JobQueue
    again (its resume), and what it asks and writes until then and for a window after."""
    op.stop(timeout=5, sig=signal.SIGKILL)
    start = time.time()
    port = free_port()
    op = kube.start_operator(c, ctx.work / "logs", METRICS_PORT=str(port), **DEFAULT_LEVELS)
    deadline = time.monotonic() + OPERATOR_READY_TIMEOUT_S
    while _resumed(port) < n and time.monotonic() < deadline:
        op.check()
        time.sleep(1.0)
    row["restart_resumed_s"] = time.time() - start if _resumed(port) >= n else None
    time.sleep(OPERATOR_RESTART_WINDOW_S)
    op.check()
    end = time.time()
    kube.wait_audit_flush(c.audit_log, end)
    events = kube.audit_events(c.audit_log, start, end)
    s = kube.summarize(events, end - start)
    writes = [e for e in events if e["verb"] in kube.WRITE_VERBS]
    row["restart_window_s"] = end - start
    row["restart_requests"] = len(events)
    row["restart_writes"] = len(writes)
    row["restart_by_verb"] = s["by_verb"]
    row["restart_still_ready"] = _ready_count(c)[0]
    row["restart_rss_mib"] = proc_rss_bytes(op.pid) / 2**20
    log.info(
        "operator: restarted, every JobQueue reconciled after %s s: %d requests, %d writes (%s)",
        row["restart_resumed_s"], len(events), len(writes), s,
    )  # fmt: skip
    return op


def measure(c: kube.Cluster, n: int, idle_s: float, ctx: Ctx) -> dict[str, Any]:
    row: dict[str, Any] = {"queues": n}
    with private_redis() as redis_server:
        op = kube.start_operator(c, ctx.work / "logs", **DEFAULT_LEVELS)
        try:
            time.sleep(3)  # the operator is up and watching before the apply
            op.check()
            path = ctx.work / "jobqueues-prelude.yaml"
            path.write_text(prelude(redis_server.url))
            c.kube.kubectl("apply", "--server-side", "-f", str(path))
            watcher = ReadyWatch(c.kube.kubeconfig)
            t0, wall0 = time.monotonic(), time.time()
            create_all(c.kube.kubeconfig, n)
            row["create_s"] = time.monotonic() - t0
            row["create_threads"] = CREATE_THREADS
            log.info("operator: created %d JobQueues in %.1f s", n, row["create_s"])
            try:
                rss_peak = _wait_ready(watcher, op, n, t0, row)
            finally:
                watcher.close()
            log.info("operator: %s s to all Ready", row.get("ready_s"))
            row["settled_s"] = _wait_quiet(c, op, time.time())
            log.info(
                "operator: no writes for %.0f s, %.1f s after all Ready", QUIET_S, row["settled_s"]
            )
            _creation_writes(c, n, wall0, row)
            s, idle_peak = _idle(c, op, idle_s)
            row["rss_mib"] = proc_rss_bytes(op.pid) / 2**20
            row["rss_peak_mib"] = max(rss_peak, idle_peak) / 2**20
            row["idle_window_s"] = idle_s
            row["idle_requests_per_min"] = s["requests_per_min"]
            row["idle_writes_per_min"] = s["writes_per_min"]
            row["idle_by_verb"] = s["by_verb"]
            log.info("operator: idle %s, RSS %.0f MiB", s, row["rss_mib"])
            op = _restart(c, op, n, ctx, row)
        finally:
            op.stop(timeout=30)
            c.kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
    return row


def sizes(ctx: Ctx) -> list[int]:
    given = os.environ.get("BENCH_OPERATOR_QUEUES", "")
    if given.strip():
        return [int(x) for x in given.split(",") if x.strip()]
    return [ctx.pick(OPERATOR_QUEUES_QUICK, OPERATOR_QUEUES_FULL)]


def idle_windows(ctx: Ctx, count: int) -> list[float]:
    """The idle window of each size: BENCH_OPERATOR_IDLE_S (one number, or one per size)."""
    given = [float(x) for x in os.environ.get("BENCH_OPERATOR_IDLE_S", "").split(",") if x.strip()]
    default = ctx.pick(OPERATOR_IDLE_WINDOW_QUICK_S, OPERATOR_IDLE_WINDOW_FULL_S)
    if len(given) == count:
        return given
    return [given[0] if given else default] * count


def earlier_rows() -> list[dict[str, Any]]:
    """The rows results.json holds (a run replaces only the sizes it measures, so a curve can
    be taken size by size; each row carries its date)."""
    if not RESULTS_JSON.exists():
        return []
    section = json.loads(RESULTS_JSON.read_text()).get("sections", {}).get("operator") or {}
    return list((section.get("data") or {}).get("rows") or [])


def measure_floor(c: kube.Cluster, n: int, ctx: Ctx) -> dict[str, Any]:
    """:func:`floor` on a fresh control plane (the namespace and Secret made first)."""
    with private_redis() as redis_server:
        path = ctx.work / "jobqueues-prelude.yaml"
        path.write_text(prelude(redis_server.url))
        c.kube.kubectl("apply", "--server-side", "-f", str(path))
        return floor(c.kube.kubeconfig, n, redis_server.url)


def run(ctx: Ctx) -> dict[str, Any]:
    ns = sizes(ctx)
    rows = [r for r in earlier_rows() if r.get("queues") not in ns]
    for n, idle_s in zip(ns, idle_windows(ctx, len(ns)), strict=True):
        with kube.cluster() as c:  # the floor, on a control plane of its own
            low = measure_floor(c, n, ctx)
        with kube.cluster() as c:  # a fresh control plane per size
            row = measure(c, n, idle_s, ctx) | low
        row["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        rows.append(row)
    rows.sort(key=lambda r: int(r["queues"]))
    method = [
        f"N JobQueues created by {CREATE_THREADS} concurrent create requests (the kubernetes "
        "Python client, admin credentials) on the benchmarks' own "
        "control plane (etcd, kube-apiserver, kube-controller-manager; no node), each as a "
        "user writes it untuned: the Redis URL from a Secret (one private redis-server), the "
        "API enabled at 0 replicas, workers autoscaled from 0 with the default stabilization "
        "and cooldown. The operator runs at its defaults (log and Event levels INFO, resync "
        "every 300 s, API calls unthrottled). Create = the first create sent to the last "
        "answered; Ready = from the first create until the operator's Ready condition is True "
        f"on every one (the creates included; rows measured before 2026-12-07 22:00 were "
        "created by one `kubectl apply --server-side`, its time in the same column). Idle = "
        "a window starting once the operator made no API write for "
        f"{QUIET_S:.0f} s after all were Ready (`settled` says when its last write was); "
        "requests are counted from the kube-apiserver audit log of the operator's own user "
        "(watches counted when opened; the log is read once it has caught up, as the "
        "apiserver batches it). Restart = the operator SIGKILLed after the idle window and a "
        "new one started: the time until it has reconciled every JobQueue again (its own "
        "reconciles counter), and its requests and writes until then and for "
        f"{OPERATOR_RESTART_WINDOW_S:.0f} s more."
    ]
    return {"rows": rows, "method": method}
