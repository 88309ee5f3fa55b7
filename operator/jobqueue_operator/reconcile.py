"""The one reconcile of a JobQueue, and its clean-up on delete.

:meth:`Reconciler.reconcile` is the only path that changes children: kopf's create, update and
resume handlers, the resync timer, and the watches on children and on source Secrets all call
it, and it never looks at which of them did. It gathers inputs (the spec, the source Secret
values, the live children), builds the desired children with the pure builders, applies the ones
that differ (server-side apply), prunes the ones no longer wanted, and writes status only when
it changed. It is idempotent: running it again on an unchanged world changes nothing and makes
no write. Calls for the same JobQueue are serialized by a per-object lock.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from jobqueue_operator import adapters, builders, claims, diffing, metrics, redisops
from jobqueue_operator import constants as c
from jobqueue_operator import material as materials
from jobqueue_operator.builders import Images, OperatorPeer, SecretMaterial
from jobqueue_operator.caches import Views
from jobqueue_operator.kube import CHILD_KINDS, Kube, KubeError
from jobqueue_operator.kubetypes import JSON, CondSpec, JobQueueRef, Manifest, rv_of, uid_of
from jobqueue_operator.purging import Purger, RetryLater, purge_queues
from jobqueue_operator.redisops import NOT_CHECKED, RedisCheck
from jobqueue_operator.spec import (
    JobQueueSpec,
    QueueSpec,
    SpecError,
    parse_spec,
)
from jobqueue_operator.status import Problem, desired_status, status_patch, transitions

log = logging.getLogger(__name__)

Key = tuple[str, str]
EventType = Literal["Normal", "Warning"]
STATUS_CONFLICT_RETRIES = 5
HANDOVER_ATTEMPTS = 3  # conditional hand-overs of spec.replicas before giving up this pass


class EventPoster(Protocol):
    def __call__(self, ref: JobQueueRef, type_: EventType, reason: str, message: str) -> None: ...


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reconcile did; ``retry`` asks the caller to try again soon."""

    applied: tuple[str, ...] = ()
    pruned: tuple[str, ...] = ()
    problem: Problem | None = None
    retry: bool = False


@dataclass
class _Locks:
    """One asyncio.Lock per JobQueue, plus the set of triggers already waiting for one."""

    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    waiting: set[Key] = field(default_factory=set)

    def get(self, key: Key) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())

    def forget(self, key: Key) -> None:
        self.locks.pop(key, None)


RedisChecker = Callable[[str, QueueSpec, str], Awaitable[RedisCheck]]


