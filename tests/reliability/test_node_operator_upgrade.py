"""On the real node: the operator installed with its Helm chart (its own image, built by
tests/cluster/images like every node image) and upgraded with `helm upgrade` while a JobQueue
works under load; the JobQueue must not notice.

The JobQueue runs our API and worker images (the workers run the chaos task module, which
records every execution) and three schedules firing every minute (cron has no seconds: one
fire time a minute each). A producer posts jobs through the API Service at a steady rate the
whole time. Each `helm upgrade` changes the operator's pod template, so its pods roll:
- fast (`make test`): a new image tag (the same image tagged again in containerd), one replica,
  so the chart's Recreate strategy stops the old operator before the new one starts;
- full (`make chaos`) adds: replicaCount 1 -> 2 (leader election by kopf peering, a rolling
  update beside the old standalone replica), a pod annotation with 2 replicas (a rolling
  update between peers), back to 1 replica and the first tag (Recreate again).
Each upgrade starts a few seconds before a minute boundary, so fire times fall inside the
hand-over, while no operator or a new one runs.

Checked: every acknowledged job ran exactly once (none lost, none dead); the children
(Deployments, Services, Secrets) keep their uids and Deployment generations, and the API and
worker pods their uids and restart counts; every schedule has exactly one job per fire time
from the JobQueue's creation on, none missed (the README: a fire time missed while the operator
was away is caught up when less than startingDeadlineSeconds old) and none twice (the
idempotency key `schedule:<name>:<fire time>`; attempts the key absorbed are counted from the
operator pods' logs); the JobQueue is Ready at its generation after each upgrade; and every old
operator pod stops within its 30 s grace period (a SIGKILL at its end holds up the Recreate
hand-over: the chart's peering grant used to vanish on the 2 -> 1 upgrade, and the old
replicas' last peering PATCH was refused and retried until the kubelet killed them).

The chart is installed with `crds.install=false` and watches only this test's namespace: the
session's other node tests apply the same CRD and run operators of their own, so the test
applies the CRDs itself (the JobQueue CRD as they do, kopf's peering CRD from the chart's
files) and leaves everything else alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import yaml
from jobqueue_operator import schedules
from jobqueue_operator.crd import CRD_FILE

from jobqueue import Queue
from jobqueue.keys import QueueKeys
from tests.cluster import binaries, images, node
from tests.cluster.controlplane import REPO_ROOT, Kube
from tests.cluster.redis_server import RedisServer
from tests.reliability.kube_support import (
    RESTRICTED,
    KubeHttp,
    condition,
    labelled_children,
    wait_settled,
)
from tests.reliability.node_support import chaos_worker, pods, ready_pods, tasks_configmap
from tests.reliability.support import Figures, await_until, executions, forget_queue, sizes

pytestmark = [pytest.mark.node, pytest.mark.timeout(1800)]
SECTION = "Faults: the operator upgraded with helm upgrade under load (real node)"
NAME = "upgraded"
RELEASE = "jqup"
FULLNAME = f"{RELEASE}-jobqueue-operator"
CHART = REPO_ROOT / "charts" / "jobqueue-operator"
PEERING_CRD = CHART / "files" / "kopf.dev_clusterkopfpeerings.yaml"
OPERATOR_PODS = f"app.kubernetes.io/instance={RELEASE}"
APP_PODS = f"app.kubernetes.io/instance={NAME}"
WORKER = f"{APP_PODS},app.kubernetes.io/component=worker"
API = f"{APP_PODS},app.kubernetes.io/component=api"
SCHEDULES = ("tick-a", "tick-b", "tick-c")
CRON = "* * * * *"
OPERATOR_REPO = "localhost/jobqueue-operator"
FIRST_TAG = images.IMAGE_TAG
NEW_TAG = f"{images.IMAGE_TAG}-upgraded"
BATCH = 20  # jobs per POST /jobs:batch
LEAD_S = 4.0  # an upgrade starts this long before a minute boundary
HELM_TIMEOUT = "240s"
GRACE_S = 30  # the chart's terminationGracePeriodSeconds: the kubelet SIGKILLs after it
FIRED = re.compile(
    r"schedule (\S+) of \S+ fired for (\S+): job (\S+)( \(already enqueued: idempotency key hit\))?"
)


@dataclass(frozen=True)
class Step:
    """One `helm upgrade`: what it changes, as chart values on top of the previous step's."""

    what: str
    values: dict[str, Any]


