"""Autoscaling end to end: the operator process (kopf), the real control plane, real Redis.

The control plane has no node, so worker pods stay Pending; what the autoscaler decides is the
worker Deployment's ``spec.replicas``, which a watch records with a timestamp for every change.
Jobs are enqueued, claimed and completed through the protocol (``jobqueue.Queue``) as the API and
workers would. Latencies are logged (they are measured in bench/, not asserted here); lower
bounds (nothing happens before the stabilization window / cooldown) are asserted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis
from kubernetes import client, watch

from jobqueue import JobSpec, Queue
from tests.cluster.controlplane import Kube
from tests.cluster.redis_server import RedisServer
from tests.support.kube import api_client, temporary_namespace
from tests.support.operator import running_operator

log = logging.getLogger(__name__)
T = TypeVar("T")
WAIT = 60.0


async def await_for(what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# Fixtures: a namespace, the CRD, and the operator watching that namespace


@pytest.fixture(scope="module")
def ns(kube: Kube) -> Iterator[str]:
    yield from temporary_namespace(kube, "autoscale-", digits=6)


@pytest.fixture(scope="module")
def operator(kube: Kube, ns: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``python -m jobqueue_operator`` watching only ``ns``; its log file is yielded."""
    logfile = tmp_path_factory.mktemp("operator") / "operator.log"
    with running_operator(kube, ns, logfile) as log_path:
        yield log_path


@pytest.fixture(scope="module")
def apps(kube: Kube) -> Iterator[client.AppsV1Api]:
    with api_client(kube) as api:
        yield client.AppsV1Api(api)


class Replicas:
    """Every value the worker Deployment's spec.replicas takes, with a perf_counter time."""

    def __init__(self, apps: client.AppsV1Api, ns: str, name: str) -> None:
        self.values: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        self._thread = threading.Thread(target=self._run, args=(apps, ns, name), daemon=True)
        self._thread.start()

    def _run(self, apps: client.AppsV1Api, ns: str, name: str) -> None:
        while not self._stop.is_set():
            try:
                for event in self._watch.stream(  # type: ignore[no-untyped-call]
                    apps.list_namespaced_deployment,
                    ns,
                    field_selector=f"metadata.name={name}",
                    timeout_seconds=30,
                ):
                    replicas = event["object"].spec.replicas
                    if not self.values or self.values[-1][1] != replicas:
                        self.values.append((time.perf_counter(), int(replicas)))
                    if self._stop.is_set():
                        return
            except Exception:  # a dropped watch: resume
                time.sleep(0.1)

    @property
    def now(self) -> int | None:
        return self.values[-1][1] if self.values else None

    def seq(self) -> list[int]:
        return [v for _, v in self.values]

    def first_at_least(self, n: int, after: float = 0.0) -> float | None:
        return next((t for t, v in self.values if v >= n and t >= after), None)

    def stop(self) -> None:
        self._stop.set()
        self._watch.stop()  # type: ignore[no-untyped-call]


class JQ:
    """One JobQueue under test: its manifest, its queue, its recorded replicas."""

    def __init__(
        self,
        kube: Kube,
        ns: str,
        name: str,
        redis_url: str,
        redis: aioredis.Redis,
        apps: client.AppsV1Api,
        autoscaling: dict[str, Any],
        worker: dict[str, Any] | None = None,
    ) -> None:
        self.kube, self.ns, self.name = kube, ns, name
        self.queue = Queue(redis, f"{ns}/{name}")
        manifest = {
            "apiVersion": "jobqueue.io/v1alpha1",
            "kind": "JobQueue",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "redis": {"url": redis_url},
                "api": {"enabled": False},
                "worker": {"concurrency": 5, **(worker or {})},
                "autoscaling": autoscaling,
            },
        }
        kube.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        self.replicas = Replicas(apps, ns, f"{name}-worker")

    def get(self) -> dict[str, Any]:
        result: dict[str, Any] = self.kube.kubectl_json("get", "jobqueue", self.name, "-n", self.ns)
        return result

    def condition(self, ctype: str) -> dict[str, Any] | None:
        for cond in self.get().get("status", {}).get("conditions", []):
            if cond["type"] == ctype:
                return dict(cond)
        return None

    def patch_spec(self, spec: dict[str, Any]) -> None:
        self.kube.kubectl(
            "patch",
            "jobqueue",
            self.name,
            "-n",
            self.ns,
            "--type=merge",
            "-p",
            json.dumps({"spec": spec}),
        )

    def events(self, reason: str) -> list[str]:
        items = self.kube.kubectl_json(
            "get",
            "events",
            "-n",
            self.ns,
            "--field-selector",
            f"involvedObject.name={self.name},reason={reason}",
        )["items"]
        return [str(e["message"]) for e in items]

    async def enqueue(self, n: int) -> None:
        await self.queue.enqueue_many([JobSpec(type="t", payload=i) for i in range(n)])

    async def drain(self, worker: str = "drainer") -> None:
        """Claim and complete every ready job, as a worker would."""
        while claimed := await self.queue.claim(worker, count=100):
            await self.queue.complete([(j.id, j.token, None) for j in claimed])

    async def close(self) -> None:
        self.replicas.stop()
        await self.queue.purge()
        self.kube.kubectl("delete", "jobqueue", self.name, "-n", self.ns, "--wait=false")


