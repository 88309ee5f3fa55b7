"""kopf handlers: the triggers of the one reconcile, the finalizer, the autoscaler and schedules.

Triggers (none of them carries logic of its own; all end in ``Reconciler.reconcile``):

* create / update (of ``spec``) / resume of a JobQueue;
* a timer every ``RESYNC_INTERVAL_SECONDS`` (drift repair, a safety net);
* any change of a child (Deployments, StatefulSets, Services, Secrets labelled
  ``managed-by: jobqueue-operator``): the owner is found by its controller ownerReference, so a
  hand-deleted or hand-edited child is repaired in about a second, and status follows readiness;
* any change of a Secret a JobQueue references (``redis.urlFrom``, ``api.authTokenSecretRef``),
  found through the ``source_secrets`` index: a rotated URL reaches the copies at once.

Indices (kopf fills them from its watches before any handler runs; see caches.py): ``children``
(each JobQueue's children, what the reconcile compares against instead of LISTing them),
``jobqueues`` (a child's event reconciles its owner without a GET), ``replicas`` (the
autoscalers' replica counts, so their polls read no Deployment from the API server) and
``source_secrets``. An idle operator sends nothing but its watches.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import kopf

from jobqueue_operator import caches, exiting, metrics, redisops, schedules
from jobqueue_operator import constants as c
from jobqueue_operator.adapters import KUBERNETES_REQUEST_TIMEOUT, ReplicaCache, replica_count
from jobqueue_operator.autoscaler import scaled_pools, supervise
from jobqueue_operator.builders import Images
from jobqueue_operator.kube import Kube, load_api_client
from jobqueue_operator.kubetypes import JobQueueRef
from jobqueue_operator.ports import PUBSUB_READ_TIMEOUT
from jobqueue_operator.purging import RetryLater
from jobqueue_operator.reconcile import EventType, Reconciler
from jobqueue_operator.redishub import RedisHub
from jobqueue_operator.scheduler import ScheduleRunner
from jobqueue_operator.settings import OperatorSettings, get_settings
from jobqueue_operator.sources import CLIENT_OPTIONS
from jobqueue_operator.spec import JobQueueSpec, SpecError, parse_spec

log = logging.getLogger(__name__)

RESOURCE = (c.GROUP, c.VERSION, c.PLURAL)
CHILD_LABELS = {c.LABEL_MANAGED_BY: c.MANAGED_BY}


class _QuietKopfEvents(logging.Filter):
    """kopf posts its own log lines about an object as Events too: at INFO that is an Event
    per handler run ("Timer 'resync' succeeded."), a write per JobQueue every resync. Its
    lines below WARNING stay in the log, unposted; the operator's own Events (applied,
    scaled, conditions) and kopf's warnings and errors are posted at the configured level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            record.k8s_skip = True
        return True


_QUIET_KOPF_EVENTS = _QuietKopfEvents()


