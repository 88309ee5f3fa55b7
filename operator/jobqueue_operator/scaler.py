"""The autoscaling loop of one JobQueue: read the queue, decide, scale the workers, report.

One :class:`Scaler` runs per JobQueue with autoscaling enabled (a kopf daemon starts it via
:func:`run_scaler`). Its I/O goes through three narrow ports, KEDA style, so the loop is tested
alone with in-memory fakes:

* :class:`MetricsSource` reads the queue (``stats()`` + ``workers()`` concurrently, one round
  trip of latency) and subscribes to the queue's enqueue notifications;
* :class:`ScaleTarget` reads and patches the worker Deployment's scale subresource, and marks
  pods with a ``pod-deletion-cost`` so a scale-down removes idle workers first (best effort: a
  failed mark is logged and the scale-down goes ahead, the ReplicaSet then picks the pods);
* :class:`Reporter` writes the JobQueue's status fields and posts one Event per scaling
  decision.

Timing: an enqueue notification wakes the loop at once (notifications arriving while an
evaluation runs, or within :data:`MIN_EVALUATION_GAP` of the last one, coalesce into one
more evaluation); otherwise it polls every ``pollIntervalSeconds``. Event-driven evaluations
trust the replica count read at the last poll and re-read it only before a write, so a burst of
enqueues costs Redis round trips, not API server requests. Polls take the count from a
:class:`ReplicaCache` (fed by the operator's existing watch of its Deployments) and ask the API
only the first time, when the cache does not know the Deployment, and before every write: an
idle JobQueue costs no API request at all (the watch delivers every change of the count).

Failure policy: a queue that cannot be read holds the current replicas and reports
``RedisReachable=False`` with the error (passwords redacted); the subscription reconnects with
exponential backoff. A failing Kubernetes call is logged, reported, and retried at the next
evaluation. The loop is cancellation-safe: cancelling :meth:`Scaler.run` (or setting the kopf
``stopped`` flag) stops the watcher task and closes the Redis connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jobqueue import backoff_delay
from jobqueue_operator import constants as c
from jobqueue_operator import metrics
from jobqueue_operator.autoscaling import (
    POD_DELETION_COST_ANNOTATION,
    Decision,
    Reason,
    Recommendation,
    ScalingInputs,
    WorkerHeartbeat,
    count_busy,
    decide,
    deletion_cost_changes,
    last_active,
    pod_deletion_costs,
    remember,
)
from jobqueue_operator.builders import child_name
from jobqueue_operator.ports import (
    REDIS_TIMEOUT,
    Condition,
    EventType,
    MetricsSource,
    QueueSnapshot,
    Reporter,
    ScalerConfig,
    ScalerStatus,
    ScaleTarget,
    StopFlag,
)
from jobqueue_operator.redishub import RedisHub
from jobqueue_operator.redisops import describe, redact
from jobqueue_operator.sources import open_source
from jobqueue_operator.spec import QueueSpec
from jobqueue_operator.status import merge_conditions

log = logging.getLogger(__name__)

# Timing of the loop (seconds).
MIN_EVALUATION_GAP = 0.05  # notifications closer than this coalesce into one evaluation
STATUS_MIN_INTERVAL = 5.0  # queue numbers alone are written at most this often
RECONNECT_BACKOFF_INITIAL = 0.2
RECONNECT_BACKOFF_MAX = 10.0
KUBERNETES_ERROR_RETRY = 2.0  # a failed Kubernetes call is retried this soon
KUBERNETES_REQUEST_TIMEOUT = (5.0, 10.0)  # connect, read
FIELD_MANAGER = "jobqueue-autoscaler"  # not the reconcile's: it owns spec.replicas alone
MERGE_PATCH = "application/merge-patch+json"  # the client would pick json-patch for a dict
APPLY_PATCH = "application/apply-patch+yaml"
STATUS_CONFLICT_RETRIES = 5


# ---------------------------------------------------------------------------------------------
# Pure helpers


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


# ---------------------------------------------------------------------------------------------
# The loop


@dataclass
class _Memory:
    """What the loop remembers between evaluations (all times on the monotonic clock)."""

    active_at: float  # the queue was last non-empty then (or the loop started)
    history: tuple[Recommendation, ...] = ()
    current: int | None = None  # replicas read at the last poll (or written by us)
    verified_at: float = float("-inf")  # replicas last read from the API (not a cache) then
    last_scale_time: str | None = None
    last_desired: int | None = None
    last_queue: QueueSnapshot | None = None
    redis_error: str | None = None
    reported: ScalerStatus | None = None
    reported_at: float = float("-inf")
    seeded: bool = False


@dataclass
class Scaler:
    """The autoscaling loop of one JobQueue. ``run()`` until cancelled."""

    metrics: MetricsSource
    target: ScaleTarget
    reporter: Reporter
    config: Callable[[], ScalerConfig]
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    secrets: tuple[str, ...] = ()  # never in a message (the Redis URL: its secret parts too)
    name: str = ""
    #: (namespace, JobQueue, pool, queue) of the Prometheus series this loop sets; None: none
    series: tuple[str, str, str, str] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _memory: _Memory | None = field(default=None, init=False)
    evaluations: int = field(default=0, init=False)

    def wake(self) -> None:
        """Ask for an evaluation now (an enqueue notification, a spec change)."""
        self._wake.set()

    async def run(self) -> None:
        """Evaluate on every wake-up and every poll interval, until cancelled."""
        watcher = asyncio.create_task(self._watch(), name=f"jobqueue-scaler-watch:{self.name}")
        try:
            last = float("-inf")
            fresh = True
            while True:
                gap = MIN_EVALUATION_GAP - (self.clock() - last)
                if gap > 0:
                    await asyncio.sleep(gap)
                self._wake.clear()
                last = self.clock()
                retry = await self.evaluate(fresh=fresh)
                poll = self.config().poll_interval
                timeout = min(poll, KUBERNETES_ERROR_RETRY) if retry else poll
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
                    fresh = False
                except TimeoutError:
                    fresh = True
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            with contextlib.suppress(Exception):
                await self.metrics.close()
            if self.series is not None:
                metrics.pool_stopped(*self.series[:3])

    async def _watch(self) -> None:
        """Keep the enqueue subscription up; reconnect with exponential backoff, full jitter.

        A subscription that comes up resets the backoff. The first loss is logged as a warning,
        further failed attempts at debug level (the evaluations report an unreachable Redis in
        status), the recovery at info.
        """
        failures = 0

        def on_wake() -> None:
            nonlocal failures
            if failures:
                log.info(
                    "queue subscription re-established after %d failed attempts",
                    failures - 1,
                    extra={"jobqueue": self.name},
                )
                failures = 0
            self.wake()

        while True:
            try:
                await self.metrics.watch(on_wake)
                error = "subscription ended"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = describe_error(exc, *self.secrets)
            failures += 1
            # Full jitter, so the autoscalers of many JobQueues on one Redis that went away
            # do not all come back in the same instant.
            backoff = backoff_delay(
                failures, RECONNECT_BACKOFF_INITIAL, RECONNECT_BACKOFF_MAX, random.random()
            )
            log.log(
                logging.WARNING if failures == 1 else logging.DEBUG,
                "queue subscription lost, reconnecting in %.1fs: %s",
                backoff,
                error,
                extra={"jobqueue": self.name, "retry_in": backoff},
            )
            self.wake()  # evaluate now: the poll notices (and reports) an unreachable Redis
            await asyncio.sleep(backoff)

    async def evaluate(self, *, fresh: bool = True) -> bool:
        """One evaluation: read, decide, write. Returns True when it should be retried soon.

        ``fresh``: re-read the replica count even if nothing will change (polls: from the
        target's cache, from the API the first time); event-driven
        evaluations use the last count. Every write is decided on a count just read from the
        API, so neither a stale cache nor an old count ever scales from a wrong number.
        """
        now = self.clock()
        cfg = self.config()
        spec = cfg.spec
        mem = self._memory
        if mem is None:
            mem = self._memory = _Memory(active_at=now)
        self.evaluations += 1

        # 1. The queue.
        snapshot: QueueSnapshot | None = None
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                snapshot = await self.metrics.snapshot()
            if mem.redis_error is not None:
                log.info("queue readable again", extra={"jobqueue": self.name})
            mem.redis_error = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = describe_error(exc, *self.secrets)
            if mem.redis_error is None:
                log.warning(
                    "queue unreadable, holding replicas: %s", message, extra={"jobqueue": self.name}
                )
                await self._event(
                    "Warning",
                    Reason.REDIS_UNREACHABLE.value,
                    f"queue unreadable, holding replicas: {message}",
                )
            mem.redis_error = message
        if snapshot is not None:
            mem.active_at = last_active(mem.active_at, snapshot.ready, snapshot.in_flight, now)
            mem.last_queue = snapshot

        # 2. The Deployment.
        verified = False  # mem.current was read from the API in this evaluation
        try:
            if fresh or mem.current is None:
                verified = mem.verified_at == float("-inf")  # never read from the API yet
                mem.current = await self.target.replicas(cached=not verified)
                if verified:
                    mem.verified_at = now
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return await self._kubernetes_failed("read the worker Deployment's scale", exc)
        if mem.current is None:
            await self._report(
                mem,
                snapshot,
                Condition(
                    c.CONDITION_SCALING,
                    "False",
                    Reason.TARGET_NOT_FOUND.value,
                    "the worker Deployment does not exist (yet)",
                ),
                now,
            )
            return False
        if not mem.seeded:
            # After a (re)start the current count counts as a recommendation made now, so an
            # operator restart never causes an immediate scale-down.
            mem.history = (Recommendation(at=now, replicas=mem.current),)
            mem.seeded = True
            try:
                await self.target.adopt(mem.current)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # best effort: the next scale write takes the field too
                log.info(
                    "could not take ownership of spec.replicas: %s",
                    describe_error(exc, *self.secrets),
                    extra={"jobqueue": self.name},
                )

        # 3. Decide.
        decision = self._decide(cfg, mem, snapshot, now)
        if decision.changed and not verified:
            try:
                mem.current = await self.target.replicas()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return await self._kubernetes_failed("read the worker Deployment's scale", exc)
            mem.verified_at = now
            if mem.current is None:
                return False
            decision = self._decide(cfg, mem, snapshot, now)
        mem.history = remember(mem.history, decision, now, spec.scale_down_stabilization_seconds)
        if self.series is not None:
            metrics.scale_decision(self.series[0], self.series[1], decision.reason.value)

        # 4. Write.
        if decision.changed:
            if decision.replicas < decision.current and snapshot is not None:
                await self._prefer_idle(snapshot.workers)
            try:
                await self.target.scale(decision.replicas)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return await self._kubernetes_failed(
                    f"scale the workers from {decision.current} to {decision.replicas}", exc
                )
            mem.current = decision.replicas
            mem.last_scale_time = rfc3339(self.wall())
            log.info(
                "%s: %s",
                decision.reason.value,
                decision.message,
                extra={
                    "jobqueue": self.name,
                    "replicas": decision.replicas,
                    "previous": decision.current,
                    "reason": decision.reason.value,
                },
            )
            await self._event("Normal", decision.reason.value, decision.message)
        if decision.recommendation is not None:
            mem.last_desired = decision.replicas
        self._export(mem)

        active = decision.reason not in (Reason.PAUSED, Reason.REDIS_UNREACHABLE)
        scaling = Condition(
            c.CONDITION_SCALING,
            "True" if active else "False",
            decision.reason.value,
            decision.message,
        )
        await self._report(mem, snapshot, scaling, now)
        return False

    def _export(self, mem: _Memory) -> None:
        """The Prometheus series of this loop: desired and current workers, queue depth."""
        if self.series is None:
            return
        namespace, name, pool, queue = self.series
        metrics.workers(namespace, name, pool, mem.last_desired, mem.current)
        if mem.last_queue is not None:
            depth = mem.last_queue.ready + mem.last_queue.in_flight
            metrics.queue_depth(namespace, name, queue, depth)

    async def _prefer_idle(self, workers: Sequence[WorkerHeartbeat]) -> None:
        """Mark idle pods for removal first; best effort. Without the marks the ReplicaSet
        picks the pods by its own rules (a busy worker may go, and its jobs come back through
        lease expiry), which is better than no scale-down at all."""
        try:
            await self.target.prefer_idle(workers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "could not set the pod deletion costs (idle workers first), scaling down "
                "anyway: %s",
                describe_error(exc, *self.secrets),
                extra={"jobqueue": self.name},
            )

    def _decide(
        self, cfg: ScalerConfig, mem: _Memory, snapshot: QueueSnapshot | None, now: float
    ) -> Decision:
        assert mem.current is not None
        return decide(
            ScalingInputs(
                current_replicas=mem.current,
                spec=cfg.spec,
                target_per_worker=cfg.target_per_worker,
                now=now,
                last_active_at=mem.active_at,
                ready=snapshot.ready if snapshot else 0,
                in_flight=snapshot.in_flight if snapshot else 0,
                busy_workers=count_busy(snapshot.workers) if snapshot else 0,
                recommendations=mem.history,
                redis_ok=snapshot is not None,
                redis_error=mem.redis_error or "",
            )
        )

    async def _kubernetes_failed(self, what: str, exc: Exception) -> bool:
        message = f"could not {what}: {describe_error(exc, *self.secrets)}"
        log.warning(message, extra={"jobqueue": self.name})
        mem = self._memory
        assert mem is not None
        await self._report(
            mem,
            mem.last_queue if mem.redis_error is None else None,
            Condition(c.CONDITION_SCALING, "False", c.REASON_SCALE_FAILED, message),
            self.clock(),
        )
        return True

    async def _report(
        self, mem: _Memory, snapshot: QueueSnapshot | None, scaling: Condition, now: float
    ) -> None:
        redis = (
            Condition(c.CONDITION_REDIS_REACHABLE, "False", c.REASON_REDIS_FAILED, mem.redis_error)
            if mem.redis_error is not None
            else Condition(
                c.CONDITION_REDIS_REACHABLE, "True", c.REASON_REDIS_OK, c.MESSAGE_REDIS_OK
            )
        )
        status = ScalerStatus(
            queue=snapshot,
            desired_workers=mem.last_desired,
            last_scale_time=mem.last_scale_time,
            conditions=(scaling, redis),
            format=self.metrics.format,
            wakeup=self.metrics.wakeup,
        )
        previous = mem.reported
        if previous is not None and status.significant() == previous.significant():
            # (not ``status == previous``: heartbeats in the snapshot change every read)
            same = status.written() == previous.written()
            if same or now - mem.reported_at < STATUS_MIN_INTERVAL:
                return
        try:
            await self.reporter.report(status)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "could not write the status: %s",
                describe_error(exc, *self.secrets),
                extra={"jobqueue": self.name},
            )
            return
        mem.reported, mem.reported_at = status, now

    async def _event(self, type_: EventType, reason: str, message: str) -> None:
        try:
            await self.reporter.event(type_, reason, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "could not post an event: %s",
                describe_error(exc, *self.secrets),
                extra={"jobqueue": self.name},
            )


# ---------------------------------------------------------------------------------------------
# Concrete ports: Redis (the jobqueue protocol) and Kubernetes (the client, in threads)


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
    return owns_replicas((live.get("metadata") or {}).get("managedFields") or [], manager)


def _is_status(exc: BaseException, *codes: int) -> bool:
    return getattr(exc, "status", None) in codes


ReplicaEntry = tuple[int | None, bool]  # spec.replicas, and whether the autoscaler applies it


def replica_entry(spec: Mapping[str, Any], meta: Mapping[str, Any]) -> ReplicaEntry:
    """What :class:`ReplicaCache` keeps of one Deployment as a watch delivers it."""
    replicas = spec.get("replicas")
    count = replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else None
    return count, owns_replicas(meta.get("managedFields") or (), FIELD_MANAGER)


class ReplicaCache:
    """spec.replicas of Deployments as a watch last delivered them, keyed by namespace and name,
    and whether the autoscaler's field manager already applies that field.

    The operator already watches every Deployment it manages (kopf, to repair drift); its
    ``replicas`` index (:func:`replica_entry` per Deployment, filled before any handler or
    daemon runs, entries dropped on delete) is attached here, so the scalers' polls need no GET
    of the scale subresource, and a restarted autoscaler takes over spec.replicas (``adopt``)
    only where it does not own it yet. Without an index, :meth:`observe` feeds it. A
    Deployment it does not know (deleted, not created yet) is read from the API. Only touched
    from the event loop's thread.
    """

    def __init__(self, index: Mapping[tuple[str, str], Iterable[ReplicaEntry]] | None = None):
        self.index = index
        self._entries: dict[tuple[str, str], ReplicaEntry] = {}

    def observe(
        self,
        namespace: str,
        name: str,
        replicas: int | None,
        managed_fields: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Record what a watch event says; ``replicas`` None: the Deployment was deleted."""
        if replicas is None:
            self._entries.pop((namespace, name), None)
        else:
            self._entries[(namespace, name)] = (
                replicas,
                owns_replicas(managed_fields, FIELD_MANAGER),
            )

    def _entry(self, namespace: str, name: str) -> ReplicaEntry | None:
        if self.index is not None:
            return next(iter(self.index.get((namespace, name), ())), None)
        return self._entries.get((namespace, name))

    def get(self, namespace: str, name: str) -> int | None:
        """The last count seen, or None if unknown."""
        entry = self._entry(namespace, name)
        return None if entry is None else entry[0]

    def adopted(self, namespace: str, name: str, replicas: int) -> bool:
        """True when the autoscaler already applies spec.replicas, at ``replicas``."""
        entry = self._entry(namespace, name)
        return entry is not None and entry == (replicas, True)


def owns_replicas(managed_fields: Sequence[Mapping[str, Any]], manager: str) -> bool:
    """Whether ``manager`` applies (server-side apply) a Deployment's spec.replicas."""
    for entry in managed_fields:
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {}):
            return True
    return False


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

    async def adopt(self, replicas: int) -> None:
        """Apply spec.replicas as the autoscaler's field manager (no request when the watch
        shows it already does, at that count: a restarted operator writes nothing)."""
        if self._cache is not None and self._cache.adopted(
            self.namespace, self.deployment, replicas
        ):
            return
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": self.deployment, "namespace": self.namespace},
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
                return
            except Exception as exc:
                if not _is_status(exc, 409) or attempt == STATUS_CONFLICT_RETRIES - 1:
                    raise

    async def patch_status(self, fields: Mapping[str, Any]) -> None:
        """A JSON merge patch of some status fields (no resourceVersion: for map entries only
        this writer sets)."""
        await asyncio.to_thread(
            self._custom.patch_namespaced_custom_object_status,
            self._group,
            self._version,
            self.namespace,
            self._plural,
            self.name,
            {"status": dict(fields)},
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


# ---------------------------------------------------------------------------------------------
# The entry point for the operator's kopf daemon


async def run_scaler(
    *,
    namespace: str,
    name: str,
    queue_name: str,
    redis_url: str,
    config: ScalerConfig | Callable[[], ScalerConfig],
    deployment: str | None = None,
    api_client: Any = None,
    reporter: Reporter | None = None,
    uid: str | None = None,
    stopped: StopFlag | None = None,
    pool: str | None = None,
    replicas_cache: ReplicaCache | None = None,
    queue: QueueSpec | None = None,
    allow_config: bool = False,
    hub: RedisHub | None = None,
) -> None:
    """Run the autoscaler of JobQueue ``namespace/name`` until ``stopped`` or cancelled.

    ``config`` may be a callable (e.g. reading kopf's live ``spec``) so edits of the
    autoscaling block apply from the next evaluation. ``api_client`` is a configured
    ``kubernetes.client.ApiClient`` (default: one on the default configuration). The worker
    Deployment defaults to ``<name>-worker``. ``pool``: the name of a pool of ``spec.workers``
    (its status goes to ``status.poolScaling.<pool>``, see :class:`PoolReporter`).
    ``replicas_cache``: where a watch keeps the Deployments' replica counts (polls read it).
    ``queue``: the pool's queue format (default: ``queue_name`` in our protocol); a foreign
    format is read where that library keeps it (``allow_config``: ``spec.redis.allowConfig``).
    ``hub``: the shared clients and subscriptions per Redis endpoint (our protocol's queues).
    """
    from kubernetes import client

    api = api_client if api_client is not None else client.ApiClient()
    get_config = config if callable(config) else (lambda: config)
    scaler = Scaler(
        metrics=open_source(
            redis_url, queue or QueueSpec(), queue_name, allow_config=allow_config, hub=hub
        ),
        target=KubernetesScaleTarget(
            api,
            namespace,
            deployment or child_name(name, c.COMPONENT_WORKER),
            cache=replicas_cache,
        ),
        reporter=reporter or _reporter(api, namespace, name, uid, pool),
        config=get_config,
        secrets=(redis_url,),  # the URL and its secret parts
        name=f"{namespace}/{name}" + (f"/{pool}" if pool else ""),
        series=(namespace, name, pool or c.DEFAULT_POOL, queue_name),
    )
    await run_until_stopped(scaler.run(), stopped)


def _reporter(api: Any, namespace: str, name: str, uid: str | None, pool: str | None) -> Reporter:
    reporter = KubernetesReporter(api, namespace, name, uid=uid)
    return reporter if pool is None else PoolReporter(reporter, pool)


async def run_until_stopped(main: Awaitable[None], stopped: StopFlag | None) -> None:
    """Await ``main`` until it ends or ``stopped`` is set; then cancel it and wait for it."""
    task = asyncio.ensure_future(main)
    if stopped is None:
        await task
        return
    stop = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stop):
            pending.cancel()
        await asyncio.gather(task, stop, return_exceptions=True)
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