@pytest.fixture
async def make_jq(
    kube: Kube,
    ns: str,
    operator: Path,
    apps: client.AppsV1Api,
    redis_url: str,
    redis_client: aioredis.Redis,
) -> AsyncIterator[Callable[..., JQ]]:
    made: list[JQ] = []

    def make(
        autoscaling: dict[str, Any],
        *,
        url: str | None = None,
        client_: aioredis.Redis | None = None,
        **kw: Any,
    ) -> JQ:
        name = f"q{uuid.uuid4().hex[:6]}"
        jq = JQ(kube, ns, name, url or redis_url, client_ or redis_client, apps, autoscaling, **kw)
        made.append(jq)
        return jq

    yield make
    for jq in made:
        try:
            await jq.close()
        except Exception:  # a test that stopped its Redis: the keys went with it
            jq.replicas.stop()


FAST = {"pollIntervalSeconds": 300, "scaleDownStabilizationSeconds": 0, "cooldownSeconds": 0}


# ---------------------------------------------------------------------------------------------
# The tests


async def test_an_enqueue_wakes_workers_from_zero_then_scales_in_one_step(
    make_jq: Callable[..., JQ],
) -> None:
    """Poll interval 300 s: every reaction below comes from the enqueue notification."""
    jq = make_jq({"maxReplicas": 10, "targetJobsPerWorker": 5, **FAST})
    await await_for("the autoscaler to take the workers to 0", lambda: jq.replicas.now == 0)
    await asyncio.sleep(0.5)

    sent_one = time.perf_counter()
    await jq.enqueue(1)
    first = await await_for("a worker", lambda: jq.replicas.first_at_least(1, sent_one))
    assert jq.replicas.now == 1

    await asyncio.sleep(0.5)
    sent_many = time.perf_counter()
    await jq.enqueue(49)  # 50 jobs / 5 per worker
    full = await await_for("10 workers", lambda: jq.replicas.first_at_least(10, sent_many))
    assert jq.replicas.seq()[-3:] == [0, 1, 10]  # 1 -> 10 in one write, no steps between
    log.warning(
        "enqueue -> worker Deployment spec.replicas: 0->1 %.0f ms, 1->10 %.0f ms",
        (first - sent_one) * 1000,
        (full - sent_many) * 1000,
    )

    messages = await asyncio.to_thread(jq.events, "ScaledUp")
    assert any("scaled up from 1 to 10" in m and "ready=50" in m for m in messages), messages
    status = await await_for(
        "status", lambda: jq.get()["status"].get("desiredWorkers") == 10 and jq.get()["status"]
    )
    assert status["queue"]["ready"] == 50
    assert status["lastScaleTime"]
    scaling = jq.condition("Scaling")
    assert scaling is not None and scaling["status"] == "True"
    redis = jq.condition("RedisReachable")
    assert redis is not None and redis["status"] == "True"