def configure_kopf(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    """kopf's settings: our finalizer name, state in status (so an idle operator writes no
    annotations), Events at the configured level (none for kopf's own INFO lines), no
    peering unless asked for."""
    logging.getLogger("kopf.objects").addFilter(_QUIET_KOPF_EVENTS)
    settings.persistence.finalizer = c.FINALIZER
    settings.persistence.progress_storage = kopf.StatusProgressStorage(name=c.KOPF_STATUS_FIELD)
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(name=c.KOPF_STATUS_FIELD)
    settings.posting.level = logging.getLevelNamesMapping()[ours.event_level]
    settings.peering.standalone = not ours.peering
    settings.peering.mandatory = ours.peering
    settings.peering.name = ours.peering_name
    # One ClusterKopfPeering per release, whichever namespaces it watches (no object to keep
    # in every namespace a glob matches).
    settings.peering.clusterwide = True
    settings.peering.lifetime = ours.peering_lifetime
    settings.peering.priority = ours.peering_priority or random.randint(1, 2**31 - 1)
    settings.watching.server_timeout = 300
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10


def post_event(ref: JobQueueRef, type_: EventType, reason: str, message: str) -> None:
    """An Event on the JobQueue, through kopf's poster (honours the posting level)."""
    body = cast(kopf.Body, ref.body_stub())  # kopf reads plain dicts as bodies
    text = message[: c.EVENT_MESSAGE_LIMIT]
    if type_ == "Warning":
        kopf.warn(body, reason=reason, message=text)
    else:
        kopf.info(body, reason=reason, message=text)


def _reconciler(memo: Any, indices: Mapping[str, Any] | None = None) -> Reconciler:
    """The reconciler; ``indices``: a handler's keyword arguments, where kopf passes its
    indices (the watch caches the reconcile reads, see caches.py)."""
    reconciler = memo.get("reconciler")
    if not isinstance(reconciler, Reconciler):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    if indices is not None:
        reconciler.views.attach(indices)
    return reconciler


def _hub(memo: Any) -> RedisHub:
    hub = memo.get("redis")
    if not isinstance(hub, RedisHub):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return hub


def _replica_cache(memo: Any, indices: Mapping[str, Any]) -> ReplicaCache | None:
    """The autoscalers' replica cache, on the ``replicas`` index kopf passes to daemons."""
    cache = memo.get("replicas")
    if not isinstance(cache, ReplicaCache):
        return None
    if cache.index is None and "replicas" in indices:
        cache.index = indices["replicas"]
    return cache


# ---------------------------------------------------------------------------------------------
# Operator lifecycle


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    ours = get_settings()
    configure_kopf(settings, ours)
    try:
        api_client = await asyncio.to_thread(load_api_client, ours.kube_threads)
    except Exception as exc:  # no kubeconfig, no in-cluster config: nothing to retry
        raise kopf.PermanentError(f"no Kubernetes configuration: {exc}") from exc
    kube = Kube(api_client, ours.kube_threads)
    if ours.peering:
        await kube.ensure_cluster_peering(ours.peering_name)
    # The autoscalers' calls (asyncio.to_thread) get as many threads as the reconciles: the
    # default executor's min(32, cores + 4) would queue 1,000 autoscalers behind 6 threads.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=ours.kube_threads, thread_name_prefix="kube-aux")
    )
    images = Images(
        api=ours.default_api_image,
        worker=ours.default_worker_image,
        redis=ours.default_redis_image,
        pull_policy=ours.image_pull_policy,
    )
    hub = RedisHub(read_timeout=PUBSUB_READ_TIMEOUT, **CLIENT_OPTIONS)
    memo["redis"] = hub
    memo["reconciler"] = Reconciler(
        kube,
        images,
        post_event,
        operator_peer=ours.operator_peer(),
        redis_check=functools.partial(redisops.check, hub=hub),
    )
    memo["replicas"] = ReplicaCache()
    memo["scaler_kube"] = kube.sibling(KUBERNETES_REQUEST_TIMEOUT)
    memo["exit"] = exiting.ExitLatch()
    if ours.metrics_port:
        metrics.serve(ours.metrics_port)
    log.info(
        "jobqueue-operator started",
        extra={
            "namespaces": list(ours.namespaces()) or "*",
            "resync": ours.resync_interval_seconds,
        },
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    reconciler = memo.get("reconciler")
    if isinstance(reconciler, Reconciler):
        reconciler.kube.close()
    hub = memo.get("redis")
    if isinstance(hub, RedisHub):
        await hub.close()


# ---------------------------------------------------------------------------------------------
# The JobQueue itself


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
async def reconcile_jobqueue(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """Create, spec change, operator restart: reconcile (retried soon if an apply failed)."""
    with metrics.timed("event"):
        outcome = await _reconciler(memo, kwargs).reconcile(body)
    if outcome.retry and outcome.problem is not None:
        raise kopf.TemporaryError(outcome.problem.message, delay=c.RETRY_DELAY)


@kopf.timer(
    *RESOURCE,
    interval=get_settings().resync_interval_seconds,
    # not at once: the create / resume handler has just reconciled (a second reconcile per
    # JobQueue as 1,000 of them are created or resumed together)
    initial_delay=get_settings().resync_interval_seconds,
    idle=None,
)
async def resync(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """Drift repair and status refresh against the watch caches; a no-op (no request, no
    write) when nothing changed."""
    with metrics.timed("timer"):
        await _reconciler(memo, kwargs).reconcile(body)


@kopf.on.delete(*RESOURCE)
async def finalize(body: kopf.Body, memo: kopf.Memo, retry: int, **kwargs: Any) -> None:
    """Delete the children explicitly; purge Redis keys with deletionPolicy: Purge."""
    try:
        await _reconciler(memo, kwargs).finalize(body, retry)
    except RetryLater as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from None


# ---------------------------------------------------------------------------------------------
# Watches that map other objects to their JobQueue


CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("apps", "v1", "statefulsets"),
    ("", "v1", "services"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("", "v1", "secrets"),
)


def _index_children(
    namespace: str | None, meta: Mapping[str, Any], body: kopf.Body, **_: Any
) -> dict[caches.Key, str]:
    """The ``children`` index: each child (trimmed, packed) under its owner JobQueue's key."""
    owner = caches.owner_of(meta)
    if not owner or not namespace:
        return {}
    return {(namespace, owner): caches.pack_child(body, str(body.get("kind")))}


# One index over every child kind (kopf keys its entries by object uid, so a Deployment and a
# Service of the same name are two entries).
for _group, _version, _plural in CHILD_RESOURCES:
    kopf.index(_group, _version, _plural, labels=CHILD_LABELS, id="children")(_index_children)


@kopf.index(*RESOURCE)
def jobqueues(
    namespace: str | None, name: str | None, body: kopf.Body, **_: Any
) -> dict[caches.Key, str]:
    """The ``jobqueues`` index: each JobQueue as last watched (a child's event reconciles its
    owner from here, without a GET)."""
    if not namespace or not name:
        return {}
    return {(namespace, name): caches.pack_jobqueue(body)}


@kopf.index("apps", "v1", "deployments", labels=CHILD_LABELS)
def replicas(
    namespace: str | None, name: str | None, spec: Mapping[str, Any], **_: Any
) -> dict[tuple[str, str], int | None]:
    """The ``replicas`` index: each Deployment's spec.replicas, for the autoscalers' polls
    (see ReplicaCache): the watch kopf keeps for drift repair replaces a GET of the scale
    subresource per poll."""
    if not namespace or not name:
        return {}
    return {(namespace, name): replica_count(spec)}


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS)
@kopf.on.event("apps", "v1", "statefulsets", labels=CHILD_LABELS)
@kopf.on.event("", "v1", "services", labels=CHILD_LABELS)
@kopf.on.event("networking.k8s.io", "v1", "ingresses", labels=CHILD_LABELS)
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=CHILD_LABELS)
@kopf.on.event("", "v1", "secrets", labels=CHILD_LABELS, id="child_secret_changed")
async def child_changed(
    meta: Mapping[str, Any], namespace: str | None, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A child changed or went away: reconcile its owner (repairs drift, refreshes status)."""
    owner = caches.owner_of(meta)
    if owner and namespace:
        with metrics.timed("child"):
            await _reconciler(memo, kwargs).trigger(namespace, owner)


SourceKey = tuple[str, str]  # (namespace, Secret name)


@kopf.index(*RESOURCE)
def source_secrets(
    namespace: str | None,
    name: str | None,
    spec: Mapping[str, Any],
    meta: Mapping[str, Any],
    **_: Any,
) -> dict[SourceKey, str]:
    """Which Secrets each JobQueue reads (redis.urlFrom, api.authTokenSecretRef and every
    service's secretRefs)."""
    if not namespace or not name:
        return {}
    parsed = _parsed(spec, meta)
    if parsed is None:
        return {}
    refs = []
    if parsed.redis.url_from is not None:
        refs.append(parsed.redis.url_from.secret_key_ref.name)
    if parsed.api.enabled and parsed.api.auth_token_secret_ref is not None:
        refs.append(parsed.api.auth_token_secret_ref.name)
    if parsed.api.enabled:
        refs += [r.name for r in parsed.api.secret_refs]
    refs += [r.name for r in parsed.worker.secret_refs]
    refs += [r.name for p in parsed.workers for r in p.secret_refs]
    return {(namespace, secret): name for secret in refs}


def _sources(kwargs: Mapping[str, Any]) -> kopf.Index[SourceKey, str]:
    """The ``source_secrets`` index (kopf passes indices as keyword arguments)."""
    index: kopf.Index[SourceKey, str] = kwargs["source_secrets"]
    return index


def _is_source(namespace: str | None, name: str, memo: kopf.Memo, **kwargs: Any) -> bool:
    """A Secret some JobQueue reads, or one the Secret cache holds (kept current)."""
    key = (namespace or "", name)
    if key in _sources(kwargs):
        return True
    reconciler = memo.get("reconciler")
    return isinstance(reconciler, Reconciler) and key in reconciler.views.secrets


@kopf.on.event("", "v1", "secrets", when=_is_source, id="source_secret_changed")
async def source_secret_changed(
    event: Mapping[str, Any],
    body: kopf.Body,
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """A Secret some JobQueues read changed, appeared or went away: update the cache,
    reconcile each of them."""
    if not namespace:
        return
    reconciler = _reconciler(memo, kwargs)
    gone = event.get("type") == "DELETED"
    reconciler.views.secrets.observe(namespace, name, None if gone else body)
    owners = sorted(set(_sources(kwargs).get((namespace, name), ())))
    with metrics.timed("source"):
        for owner in owners:
            await reconciler.trigger(namespace, owner)


# ---------------------------------------------------------------------------------------------
# The autoscaler (issue 7): one daemon per JobQueue with autoscaling enabled. The loop itself
# (read the queue, decide, scale, report) is scaler.py's; this only feeds it the live spec and
# the Redis URL the reconcile resolved, and restarts it when that URL changes.


PARSED_CACHE_SIZE = 512  # JobQueue generations (about 8 KB each)
_parsed_cache: dict[tuple[str, object], JobQueueSpec | None] = {}


def _parsed(spec: Mapping[str, Any], meta: Mapping[str, Any]) -> JobQueueSpec | None:
    """The spec parsed (None if invalid), once per JobQueue generation: kopf asks for it in
    an index, two daemon filters and the daemons' live views, at each event of the object."""
    uid, generation = meta.get("uid"), meta.get("generation")
    key = (str(uid), generation)
    if uid is not None and generation is not None and key in _parsed_cache:
        return _parsed_cache[key]
    try:
        parsed: JobQueueSpec | None = parse_spec(spec)
    except SpecError:
        parsed = None
    if uid is not None and generation is not None:
        if len(_parsed_cache) >= PARSED_CACHE_SIZE:
            del _parsed_cache[next(iter(_parsed_cache))]  # the oldest
        _parsed_cache[key] = parsed
    return parsed


def _autoscaling_enabled(spec: Mapping[str, Any], meta: Mapping[str, Any], **_: Any) -> bool:
    return bool(scaled_pools(_parsed(spec, meta)))


@kopf.daemon(
    *RESOURCE, when=_autoscaling_enabled, cancellation_backoff=1.0, cancellation_timeout=10.0
)
async def autoscaler(
    namespace: str | None,
    name: str | None,
    uid: str | None,
    body: kopf.Body,
    spec: Mapping[str, Any],
    meta: Mapping[str, Any],
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """Run one autoscaling loop per autoscaled pool of one JobQueue (autoscaler.supervise)
    until autoscaling is disabled everywhere or the JobQueue is deleted."""
    latch = exiting.latch(memo)
    if not namespace or not name or latch.exiting:
        return
    reconciler = _reconciler(memo, kwargs)
    key = (namespace, name)
    first = _parsed(spec, meta)
    if first is None:
        return
    latest, latest_generation = first, meta.get("generation")

    def current() -> JobQueueSpec:
        """The live spec (kopf's view), parsed again only when its generation moved: the
        loops and the pool-set watch ask every second, per JobQueue."""
        nonlocal latest, latest_generation
        generation = meta.get("generation")
        if generation is None or generation != latest_generation:
            latest = _parsed(spec, meta) or latest  # an unparseable spec keeps the last good one
            latest_generation = generation
        return latest

    try:
        await supervise(
            namespace=namespace,
            name=name,
            uid=uid,
            current=current,
            url=functools.partial(reconciler.urls.get, key),
            url_change=functools.partial(reconciler.urls.wait_change, key),
            stopped=stopped,
            kube=memo["scaler_kube"],
            replicas_cache=_replica_cache(memo, kwargs),
            hub=_hub(memo),
            live=lambda: body,  # kopf's live view of the JobQueue
        )
    finally:
        latch.note(stopped)


# ---------------------------------------------------------------------------------------------
# Schedules (spec.schedules): one daemon per JobQueue with schedules, running scheduler.py's
# ScheduleRunner on the live spec and the Redis URL the reconcile resolved.


def _has_schedules(spec: Mapping[str, Any], meta: Mapping[str, Any], **_: Any) -> bool:
    parsed = _parsed(spec, meta)
    return parsed is not None and bool(parsed.schedules)


@kopf.daemon(
    *RESOURCE,
    when=_has_schedules,
    cancellation_backoff=1.0,
    cancellation_timeout=10.0,
    id="schedules",
)
async def scheduler(
    namespace: str | None,
    name: str | None,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Enqueue the jobs of spec.schedules at their fire times until the JobQueue has no
    schedules or is deleted; spec changes (kopf's live view) apply within a second."""
    latch = exiting.latch(memo)
    if not namespace or not name or latch.exiting:
        return
    reconciler = _reconciler(memo)
    first = _parsed(spec, meta)
    if first is None:
        return
    last = [first]

    def live() -> JobQueueSpec:
        last[0] = _parsed(spec, meta) or last[0]  # an unparseable spec keeps the last good one
        return last[0]

    async def write(entries: list[dict[str, Any]]) -> None:
        await reconciler.kube.patch_status(namespace, name, {"schedules": entries}, None)

    runner = ScheduleRunner(
        namespace=namespace,
        name=name,
        spec=live,
        url=functools.partial(reconciler.urls.get, (namespace, name)),
        hub=_hub(memo),
        write_status=write,
        created=schedules.parse_time(meta.get("creationTimestamp")),
        status=status,
    )
    try:
        await runner.run(stopped)
    finally:
        latch.note(stopped)