class Reconciler:
    """Reconciles JobQueues; one per operator process (kept in kopf's memo)."""

    def __init__(
        self,
        kube: Kube,
        images: Images,
        post_event: EventPoster,
        *,
        redis_check: RedisChecker = redisops.check,
        purge: Purger = redisops.purge,
        clock: Callable[[], float] = time.monotonic,
        operator_peer: OperatorPeer | None = None,
    ) -> None:
        self.kube = kube
        self.images = images
        self.operator_peer = operator_peer
        self.post_event = post_event
        self.redis_check = redis_check
        self.purge = purge
        self.clock = clock
        self.urls = materials.RedisUrls()
        self.views = Views()
        self._locks = _Locks()
        self._redis_cache: dict[Key, tuple[str, float, RedisCheck]] = {}
        # per JobQueue, the inputs of the last reconcile that found every child as desired
        self._settled: dict[Key, str] = {}
        # per JobQueue, its uid, when the reconcile last wrote its status and what came back
        self._wrote: dict[Key, tuple[str, float, Mapping[str, Any]]] = {}
        # Checks at once (a restart reconciles every JobQueue together), and the re-checks
        # scheduled after a failed one.
        self._redis_checks = asyncio.Semaphore(c.REDIS_CHECKS_AT_ONCE)
        self._rechecks: set[asyncio.Future[None]] = set()

    # -- entry points ------------------------------------------------------------------------

    async def reconcile(self, body: Mapping[str, Any]) -> Outcome:
        """Bring one JobQueue's children and status to what its spec says. Idempotent."""
        ref = JobQueueRef.from_body(body)
        if ref.deleting:
            return Outcome()
        async with self._locks.get(ref.key):
            return await self._counted(ref, body)

    async def trigger(self, namespace: str, name: str) -> None:
        """Reconcile by name (from a watch on a child or a source Secret), reading the object
        fresh. Triggers that arrive while one is already waiting coalesce into it."""
        key = (namespace, name)
        if key in self._locks.waiting:
            return
        self._locks.waiting.add(key)
        try:
            async with self._locks.get(key):
                self._locks.waiting.discard(key)
                if self.views.jobqueues is not None:
                    body = self.views.jobqueue(key)
                else:
                    body = await self.kube.get(c.KIND, namespace, name)
                if body is None:
                    return
                ref = JobQueueRef.from_body(body)
                if not ref.deleting:
                    await self._counted(ref, body)
        finally:
            self._locks.waiting.discard(key)

    # -- the reconcile -----------------------------------------------------------------------

    async def _create_autoscaled(self, manifest: Manifest, replicas: int) -> JSON:
        """Create an autoscaled worker Deployment at ``replicas`` (its minReplicas) rather
        than Kubernetes' default of 1, in one write: the manifest carries the applied hash of
        the desired one (without replicas), so no second apply follows while nothing changes.
        The field passes to the autoscaler at its first scale (an Update takes it), or at the
        hand-over that precedes our next apply, which no longer sends it."""
        first: Manifest = copy.deepcopy(manifest)
        first["spec"]["replicas"] = replicas
        return await self.kube.apply(first)

    async def _hand_over_replicas(self, manifest: Mapping[str, Any], live: JSON | None) -> None:
        """Before an apply that stops sending the worker's spec.replicas (autoscaling was just
        switched on), let the autoscaler co-own the field at its live value: server-side apply
        would otherwise reset it to 1 and restart every worker but one.

        ``live`` comes from the watch and may be behind: the autoscaler, started by the same
        change, can already have scaled. The hand-over is conditional on the version read; on
        a conflict the Deployment is read again and the decision made anew."""
        for _ in range(HANDOVER_ATTEMPTS):
            if live is None or not adapters.replicas_handover_needed(manifest, live):
                return
            meta = live["metadata"]
            target = adapters.KubernetesScaleTarget(self.kube, meta["namespace"], meta["name"])
            try:
                await target.adopt(
                    int(live["spec"]["replicas"]), resource_version=meta["resourceVersion"]
                )
                return
            except KubeError as exc:
                if exc.status != 409:  # else: it changed since; read it again, decide anew
                    raise
            live = await self.kube.get("Deployment", meta["namespace"], meta["name"])
        raise KubeError(409, "Conflict", "spec.replicas kept changing during the hand-over")

    async def _counted(self, ref: JobQueueRef, body: Mapping[str, Any]) -> Outcome:
        """The reconcile, its problems and errors counted per JobQueue (a Prometheus series)."""
        try:
            outcome = await self._reconcile(ref, body)
        except Exception:
            metrics.reconcile_error(ref.namespace, ref.name)
            raise
        if outcome.problem is not None:
            metrics.reconcile_error(ref.namespace, ref.name)
        return outcome

    async def _reconcile(self, ref: JobQueueRef, body: Mapping[str, Any]) -> Outcome:
        try:
            spec = parse_spec(body.get("spec") or {})
        except SpecError as exc:
            problem = Problem(c.REASON_INVALID_SPEC, str(exc))
            await self._report(ref, body, None, problem, NOT_CHECKED, {})
            return Outcome(problem=problem)

        live = await self._live_children(ref, routes=_has_route(spec, body))
        material = await materials.gather(self._secret, ref, spec, live)
        if isinstance(material, Problem):
            # Without the URL nothing can be built: leave the children as they are (running
            # pods keep their copies) and say why.
            await self._report(ref, body, spec, material, NOT_CHECKED, live)
            return Outcome(problem=material)

        gateway_api = await self._gateway_api(spec)
        applied: list[str] = []
        errors: list[str] = []
        pruned: list[str] = []
        await claims.sync(self.kube, ref, spec, applied, pruned, errors)
        # What the children depend on: unchanged since a reconcile that found every child as
        # desired means nothing to build or compare (a resync of 1,000 JobQueues is a burst).
        inputs = _fingerprint(body, live, material, gateway_api)
        if self._settled.get(ref.key) != inputs:
            await self._apply_children(
                ref, spec, material, live, gateway_api, applied, pruned, errors
            )
            settled = not (applied or pruned or errors)
            self._settled[ref.key] = inputs if settled else ""

        self.urls.publish(ref.key, material.redis_url)
        redis = await self._check_redis(ref, spec, material.redis_url)
        failed = Problem(c.REASON_APPLY_FAILED, "; ".join(errors)) if errors else None
        if failed is None and redis.format_error is not None:
            failed = Problem(
                c.REASON_QUEUE_FORMAT, f"the queue cannot be read: {redis.format_error}"
            )
        if applied:
            # Not on creation (no condition reported yet): the Ready Event that follows says
            # the children are there, and 1,000 new JobQueues would post 1,000 more Events.
            if (body.get("status") or {}).get("conditions"):
                self.post_event(ref, "Normal", c.EVENT_APPLIED, ", ".join(applied))
            log.info("applied %s: %s", ref, ", ".join(applied))
        if pruned:
            self.post_event(ref, "Normal", c.EVENT_PRUNED, "deleted " + ", ".join(pruned))
            log.info("pruned %s: %s", ref, ", ".join(pruned))
        await self._report(ref, body, spec, failed, redis, live, gateway_api=gateway_api)
        return Outcome(tuple(applied), tuple(pruned), failed, retry=bool(errors))

    async def _apply_children(
        self,
        ref: JobQueueRef,
        spec: JobQueueSpec,
        material: SecretMaterial,
        live: dict[tuple[str, str], JSON],
        gateway_api: bool,
        applied: list[str],
        pruned: list[str],
        errors: list[str],
    ) -> None:
        """Apply the desired children that differ from ``live``, prune the unwanted ones
        (``live`` follows what was done)."""
        desired = [
            diffing.with_applied_hash(m)
            for m in builders.desired_children(
                ref, spec, material, self.images, gateway_api=gateway_api,
                operator=self.operator_peer,
            )
        ]  # fmt: skip
        initial = builders.initial_replicas(ref, spec)
        for manifest in desired:
            key = diffing.child_key(manifest)
            if not diffing.needs_apply(manifest, live.get(key)):
                continue
            try:
                if live.get(key) is None and key[0] == "Deployment" and key[1] in initial:
                    result = await self._create_autoscaled(manifest, initial[key[1]])
                else:
                    await self._hand_over_replicas(manifest, live.get(key))
                    result = await self.kube.apply(manifest)
            except KubeError as exc:
                errors.append(f"{key[0]}/{key[1]}: {redisops.redact(str(exc), material.values())}")
                continue
            before = live.get(key)
            verb = "created" if before is None else "updated"
            if before is None or rv_of(before) != rv_of(result):
                applied.append(f"{verb} {key[0]}/{key[1]}")
            live[key] = result
        for obj in diffing.to_prune(desired, live.values(), ref.uid):
            kind, name = diffing.child_key(obj)
            try:
                await self.kube.delete(kind, ref.namespace, name, uid=uid_of(obj))
            except KubeError as exc:
                errors.append(f"{kind}/{name}: {exc}")
                continue
            pruned.append(f"{kind}/{name}")
            live.pop((kind, name), None)

    async def _gateway_api(self, spec: JobQueueSpec) -> bool:
        """Whether HTTPRoutes can be created (asked only when the spec wants one)."""
        if not (spec.api.enabled and spec.api.http_route is not None):
            return False
        try:
            return await self.kube.serves(builders.HTTPROUTE_API_VERSION, "httproutes")
        except KubeError as exc:
            log.warning("could not discover the Gateway API: %s", exc)
            return False

    async def _live_children(
        self, ref: JobQueueRef, *, routes: bool = True
    ) -> dict[tuple[str, str], JSON]:
        """This JobQueue's children as they are, by (kind, name): from the watch cache (the
        ``children`` index), or LISTed when there is none. HTTPRoutes (an optional CRD, not
        watched) are LISTed when ``routes``: the spec asks for one or status says one exists."""
        selector = builders.instance_selector(ref.name)
        items = self.views.children_of(ref.key)
        if items is None:
            kinds: tuple[str, ...] = CHILD_KINDS
        else:
            kinds = ("HTTPRoute",) if routes else ()
        lists = await asyncio.gather(
            *(self.kube.list(kind, ref.namespace, selector) for kind in kinds)
        )
        items = (items or []) + [obj for listed in lists for obj in listed]
        return {diffing.child_key(obj): obj for obj in items if diffing.controlled_by(obj, ref.uid)}

    async def _secret(self, namespace: str, name: str) -> JSON | None:
        """A Secret a JobQueue reads, from the watch cache (one GET the first time)."""
        return await self.views.secrets.get(
            namespace, name, lambda ns, n: self.kube.get("Secret", ns, n)
        )

    async def _check_redis(self, ref: JobQueueRef, spec: JobQueueSpec, url: str) -> RedisCheck:
        """Read the queue, at most once per REDIS_CHECK_TTL per JobQueue and URL."""
        queue = spec.queue_identity(ref.namespace, ref.name)
        source = spec.queue.model_dump_json()
        fingerprint = hashlib.sha256(f"{url}\n{queue}\n{source}".encode()).hexdigest()
        cached = self._redis_cache.get(ref.key)
        now = self.clock()
        if cached and cached[0] == fingerprint and now - cached[1] < c.REDIS_CHECK_TTL:
            return cached[2]
        async with self._redis_checks:
            result = await self.redis_check(url, spec.queue, queue)
            if result.ok is False:  # once more before saying so: a blip (or an event loop
                await asyncio.sleep(c.REDIS_CHECK_RETRY_DELAY)  # busy with a restart) is not
                result = await self.redis_check(url, spec.queue, queue)  # an outage
        self._redis_cache[ref.key] = (fingerprint, self.clock(), result)
        if result.ok is False:  # look again soon (a reconcile from the watch caches)
            asyncio.get_running_loop().call_later(
                c.REDIS_RECHECK_DELAY, self._recheck, ref.namespace, ref.name
            )
        return result

    def _recheck(self, namespace: str, name: str) -> None:
        task = asyncio.ensure_future(self.trigger(namespace, name))
        self._rechecks.add(task)
        task.add_done_callback(self._rechecks.discard)

    async def _report(
        self,
        ref: JobQueueRef,
        body: Mapping[str, Any],
        spec: JobQueueSpec | None,
        problem: Problem | None,
        redis: RedisCheck,
        live: Mapping[tuple[str, str], JSON],
        *,
        gateway_api: bool = False,
    ) -> None:
        """Write status if it differs; one Event per condition that changed."""
        desired = desired_status(
            ref,
            spec,
            problem=problem,
            redis=redis,
            api=live.get(("Deployment", builders.child_name(ref.name, c.COMPONENT_API))),
            workers=live.get(("Deployment", builders.child_name(ref.name, c.COMPONENT_WORKER))),
            children=live,
            gateway_api=gateway_api,
        )
        seen = body.get("status")
        echo = self._wrote.pop(ref.key, None)
        if echo and echo[0] == ref.uid and self.clock() - echo[1] < c.STATUS_ECHO_SECONDS:
            seen = echo[2]  # our last write, which the watch's copy may not show yet
            self._wrote[ref.key] = echo
        if status_patch(seen, desired, now_rfc3339()) is None:
            return  # already as desired: no read, no write
        for _ in range(STATUS_CONFLICT_RETRIES):
            fresh = await self.kube.get(c.KIND, ref.namespace, ref.name)
            if fresh is None or (fresh.get("metadata") or {}).get("uid") != ref.uid:
                return
            current = fresh.get("status")
            patch = status_patch(current, desired, now_rfc3339())
            if patch is None:
                return
            version = (fresh.get("metadata") or {}).get("resourceVersion")
            try:
                written = await self.kube.patch_status(ref.namespace, ref.name, patch, version)
            except KubeError as exc:
                if exc.status == 409:
                    continue
                raise
            if written is not None:
                self._wrote[ref.key] = (ref.uid, self.clock(), written.get("status") or {})
            for cond in transitions(current, desired):
                self._condition_event(ref, cond, current)
            return
        log.warning("status of %s: gave up after %d conflicts", ref, STATUS_CONFLICT_RETRIES)

    def _condition_event(
        self, ref: JobQueueRef, cond: CondSpec, current: Mapping[str, Any] | None
    ) -> None:
        had = any(x.get("type") == cond.type for x in (current or {}).get("conditions") or [])
        if cond.type == c.CONDITION_DEGRADED and cond.status == "False" and not had:
            return  # the first "not degraded" is no news
        if cond.reason == c.REASON_NOT_EXPOSED:
            return  # nor is "not exposed", which is the default
        bad = (cond.type == c.CONDITION_DEGRADED) == (cond.status == "True")
        kind: EventType = "Warning" if bad and cond.status != "Unknown" else "Normal"
        self.post_event(ref, kind, cond.reason, f"{cond.type}={cond.status}: {cond.message}")

    # -- delete ------------------------------------------------------------------------------

    async def finalize(self, body: Mapping[str, Any], retry: int = 0) -> None:
        """Delete the children explicitly (garbage collection may lag), keep the source
        Secret, and purge the queue's Redis keys when ``deletionPolicy: Purge``."""
        ref = JobQueueRef.from_body(body)
        try:
            spec: JobQueueSpec | None = parse_spec(body.get("spec") or {})
        except SpecError as exc:
            log.warning("deleting %s with an unparseable spec (keys kept): %s", ref, exc)
            spec = None
        async with self._locks.get(ref.key):
            live = await self._live_children(ref)
            deleted: list[str] = []

            async def delete(kinds: tuple[str, ...]) -> None:
                for (kind, name), obj in list(live.items()):
                    if kind in kinds and await self.kube.delete(
                        kind, ref.namespace, name, uid=uid_of(obj)
                    ):
                        deleted.append(f"{kind}/{name}")

            await delete(("Deployment", "StatefulSet"))  # first stop the pods
            purged = ""
            if spec is not None and spec.deletion_policy == "Purge":
                purged = await purge_queues(
                    self.kube, self.purge, self._secret, ref, spec, live, retry
                )
            await delete(("Service", "Secret", "Ingress", "HTTPRoute", "NetworkPolicy"))
            try:
                released = await claims.release(self.kube, ref, spec)
            except KubeError as exc:
                raise RetryLater(f"worker volume claims: {exc}") from None
        self.urls.forget(ref.key)
        self._redis_cache.pop(ref.key, None)
        self._settled.pop(ref.key, None)
        self._wrote.pop(ref.key, None)
        self._locks.forget(ref.key)
        metrics.forget(ref.namespace, ref.name)
        kept = (purged or "Redis keys kept (deletionPolicy: Retain)") + released
        removed = ", ".join(sorted(deleted)) or "no children left"
        # Best effort: in a namespace being deleted the API server refuses new Events.
        self.post_event(ref, "Normal", c.EVENT_FINALIZED, f"deleted {removed}; {kept}")
        log.info("finalized %s: deleted %d children; %s", ref, len(deleted), kept)


def _fingerprint(
    body: Mapping[str, Any],
    live: Mapping[tuple[str, str], JSON],
    material: SecretMaterial,
    gateway_api: bool,
) -> str:
    """A digest of what the desired children are built from and compared with: the spec and
    metadata the builders read, every live child's resourceVersion, the secret values."""
    meta = body.get("metadata") or {}
    parts = [
        json.dumps(body.get("spec") or {}, sort_keys=True),
        str(meta.get("uid")),
        str(meta.get("generation")),
        json.dumps(sorted((k[0], k[1], rv_of(v) or "") for k, v in live.items())),
        repr(material),
        str(gateway_api),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _has_route(spec: JobQueueSpec, body: Mapping[str, Any]) -> bool:
    """Whether the JobQueue wants an HTTPRoute or may still have one (to prune)."""
    if spec.api.enabled and spec.api.http_route is not None:
        return True
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == c.CONDITION_EXPOSED and "HTTPRoute" in str(cond.get("message")):
            return True
    return False