async def test_in_flight_jobs_hold_the_workers_up(make_jq: Callable[..., JQ]) -> None:
    jq = make_jq({"maxReplicas": 10, "targetJobsPerWorker": 5, **FAST, "pollIntervalSeconds": 1})
    await await_for("workers at 0", lambda: jq.replicas.now == 0)
    await jq.enqueue(10)
    await await_for("2 workers", lambda: jq.replicas.now == 2)
    # two workers claim everything and keep it in flight (leases held, not completed)
    claimed = [await jq.queue.claim(f"{jq.name}-worker-pod-{i}", count=5) for i in range(2)]
    assert [len(c) for c in claimed] == [5, 5]
    for i in range(2):
        await jq.queue.heartbeat(f"{jq.name}-worker-pod-{i}", busy=True, in_flight=5, ttl=60)
    assert (await jq.queue.stats()).ready == 0
    await asyncio.sleep(4)  # four polls with an empty ready list, window and cooldown 0
    assert jq.replicas.now == 2
    assert jq.replicas.seq()[-2:] == [0, 2]
    for i, jobs in enumerate(claimed):
        await jq.queue.complete([(j.id, j.token, None) for j in jobs])
        await jq.queue.heartbeat(f"{jq.name}-worker-pod-{i}", busy=False, in_flight=0, ttl=60)
    await await_for("workers at 0 once the jobs are done", lambda: jq.replicas.now == 0)


async def test_draining_waits_for_the_window_then_the_cooldown(make_jq: Callable[..., JQ]) -> None:
    window, cooldown = 3, 6
    jq = make_jq(
        {
            "maxReplicas": 10,
            "targetJobsPerWorker": 5,
            "pollIntervalSeconds": 1,
            "scaleDownStabilizationSeconds": window,
            "cooldownSeconds": cooldown,
        }
    )
    await jq.enqueue(20)
    await await_for("4 workers", lambda: jq.replicas.now == 4)
    await asyncio.sleep(0.5)
    drained = time.perf_counter()
    await jq.drain()
    one = await await_for(
        "1 worker",
        lambda: (
            jq.replicas.first_at_least(0, drained)
            and jq.replicas.now == 1
            and jq.replicas.values[-1][0]
        ),
    )
    zero = await await_for("0 workers", lambda: jq.replicas.now == 0 and jq.replicas.values[-1][0])
    assert jq.replicas.seq()[-3:] == [4, 1, 0]
    # never before the window (highest recommendation 4 until then) / the cooldown
    assert one - drained >= window - 1  # the last "4" may be up to one poll before the drain
    assert zero - drained >= cooldown - 1
    log.warning(
        "drained -> 1 worker after %.1f s (window %d s), -> 0 after %.1f s (cooldown %d s)",
        one - drained,
        window,
        zero - drained,
        cooldown,
    )


async def test_min_replicas_is_kept_after_draining(make_jq: Callable[..., JQ]) -> None:
    jq = make_jq(
        {
            "minReplicas": 2,
            "maxReplicas": 10,
            "targetJobsPerWorker": 5,
            **FAST,
            "pollIntervalSeconds": 1,
        }
    )
    await await_for("minReplicas", lambda: jq.replicas.now == 2)
    await jq.enqueue(30)
    await await_for("6 workers", lambda: jq.replicas.now == 6)
    await jq.drain()
    await await_for("back to minReplicas", lambda: jq.replicas.now == 2)
    await asyncio.sleep(3)
    assert jq.replicas.now == 2


async def test_redis_down_holds_the_workers_and_says_so(
    make_jq: Callable[..., JQ], tmp_path: Path
) -> None:
    server = RedisServer().start()
    own = aioredis.Redis.from_url(server.url)
    try:
        jq = make_jq(
            {"maxReplicas": 10, "targetJobsPerWorker": 5, **FAST, "pollIntervalSeconds": 1},
            url=server.url,
            client_=own,
        )
        await jq.enqueue(15)
        await await_for("3 workers", lambda: jq.replicas.now == 3)
        server.stop()
        cond = await await_for(
            "RedisReachable=False",
            lambda: (c := jq.condition("RedisReachable")) and c["status"] == "False" and c,
        )
        assert "127.0.0.1" in cond["message"] or "refused" in cond["message"].lower(), cond
        scaling = jq.condition("Scaling")
        assert scaling is not None and scaling["reason"] == "RedisUnreachable"
        await asyncio.sleep(4)  # window and cooldown are 0: an "empty" queue would scale to 0
        assert jq.replicas.now == 3
        warnings = await asyncio.to_thread(jq.events, "RedisUnreachable")
        assert warnings, "one Warning event when the queue became unreadable"

        server.start()
        await await_for(
            "RedisReachable=True",
            lambda: (c := jq.condition("RedisReachable")) and c["status"] == "True",
        )
        await jq.enqueue(50)  # (the server lost its data: no persistence) 50 / 5 = 10
        await await_for("10 workers after Redis came back", lambda: jq.replicas.now == 10)
    finally:
        await own.aclose()
        server.cleanup()


