"""The scaler's Kubernetes ports on the real control plane: scale subresource, idle-first
scale-down through pod-deletion-cost (best effort), status merged with others' conditions,
Events."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from jobqueue_operator.adapters import (
    FIELD_MANAGER,
    KubernetesReporter,
    KubernetesScaleTarget,
    replicas_handover_needed,
)
from jobqueue_operator.autoscaling import POD_DELETION_COST_ANNOTATION, AutoscalingSpec
from jobqueue_operator.builders import Images
from jobqueue_operator.kube import Kube as OperatorKube
from jobqueue_operator.ports import Condition, QueueSnapshot, ScalerConfig, ScalerStatus
from jobqueue_operator.reconcile import Reconciler
from jobqueue_operator.scaler import Scaler
from jobqueue_operator.sources import RedisMetricsSource

from jobqueue import Queue
from tests.cluster.controlplane import Kube
from tests.support.kube import api_client, apply, temporary_namespace, wait_for


@pytest.fixture
def ns(kube: Kube) -> Iterator[str]:
    yield from temporary_namespace(kube, "as-")


@pytest.fixture
def api(kube: Kube) -> Iterator[OperatorKube]:
    """The operator's Kubernetes layer as the autoscalers get it (the default executor)."""
    with api_client(kube) as client_:
        yield OperatorKube(client_, None)


def deployment(ns: str, name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "w", "image": "localhost/none:0"}]},
            },
        },
    }


def pods(kube: Kube, ns: str, app: str) -> list[dict[str, Any]]:
    items = kube.kubectl_json("get", "pods", "-n", ns, "-l", f"app={app}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def test_scale_target_reads_and_patches_the_scale_subresource(
    kube: Kube, ns: str, api: OperatorKube
) -> None:
    target = KubernetesScaleTarget(api, ns, "q-worker")
    assert await target.replicas() is None  # no Deployment yet
    apply(kube, deployment(ns, "q-worker", 0))
    assert await target.replicas() == 0
    await target.scale(4)
    got = kube.kubectl_json("get", "deployment", "q-worker", "-n", ns, "--show-managed-fields")
    assert got["spec"]["replicas"] == 4
    managers = {m["manager"] for m in got["metadata"]["managedFields"]}
    assert FIELD_MANAGER in managers
    assert await target.replicas() == 4


def apply_as(kube: Kube, manager: str, manifest: dict[str, Any]) -> None:
    kube.kubectl(
        "apply", "--server-side", "--force-conflicts", f"--field-manager={manager}", "-f", "-",
        input=json.dumps(manifest),
    )  # fmt: skip


async def test_switching_autoscaling_on_keeps_the_replicas_after_a_handover(
    kube: Kube, ns: str, api: OperatorKube
) -> None:
    """Server-side apply resets a field its only owner stops sending: the handover prevents it."""
    for name, hand_over in (("handed-over", True), ("control", False)):
        apply_as(kube, "jobqueue-operator", deployment(ns, name, 5))
        autoscaled = deployment(ns, name, 0)
        del autoscaled["spec"]["replicas"]  # what the reconcile applies once autoscaling is on
        live = kube.kubectl_json("get", "deployment", name, "-n", ns, "--show-managed-fields")
        assert replicas_handover_needed(autoscaled, live) is True
        if hand_over:
            await KubernetesScaleTarget(api, ns, name).adopt(5)
        apply_as(kube, "jobqueue-operator", autoscaled)

    assert kube.kubectl_json("get", "deployment", "handed-over", "-n", ns)["spec"]["replicas"] == 5
    assert kube.kubectl_json("get", "deployment", "control", "-n", ns)["spec"]["replicas"] == 1
    live = kube.kubectl_json("get", "deployment", "handed-over", "-n", ns, "--show-managed-fields")
    assert replicas_handover_needed(autoscaled, live) is False


async def test_a_hand_over_from_a_stale_view_keeps_a_scale_made_since(
    kube: Kube, ns: str, api: OperatorKube
) -> None:
    """The reconcile sees the worker Deployment through a watch, which can be behind: the
    autoscaler, started by the same change that switched autoscaling on, may have scaled
    already. The hand-over never writes the older count back (it did: CI, 4 workers became 3)."""
    apply_as(kube, "jobqueue-operator", deployment(ns, "w", 3))
    stale = kube.kubectl_json("get", "deployment", "w", "-n", ns, "--show-managed-fields")
    await KubernetesScaleTarget(api, ns, "w").scale(4)  # the autoscaler, first
    autoscaled = deployment(ns, "w", 0)
    del autoscaled["spec"]["replicas"]
    reconciler = Reconciler(api, Images("a", "w", "r"), lambda *_: None)
    await reconciler._hand_over_replicas(autoscaled, stale)
    apply_as(kube, "jobqueue-operator", autoscaled)
    assert kube.kubectl_json("get", "deployment", "w", "-n", ns)["spec"]["replicas"] == 4


