"""The operator's Kubernetes API calls: a thin REST layer on the official (synchronous) client.

The ``kubernetes`` package supplies configuration (kubeconfig or in-cluster), TLS and auth; the
calls themselves are generic (path + verb + body), which is all server-side apply, list by
label, delete with a uid precondition, merge patches and the scale subresource need: the
reconcile, the autoscalers and the schedules all call through here (no generated API class,
whose argument validation and model objects cost more CPU than the request). Every call runs
in a thread pool (:class:`Kube`'s async methods), so kopf's event loop never blocks.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeVar, get_args
from urllib.parse import quote

from jobqueue_operator import constants as c
from jobqueue_operator.kubetypes import JSON, ChildKind, Manifest

T = TypeVar("T")

APPLY_PATCH: Final = "application/apply-patch+yaml"
MERGE_PATCH: Final = "application/merge-patch+json"


@dataclass(frozen=True, slots=True)
class Kind:
    """Where a kind lives in the REST API."""

    api_version: str
    plural: str

    def path(self, namespace: str, name: str | None = None, sub: str | None = None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        out = f"{prefix}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        if name is not None:
            out += f"/{quote(name, safe='')}"
        if sub is not None:
            out += f"/{sub}"
        return out


KINDS: Final[Mapping[str, Kind]] = {
    "Deployment": Kind("apps/v1", "deployments"),
    "StatefulSet": Kind("apps/v1", "statefulsets"),
    "Service": Kind("v1", "services"),
    "Secret": Kind("v1", "secrets"),
    "PersistentVolumeClaim": Kind("v1", "persistentvolumeclaims"),
    "Event": Kind("v1", "events"),
    "Pod": Kind("v1", "pods"),
    "Ingress": Kind("networking.k8s.io/v1", "ingresses"),
    "HTTPRoute": Kind("gateway.networking.k8s.io/v1", "httproutes"),
    "NetworkPolicy": Kind("networking.k8s.io/v1", "networkpolicies"),
    c.KIND: Kind(c.API_VERSION, c.PLURAL),
}
#: The kinds of a JobQueue's children, listed for pruning and deletion (the worker volumes'
#: PersistentVolumeClaims have their own path: claims.sync).
CHILD_KINDS: Final = tuple(k for k in get_args(ChildKind) if k != "PersistentVolumeClaim")


PEERING_PATH: Final = "/apis/kopf.dev/v1/clusterkopfpeerings"


class KubeError(Exception):
    """A failed API call: HTTP status, reason, and the API server's message (no body dump)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}".rstrip(": "))
        self.status = status
        self.reason = reason
        self.message = message