async def test_paused_holds_the_workers(make_jq: Callable[..., JQ]) -> None:
    jq = make_jq({"maxReplicas": 10, "targetJobsPerWorker": 5, **FAST, "pollIntervalSeconds": 1})
    await await_for("workers at 0", lambda: jq.replicas.now == 0)
    jq.patch_spec({"autoscaling": {"paused": True}})
    await await_for(
        "Scaling reason Paused", lambda: (c := jq.condition("Scaling")) and c["reason"] == "Paused"
    )
    await jq.enqueue(20)
    await asyncio.sleep(3)
    assert jq.replicas.now == 0
    jq.patch_spec({"autoscaling": {"paused": False}})
    await await_for("4 workers once unpaused", lambda: jq.replicas.now == 4)


async def test_scale_subresource_sets_the_workers_with_autoscaling_off(
    make_jq: Callable[..., JQ], kube: Kube, ns: str
) -> None:
    jq = make_jq({"enabled": False}, worker={"replicas": 1})
    await await_for("1 worker", lambda: jq.replicas.now == 1)
    kube.kubectl("scale", f"jobqueue/{jq.name}", "-n", ns, "--replicas", "3")
    assert jq.get()["spec"]["worker"]["replicas"] == 3
    await await_for("3 workers", lambda: jq.replicas.now == 3)
    await jq.enqueue(100)  # no autoscaler runs: the count stays what the user set
    await asyncio.sleep(2)
    assert jq.replicas.now == 3
    path = f"/apis/jobqueue.io/v1alpha1/namespaces/{ns}/jobqueues/{jq.name}/scale"
    scale = json.loads(kube.kubectl("get", "--raw", path).stdout)
    assert scale["spec"]["replicas"] == 3


async def test_switching_autoscaling_on_and_off_keeps_the_running_workers(
    make_jq: Callable[..., JQ],
) -> None:
    """The reconcile stops applying spec.replicas when autoscaling goes on; server-side apply
    would reset the field to 1 unless the autoscaler takes it over first. Switched off, the
    reconcile applies worker.replicas again."""
    jq = make_jq({"enabled": False}, worker={"replicas": 4})
    await await_for("4 workers", lambda: jq.replicas.now == 4)
    jq.patch_spec({"autoscaling": {"enabled": True, "minReplicas": 4, **FAST}})
    await await_for(
        "the autoscaler to run",
        lambda: (c := jq.condition("Scaling")) and c["status"] in ("True", "False"),
    )
    await asyncio.sleep(2)  # a resync or two more
    assert min(jq.replicas.seq()) == 4, f"replicas went {jq.replicas.seq()}"
    assert replicas_owners(jq) == {"jobqueue-autoscaler"}

    jq.patch_spec({"autoscaling": {"enabled": False}})
    await await_for(
        "the reconcile to apply the count", lambda: "jobqueue-operator" in replicas_owners(jq)
    )
    await asyncio.sleep(2)
    assert jq.replicas.seq() == [4], f"replicas went {jq.replicas.seq()}"


def replicas_owners(jq: JQ) -> set[str]:
    """The field managers of the worker Deployment's spec.replicas."""
    live = jq.kube.kubectl_json(
        "get", "deployment", f"{jq.name}-worker", "-n", jq.ns, "--show-managed-fields"
    )
    return {
        m["manager"]
        for m in live["metadata"]["managedFields"]
        if "f:replicas" in (m.get("fieldsV1") or {}).get("f:spec", {})
    }


def worker_cpu_request(jq: JQ) -> str | None:
    live = jq.kube.kubectl_json("get", "deployment", f"{jq.name}-worker", "-n", jq.ns)
    container = live["spec"]["template"]["spec"]["containers"][0]
    return (container.get("resources") or {}).get("requests", {}).get("cpu")


SLOW = {"cooldownSeconds": 600, "scaleDownStabilizationSeconds": 600}
CPU_REQUEST = {"worker": {"resources": {"requests": {"cpu": "50m"}}}}


