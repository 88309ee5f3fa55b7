"""The autoscaler of one JobQueue pool as the operator's kopf daemon runs it: the loop
(scaler.Scaler) wired to its metrics source (sources.py, on the shared Redis connections) and
its Kubernetes adapters (adapters.py), until stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from jobqueue_operator import constants as c
from jobqueue_operator.adapters import (
    KubernetesReporter,
    KubernetesScaleTarget,
    PoolReporter,
    ReplicaCache,
)
from jobqueue_operator.builders import child_name
from jobqueue_operator.ports import Reporter, ScalerConfig, StopFlag
from jobqueue_operator.redishub import RedisHub
from jobqueue_operator.scaler import Scaler
from jobqueue_operator.sources import open_source
from jobqueue_operator.spec import QueueSpec


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