TAG_CHANGE = Step("image tag", {"image": {"tag": NEW_TAG}})
TWO_REPLICAS = Step("replicaCount 1 -> 2 (peering)", {"replicaCount": 2})
ANNOTATION = Step("pod annotation, 2 replicas", {"podAnnotations": {"jobqueue.io/rolled": "1"}})
BACK = Step("replicaCount 2 -> 1, first tag", {"replicaCount": 1, "image": {"tag": FIRST_TAG}})


@dataclass(frozen=True)
class Size:
    rate: int  # jobs per second posted
    workers: int
    steps: tuple[Step, ...]


FAST = Size(rate=200, workers=2, steps=(TAG_CHANGE,))
FULL = Size(rate=300, workers=3, steps=(TAG_CHANGE, TWO_REPLICAS, ANNOTATION, BACK))


def base_values(ns: str) -> dict[str, Any]:
    """The chart's values for the images built on this machine, watching ``ns`` only."""
    return {
        "image": {"repository": OPERATOR_REPO, "tag": FIRST_TAG, "pullPolicy": "Never"},
        "apiImage": {"repository": "localhost/jobqueue-api", "tag": images.IMAGE_TAG},
        "workerImage": {"repository": "localhost/jobqueue-worker", "tag": images.IMAGE_TAG},
        "redisImage": images.REDIS_IMAGE.ref,
        "childImagePullPolicy": "Never",
        "crds": {"install": False},
        "watchNamespaces": [ns],
        "resyncIntervalSeconds": 10,
        "replicaCount": 1,
    }


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def minute_boundaries(since: datetime, until: datetime) -> list[datetime]:
    """Every whole minute t with since <= t <= until (UTC). A JobQueue's schedules count from
    its creationTimestamp, which has whole seconds: one created in the first second of a minute
    fires that minute (schedules.due_fire takes fire times from just before ``earliest``)."""
    t = since.replace(second=0, microsecond=0)
    if t < since:
        t += timedelta(minutes=1)
    out = []
    while t <= until:
        out.append(t)
        t += timedelta(minutes=1)
    return out


@dataclass
class Helm:
    kube: Kube
    namespace: str
    workdir: Path
    calls: int = 0

    def run(self, *args: str, timeout: float = 300) -> None:
        cmd = [str(binaries.path("helm")), "--kubeconfig", str(self.kube.kubeconfig), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"

    def upgrade(self, values: dict[str, Any]) -> None:
        self.calls += 1
        path = self.workdir / f"values-{self.calls}.yaml"
        path.write_text(yaml.safe_dump(values))
        self.run(
            "upgrade", "--install", RELEASE, str(CHART), "--namespace", self.namespace,
            "-f", str(path), "--wait", "--timeout", HELM_TIMEOUT,
        )  # fmt: skip


@dataclass
class LogFollower:
    """`kubectl logs -f` of every operator pod that appears (the old pods' logs go with them),
    and how long each took to stop: from its deletion (the kubelet's SIGTERM) until it is gone,
    with the exit code when a poll saw it (137: SIGKILLed at the end of the grace period)."""

    kube: Kube
    namespace: str
    workdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)
    stopped: dict[str, float] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)

    def poll(self, api: KubeHttp) -> None:
        listed = pods(api, self.namespace, OPERATOR_PODS)
        now = time.time()
        for name in set(self.deleted) - {p["metadata"]["name"] for p in listed}:
            self.stopped.setdefault(name, now - self.deleted[name])
        for pod in listed:
            name = pod["metadata"]["name"]
            meta = pod["metadata"]
            if meta.get("deletionTimestamp") and name not in self.deleted:
                at = datetime.fromisoformat(meta["deletionTimestamp"]).timestamp()
                self.deleted[name] = at - int(meta.get("deletionGracePeriodSeconds") or 0)
            for s in pod["status"].get("containerStatuses", []):
                if "terminated" in s.get("state", {}):
                    self.exit_codes[name] = int(s["state"]["terminated"]["exitCode"])
            started = any(
                "running" in s.get("state", {}) or "terminated" in s.get("state", {})
                for s in pod["status"].get("containerStatuses", [])
            )
            if name in self.procs or not started:
                continue
            out = (self.workdir / f"{name}.log").open("wb")
            self.procs[name] = subprocess.Popen(
                [str(self.kube.kubectl_path), "--kubeconfig", str(self.kube.kubeconfig),
                 "logs", "-f", "--timestamps", "-n", self.namespace, name],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
            out.close()

    def lines(self) -> dict[str, list[str]]:
        return {
            name: (self.workdir / f"{name}.log").read_text(errors="replace").splitlines()
            for name in self.procs
        }

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def tail(self) -> str:
        return "\n".join(
            f"--- {name} ---\n" + "\n".join(lines[-40:]) for name, lines in self.lines().items()
        )


@dataclass
class Producer:
    """POST /jobs:batch at ``rate`` jobs/s through the API Service until stopped."""

    url: str
    rate: int
    acked: list[str] = field(default_factory=list)
    other: dict[str, int] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        body = {"jobs": [{"type": "track", "payload": {"ms": 0}}] * BATCH}
        period = BATCH / self.rate
        next_at = time.monotonic()
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            while not self.stop.is_set():
                try:
                    r = await http.post("/jobs:batch", json=body)
                except httpx.HTTPError as exc:
                    self._other(type(exc).__name__)
                else:
                    if r.status_code == 202:
                        self.acked += r.json()["job_ids"]
                    else:
                        self._other(str(r.status_code))
                next_at += period
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def _other(self, what: str) -> None:
        self.other[what] = self.other.get(what, 0) + 1


def child_ids(api: KubeHttp, ns: str) -> dict[str, tuple[str, int]]:
    """kind/name -> (uid, generation) of every child the operator manages in ``ns``."""
    return {
        f"{c['kind']}/{c['metadata']['name']}": (
            c["metadata"]["uid"],
            int(c["metadata"].get("generation", 0)),
        )
        for c in labelled_children(api, ns)
    }


def app_pods(api: KubeHttp, ns: str) -> dict[str, tuple[str, int]]:
    """pod name -> (uid, restarts) of the JobQueue's API and worker pods."""
    out = {}
    for p in pods(api, ns, APP_PODS):
        restarts = sum(
            int(s.get("restartCount", 0)) for s in p["status"].get("containerStatuses", [])
        )
        out[p["metadata"]["name"]] = (p["metadata"]["uid"], restarts)
    return out


def jq_ready(api: KubeHttp, ns: str) -> bool:
    jq = api.get(api.jq_path(ns, NAME))
    ready = condition(jq, "Ready")
    return bool(
        jq
        and ready
        and ready["status"] == "True"
        and jq.get("status", {}).get("observedGeneration") == jq["metadata"]["generation"]
    )


def ctr_tag(cluster: node.NodeCluster, *args: str) -> None:
    cmd = [*images.ctr_cmd(cluster.containerd_socket), "images", *args]
    subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)


