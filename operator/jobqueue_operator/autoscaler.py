"""The autoscalers of one JobQueue as the operator's kopf daemon runs them.

:func:`supervise` runs one loop per autoscaled pool (the default pool of spec.worker and those
of spec.workers, each on its own queue and Deployment), restarting them when the Redis URL the
reconcile resolved or the set of autoscaled pools changes; :func:`run_scaler` is one loop
(scaler.Scaler) wired to its metrics source (sources.py, on the shared Redis connections) and
its Kubernetes adapters (adapters.py), until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Protocol

from jobqueue_operator import constants as c
from jobqueue_operator.adapters import (
    KubernetesReporter,
    KubernetesScaleTarget,
    LiveBody,
    PoolReporter,
    ReplicaCache,
)
from jobqueue_operator.builders import child_name, pool_component
from jobqueue_operator.kube import Kube
from jobqueue_operator.ports import Reporter, ScalerConfig, StopFlag
from jobqueue_operator.redishub import RedisHub
from jobqueue_operator.scaler import Scaler
from jobqueue_operator.sources import open_source
from jobqueue_operator.spec import JobQueueSpec, QueueSpec

POOL_SET_CHECK_INTERVAL = 1.0  # how soon an added or removed autoscaled pool is noticed

Pools = tuple[tuple[str, QueueSpec], ...]


class Stopped(Protocol):
    """kopf's ``stopped`` (``DaemonStopped``): truthy once stopped, awaitable."""

    def __bool__(self) -> bool: ...

    def wait(self) -> Awaitable[object]: ...


def scaled_pools(parsed: JobQueueSpec | None) -> Pools:
    """The pools with autoscaling on, each with its queue's format: ``default`` (spec.worker)
    and those of spec.workers."""
    if parsed is None:
        return ()
    out = [(c.DEFAULT_POOL, parsed.queue)] if parsed.autoscaling.enabled else []
    return tuple(out + [(p.name, p.queue) for p in parsed.workers if p.autoscaling.enabled])


def pool_config(parsed: JobQueueSpec, pool: str) -> ScalerConfig:
    """The scaler's configuration of one pool in the spec (paused if the pool is gone: the
    pool-set watch stops its loop shortly)."""
    if pool == c.DEFAULT_POOL:
        return ScalerConfig(parsed.autoscaling, parsed.worker.concurrency, parsed.queue.foreign)
    spec_of = {p.name: p for p in parsed.workers}.get(pool)
    if spec_of is None:
        return ScalerConfig(parsed.autoscaling.model_copy(update={"paused": True}))
    return ScalerConfig(spec_of.autoscaling, spec_of.concurrency, spec_of.queue.foreign)


class FirstOf:
    """A stop flag for ``run_scaler`` that fires when any of several waits completes."""

    def __init__(self, *waits: Callable[[], Awaitable[object]]) -> None:
        self._waits = waits

    async def wait(self) -> None:
        tasks = [asyncio.ensure_future(w()) for w in self._waits]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)


async def supervise(
    *,
    namespace: str,
    name: str,
    uid: str | None,
    current: Callable[[], JobQueueSpec],
    url: Callable[[], str | None],
    url_change: Callable[[str | None], Awaitable[None]],
    stopped: Stopped,
    kube: Kube,
    replicas_cache: ReplicaCache | None,
    hub: RedisHub,
    live: LiveBody | None = None,
) -> None:
    """Run the loops of every autoscaled pool of ``namespace/name`` until ``stopped``;
    ``current``: the live spec; ``url``/``url_change``: the Redis URL the reconcile resolved,
    and a wait until it differs from a given one; ``live``: the JobQueue as last watched."""

    async def pools_change(seen: Pools) -> None:
        # kopf's live spec has no change event to wait on: look at it every second
        while scaled_pools(current()) == seen:  # noqa: ASYNC110
            await asyncio.sleep(POOL_SET_CHECK_INTERVAL)

    while not stopped:
        redis_url = url()
        if redis_url is None:  # the reconcile has not resolved it (yet): wait for it
            await FirstOf(stopped.wait, functools.partial(url_change, None)).wait()
            continue
        spec = current()
        scaled = scaled_pools(spec)
        stop = FirstOf(
            stopped.wait,
            functools.partial(url_change, redis_url),
            functools.partial(pools_change, scaled),
        )
        loops = []
        for pool, queue in scaled:
            default = pool == c.DEFAULT_POOL
            loops.append(
                run_scaler(
                    namespace=namespace,
                    name=name,
                    queue_name=(
                        spec.queue_identity(namespace, name)
                        if default
                        else spec.pool_queue(namespace, name, pool)
                    ),
                    redis_url=redis_url,
                    config=functools.partial(lambda p: pool_config(current(), p), pool),
                    deployment=child_name(
                        name, c.COMPONENT_WORKER if default else pool_component(pool)
                    ),
                    kube=kube,
                    live=live,
                    uid=uid,
                    stopped=stop,
                    pool=None if default else pool,
                    replicas_cache=replicas_cache,
                    queue=queue,
                    allow_config=spec.redis.allow_config,
                    hub=hub,
                )
            )
        if not loops:
            await stop.wait()
            continue
        await asyncio.gather(*loops)


async def run_scaler(
    *,
    namespace: str,
    name: str,
    queue_name: str,
    redis_url: str,
    config: ScalerConfig | Callable[[], ScalerConfig],
    deployment: str | None = None,
    kube: Kube,
    live: LiveBody | None = None,
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
    autoscaling block apply from the next evaluation. ``kube``: the operator's Kubernetes
    layer (the autoscalers' facade); ``live``: the JobQueue as last watched (the reporter's
    view of its status, no read). The worker Deployment defaults to ``<name>-worker``.
    ``pool``: the name of a pool of ``spec.workers`` (its status goes to
    ``status.poolScaling.<pool>``, see :class:`PoolReporter`).
    ``replicas_cache``: where a watch keeps the Deployments' replica counts (polls read it).
    ``queue``: the pool's queue format (default: ``queue_name`` in our protocol); a foreign
    format is read where that library keeps it (``allow_config``: ``spec.redis.allowConfig``).
    ``hub``: the shared clients and subscriptions per Redis endpoint (our protocol's queues).
    """
    get_config = config if callable(config) else (lambda: config)
    scaler = Scaler(
        metrics=open_source(
            redis_url, queue or QueueSpec(), queue_name, allow_config=allow_config, hub=hub
        ),
        target=KubernetesScaleTarget(
            kube,
            namespace,
            deployment or child_name(name, c.COMPONENT_WORKER),
            cache=replicas_cache,
        ),
        reporter=reporter or _reporter(kube, namespace, name, uid, pool, live),
        config=get_config,
        secrets=(redis_url,),  # the URL and its secret parts
        name=f"{namespace}/{name}" + (f"/{pool}" if pool else ""),
        series=(namespace, name, pool or c.DEFAULT_POOL, queue_name),
    )
    await run_until_stopped(scaler.run(), stopped)


def _reporter(
    kube: Kube, namespace: str, name: str, uid: str | None, pool: str | None, live: LiveBody | None
) -> Reporter:
    reporter = KubernetesReporter(kube, namespace, name, uid=uid, live=live)
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
