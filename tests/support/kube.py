"""Helpers of the tests that work on the real control plane (the `kube` fixture): polling
(`wait_for`, from tests.support.waiting), a throw-away namespace, `kubectl apply`, an object's
status condition, the JobQueue CRD, a Kubernetes Python client. No tests here."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jobqueue_operator import constants as c
from jobqueue_operator.crd import CRD_FILE
from kubernetes import client, config

from tests.cluster.controlplane import Kube
from tests.support.waiting import wait_for as wait_for  # re-exported: the kube tests use it


def temporary_namespace(kube: Kube, prefix: str, *, digits: int = 8) -> Iterator[str]:
    """Create namespace `<prefix><random hex>`, yield its name, then delete it without waiting.
    Made for fixtures: `yield from temporary_namespace(kube, "smoke-")`."""
    name = f"{prefix}{uuid.uuid4().hex[:digits]}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false")


def apply(kube: Kube, *manifests: dict[str, Any]) -> None:
    """`kubectl apply` of the given objects, in one call (a v1 List)."""
    items = {"apiVersion": "v1", "kind": "List", "items": list(manifests)}
    kube.kubectl("apply", "-f", "-", input=json.dumps(items))


def condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    """The status condition of type ``ctype`` of an object (None: not there, or no object)."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == ctype:
            return dict(cond)
    return None


def install_jobqueue_crd(kube: Kube) -> None:
    """Server-side apply of the JobQueue CRD (crds/), then wait until it is Established."""
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    kube.wait_established(c.CRD_NAME)


@contextmanager
def api_client(kube: Kube) -> Iterator[client.ApiClient]:
    """A Kubernetes Python client on the admin kubeconfig, closed on exit."""
    api = config.new_client_from_config(config_file=str(kube.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        yield api
    finally:
        api.close()