def load_api_client(threads: int) -> Any:
    """An ``ApiClient`` from the in-cluster config in a pod, else the kubeconfig."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    # two pools of `threads` share this client: the reconciles' and the autoscalers'
    configuration.connection_pool_maxsize = max(2 * threads, 4)
    api_client = client.ApiClient(configuration)
    api_client.user_agent = c.USER_AGENT  # names the operator in audit logs and metrics
    return api_client


KindRef = str | Kind  # a kind of KINDS by name, or where any other kind lives


def _kind(kind: KindRef) -> Kind:
    return kind if isinstance(kind, Kind) else KINDS[kind]


class Kube:
    """Async facade: each method runs one synchronous request in a thread pool.

    ``threads``: the size of this facade's own pool, or None for the event loop's default
    executor (the autoscalers' facade: its writes never queue behind a burst of reconciles).
    ``timeout``: (connect, read) seconds of every request."""

    def __init__(
        self,
        api_client: Any,
        threads: int | None = 8,
        *,
        timeout: tuple[float, float] = (c.KUBE_CONNECT_TIMEOUT, c.KUBE_READ_TIMEOUT),
    ) -> None:
        self.api_client = api_client
        self._pool = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kube")
            if threads is not None
            else None
        )
        self._timeout = timeout

    def sibling(self, timeout: tuple[float, float]) -> Kube:
        """A facade on the same client and connections, on the default executor."""
        return Kube(self.api_client, None, timeout=timeout)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.api_client.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> JSON | None:
        """One synchronous call; None on 404; KubeError on any other failure."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        method_, url, headers_, body_, post = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(
            method_,
            url,
            header_params=headers_,
            body=body_,
            post_params=post,
            _request_timeout=self._timeout,
        )
        response.read()
        raw = response.data or b"{}"
        if response.status == 404:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            data = {}
        if not 200 <= response.status < 300:
            message = data.get("message", "") if isinstance(data, dict) else ""
            reason = data.get("reason", "") if isinstance(data, dict) else ""
            raise KubeError(response.status, str(reason or response.reason or ""), str(message))
        return data if isinstance(data, dict) else {}

    async def _run(self, fn: partial[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    # -- calls -------------------------------------------------------------------------------

    async def serves(self, api_version: str, plural: str) -> bool:
        """Whether the API server serves ``plural`` in ``api_version`` (e.g. an optional CRD
        such as the Gateway API's httproutes)."""
        data = await self._run(partial(self._request, "GET", f"/apis/{api_version}"))
        resources = (data or {}).get("resources") or []
        return any(r.get("name") == plural for r in resources)

    async def ensure_cluster_peering(self, name: str) -> None:
        """The ClusterKopfPeering object ``name`` exists (created if not: replicas starting
        together may both try; the loser's 409 means it is there, which is all that counts)."""
        path = f"{PEERING_PATH}/{quote(name, safe='')}"
        if await self._run(partial(self._request, "GET", path)) is not None:
            return
        body: JSON = {
            "apiVersion": "kopf.dev/v1",
            "kind": "ClusterKopfPeering",
            "metadata": {"name": name},
        }
        try:
            await self._run(partial(self._request, "POST", PEERING_PATH, body=body))
        except KubeError as exc:
            if exc.status != 409:
                raise

    async def get(
        self, kind: KindRef, namespace: str, name: str, sub: str | None = None
    ) -> JSON | None:
        """One object (or its ``sub``resource, e.g. ``scale``); None if it does not exist."""
        path = _kind(kind).path(namespace, name, sub)
        return await self._run(partial(self._request, "GET", path))

    async def list(self, kind: str, namespace: str, selector: str) -> list[JSON]:
        """Objects of ``kind`` in ``namespace`` matching a label selector."""
        path = KINDS[kind].path(namespace)
        data = await self._run(
            partial(self._request, "GET", path, query=[("labelSelector", selector)])
        )
        items = (data or {}).get("items") or []
        for item in items:  # list items carry no kind; put it back for matching
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", KINDS[kind].api_version)
        return list(items)

    async def apply(
        self,
        manifest: Manifest | JSON,
        *,
        manager: str = c.FIELD_MANAGER,
        kind: Kind | None = None,
        sub: str | None = None,
    ) -> JSON:
        """Server-side apply as ``manager``, conflicts forced: creates or updates in one
        request, never a create-then-409. ``sub``: a subresource (``status``); ``kind``: where
        a kind not in KINDS lives. A ``metadata.resourceVersion`` in the manifest makes the
        apply conditional (409 if the object changed since)."""
        meta = manifest["metadata"]
        path = (kind or KINDS[manifest["kind"]]).path(meta["namespace"], meta["name"], sub)
        query = [("fieldManager", manager), ("force", "true")]
        result = await self._run(
            partial(
                self._request,
                "PATCH",
                path,
                query=query,
                body=dict(manifest),
                content_type=APPLY_PATCH,
            )
        )
        return result or {}

    async def delete(self, kind: str, namespace: str, name: str, uid: str | None = None) -> bool:
        """Delete (background propagation; only that very object when ``uid`` is given).
        Returns False when it was already gone."""
        body: JSON = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        }
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        try:
            result = await self._run(
                partial(self._request, "DELETE", KINDS[kind].path(namespace, name), body=body)
            )
        except KubeError as exc:
            if exc.status == 409:  # the uid precondition: someone re-created it; not ours
                return False
            raise
        return result is not None

    async def patch(
        self,
        kind: KindRef,
        namespace: str,
        name: str,
        body: JSON,
        *,
        manager: str = c.FIELD_MANAGER,
        sub: str | None = None,
    ) -> JSON | None:
        """A JSON merge patch as ``manager`` (of the object or its ``sub``resource); None if
        the object does not exist."""
        return await self._run(
            partial(
                self._request,
                "PATCH",
                _kind(kind).path(namespace, name, sub),
                query=[("fieldManager", manager)],
                body=body,
                content_type=MERGE_PATCH,
            )
        )

    async def create(self, kind: str, namespace: str, body: JSON) -> JSON | None:
        """POST a new object (e.g. an Event) into ``namespace``."""
        path = KINDS[kind].path(namespace)
        return await self._run(partial(self._request, "POST", path, body=body))

    async def patch_status(
        self, namespace: str, name: str, status: JSON, resource_version: str | None
    ) -> JSON | None:
        """JSON merge patch of a JobQueue's status, guarded by resourceVersion when given."""
        body: JSON = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self.patch(c.KIND, namespace, name, body, sub="status")
