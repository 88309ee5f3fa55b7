"""Worker volumes on the real control plane: the volumes and mounts in the worker pod template
(and pods admitted in a restricted namespace), a PersistentVolumeClaim per pool kept on delete
with deletionPolicy Retain and removed with Purge, and bad volumes refused at admission.

The operator process, the namespaces and the helpers are test_operator_lifecycle's.
"""

from __future__ import annotations

from typing import Any

import pytest
from jobqueue_operator import constants as c

from tests.cluster.controlplane import Kube
from tests.cluster.redis_server import RedisServer
from tests.support.jobqueues import (
    admit,
    crd,
    get,
    jobqueue,
    must_get,
    ns,
    operator,
    pods_of,
    url_for,
    wait_for,
)
from tests.support.kube import apply

__all__ = ["crd", "ns", "operator"]  # fixtures, re-used

pytestmark = pytest.mark.cluster

DATA = {"name": "data", "mountPath": "/data", "persistentVolumeClaim": {"size": "1Gi"}}


def volumes_spec(url: str, policy: str = "Retain") -> dict[str, Any]:
    return {
        "redis": {"url": url},
        "autoscaling": {"enabled": False},
        "deletionPolicy": policy,
        "api": {"enabled": False},
        "worker": {
            "volumes": [
                {"name": "scratch", "mountPath": "/scratch", "emptyDir": {"sizeLimit": "1Gi"}},
                {
                    "name": "conf",
                    "mountPath": "/etc/app",
                    "readOnly": True,
                    "configMap": {"name": "app"},
                },
                {
                    "name": "keys",
                    "mountPath": "/keys",
                    "readOnly": True,
                    "secret": {"secretName": "k"},
                },
                DATA,
            ]
        },
        "workers": [
            {
                "name": "img",
                "jobTypes": ["resize"],
                "autoscaling": {"enabled": False},
                "volumes": [
                    DATA
                    | {"persistentVolumeClaim": {"size": "2Gi", "accessModes": ["ReadWriteMany"]}}
                ],
            }
        ],
    }


def pod_spec(deploy: dict[str, Any]) -> dict[str, Any]:
    return dict(deploy["spec"]["template"]["spec"])


def test_volumes_are_in_the_worker_pod_template_with_their_mounts(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    apply(kube, jobqueue(ns, "vol", volumes_spec(url_for(redis_server))))
    worker = pod_spec(must_get(kube, "deploy", ns, "vol-worker"))
    volumes = {v["name"]: v for v in worker["volumes"]}
    assert volumes["scratch"]["emptyDir"] == {"sizeLimit": "1Gi"}
    assert volumes["conf"]["configMap"]["name"] == "app"
    assert volumes["keys"]["secret"]["secretName"] == "k"
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "vol-worker-data"}
    assert "tmp" in volumes
    mounts = {m["name"]: m for m in worker["containers"][0]["volumeMounts"]}
    assert mounts["conf"] == {"name": "conf", "mountPath": "/etc/app", "readOnly": True}
    assert mounts["data"]["mountPath"] == "/data" and not mounts["data"].get("readOnly")
    assert mounts["tmp"]["mountPath"] == "/tmp"
    img = pod_spec(must_get(kube, "deploy", ns, "vol-worker-img"))
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "vol-worker-img-data"}} in img[
        "volumes"
    ]
    # the pods (restricted Pod Security) are admitted with these volumes
    wait_for("a pod per pool", lambda: pods_of(kube, ns, "vol") == {"worker": 1, "worker-img": 1})
    events = kube.kubectl_json("get", "events", "-n", ns)["items"]
    assert [e["message"] for e in events if "PodSecurity" in e.get("message", "")] == []