async def wait_for_second(lead: float) -> None:
    """Sleep until ``lead`` seconds before the next minute boundary (the one after if closer)."""
    now = datetime.now(UTC)
    boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = boundary - timedelta(seconds=lead)
    if start <= now + timedelta(seconds=1):
        start += timedelta(minutes=1)
    await asyncio.sleep((start - now).total_seconds())


@pytest.mark.parametrize("size", sizes(FAST, FULL))
async def test_helm_upgrade_of_the_operator_under_load_loses_no_job_recreates_no_child(
    node_cluster: node.NodeCluster,
    node_redis: RedisServer,
    figures: Figures,
    tmp_path: Path,
    size: Size,
) -> None:
    kube = node_cluster.kube
    api = KubeHttp(kube)
    ns = api.namespace("jqup-", RESTRICTED)
    op_ns = api.namespace("jqup-op-", RESTRICTED)
    helm = Helm(kube, op_ns, tmp_path)
    logs = LogFollower(kube, op_ns, tmp_path)
    redis = aioredis.Redis.from_url(node_redis.url)
    queue = Queue(redis, f"{ns}/{NAME}")
    started = time.monotonic()
    windows: list[tuple[datetime, datetime]] = []
    installed = False
    try:
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRD))
        kube.wait_established("jobqueues.jobqueue.io", "clusterkopfpeerings.kopf.dev")
        ctr_tag(node_cluster, "tag", "--force", f"{OPERATOR_REPO}:{FIRST_TAG}",
                f"{OPERATOR_REPO}:{NEW_TAG}")  # fmt: skip
        values = base_values(ns)
        installed = True
        await asyncio.to_thread(helm.upgrade, values)
        logs.poll(api)
        tasks_configmap(api, ns)
        tick = {"cron": CRON, "type": "track", "payload": {"ms": 0}}
        status, body = api.create_jq(
            ns,
            NAME,
            {
                "redis": {"url": node_redis.url},
                "api": {"replicas": 1},
                "worker": chaos_worker(size.workers, 8, 30),
                "autoscaling": {"enabled": False},
                "schedules": [{"name": n, **tick} for n in SCHEDULES],
            },
        )
        assert status == 201, body
        created = datetime.fromisoformat(body["metadata"]["creationTimestamp"])
        wait_settled("the JobQueue Ready", lambda: jq_ready(api, ns), timeout=240,
                     on_fail=logs.tail)  # fmt: skip
        wait_settled(
            "its API and worker pods ready",
            lambda: (
                len(ready_pods(api, ns, WORKER)) == size.workers
                and len(ready_pods(api, ns, API)) == 1
            ),
            timeout=180,
        )
        svc = api.must("GET", f"/api/v1/namespaces/{ns}/services/{NAME}-api")
        url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"

        async def api_ready() -> bool:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{url}/readyz")).status_code == 200

        await await_until("the API answering through its Service", api_ready, timeout=60)
        children_before = child_ids(api, ns)
        pods_before = app_pods(api, ns)
        operators_before = sorted(p["metadata"]["name"] for p in pods(api, op_ns, OPERATOR_PODS))

        producer = Producer(url, size.rate)
        load_started = time.monotonic()
        load = asyncio.create_task(producer.run())
        polling = True

        async def follow() -> None:
            while polling:
                await asyncio.to_thread(logs.poll, api)
                await asyncio.sleep(0.5)

        follower = asyncio.create_task(follow())
        try:
            for step in size.steps:
                await wait_for_second(LEAD_S)
                values = merged(values, step.values)
                t0 = datetime.now(UTC)
                await asyncio.to_thread(helm.upgrade, values)
                await asyncio.to_thread(
                    wait_settled, f"the JobQueue Ready after the {step.what} upgrade",
                    lambda: jq_ready(api, ns), 120, logs.tail,
                )  # fmt: skip
                windows.append((t0, datetime.now(UTC)))
            await asyncio.sleep(3)
        finally:
            producer.stop.set()
            await load
            load_seconds = time.monotonic() - load_started
            polling = False
            await follower
        operators_after = [
            p for p in pods(api, op_ns, OPERATOR_PODS) if not p["metadata"].get("deletionTimestamp")
        ]

        async def drained() -> bool:
            s = await queue.stats()
            return s.ready == 0 and s.in_flight == 0 and s.delayed == 0

        await await_until("every job finished", drained, timeout=600)
        # The fire times aimed into the upgrade windows must be before the cutoff below: on a
        # quick drain "now - 5 s" was still before the last window's (CI: 'the aim is off').
        wait = max(b for _, b in windows) + timedelta(seconds=6) - datetime.now(UTC)
        await asyncio.sleep(max(wait.total_seconds(), 0.0))
        # The last fire time that surely passed: every schedule has fired for it by now.
        cutoff = (datetime.now(UTC) - timedelta(seconds=5)).replace(second=0, microsecond=0)

        def fired_up_to_cutoff() -> bool:
            jq = api.get(api.jq_path(ns, NAME)) or {}
            last = {
                s["name"]: s.get("lastFireTime")
                for s in (jq.get("status") or {}).get("schedules") or []
            }
            return all(last.get(n) and last[n] >= schedules.isoformat(cutoff) for n in SCHEDULES)

        wait_settled("status.schedules at the last fire time", fired_up_to_cutoff, timeout=60)
        await await_until("every job finished", drained, timeout=120)
        ran = await executions(redis, queue.name)
        idem = await redis.hgetall(QueueKeys.for_queue(queue.name).idem)
        stats = await queue.stats()
        children_after = child_ids(api, ns)
        pods_after = app_pods(api, ns)
        ready_after = jq_ready(api, ns)
        fire_jobs = {k.decode(): v.decode() for k, v in idem.items() if k.startswith(b"schedule:")}
        records = {j: await queue.get(j) for j in fire_jobs.values()}
    finally:
        logs.stop()
        api.delete(api.jq_path(ns, NAME))
        wait_settled("the JobQueue gone", lambda: not api.items(api.jq_path(ns)), timeout=120,
                     on_fail=logs.tail)  # fmt: skip
        if installed:
            helm.run("uninstall", RELEASE, "--namespace", op_ns, "--wait")
        api.delete(f"/apis/kopf.dev/v1/clusterkopfpeerings/{FULLNAME}")
        api.delete(f"/api/v1/namespaces/{ns}")
        api.delete(f"/api/v1/namespaces/{op_ns}")
        api.close()
        with contextlib.suppress(subprocess.CalledProcessError):
            ctr_tag(node_cluster, "rm", f"{OPERATOR_REPO}:{NEW_TAG}")
        await forget_queue(redis, queue)
        await queue.aclose()
        await redis.aclose()

    # -- jobs
    acked = producer.acked
    lost = [j for j in acked if ran.get(j, 0) == 0]
    duplicated = [j for j in acked if ran.get(j, 0) > 1]
    # -- fire times: every whole minute after the creation, up to the cutoff, once each
    fires: dict[str, dict[datetime, str]] = {n: {} for n in SCHEDULES}
    for key, job in fire_jobs.items():
        _, name, at = key.split(":", 2)
        fires[name][datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)] = job
    expected = minute_boundaries(created, cutoff)
    missed = {n: [t for t in expected if t not in fires[n]] for n in SCHEDULES}
    off_grid = {n: [t for t in fires[n] if t.second or t < created] for n in SCHEDULES}
    fire_ids = set(fire_jobs.values())
    fire_runs = {j: ran.get(j, 0) for j in fire_ids}
    unexplained = sorted(set(ran) - set(acked) - fire_ids)
    in_windows = [t for t in expected if any(a <= t <= b for a, b in windows)]
    lags = [
        (r.created_at - t.timestamp())
        for n in SCHEDULES
        for t, j in fires[n].items()
        if t in in_windows and (r := records.get(j)) is not None
    ]
    # -- the operator pods' own account: fires attempted, and those the key absorbed
    fired_lines = [
        m for lines in logs.lines().values() for line in lines if (m := FIRED.search(line))
    ]
    key_hits = sum(1 for m in fired_lines if m.group(4))
    figures.set(
        upgrades=len(size.steps),
        changes=[s.what for s in size.steps],
        jobs_enqueued=len(acked),
        rate_per_s=size.rate,
        load_seconds=round(load_seconds, 1),
        other_answers=producer.other,
        completed=sum(1 for j in acked if ran.get(j, 0) > 0),
        lost=len(lost),
        duplicated=len(duplicated),
        dead=stats.dead,
        children=len(children_before),
        children_recreated=sum(
            1 for k, v in children_before.items() if children_after.get(k, ("", 0))[0] != v[0]
        ),
        pods_replaced_or_restarted=sum(1 for k, v in pods_before.items() if pods_after.get(k) != v),
        operator_pods_seen=len(logs.procs),
        fire_times=len(expected) * len(SCHEDULES),
        fire_times_during_upgrades=len(in_windows) * len(SCHEDULES),
        missed_fires=sum(len(v) for v in missed.values()),
        fires_twice=sum(1 for v in fire_runs.values() if v != 1),
        key_hits_absorbed=key_hits,
        fire_lags_during_upgrades_s=sorted(round(x, 1) for x in lags),
        upgrade_seconds=[round((b - a).total_seconds(), 1) for a, b in windows],
        operator_pod_stop_seconds=sorted(round(x, 1) for x in logs.stopped.values()),
        operator_exit_codes=sorted(logs.exit_codes.values()),
        seconds=round(time.monotonic() - started, 1),
    )
    assert not producer.other, f"the API answered other than 202 meanwhile: {producer.other}"
    assert not lost, f"{len(lost)} acknowledged jobs never ran"
    assert not duplicated, f"{len(duplicated)} jobs ran twice though no worker died"
    assert stats.dead == 0, f"{stats.dead} dead jobs"
    assert not unexplained, f"executions of jobs nobody enqueued: {unexplained[:5]}"
    assert children_after.keys() == children_before.keys(), (children_before, children_after)
    assert children_after == children_before, "a child was recreated or its spec changed"
    assert pods_after == pods_before, (
        f"API/worker pods replaced or restarted: {pods_before} -> {pods_after}"
    )
    assert not set(operators_before) & {p["metadata"]["name"] for p in operators_after}
    assert {p["spec"]["containers"][0]["image"] for p in operators_after} == {
        f"{OPERATOR_REPO}:{values['image']['tag']}"
    }, "the upgrade did not roll the operator to its last image"
    assert (
        all(x < GRACE_S for x in logs.stopped.values()) and 137 not in logs.exit_codes.values()
    ), (
        f"old operator pods ran into the {GRACE_S} s grace period (SIGKILL): stopped after "
        f"{logs.stopped} s, exit codes {logs.exit_codes}\n{logs.tail()}"
    )
    assert in_windows, f"no fire time fell in an upgrade window {windows}: the aim is off"
    assert not any(missed.values()), f"fire times never enqueued: {missed}"
    assert not any(off_grid.values()), f"fires at times the cron does not name: {off_grid}"
    assert all(v == 1 for v in fire_runs.values()), f"schedule jobs not run once: {fire_runs}"
    assert ready_after, "the JobQueue is not Ready at its generation after the upgrades"
