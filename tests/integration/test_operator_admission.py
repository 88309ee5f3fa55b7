"""The CRD at admission, on a real API server: bad JobQueues are refused with readable messages,
immutable fields stay immutable, and the server's defaults are the spec model's defaults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from jobqueue_operator.spec import parse_spec

from tests.cluster.controlplane import Kube
from tests.support.jobqueues import admit, crd
from tests.support.kube import temporary_namespace
from tests.support.spec_cases import INVALID, TOPOLOGY_URLS, Invalid

__all__ = ["crd"]  # fixture, re-used

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def ns(kube: Kube, crd: None) -> Iterator[str]:
    yield from temporary_namespace(kube, "adm-")  # not jqop-*: no operator acts here


@pytest.mark.parametrize("case", INVALID, ids=lambda case: case.id)
def test_an_invalid_jobqueue_is_refused_with_a_readable_message(
    kube: Kube, ns: str, case: Invalid
) -> None:
    result = admit(kube, ns, case.name, case.spec, "--dry-run=server")
    assert result.returncode != 0, f"accepted: {result.stdout}"
    assert case.message in result.stderr
    assert "hunter22" not in result.stderr or "hunter22" in json.dumps(case.spec)


@pytest.mark.parametrize("url", TOPOLOGY_URLS)
def test_a_valid_jobqueue_passes_the_same_checks(kube: Kube, ns: str, url: str) -> None:
    result = admit(kube, ns, "ok", {"redis": {"url": url}}, "--dry-run=server")
    assert result.returncode == 0, result.stderr


def test_the_servers_defaults_are_the_models_defaults(kube: Kube, ns: str) -> None:
    minimal = {"redis": {"url": "redis://127.0.0.1:6379/0"}, "worker": {"image": "w:1"}}
    assert admit(kube, ns, "defaults", minimal).returncode == 0
    stored = kube.kubectl_json("get", "jq", "defaults", "-n", ns)["spec"]
    model = parse_spec(minimal).model_dump(by_alias=True, exclude_none=True)

    def drop_empty(value: Any) -> Any:
        if isinstance(value, dict):
            pruned = {k: drop_empty(v) for k, v in value.items()}
            return {k: v for k, v in pruned.items() if v not in ({}, [])}
        return value

    assert stored == drop_empty(model)
    assert parse_spec(stored) == parse_spec(minimal)


def test_queue_name_cannot_change(kube: Kube, ns: str) -> None:
    spec: dict[str, Any] = {"redis": {"url": "redis://127.0.0.1:6379/0"}, "queueName": "a"}
    assert admit(kube, ns, "named", spec).returncode == 0
    result = admit(kube, ns, "named", {**spec, "queueName": "b"})
    assert result.returncode != 0
    assert "queueName cannot be changed" in result.stderr
    other = admit(kube, ns, "named", {**spec, "worker": {"concurrency": 2}})
    assert other.returncode == 0, other.stderr  # other fields still change


def test_managed_storage_cannot_change(kube: Kube, ns: str) -> None:
    spec: dict[str, Any] = {"redis": {"managed": {"storage": "1Gi"}}}
    assert admit(kube, ns, "managed", spec).returncode == 0
    result = admit(kube, ns, "managed", {"redis": {"managed": {"storage": "2Gi"}}})
    assert result.returncode != 0
    assert "storage and storageClassName cannot be changed" in result.stderr


def test_scaling_an_autoscaled_jobqueue_by_hand_is_refused_with_what_to_do(
    kube: Kube, ns: str
) -> None:
    """Issue 23: `kubectl scale jq` with autoscaling on was accepted and did nothing."""
    spec: dict[str, Any] = {"redis": {"url": "redis://127.0.0.1:6379/0"}}
    assert admit(kube, ns, "scaled", spec).returncode == 0
    result = kube.kubectl("scale", "jq", "scaled", "-n", ns, "--replicas=5", check=False)
    assert result.returncode != 0
    assert "worker.replicas cannot change while autoscaling.enabled is true" in result.stderr
    assert kube.kubectl_json("get", "jq", "scaled", "-n", ns)["spec"]["worker"]["replicas"] == 1
    # with autoscaling off, the scale subresource is how the workers are scaled by hand
    off = {**spec, "autoscaling": {"enabled": False}}
    assert admit(kube, ns, "scaled", off).returncode == 0
    done = kube.kubectl("scale", "jq", "scaled", "-n", ns, "--replicas=5", check=False)
    assert done.returncode == 0, done.stderr
    assert kube.kubectl_json("get", "jq", "scaled", "-n", ns)["spec"]["worker"]["replicas"] == 5
