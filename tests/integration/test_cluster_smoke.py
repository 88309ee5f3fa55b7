"""The local control plane is real: pinned release, live controllers, garbage collection, CRDs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import binaries
from tests.cluster.controlplane import ControlPlane, ControlPlaneError, Kube, KubectlError
from tests.cluster.procs import pid_runs
from tests.support.kube import apply, temporary_namespace, wait_for


@pytest.fixture
def ns(kube: Kube) -> Iterator[str]:
    yield from temporary_namespace(kube, "smoke-")


def test_server_reports_the_pinned_release(kube: Kube) -> None:
    version = kube.kubectl_json("version")
    assert version["serverVersion"]["gitVersion"] == binaries.version_of("k8s") == "v1.34.2"
    assert version["clientVersion"]["gitVersion"] == "v1.34.2"


def test_new_namespace_gets_service_account_and_root_ca(kube: Kube, ns: str) -> None:
    """The serviceaccount and root-ca-certificate-publisher controllers run."""
    wait_for(
        "the default ServiceAccount",
        lambda: (
            kube.kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0
        ),
    )
    ca = wait_for(
        "the kube-root-ca.crt ConfigMap",
        lambda: kube.kubectl(
            "get", "configmap", "kube-root-ca.crt", "-n", ns, "-o", "jsonpath={.data.ca\\.crt}",
            check=False,
        ).stdout,
    )  # fmt: skip
    assert ca.startswith("-----BEGIN CERTIFICATE-----")


def test_aggregated_cluster_roles_are_filled(kube: Kube) -> None:
    """The clusterrole-aggregation controller runs (a short --controllers list would miss it)."""
    rules = wait_for(
        "rules in ClusterRole view",
        lambda: kube.kubectl_json("get", "clusterrole", "view").get("rules"),
    )
    assert any("pods" in r.get("resources", []) for r in rules)


def test_deployment_gets_a_replicaset_and_pods(kube: Kube, ns: str) -> None:
    apply(kube, {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "localhost/none:0"}]},
            },
        },
    })  # fmt: skip
    uid = kube.kubectl_json("get", "deployment", "web", "-n", ns)["metadata"]["uid"]
    rs = wait_for(
        "a ReplicaSet from the deployment controller",
        lambda: kube.kubectl_json("get", "replicasets", "-n", ns, "-l", "app=web")["items"],
    )
    assert len(rs) == 1
    assert rs[0]["metadata"]["ownerReferences"][0]["uid"] == uid
    assert rs[0]["spec"]["replicas"] == 2
    pods = wait_for(
        "2 pods from the replicaset controller",
        lambda: (
            [
                p
                for p in kube.kubectl_json("get", "pods", "-n", ns, "-l", "app=web")["items"]
                if p["metadata"]["ownerReferences"][0]["uid"] == rs[0]["metadata"]["uid"]
            ]
            or None
        ),
    )
    wait_for(
        "both pods",
        lambda: len(kube.kubectl_json("get", "pods", "-n", ns, "-l", "app=web")["items"]) == 2,
    )
    assert all(p["spec"]["serviceAccountName"] == "default" for p in pods)


def test_deleting_an_owner_garbage_collects_its_child(kube: Kube, ns: str) -> None:
    kube.kubectl("create", "configmap", "parent", "-n", ns)
    kube.kubectl("create", "configmap", "bystander", "-n", ns)
    parent_uid = kube.kubectl_json("get", "configmap", "parent", "-n", ns)["metadata"]["uid"]
    apply(kube, {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "namespace": ns,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "parent", "uid": parent_uid}
            ],
        },
    })  # fmt: skip
    kube.kubectl("delete", "configmap", "parent", "-n", ns, "--cascade=background")
    wait_for(
        "the garbage collector to delete the child",
        lambda: kube.kubectl("get", "configmap", "child", "-n", ns, check=False).returncode != 0,
    )
    gone = kube.kubectl("get", "configmap", "child", "-n", ns, check=False)
    assert "NotFound" in gone.stderr
    kube.kubectl("get", "configmap", "bystander", "-n", ns)  # an unowned one stays


SMOKE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.jobqueue.io"},
    "spec": {
        "group": "smoke.jobqueue.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_a_crd_serves_objects_of_its_kind(kube: Kube, ns: str) -> None:
    """A CRD defined here (crds/ has none yet): served, stored, and its schema enforced."""
    apply(kube, SMOKE_CRD)
    try:
        kube.wait_established("widgets.smoke.jobqueue.io")
        widget = {
            "apiVersion": "smoke.jobqueue.io/v1",
            "kind": "Widget",
            "metadata": {"name": "w1", "namespace": ns},
            "spec": {"size": 3},
        }
        apply(kube, widget)
        got = kube.kubectl_json("get", "widgets.smoke.jobqueue.io", "w1", "-n", ns)
        assert got["kind"] == "Widget"
        assert got["spec"] == {"size": 3}
        bad = {**widget, "metadata": {"name": "w2", "namespace": ns}, "spec": {"size": 0}}
        with pytest.raises(KubectlError) as err:
            apply(kube, bad)
        assert "spec.size" in err.value.stderr
        assert kube.kubectl("get", "widget", "w2", "-n", ns, check=False).returncode != 0
    finally:
        kube.kubectl("delete", "crd", "widgets.smoke.jobqueue.io", "--wait=false")


def test_control_plane_stop_leaves_no_process(tmp_path: Path) -> None:
    """A second, independent control plane: up, then down from a fresh handle (as `down` does)."""
    plane = ControlPlane(tmp_path / "cp")
    kube = plane.start()
    assert kube.kubectl("get", "--raw", "/readyz").stdout == "ok"
    records = plane.procs.records()
    assert {r.name for r in records} == {"etcd", "kube-apiserver", "kube-controller-manager"}
    assert all(r.running for r in records)
    stopped = ControlPlane.attach(tmp_path / "cp").stop()
    assert sorted(stopped) == sorted(r.name for r in records)
    assert not any(pid_runs(r.pid, r.exe, r.start_time) for r in records)
    assert list((tmp_path / "cp" / "run").glob("*.pid")) == []
    plane.stop()  # idempotent


def test_a_component_that_fails_to_start_reports_its_log(tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path / "cp", apiserver_args=["--no-such-flag"])
    with pytest.raises(ControlPlaneError) as err:
        plane.start()
    assert "kube-apiserver exited" in str(err.value)
    assert "unknown flag: --no-such-flag" in str(err.value)
    assert plane.running() == []  # etcd was stopped too
