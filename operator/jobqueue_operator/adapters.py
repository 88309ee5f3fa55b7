"""The autoscaler's Kubernetes adapters: the worker Deployment as a :class:`ScaleTarget`
(scale subresource, replica hand-over, pod deletion costs), the JobQueue's status and Events as
a :class:`Reporter`, and the watch-fed :class:`ReplicaCache` that spares the polls a GET.

Every call goes through the operator's one Kubernetes layer (kube.Kube; the autoscalers' facade
has short timeouts). The reconcile uses the hand-over too (:func:`replicas_handover_needed`).
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
from jobqueue_operator.kube import Kind, Kube, KubeError
from jobqueue_operator.kubetypes import JSON
from jobqueue_operator.ports import EventType, ScalerStatus
from jobqueue_operator.redisops import describe, redact
from jobqueue_operator.status import merge_conditions

KUBERNETES_REQUEST_TIMEOUT = (5.0, 10.0)  # connect, read
FIELD_MANAGER = "jobqueue-autoscaler"  # not the reconcile's: it owns spec.replicas alone


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
        kube: Kube,
        namespace: str,
        deployment: str,
        *,
        cache: ReplicaCache | None = None,
    ) -> None:
        self._kube = kube
        self.namespace = namespace
        self.deployment = deployment
        self._cache = cache

    async def replicas(self, *, cached: bool = False) -> int | None:
        if cached and self._cache is not None:
            known = self._cache.get(self.namespace, self.deployment)
            if known is not None:
                return known
        scale = await self._kube.get("Deployment", self.namespace, self.deployment, "scale")
        if scale is None:
            return None
        return int((scale.get("spec") or {}).get("replicas") or 0)

    async def scale(self, replicas: int) -> None:
        done = await self._kube.patch(
            "Deployment",
            self.namespace,
            self.deployment,
            {"spec": {"replicas": replicas}},
            manager=FIELD_MANAGER,
            sub="scale",
        )
        if done is None:
            raise KubeError(404, "NotFound", f"deployment {self.deployment} is gone")

    async def adopt(self, replicas: int, *, resource_version: str | None = None) -> None:
        """Apply spec.replicas as the autoscaler's field manager (the reconcile's hand-over,
        see :func:`replicas_handover_needed`).

        With ``resource_version`` (the version ``replicas`` was read from) the write is
        refused with a 409 Conflict if the Deployment changed since: a scale made meanwhile
        is never overwritten with the older count."""
        metadata = {"name": self.deployment, "namespace": self.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        body: JSON = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {"replicas": replicas},
        }
        await self._kube.apply(body, manager=FIELD_MANAGER)

    async def prefer_idle(self, workers: Sequence[WorkerHeartbeat]) -> None:
        deployment = await self._kube.get("Deployment", self.namespace, self.deployment)
        if deployment is None:
            return
        labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not labels:
            raise ValueError(f"Deployment {self.deployment} has no matchLabels selector")
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        current: dict[str, str | None] = {}
        for pod in await self._kube.list("Pod", self.namespace, selector):
            meta = pod.get("metadata") or {}
            if not meta.get("name") or meta.get("deletionTimestamp"):
                continue
            current[meta["name"]] = (meta.get("annotations") or {}).get(
                POD_DELETION_COST_ANNOTATION
            )
        changes = deletion_cost_changes(current, pod_deletion_costs(current, workers))
        # every pod gets its try; the first failure is raised once all are done
        results = await asyncio.gather(
            *(self._annotate(pod, cost) for pod, cost in changes.items()), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]

    async def _annotate(self, pod: str, cost: int) -> None:
        # a pod that went away (None: 404) needs no cost
        await self._kube.patch(
            "Pod",
            self.namespace,
            pod,
            {"metadata": {"annotations": {POD_DELETION_COST_ANNOTATION: str(cost)}}},
            manager=FIELD_MANAGER,
        )


LiveBody = Callable[[], Mapping[str, Any] | None]


class KubernetesReporter:
    """Writes the scaler's status fields on the JobQueue and posts core/v1 Events.

    Status is a server-side apply of the status subresource as the autoscaler's own field
    manager: its two condition types (conditions are a list map keyed by ``type``, so the
    reconcile's stay untouched) and its fields. No read, no resourceVersion, no conflict to
    retry. ``live``: the JobQueue as a watch last delivered it (kopf's live view), where the
    conditions' transition times and a restarted autoscaler's "already written" come from;
    without it the object is read once, at the first report.
    """

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        group: str = c.GROUP,
        version: str = c.VERSION,
        plural: str = c.PLURAL,
        kind: str = c.KIND,
        live: LiveBody | None = None,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kube = kube
        self.namespace, self.name, self.uid = namespace, name, uid
        self._api_version, self._kind = f"{group}/{version}", kind
        self._where = Kind(self._api_version, plural)
        self._live = live
        self._wall = wall
        # what this reporter applied last: its fields (an unreadable queue keeps the last
        # numbers) and conditions (their transition times), None before the first report
        self._fields: dict[str, Any] | None = None
        self._conditions: list[dict[str, Any]] = []

    async def _observed(self) -> Mapping[str, Any]:
        body = self._live() if self._live is not None else None
        if body is None:
            body = await self._kube.get(self._where, self.namespace, self.name) or {}
        self.uid = self.uid or (body.get("metadata") or {}).get("uid")
        return body

    async def report(self, status: ScalerStatus) -> None:
        fields = status.fields()
        if self._fields is None:  # the first report: the last numbers are the object's
            current = (await self._observed()).get("status") or {}
            existing = list(current.get("conditions") or [])
            conditions = merge_conditions(existing, status.conditions, rfc3339(self._wall()))
            if conditions == existing and all(current.get(k) == v for k, v in fields.items()):
                self._fields = fields  # already there (a restarted autoscaler): no write
                self._conditions = _owned(conditions, status)
                return
            kept = {k: current[k] for k in STATUS_FIELDS if k in current}
            fields = {**kept, **fields}
        else:
            fields = {**self._fields, **fields}
            conditions = merge_conditions(
                self._conditions, status.conditions, rfc3339(self._wall())
            )
        owned = _owned(conditions, status)
        body: JSON = {
            "apiVersion": self._api_version,
            "kind": self._kind,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "status": {**fields, "conditions": owned},
        }
        await self._kube.apply(body, manager=FIELD_MANAGER, kind=self._where, sub="status")
        self._fields, self._conditions = fields, owned

    async def patch_status(self, fields: Mapping[str, Any]) -> None:
        """A JSON merge patch of some status fields (no resourceVersion: for map entries only
        this writer sets)."""
        await self._kube.patch(
            self._where,
            self.namespace,
            self.name,
            {"status": dict(fields)},
            manager=FIELD_MANAGER,
            sub="status",
        )

    async def event(self, type_: EventType, reason: str, message: str) -> None:
        now = rfc3339(self._wall())
        involved: dict[str, Any] = {
            "apiVersion": self._api_version,
            "kind": self._kind,
            "name": self.name,
            "namespace": self.namespace,
        }
        if self.uid:
            involved["uid"] = self.uid
        body = {
            "apiVersion": "v1",
            "kind": "Event",
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
        await self._kube.create("Event", self.namespace, body)


#: The status fields the autoscaler writes besides its conditions (ScalerStatus.fields()).
STATUS_FIELDS = ("queue", "desiredWorkers", "lastScaleTime")


def _owned(conditions: list[dict[str, Any]], status: ScalerStatus) -> list[dict[str, Any]]:
    """The entries of ``conditions`` of the types the scaler reports."""
    types = {x.type for x in status.conditions}
    return [x for x in conditions if x.get("type") in types]


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
