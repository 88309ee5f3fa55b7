"""The autoscaler's Kubernetes adapters: the worker Deployment as a :class:`ScaleTarget`
(scale subresource, replica hand-over, pod deletion costs), the JobQueue's status and Events as
a :class:`Reporter`, and the watch-fed :class:`ReplicaCache` that spares the polls a GET.

The official (synchronous) client runs in threads (``asyncio.to_thread``); every call has a
short timeout. The reconcile uses the hand-over too (:func:`replicas_handover_needed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from jobqueue_operator import constants as c
from jobqueue_operator.autoscaling import (
    POD_DELETION_COST_ANNOTATION,
    WorkerHeartbeat,
    deletion_cost_changes,
    pod_deletion_costs,
)
from jobqueue_operator.diffing import replicas_managers
from jobqueue_operator.ports import EventType, ScalerStatus
from jobqueue_operator.redisops import describe, redact
from jobqueue_operator.status import merge_conditions

KUBERNETES_REQUEST_TIMEOUT = (5.0, 10.0)  # connect, read
FIELD_MANAGER = "jobqueue-autoscaler"  # not the reconcile's: it owns spec.replicas alone
MERGE_PATCH = "application/merge-patch+json"  # the client would pick json-patch for a dict
APPLY_PATCH = "application/apply-patch+yaml"
STATUS_CONFLICT_RETRIES = 5


def describe_error(error: BaseException, *secrets: str) -> str:
    """A one-line, password-free description of an exception: ``Type: message``, or for a
    Kubernetes API error ``HTTP <code> <reason>: <the Status message>`` (no header dump)."""
    if isinstance(getattr(error, "status", None), int) and hasattr(error, "body"):
        return redact(_api_error(error), secrets)
    return describe(error, secrets)


def _api_error(exc: BaseException) -> str:
    """A short description of a Kubernetes client error (the Status message, not headers)."""
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    message = ""
    if isinstance(body, str | bytes):
        with contextlib.suppress(ValueError):
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                message = str(parsed.get("message", ""))
    return f"HTTP {status} {getattr(exc, 'reason', '') or ''}: {message}".rstrip(": ")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def replicas_handover_needed(
    desired: Mapping[str, Any], live: Mapping[str, Any] | None, manager: str = c.FIELD_MANAGER
) -> bool:
    """True when applying ``desired`` (a Deployment without spec.replicas, autoscaling on)
    would reset the live replicas to the default of 1.

    Server-side apply removes a field that the applier owned alone and no longer sends. That
    happens once, when autoscaling is switched on for a JobQueue whose reconcile used to apply
    ``worker.replicas``. Before such an apply, the autoscaler takes the field over at its live
    value (``KubernetesScaleTarget(...).adopt(live_replicas)``), which keeps it.
    """
    if live is None or "replicas" in (desired.get("spec") or {}):
        return False
    managers = replicas_managers(live.get("metadata") or {})
    return any(entry.get("manager") == manager for entry in managers)


def _is_status(exc: BaseException, *codes: int) -> bool:
    return getattr(exc, "status", None) in codes


def is_conflict(exc: BaseException) -> bool:
    """A 409 Conflict: the object changed since the version a write was based on."""
    return _is_status(exc, 409)


def replica_count(spec: Mapping[str, Any]) -> int | None:
    """What :class:`ReplicaCache` keeps of one Deployment as a watch delivers it."""
    replicas = spec.get("replicas")
    return replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else None


class ReplicaCache:
    """spec.replicas of Deployments as a watch last delivered them, keyed by namespace and name.

    The operator already watches every Deployment it manages (kopf, to repair drift); its
    ``replicas`` index (:func:`replica_count` per Deployment, filled before any handler or
    daemon runs, entries dropped on delete) is attached here, so the scalers' polls need no GET
    of the scale subresource. Without an index, :meth:`observe` feeds it. A Deployment it does
    not know (deleted, not created yet) is read from the API. Only touched from the event
    loop's thread.
    """

    def __init__(self, index: Mapping[tuple[str, str], Iterable[int | None]] | None = None):
        self.index = index
        self._entries: dict[tuple[str, str], int] = {}

    def observe(self, namespace: str, name: str, replicas: int | None) -> None:
        """Record what a watch event says; ``replicas`` None: the Deployment was deleted."""
        if replicas is None:
            self._entries.pop((namespace, name), None)
        else:
            self._entries[(namespace, name)] = replicas

    def get(self, namespace: str, name: str) -> int | None:
        """The last count seen, or None if unknown."""
        if self.index is not None:
            return next(iter(self.index.get((namespace, name), ())), None)
        return self._entries.get((namespace, name))


class KubernetesScaleTarget:
    """The worker Deployment through the scale subresource; pods annotated for idle-first."""

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        deployment: str,
        *,
        cache: ReplicaCache | None = None,
    ) -> None:
        from kubernetes import client

        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.deployment = deployment
        self._cache = cache

    async def replicas(self, *, cached: bool = False) -> int | None:
        if cached and self._cache is not None:
            known = self._cache.get(self.namespace, self.deployment)
            if known is not None:
                return known
        try:
            scale = await asyncio.to_thread(
                self._apps.read_namespaced_deployment_scale,
                self.deployment,
                self.namespace,
                _request_timeout=KUBERNETES_REQUEST_TIMEOUT,
            )
        except Exception as exc:
            if _is_status(exc, 404):
                return None
            raise
        spec = getattr(scale, "spec", None)
        return int(getattr(spec, "replicas", 0) or 0)

    async def scale(self, replicas: int) -> None:
        await asyncio.to_thread(
            self._apps.patch_namespaced_deployment_scale,
            self.deployment,
            self.namespace,
            {"spec": {"replicas": replicas}},
            field_manager=FIELD_MANAGER,
            _content_type=MERGE_PATCH,
            _request_timeout=KUBERNETES_REQUEST_TIMEOUT,
        )

    async def adopt(self, replicas: int, *, resource_version: str | None = None) -> None:
        """Apply spec.replicas as the autoscaler's field manager (the reconcile's hand-over,
        see :func:`replicas_handover_needed`).

        With ``resource_version`` (the version ``replicas`` was read from) the write is
        refused with a 409 Conflict if the Deployment changed since: a scale made meanwhile
        is never overwritten with the older count."""
        metadata = {"name": self.deployment, "namespace": self.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {"replicas": replicas},
        }
        await asyncio.to_thread(
            self._apps.patch_namespaced_deployment,
            self.deployment,
            self.namespace,
            body,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY_PATCH,
            _request_timeout=KUBERNETES_REQUEST_TIMEOUT,
        )

    async def prefer_idle(self, workers: Sequence[WorkerHeartbeat]) -> None:
        deployment = await asyncio.to_thread(
            self._apps.read_namespaced_deployment,
            self.deployment,
            self.namespace,
            _request_timeout=KUBERNETES_REQUEST_TIMEOUT,
        )
        labels = deployment.spec.selector.match_labels or {}
        if not labels:
            raise ValueError(f"Deployment {self.deployment} has no matchLabels selector")
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = await asyncio.to_thread(
            self._core.list_namespaced_pod,
            self.namespace,
            label_selector=selector,
            _request_timeout=KUBERNETES_REQUEST_TIMEOUT,
        )
        current: dict[str, str | None] = {}
        for pod in pods.items:
            meta = pod.metadata
            if meta is None or meta.name is None or meta.deletion_timestamp is not None:
                continue
            current[meta.name] = (meta.annotations or {}).get(POD_DELETION_COST_ANNOTATION)
        changes = deletion_cost_changes(current, pod_deletion_costs(current, workers))
        # every pod gets its try; the first failure is raised once all are done
        results = await asyncio.gather(
            *(self._annotate(pod, cost) for pod, cost in changes.items()), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]

    async def _annotate(self, pod: str, cost: int) -> None:
        try:
            await asyncio.to_thread(
                self._core.patch_namespaced_pod,
                pod,
                self.namespace,
                {"metadata": {"annotations": {POD_DELETION_COST_ANNOTATION: str(cost)}}},
                field_manager=FIELD_MANAGER,
                _content_type=MERGE_PATCH,
                _request_timeout=KUBERNETES_REQUEST_TIMEOUT,
            )
        except Exception as exc:
            if not _is_status(exc, 404):  # a pod that went away needs no cost
                raise


class KubernetesReporter:
    """Writes the scaler's status fields on the JobQueue and posts core/v1 Events.

    Status goes through the status subresource as a JSON merge patch carrying the object's
    resourceVersion (optimistic concurrency): conditions are a list, which a merge patch
    replaces whole, so the scaler re-reads, merges its two condition types into the others
    (:func:`merge_conditions`) and retries on a 409 instead of overwriting the reconcile's.
    """

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        group: str = c.GROUP,
        version: str = c.VERSION,
        plural: str = c.PLURAL,
        kind: str = c.KIND,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        from kubernetes import client

        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self.namespace, self.name, self.uid = namespace, name, uid
        self._group, self._version, self._plural, self._kind = group, version, plural, kind
        self._wall = wall

    async def report(self, status: ScalerStatus) -> None:
        for attempt in range(STATUS_CONFLICT_RETRIES):
            raw = await asyncio.to_thread(
                self._custom.get_namespaced_custom_object_status,
                self._group,
                self._version,
                self.namespace,
                self._plural,
                self.name,
                _request_timeout=KUBERNETES_REQUEST_TIMEOUT,
            )
            obj: dict[str, Any] = raw if isinstance(raw, dict) else {}
            meta = obj.get("metadata", {})
            self.uid = self.uid or meta.get("uid")
            current = obj.get("status") or {}
            existing = current.get("conditions") or []
            fields = status.fields()
            conditions = merge_conditions(existing, status.conditions, rfc3339(self._wall()))
            if conditions == existing and all(current.get(k) == v for k, v in fields.items()):
                return  # already there (a restarted autoscaler's first report): no write
            body = {
                "metadata": {"resourceVersion": meta.get("resourceVersion")},
                "status": {**fields, "conditions": conditions},
            }
            try:
                await self._merge_status(body)
                return
            except Exception as exc:
                if not _is_status(exc, 409) or attempt == STATUS_CONFLICT_RETRIES - 1:
                    raise

    async def patch_status(self, fields: Mapping[str, Any]) -> None:
        """A JSON merge patch of some status fields (no resourceVersion: for map entries only
        this writer sets)."""
        await self._merge_status({"status": dict(fields)})

    async def _merge_status(self, body: dict[str, Any]) -> None:
        """One JSON merge patch of the status subresource."""
        await asyncio.to_thread(
            self._custom.patch_namespaced_custom_object_status,
            self._group,
            self._version,
            self.namespace,
            self._plural,
            self.name,
            body,
            field_manager=FIELD_MANAGER,
            _content_type=MERGE_PATCH,
            _request_timeout=KUBERNETES_REQUEST_TIMEOUT,
        )

    async def event(self, type_: EventType, reason: str, message: str) -> None:
        from kubernetes import client

        now = rfc3339(self._wall())
        involved: dict[str, Any] = {
            "apiVersion": f"{self._group}/{self._version}",
            "kind": self._kind,
            "name": self.name,
            "namespace": self.namespace,
        }
        if self.uid:
            involved["uid"] = self.uid
        body = client.CoreV1Event.from_dict(
            {
                "metadata": {"generateName": f"{self.name}.", "namespace": self.namespace},
                "involvedObject": involved,
                "type": type_,
                "reason": reason,
                "message": message[: c.EVENT_MESSAGE_LIMIT],
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "source": {"component": c.EVENT_COMPONENT},
                "reportingComponent": c.EVENT_COMPONENT,
                "reportingInstance": socket.gethostname(),
            }
        )
        assert body is not None
        await asyncio.to_thread(
            self._core.create_namespaced_event,
            self.namespace,
            body,
            _request_timeout=KUBERNETES_REQUEST_TIMEOUT,
        )


class PoolReporter:
    """The reporter of one pool of ``spec.workers``: its numbers and Scaling reason go into
    ``status.poolScaling.<pool>`` (a JSON merge patch of one map key, so neither the other
    pools' entries nor anyone's conditions are touched); its Events name the pool. The
    JobQueue's own Scaling and RedisReachable conditions stay the default pool's."""

    def __init__(self, inner: KubernetesReporter, pool: str) -> None:
        self._inner = inner
        self.pool = pool

    async def report(self, status: ScalerStatus) -> None:
        entry: dict[str, Any] = dict(status.fields())
        for cond in status.conditions:
            if cond.type == c.CONDITION_SCALING:  # RedisUnreachable is one of its reasons
                entry |= {"reason": cond.reason, "message": cond.message}
        await self._inner.patch_status({"poolScaling": {self.pool: entry}})

    async def event(self, type_: EventType, reason: str, message: str) -> None:
        await self._inner.event(type_, reason, f"pool {self.pool}: {message}")
