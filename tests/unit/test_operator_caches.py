"""The watch caches the reconcile reads: trimmed children, the Secret cache, the index views."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jobqueue_operator import caches, diffing, handlers
from jobqueue_operator.adapters import replicas_handover_needed

OWNER = {
    "apiVersion": "jobqueue.io/v1alpha1",
    "kind": "JobQueue",
    "name": "q",
    "uid": "u1",
    "controller": True,
}


def deployment(**extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "q-worker",
            "namespace": "ns",
            "uid": "d1",
            "resourceVersion": "7",
            "labels": {"app": "x"},
            "annotations": {"a": "b"},
            "ownerReferences": [OWNER],
            "managedFields": [
                {
                    "manager": "jobqueue-operator",
                    "operation": "Apply",
                    "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:x": {}}}},
                },
                {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {}},
            ],
        },
        "spec": {"replicas": 2, "template": {"spec": {"containers": []}}},
        "status": {"replicas": 2, "readyReplicas": 1, "conditions": [{"type": "Available"}]},
        **extra,
    }


def test_a_trimmed_child_keeps_what_the_reconcile_reads() -> None:
    live = deployment()
    trimmed = caches.trim_child(live, "Deployment")
    assert trimmed["spec"] == live["spec"]
    assert trimmed["status"] == {"replicas": 2, "readyReplicas": 1}
    assert diffing.controlled_by(trimmed, "u1")
    assert diffing.child_key(trimmed) == ("Deployment", "q-worker")
    # the hand-over still sees who applies spec.replicas, and nothing else of managedFields
    assert replicas_handover_needed({"spec": {}}, trimmed) == replicas_handover_needed(
        {"spec": {}}, live
    )
    assert replicas_handover_needed({"spec": {}}, trimmed)
    assert [m["manager"] for m in trimmed["metadata"]["managedFields"]] == ["jobqueue-operator"]
    secret = caches.trim_child({"kind": "Secret", "metadata": {}, "data": {"k": "dg=="}}, "Secret")
    assert secret["data"] == {"k": "dg=="}
    assert "status" not in secret


def test_the_children_index_files_a_child_under_its_owner() -> None:
    body = deployment()
    got = handlers._index_children(namespace="ns", meta=body["metadata"], body=body)
    assert list(got) == [("ns", "q")]
    assert json.loads(got[("ns", "q")]) == caches.trim_child(body, "Deployment")
    orphan = deployment()
    orphan["metadata"]["ownerReferences"] = []
    assert handlers._index_children(namespace="ns", meta=orphan["metadata"], body=orphan) == {}


async def test_the_secret_cache_reads_the_api_once_and_then_follows_the_watch() -> None:
    cache = caches.SecretCache()
    reads: list[tuple[str, str]] = []

    async def read(namespace: str, name: str) -> Any:
        reads.append((namespace, name))
        return {"metadata": {"name": name}, "data": {"url": "eA=="}}

    got = await cache.get("ns", "src", read)
    assert got is not None and got["data"] == {"url": "eA=="}
    assert await cache.get("ns", "src", read) == got
    assert reads == [("ns", "src")]  # one GET, then the cache
    assert ("ns", "src") in cache
    cache.observe("ns", "src", {"metadata": {"name": "src"}, "data": {"url": "eQ=="}})
    after = await cache.get("ns", "src", read)
    assert after is not None and after["data"] == {"url": "eQ=="}
    cache.observe("ns", "src", None)  # deleted: known absent, no GET
    assert await cache.get("ns", "src", read) is None
    assert reads == [("ns", "src")]


async def test_reconciles_asking_at_once_share_one_read() -> None:
    cache = caches.SecretCache()
    reads = 0
    gate = asyncio.Event()

    async def read(namespace: str, name: str) -> Any:
        nonlocal reads
        reads += 1
        await gate.wait()
        return {"metadata": {"name": name}, "data": {"url": "eA=="}}

    askers = [asyncio.create_task(cache.get("ns", "src", read)) for _ in range(50)]
    await asyncio.sleep(0.01)
    gate.set()
    got = await asyncio.gather(*askers)
    assert reads == 1
    assert all(g is not None and g["data"] == {"url": "eA=="} for g in got)


async def test_a_missing_secret_is_remembered_until_the_watch_sees_it() -> None:
    cache = caches.SecretCache()
    reads = 0

    async def read(namespace: str, name: str) -> Any:
        nonlocal reads
        reads += 1
        return None

    assert await cache.get("ns", "gone", read) is None
    assert await cache.get("ns", "gone", read) is None
    assert reads == 1
    cache.observe("ns", "gone", {"metadata": {}, "data": {"k": "dg=="}})
    assert await cache.get("ns", "gone", read) is not None


def test_the_views_read_kopfs_indices_once_attached() -> None:
    views = caches.Views()
    assert views.children_of(("ns", "q")) is None  # no index: the reconcile LISTs
    child = caches.trim_child(deployment(), "Deployment")
    body = {"metadata": {"name": "q"}, "spec": {}}
    packed = caches.pack_child(deployment(), "Deployment")
    views.attach(
        {
            "children": {("ns", "q"): [packed]},
            "jobqueues": {("ns", "q"): [caches.pack_jobqueue(body)]},
        }
    )
    assert views.children_of(("ns", "q")) == [child]
    assert views.children_of(("ns", "other")) == []
    assert views.jobqueue(("ns", "q")) == caches.trim_jobqueue(body)
    assert views.jobqueue(("ns", "other")) is None
