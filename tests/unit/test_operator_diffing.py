"""When a child is applied and when it is pruned: the decisions behind "idle = no writes"."""

from __future__ import annotations

import copy
from typing import Any

from jobqueue_operator import constants as c
from jobqueue_operator.builders import Images, SecretMaterial, desired_children
from jobqueue_operator.diffing import (
    child_key,
    contains,
    controlled_by,
    manifest_hash,
    needs_apply,
    to_prune,
    with_applied_hash,
)
from jobqueue_operator.kubetypes import JobQueueRef, Manifest
from jobqueue_operator.spec import parse_spec

REF = JobQueueRef(namespace="ns", name="q", uid="u-1")
IMAGES = Images(api="a:1", worker="w:1", redis="r:1")
SPEC = {"redis": {"url": "redis://127.0.0.1:6379/0"}, "autoscaling": {"enabled": False}}


def worker(spec: dict[str, Any] = SPEC) -> Manifest:
    children = desired_children(REF, parse_spec(spec), SecretMaterial("redis://x:6379"), IMAGES)
    return with_applied_hash(
        next(m for m in children if child_key(m) == ("Deployment", "q-worker"))
    )


def as_live(manifest: Manifest) -> dict[str, Any]:
    """What the API server returns: our fields plus defaults and status."""
    live: dict[str, Any] = copy.deepcopy(dict(manifest))
    live["metadata"] |= {"uid": "d-1", "resourceVersion": "7", "generation": 1}
    live["spec"]["progressDeadlineSeconds"] = 600
    container = live["spec"]["template"]["spec"]["containers"][0]
    container["terminationMessagePath"] = "/dev/termination-log"
    container["livenessProbe"]["successThreshold"] = 1
    live["status"] = {"replicas": 1}
    return live


def test_a_missing_child_is_applied() -> None:
    assert needs_apply(worker(), None)


def test_a_child_as_applied_plus_server_defaults_needs_nothing() -> None:
    desired = worker()
    assert not needs_apply(desired, as_live(desired))


def test_a_hand_edited_field_of_ours_is_applied_again() -> None:
    desired = worker()
    live = as_live(desired)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    assert needs_apply(desired, live)
    live = as_live(desired)
    live["spec"]["replicas"] = 7
    assert needs_apply(desired, live)


def test_a_changed_spec_is_applied_even_when_it_only_removes_a_field() -> None:
    with_limits = worker({**SPEC, "worker": {"resources": {"limits": {"memory": "1Gi"}}}})
    without = worker()
    live = as_live(with_limits)
    bare = copy.deepcopy(without)
    bare["metadata"].pop("annotations", None)
    assert contains(bare, live)  # a subset check alone would miss the removal ...
    assert needs_apply(without, live)  # ... the applied-hash annotation catches it


def test_the_hash_ignores_its_own_annotation_and_is_stable() -> None:
    desired = worker()
    assert manifest_hash(desired) == manifest_hash(worker())
    annotations = desired["metadata"].get("annotations", {})
    assert annotations[c.ANNOTATION_APPLIED_HASH] == manifest_hash(desired)


def test_contains_compares_lists_whole_and_maps_by_subset() -> None:
    assert contains({"a": 1}, {"a": 1, "b": 2})
    assert not contains({"a": [1, 2]}, {"a": [1, 2, 3]})
    assert not contains({"a": True}, {"a": 1})
    assert not contains({"a": {"b": 1}}, {"a": None})


def owned(kind: str, name: str, uid: str = "u-1", **meta: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {
            "name": name,
            "uid": f"{name}-uid",
            "ownerReferences": [{"uid": uid, "controller": True, "kind": "JobQueue"}],
            **meta,
        },
    }


def test_children_no_longer_desired_are_pruned_only_if_this_jobqueue_controls_them() -> None:
    desired = [worker()]
    live = [
        owned("Deployment", "q-worker"),
        owned("Deployment", "q-api"),  # api disabled: prune
        owned("Secret", "q-api"),  # prune
        owned("Secret", "other", uid="someone-else"),  # not ours
        owned("Service", "q-api", deletionTimestamp="2026-01-01T00:00:00Z"),  # already going
    ]
    assert [child_key(o) for o in to_prune(desired, live, "u-1")] == [
        ("Deployment", "q-api"),
        ("Secret", "q-api"),
    ]


def test_controlled_by_needs_the_controller_flag() -> None:
    obj = {"metadata": {"ownerReferences": [{"uid": "u-1", "controller": False}]}}
    assert not controlled_by(obj, "u-1")
    assert controlled_by(owned("Secret", "s"), "u-1")