def test_claims_are_created_and_kept_on_delete_with_retain(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    apply(kube, jobqueue(ns, "vol", volumes_spec(url_for(redis_server))))
    claim = must_get(kube, "pvc", ns, "vol-worker-data")
    pool = must_get(kube, "pvc", ns, "vol-worker-img-data")
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pool["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pool["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert claim["metadata"]["labels"][c.LABEL_VOLUME] == "data"
    assert not claim["metadata"].get("ownerReferences")  # Retain: nothing can collect it

    kube.kubectl("delete", "jq", "vol", "-n", ns, "--wait=true", "--timeout=60s")
    assert get(kube, "deploy", ns, "vol-worker") is None
    for name in ("vol-worker-data", "vol-worker-img-data"):
        kept = get(kube, "pvc", ns, name)
        assert kept is not None, name
        assert kept["metadata"].get("deletionTimestamp") is None, name

    # a JobQueue of the same name adopts the kept claims (same names, the data is back)
    apply(kube, jobqueue(ns, "vol", volumes_spec(url_for(redis_server))))
    must_get(kube, "deploy", ns, "vol-worker")
    again = must_get(kube, "pvc", ns, "vol-worker-data")
    assert again["metadata"]["uid"] == claim["metadata"]["uid"]


def test_claims_are_owned_and_removed_with_purge(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    apply(kube, jobqueue(ns, "vol", volumes_spec(url_for(redis_server), "Purge")))
    jq = must_get(kube, "jq", ns, "vol")
    claim = must_get(kube, "pvc", ns, "vol-worker-data")
    assert claim["metadata"]["ownerReferences"][0]["uid"] == jq["metadata"]["uid"]
    kube.kubectl("delete", "jq", "vol", "-n", ns, "--wait=true", "--timeout=60s")
    for name in ("vol-worker-data", "vol-worker-img-data"):
        wait_for(f"pvc {name} removed", lambda name=name: get(kube, "pvc", ns, name) is None)


def test_switching_to_retain_takes_the_owner_reference_off(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    apply(kube, jobqueue(ns, "vol", volumes_spec(url_for(redis_server), "Purge")))
    wait_for(
        "an owned claim",
        lambda: (
            (get(kube, "pvc", ns, "vol-worker-data") or {})
            .get("metadata", {})
            .get("ownerReferences")
        ),
    )
    apply(kube, jobqueue(ns, "vol", volumes_spec(url_for(redis_server), "Retain")))
    wait_for(
        "the ownerReference removed",
        lambda: not must_get(kube, "pvc", ns, "vol-worker-data")["metadata"].get("ownerReferences"),
    )
    kube.kubectl("delete", "jq", "vol", "-n", ns, "--wait=true", "--timeout=60s")
    assert get(kube, "pvc", ns, "vol-worker-data") is not None


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ({"name": "a", "mountPath": "/a"}, "exactly one of emptyDir, configMap, secret"),
        (
            {"name": "a", "mountPath": "/a", "emptyDir": {}, "secret": {"secretName": "s"}},
            "exactly one of emptyDir, configMap, secret",
        ),
        ({"name": "a", "mountPath": "/tmp", "emptyDir": {}}, "other than /tmp"),
        ({"name": "a", "mountPath": "relative", "emptyDir": {}}, "must be an absolute path"),
        ({"name": "tmp", "mountPath": "/t", "emptyDir": {}}, "must not be 'tmp'"),
        ({"name": "a", "mountPath": "/a", "persistentVolumeClaim": {}}, "size"),
    ],
)
def test_bad_volumes_are_refused_at_admission(
    kube: Kube, ns: str, volume: dict[str, Any], message: str
) -> None:
    spec = {"redis": {"url": "redis://r:6379"}, "worker": {"volumes": [volume]}}
    result = admit(kube, ns, "bad", spec, "--dry-run=server")
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_duplicate_volume_names_and_paths_are_refused_at_admission(kube: Kube, ns: str) -> None:
    a = {"name": "a", "mountPath": "/a", "emptyDir": {}}
    for other, message in (
        ({"name": "a", "mountPath": "/b", "emptyDir": {}}, "every volume needs a different name"),
        ({"name": "b", "mountPath": "/a", "emptyDir": {}}, "different mountPath"),
    ):
        pool = {"name": "p", "jobTypes": ["t"], "volumes": [a, other]}
        spec = {"redis": {"url": "redis://r:6379"}, "workers": [pool]}
        result = admit(kube, ns, "bad", spec, "--dry-run=server")
        assert result.returncode != 0
        assert message in result.stderr, result.stderr
