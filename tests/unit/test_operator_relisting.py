"""Watch-streams that report objects deleted while a stream was down (re-list -> DELETED)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from jobqueue_operator import relisting
from kopf._cogs.clients import watching

LISTED = watching.Bookmark.LISTED


def obj(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "labels": labels,
            "ownerReferences": [{"kind": "JobQueue", "name": "shop"}],
            "managedFields": [{"manager": "big"}],
        },
        "spec": {"replicas": 3},
    }


def listing(*names: str) -> list[Any]:
    return [*({"type": None, "object": obj(n)} for n in names), LISTED]


def run_streams(monkeypatch: pytest.MonkeyPatch, *streams: list[Any]) -> list[list[Any]]:
    """Feed each scripted stream through the patched watch, one after another (one resource
    and namespace), as kopf's infinite_watch restarts continuous_watch."""
    scripted = iter(streams)

    async def stock(**_: Any) -> AsyncIterator[Any]:
        for event in next(scripted):
            yield event

    monkeypatch.setattr(relisting, "_stock", stock)
    monkeypatch.setattr(relisting, "_known", {})

    async def collect() -> list[list[Any]]:
        out = []
        for _ in streams:
            out.append([e async for e in relisting.continuous_watch(resource="r", namespace="ns")])
        return out

    return asyncio.run(collect())


def deleted(events: list[Any]) -> list[str]:
    return [
        e["object"]["metadata"]["name"]
        for e in events
        if isinstance(e, dict) and e["type"] == "DELETED"
    ]


def test_an_object_deleted_while_the_stream_was_down_is_reported_deleted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = run_streams(monkeypatch, listing("a", "b"), listing("a"))
    assert deleted(first) == []
    assert deleted(second) == ["b"]
    # reported right after the listing, before any later event
    assert second.index(LISTED) == len(second) - 1
    assert second[-2]["type"] == "DELETED"


def test_the_tombstone_keeps_identity_labels_and_owners_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, second = run_streams(monkeypatch, listing("b"), listing())
    gone = second[0]["object"]
    assert gone["metadata"] == {
        "name": "b",
        "namespace": "ns",
        "uid": "uid-b",
        "labels": {},
        "ownerReferences": [{"kind": "JobQueue", "name": "shop"}],
    }
    assert gone["kind"] == "Deployment" and "spec" not in gone


def test_watched_additions_and_deletions_are_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    first = [
        *listing("a"),
        {"type": "ADDED", "object": obj("c")},
        {"type": "DELETED", "object": obj("a")},
    ]
    _, second = run_streams(monkeypatch, first, listing())
    assert deleted(second) == ["c"]  # a was already reported by the watch itself


def test_nothing_is_invented_when_every_object_is_listed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    streams = run_streams(monkeypatch, listing("a", "b"), listing("b", "a"), listing("a", "b"))
    assert [deleted(s) for s in streams] == [[], [], []]


def test_install_replaces_the_stream_kopf_uses() -> None:
    stock = watching.continuous_watch
    try:
        relisting.install()
        assert watching.continuous_watch is relisting.continuous_watch
    finally:
        watching.continuous_watch = stock


def test_objects_reach_kopf_without_managed_fields_but_who_applies_replicas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kopf keeps the last body of every JobQueue (daemons, timers): their managedFields were
    most of it. The replica hand-over still learns who applies a Deployment's spec.replicas."""
    applier = {
        "manager": "jobqueue-operator",
        "operation": "Apply",
        "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}},
    }
    updater = {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {}}
    owned = obj("a")
    owned["metadata"]["managedFields"] = [applier, updater]
    (events,) = run_streams(monkeypatch, [{"type": "ADDED", "object": owned}, *listing("b")])
    assert events[0]["object"]["metadata"]["managedFields"] == [
        {
            "manager": "jobqueue-operator",
            "operation": "Apply",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        }
    ]
    assert "managedFields" not in events[1]["object"]["metadata"]  # {"manager": "big"}
    assert events[1]["object"]["spec"] == {"replicas": 3}
