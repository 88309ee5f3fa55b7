"""Pure units of worker volumes: the pod template, the PersistentVolumeClaims (owned only with
deletionPolicy Purge) and the spec's validation, as model and as CEL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jobqueue_operator import builders
from jobqueue_operator import constants as c
from jobqueue_operator.builders import Images, SecretMaterial
from jobqueue_operator.crd import spec_schema
from jobqueue_operator.kubetypes import JobQueueRef, Manifest
from jobqueue_operator.spec import (
    MSG_VOLUME_MOUNT_PATH,
    MSG_VOLUME_NAME_RESERVED,
    MSG_VOLUME_NAMES_UNIQUE,
    MSG_VOLUME_PATHS_UNIQUE,
    MSG_VOLUME_SOURCE_ONE,
    SpecError,
    parse_spec,
)

REF = JobQueueRef("shop", "q", "uid-1", 1)
IMAGES = Images("api:1", "worker:1", "redis:1")
URL = "redis://r:6379/0"

VOLUMES = [
    {"name": "scratch", "mountPath": "/scratch", "emptyDir": {"sizeLimit": "1Gi"}},
    {"name": "conf", "mountPath": "/etc/app", "readOnly": True, "configMap": {"name": "app"}},
    {"name": "keys", "mountPath": "/keys", "readOnly": True, "secret": {"secretName": "k"}},
    {
        "name": "data",
        "mountPath": "/data",
        "persistentVolumeClaim": {"size": "5Gi", "storageClassName": "fast"},
    },
]


def spec(**extra: Any) -> Any:
    return parse_spec({"redis": {"url": URL}, **extra})


def children(spec_: Any) -> dict[tuple[str, str], Manifest]:
    material = SecretMaterial(redis_url=URL)
    return {
        (m["kind"], m["metadata"]["name"]): m
        for m in builders.desired_children(REF, spec_, material, IMAGES)
    }


def pod(deploy: Manifest) -> dict[str, Any]:
    out: dict[str, Any] = deploy["spec"]["template"]["spec"]  # type: ignore[typeddict-item]
    return out


def test_every_source_is_a_pod_volume_with_its_mount_beside_tmp() -> None:
    got = pod(children(spec(worker={"volumes": VOLUMES}))[("Deployment", "q-worker")])
    assert got["volumes"] == [
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "conf", "configMap": {"name": "app"}},
        {"name": "keys", "secret": {"secretName": "k"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "q-worker-data"}},
    ]
    assert got["containers"][0]["volumeMounts"] == [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "conf", "mountPath": "/etc/app", "readOnly": True},
        {"name": "keys", "mountPath": "/keys", "readOnly": True},
        {"name": "data", "mountPath": "/data"},
    ]


def test_an_empty_dir_without_a_limit_and_the_api_untouched() -> None:
    vol = [{"name": "s", "mountPath": "/s", "emptyDir": {}}]
    got = children(spec(worker={"volumes": vol}))
    assert pod(got[("Deployment", "q-worker")])["volumes"][1] == {"name": "s", "emptyDir": {}}
    assert [v["name"] for v in pod(got[("Deployment", "q-api")])["volumes"]] == ["tmp"]


def test_each_pool_gets_its_own_claim_named_after_the_pool() -> None:
    s = spec(
        worker={"volumes": VOLUMES[3:]},
        workers=[{"name": "img", "jobTypes": ["resize"], "volumes": VOLUMES[3:]}],
    )
    claims = {m["metadata"]["name"]: m for m in builders.worker_claims(REF, s)}
    assert sorted(claims) == ["q-worker-data", "q-worker-img-data"]
    img = pod(children(s)[("Deployment", "q-worker-img")])
    assert img["volumes"][1] == {
        "name": "data",
        "persistentVolumeClaim": {"claimName": "q-worker-img-data"},
    }
    claim = claims["q-worker-img-data"]
    assert claim["spec"] == {  # type: ignore[typeddict-item]
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "fast",
    }
    assert claim["metadata"]["labels"][c.LABEL_VOLUME] == "data"
    assert claim["metadata"]["labels"][c.LABEL_INSTANCE] == "q"
    # the claims are not among the children the reconcile prunes by ownerReference
    assert all(kind != "PersistentVolumeClaim" for kind, _ in children(s))


def test_a_claim_is_owned_only_when_the_policy_is_purge() -> None:
    retain = builders.worker_claims(REF, spec(worker={"volumes": VOLUMES[3:]}))
    assert "ownerReferences" not in retain[0]["metadata"]  # nothing can garbage-collect it
    purge = builders.worker_claims(
        REF, spec(worker={"volumes": VOLUMES[3:]}, deletionPolicy="Purge")
    )
    refs = purge[0]["metadata"]["ownerReferences"]
    assert refs[0]["uid"] == "uid-1" and refs[0]["controller"] is True
    assert builders.claim_selector("q").endswith(f",{c.LABEL_VOLUME}")


@pytest.mark.parametrize(
    ("volumes", "message"),
    [
        ([{"name": "a", "mountPath": "/a"}], MSG_VOLUME_SOURCE_ONE),
        (
            [{"name": "a", "mountPath": "/a", "emptyDir": {}, "configMap": {"name": "x"}}],
            MSG_VOLUME_SOURCE_ONE,
        ),
        ([{"name": "a", "mountPath": "/tmp", "emptyDir": {}}], MSG_VOLUME_MOUNT_PATH),
        ([{"name": "a", "mountPath": "/tmp/x", "emptyDir": {}}], MSG_VOLUME_MOUNT_PATH),
        ([{"name": "a", "mountPath": "data", "emptyDir": {}}], MSG_VOLUME_MOUNT_PATH),
        ([{"name": "tmp", "mountPath": "/t", "emptyDir": {}}], MSG_VOLUME_NAME_RESERVED),
        (
            [
                {"name": "a", "mountPath": "/a", "emptyDir": {}},
                {"name": "a", "mountPath": "/b", "emptyDir": {}},
            ],
            MSG_VOLUME_NAMES_UNIQUE,
        ),
        (
            [
                {"name": "a", "mountPath": "/a", "emptyDir": {}},
                {"name": "b", "mountPath": "/a", "emptyDir": {}},
            ],
            MSG_VOLUME_PATHS_UNIQUE,
        ),
    ],
)
def test_bad_volumes_are_refused_by_the_model(volumes: list[Any], message: str) -> None:
    with pytest.raises(SpecError) as exc:
        spec(workers=[{"name": "p", "jobTypes": ["t"], "volumes": volumes}])
    assert message in str(exc.value)


def test_the_same_rules_are_cel_in_the_crd_with_the_same_messages() -> None:
    worker = spec_schema()["properties"]["worker"]
    messages = {r["message"] for r in worker["x-kubernetes-validations"]}
    assert {MSG_VOLUME_NAMES_UNIQUE, MSG_VOLUME_PATHS_UNIQUE} <= messages
    item = worker["properties"]["volumes"]["items"]
    messages = {r["message"] for r in item["x-kubernetes-validations"]}
    assert messages == {MSG_VOLUME_SOURCE_ONE, MSG_VOLUME_MOUNT_PATH, MSG_VOLUME_NAME_RESERVED}
    pool = spec_schema()["properties"]["workers"]["items"]
    assert "volumes" in pool["properties"]
    assert "ReadWriteMany" in json.dumps(item["properties"]["persistentVolumeClaim"])