async def test_a_spec_change_keeps_min_replicas_and_the_autoscalers_count(
    make_jq: Callable[..., JQ],
) -> None:
    """The worker Deployment is created at minReplicas in one write, spec.replicas still the
    reconcile's; the apply of a later spec change stops sending it: ``floor`` (never scaled)
    keeps minReplicas through the hand-over, ``scaled`` keeps the autoscaler's count (its
    scale took the field)."""
    floor = make_jq({"minReplicas": 2, "maxReplicas": 5, **SLOW})
    scaled = make_jq({"minReplicas": 1, "maxReplicas": 5, **SLOW})
    await await_for("floor at 2", lambda: floor.replicas.now == 2)
    await await_for("scaled at 1", lambda: scaled.replicas.now == 1)
    await asyncio.sleep(2)
    assert replicas_owners(floor) == {"jobqueue-operator"}  # created in one write
    await scaled.enqueue(7)
    await await_for("2 workers for 7 jobs", lambda: scaled.replicas.now == 2)
    assert replicas_owners(scaled) == {"jobqueue-autoscaler"}

    for jq in (floor, scaled):
        jq.patch_spec(CPU_REQUEST)
    for jq in (floor, scaled):
        await await_for(f"{jq.name}'s new spec", lambda jq=jq: worker_cpu_request(jq) == "50m")
    await asyncio.sleep(2)  # a resync or two more
    assert floor.replicas.seq() == [2], f"replicas went {floor.replicas.seq()}"
    assert scaled.replicas.seq() == [1, 2], f"replicas went {scaled.replicas.seq()}"
    assert replicas_owners(floor) == replicas_owners(scaled) == {"jobqueue-autoscaler"}


async def test_a_new_autoscaled_worker_deployment_starts_at_min_replicas(
    make_jq: Callable[..., JQ],
) -> None:
    """Kubernetes would create it at 1 (no spec.replicas while the autoscaler owns the field):
    a worker started for nothing until the cooldown ends. It starts at minReplicas instead,
    and the autoscaler owns the field from then on."""
    idle = make_jq({"maxReplicas": 5, "cooldownSeconds": 600, "scaleDownStabilizationSeconds": 600})
    floor = make_jq({"minReplicas": 2, "maxReplicas": 5, "cooldownSeconds": 600})
    await await_for("the idle queue's Deployment", lambda: idle.replicas.now is not None)
    await await_for("the floored queue's Deployment", lambda: floor.replicas.now is not None)
    await asyncio.sleep(2)
    assert idle.replicas.seq() == [0], f"replicas went {idle.replicas.seq()}"
    assert floor.replicas.seq() == [2], f"replicas went {floor.replicas.seq()}"

    await idle.enqueue(7)  # the autoscaler, not the reconcile, moves it now
    await await_for("2 workers for 7 jobs", lambda: idle.replicas.now == 2)
    deployment = idle.kube.kubectl_json(
        "get", "deployment", f"{idle.name}-worker", "-n", idle.ns, "--show-managed-fields"
    )
    owners = {
        m["manager"]
        for m in deployment["metadata"]["managedFields"]
        if "f:replicas" in (m.get("fieldsV1") or {}).get("f:spec", {})
    }
    assert owners == {"jobqueue-autoscaler"}, owners


def scale_subresource_reads(kube: Kube) -> int:
    """GETs of any Deployment's scale subresource the API server has served (its metrics)."""
    total = 0
    for line in kube.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        if line.startswith("apiserver_request_total{") and all(
            label in line
            for label in ('resource="deployments"', 'subresource="scale"', 'verb="GET"')
        ):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


async def test_an_idle_autoscaler_reads_the_worker_count_from_the_watch(
    make_jq: Callable[..., JQ], kube: Kube
) -> None:
    """A poll a second: without the operator's Deployment watch as a cache every poll would
    GET the scale subresource; with it, only the verification once a minute may."""
    jq = make_jq({"maxReplicas": 10, "targetJobsPerWorker": 5, **FAST, "pollIntervalSeconds": 1})
    await await_for("workers at 0", lambda: jq.replicas.now == 0)
    await await_for(
        "the autoscaler's first poll", lambda: (c := jq.condition("Scaling")) and c["reason"]
    )
    before = await asyncio.to_thread(scale_subresource_reads, kube)
    await asyncio.sleep(10)  # ten polls of an idle queue
    reads = await asyncio.to_thread(scale_subresource_reads, kube) - before
    log.warning("idle autoscaler, 10 polls: %d GETs of the scale subresource", reads)
    assert reads <= 2, f"{reads} GETs of the scale subresource in ten idle polls"
    assert jq.replicas.now == 0
    cond = jq.condition("Scaling")
    assert cond is not None and cond["status"] == "True", cond