@pytest.fixture
async def queue(redis_client: aioredis.Redis, queue_name: str) -> AsyncIterator[Queue]:
    q = Queue(redis_client, queue_name)
    yield q
    await q.purge()


class Reports:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    async def report(self, status: ScalerStatus) -> None:
        return None

    async def event(self, type_: Any, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


async def test_scale_down_removes_the_idle_pod_and_keeps_the_busy_ones(
    kube: Kube, ns: str, api: OperatorKube, queue: Queue, redis_url: str, queue_name: str
) -> None:
    apply(kube, deployment(ns, "q-worker", 3))
    names = wait_for("3 pods", lambda: [p["metadata"]["name"] for p in pods(kube, ns, "q-worker")]
                     if len(pods(kube, ns, "q-worker")) == 3 else None)  # fmt: skip
    busy, idle = sorted(names)[:2], sorted(names)[2]
    # two workers with a job each (claimed through the protocol, not completed), one idle
    from jobqueue import JobSpec

    await queue.enqueue_many([JobSpec(type="t"), JobSpec(type="t")])
    for pod in busy:
        assert len(await queue.claim(pod, count=1)) == 1
        await queue.heartbeat(pod, busy=True, in_flight=1, ttl=60)
    await queue.heartbeat(idle, busy=False, in_flight=0, ttl=60)

    spec = AutoscalingSpec(
        target_jobs_per_worker=1, scale_down_stabilization_seconds=0, cooldown_seconds=0
    )
    source = RedisMetricsSource(redis_url, queue_name)
    scaler = Scaler(
        metrics=source,
        target=KubernetesScaleTarget(api, ns, "q-worker"),
        reporter=Reports(),
        config=lambda: ScalerConfig(spec, 1),
    )
    try:
        await scaler.evaluate()
    finally:
        await source.close()

    assert kube.kubectl_json("get", "deployment", "q-worker", "-n", ns)["spec"]["replicas"] == 2
    remaining = wait_for(
        "the ReplicaSet to remove one pod",
        lambda: sorted(p["metadata"]["name"] for p in pods(kube, ns, "q-worker"))
        if len(pods(kube, ns, "q-worker")) == 2 else None,
    )  # fmt: skip
    assert remaining == busy
    costs = {
        p["metadata"]["name"]: p["metadata"]["annotations"][POD_DELETION_COST_ANNOTATION]
        for p in pods(kube, ns, "q-worker")
    }
    assert all(int(c) > 0 for c in costs.values())


NO_POD_PATCH_USER = "scaler-without-pod-patch"


@pytest.fixture
def api_without_pod_patch(kube: Kube, ns: str) -> Iterator[OperatorKube]:
    """A client (admin impersonating a user) that may scale the Deployment and list pods, but
    not patch pods: every pod-deletion-cost write is refused with a 403."""
    rules = [
        {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"],
         "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    ]  # fmt: skip
    apply(kube, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                 "metadata": {"name": "scaler", "namespace": ns}, "rules": rules})  # fmt: skip
    apply(kube, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "scaler", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "scaler"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": NO_POD_PATCH_USER}],
    })  # fmt: skip

    def can(verb: str, resource: str) -> bool:
        out = kube.kubectl("auth", "can-i", verb, resource, "-n", ns, f"--as={NO_POD_PATCH_USER}",
                           check=False).stdout.strip()  # fmt: skip
        return out == "yes"

    wait_for("the Role to take effect", lambda: can("list", "pods"))
    assert not can("patch", "pods")
    with api_client(kube) as client_:
        client_.set_default_header("Impersonate-User", NO_POD_PATCH_USER)
        yield OperatorKube(client_, None)


async def test_a_refused_pod_deletion_cost_patch_does_not_block_the_scale_down(
    kube: Kube,
    ns: str,
    api_without_pod_patch: OperatorKube,
    queue: Queue,
    redis_url: str,
    queue_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    apply(kube, deployment(ns, "q-worker", 2))
    names = wait_for("2 pods", lambda: [p["metadata"]["name"] for p in pods(kube, ns, "q-worker")]
                     if len(pods(kube, ns, "q-worker")) == 2 else None)  # fmt: skip
    # one idle worker: its pod would be marked -1000 (a write the API server refuses)
    await queue.heartbeat(sorted(names)[0], busy=False, in_flight=0, ttl=60)
    spec = AutoscalingSpec(
        min_replicas=1, scale_down_stabilization_seconds=0, cooldown_seconds=0
    )  # an empty queue: 2 -> 1 at once
    source = RedisMetricsSource(redis_url, queue_name)
    reports = Reports()
    scaler = Scaler(
        metrics=source,
        target=KubernetesScaleTarget(api_without_pod_patch, ns, "q-worker"),
        reporter=reports,
        config=lambda: ScalerConfig(spec, 1),
    )
    try:
        with caplog.at_level(logging.WARNING, logger="jobqueue_operator.scaler"):
            assert await scaler.evaluate() is False  # nothing left to retry
    finally:
        await source.close()

    assert kube.kubectl_json("get", "deployment", "q-worker", "-n", ns)["spec"]["replicas"] == 1
    assert [(kind, reason) for kind, reason, _ in reports.events] == [("Normal", "ScaledDown")]
    refused = [r.getMessage() for r in caplog.records if "deletion cost" in r.getMessage()]
    assert len(refused) == 1 and "HTTP 403 Forbidden" in refused[0], caplog.text
    annotations = [p["metadata"].get("annotations") or {} for p in pods(kube, ns, "q-worker")]
    assert all(POD_DELETION_COST_ANNOTATION not in a for a in annotations)  # really refused


TEST_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledthings.scalertest.jobqueue.io"},
    "spec": {
        "group": "scalertest.jobqueue.io",
        "scope": "Namespaced",
        "names": {"plural": "scaledthings", "singular": "scaledthing", "kind": "ScaledThing"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                                # as the JobQueue's: a list map, so server-side apply merges
                                # each writer's condition types by their key
                                "properties": {
                                    "conditions": {
                                        "type": "array",
                                        "x-kubernetes-list-type": "map",
                                        "x-kubernetes-list-map-keys": ["type"],
                                        "items": {
                                            "type": "object",
                                            "required": ["type"],
                                            "x-kubernetes-preserve-unknown-fields": True,
                                            "properties": {"type": {"type": "string"}},
                                        },
                                    }
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def test_crd(kube: Kube) -> Iterator[None]:
    """A throw-away kind with a status subresource (the reporter is kind-agnostic)."""
    apply(kube, TEST_CRD)
    kube.wait_established("scaledthings.scalertest.jobqueue.io")
    yield
    kube.kubectl("delete", "crd", "scaledthings.scalertest.jobqueue.io", "--wait=false")


async def test_reporter_merges_its_conditions_and_posts_events(
    kube: Kube, ns: str, api: OperatorKube, test_crd: None
) -> None:
    apply(kube, {"apiVersion": "scalertest.jobqueue.io/v1", "kind": "ScaledThing",
                 "metadata": {"name": "t1", "namespace": ns}, "spec": {}})  # fmt: skip
    theirs = {"type": "Ready", "status": "True", "reason": "Reconciled", "message": "ok",
              "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip
    kube.kubectl(
        "patch", "scaledthing.scalertest.jobqueue.io", "t1", "-n", ns, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": {"conditions": [theirs], "replicas": 7}}),
    )  # fmt: skip
    reporter = KubernetesReporter(
        api, ns, "t1", group="scalertest.jobqueue.io", version="v1", plural="scaledthings",
        kind="ScaledThing",
    )  # fmt: skip
    status = ScalerStatus(
        queue=QueueSnapshot(ready=5, in_flight=2, delayed=1, dead=0),
        desired_workers=3,
        last_scale_time="2026-11-24T12:00:00Z",
        conditions=(
            Condition("Scaling", "True", "ScaledUp", "scaled up from 0 to 3"),
            Condition("RedisReachable", "True", "Connected", "the queue is readable"),
        ),
    )
    await reporter.report(status)
    first = kube.kubectl_json("get", "scaledthing.scalertest.jobqueue.io", "t1", "-n", ns)
    got = first["status"]
    assert got["queue"] == {
        "ready": 5,
        "inFlight": 2,
        "delayed": 1,
        "dead": 0,
        "format": "jobqueue",
        "wakeup": "events",
    }
    assert (got["desiredWorkers"], got["lastScaleTime"], got["replicas"]) == (
        3, "2026-11-24T12:00:00Z", 7,
    )  # fmt: skip
    by_type = {c["type"]: c for c in got["conditions"]}
    assert by_type["Ready"] == theirs  # someone else's condition is kept as it was
    assert by_type["Scaling"]["reason"] == "ScaledUp"
    transition = by_type["RedisReachable"]["lastTransitionTime"]

    # the same status again (a restarted autoscaler's first report): read, nothing written
    await KubernetesReporter(
        api, ns, "t1", group="scalertest.jobqueue.io", version="v1", plural="scaledthings",
        kind="ScaledThing",
    ).report(status)  # fmt: skip
    again = kube.kubectl_json("get", "scaledthing.scalertest.jobqueue.io", "t1", "-n", ns)
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]

    await reporter.report(
        ScalerStatus(
            queue=None,
            desired_workers=3,
            last_scale_time="2026-11-24T12:00:00Z",
            conditions=(
                Condition("Scaling", "False", "RedisUnreachable", "holding 3"),
                Condition("RedisReachable", "False", "ConnectionFailed", "Connection refused"),
            ),
        )
    )
    got = kube.kubectl_json("get", "scaledthing.scalertest.jobqueue.io", "t1", "-n", ns)["status"]
    by_type = {c["type"]: c for c in got["conditions"]}
    assert by_type["RedisReachable"]["status"] == "False"
    assert by_type["RedisReachable"]["message"] == "Connection refused"
    assert by_type["Ready"] == theirs
    assert got["queue"]["ready"] == 5  # unreadable queue: the last numbers stay
    assert transition  # set on the first write

    await reporter.event("Normal", "ScaledUp", "scaled up from 0 to 3; ready=5 inFlight=2")
    events = kube.kubectl_json(
        "get", "events", "-n", ns, "--field-selector", "involvedObject.name=t1"
    )["items"]
    assert [(e["type"], e["reason"], e["message"]) for e in events] == [
        ("Normal", "ScaledUp", "scaled up from 0 to 3; ready=5 inFlight=2")
    ]
    assert events[0]["involvedObject"]["uid"] == first["metadata"]["uid"]
    assert events[0]["involvedObject"]["kind"] == "ScaledThing"


class CountingKube(OperatorKube):
    """The Kubernetes layer, counting its GETs."""

    gets = 0

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        self.gets += 1
        return await super().get(*args, **kwargs)


async def test_a_reporter_with_the_watched_object_reads_nothing(
    kube: Kube, ns: str, api: OperatorKube, test_crd: None
) -> None:
    """The operator's autoscalers report from kopf's live view of their JobQueue: 1,000 of
    them starting together make no read, and each report is one server-side apply."""
    apply(kube, {"apiVersion": "scalertest.jobqueue.io/v1", "kind": "ScaledThing",
                 "metadata": {"name": "t2", "namespace": ns}, "spec": {}})  # fmt: skip
    watched = kube.kubectl_json("get", "scaledthing.scalertest.jobqueue.io", "t2", "-n", ns)
    counting = CountingKube(api.api_client, None)
    reporter = KubernetesReporter(
        counting, ns, "t2", group="scalertest.jobqueue.io", version="v1", plural="scaledthings",
        kind="ScaledThing", live=lambda: watched,
    )  # fmt: skip
    status = ScalerStatus(
        queue=QueueSnapshot(ready=1, in_flight=0, delayed=0, dead=0),
        desired_workers=1,
        last_scale_time=None,
        conditions=(Condition("Scaling", "True", "ScaledUp", "scaled up from 0 to 1"),),
    )
    await reporter.report(status)
    await reporter.event("Normal", "ScaledUp", "scaled up from 0 to 1")
    got = kube.kubectl_json("get", "scaledthing.scalertest.jobqueue.io", "t2", "-n", ns)
    assert counting.gets == 0
    assert got["status"]["desiredWorkers"] == 1
    assert [c["reason"] for c in got["status"]["conditions"]] == ["ScaledUp"]
    managers = kube.kubectl_json(
        "get", "scaledthing.scalertest.jobqueue.io", "t2", "-n", ns, "--show-managed-fields"
    )["metadata"]["managedFields"]
    assert {(m["manager"], m["operation"]) for m in managers if m.get("subresource")} == {
        (FIELD_MANAGER, "Apply")
    }
