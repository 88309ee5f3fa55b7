"""The autoscaler's metrics sources: our protocol's (:class:`RedisMetricsSource`), and the one
factory that picks a source for a pool's queue format (the others are ``foreign.py``'s)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster

from jobqueue import AnyRedis, Queue, connect_any
from jobqueue_operator.foreign import ForeignMetricsSource
from jobqueue_operator.ports import (
    PUBSUB_HEALTH_CHECK_INTERVAL,
    PUBSUB_READ_TIMEOUT,
    REDIS_CONNECT_TIMEOUT,
    REDIS_TIMEOUT,
    MetricsSource,
    QueueSnapshot,
    Wakeup,
)
from jobqueue_operator.redishub import RedisHub
from jobqueue_operator.spec import QueueSpec

#: The options of the autoscalers' clients (shared or not).
CLIENT_OPTIONS = {
    "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
    "socket_timeout": REDIS_TIMEOUT,
    "health_check_interval": PUBSUB_HEALTH_CHECK_INTERVAL,
}


def open_source(
    url: str,
    queue: QueueSpec,
    queue_name: str,
    *,
    allow_config: bool = False,
    hub: RedisHub | None = None,
) -> MetricsSource:
    """The metrics source of one pool: ``queue_name`` in our protocol, or ``queue``'s keys in
    another format (``allow_config``: it may turn Redis keyspace notifications on). ``hub``:
    our protocol's reads and subscription go through the endpoint's shared connections."""
    if not queue.foreign:
        return RedisMetricsSource(url, queue_name, hub=hub)
    return ForeignMetricsSource(url, queue.layout(), allow_config=allow_config)


class RedisMetricsSource:
    """Reads a queue through the ``jobqueue`` protocol; subscribes to ``queue.keys.events``.

    Standalone Redis and Redis Cluster (``redis+cluster://``) both work; on a cluster the
    subscription listens on the node that owns the queue's hash slot. With a ``hub``, the
    client is the endpoint's shared one and (but on a cluster) so is the subscription.
    """

    format = "jobqueue"
    wakeup: Wakeup = "events"  # every enqueue publishes on the queue's events channel

    def __init__(self, url: str, queue_name: str, *, hub: RedisHub | None = None) -> None:
        self._url = url
        self._queue_name = queue_name
        self._hub = hub
        self._redis: AnyRedis | None = None
        self._queue: Queue | None = None
        self._pubsub_client: Redis | None = None

    def _open(self) -> Queue:
        if self._queue is None:
            # Every scheme the workers take (redis://, rediss://, unix://, redis+cluster://,
            # rediss+cluster://); on a cluster the options reach each node's connections,
            # the subscriber's included (see _subscriber).
            redis = (
                self._hub.acquire(self._url)
                if self._hub is not None
                else connect_any(self._url, **CLIENT_OPTIONS)
            )
            self._redis = redis
            self._queue = Queue(redis, self._queue_name)
        return self._queue

    async def snapshot(self) -> QueueSnapshot:
        queue = self._open()
        stats, workers = await asyncio.gather(queue.stats(), queue.workers())
        return QueueSnapshot(
            ready=stats.ready,
            in_flight=stats.in_flight,
            delayed=stats.delayed,
            dead=stats.dead,
            workers=tuple(workers),
        )

    async def _subscriber(self, queue: Queue) -> Redis:
        redis = queue.redis
        if not isinstance(redis, RedisCluster):
            return redis
        if self._pubsub_client is None:
            await redis.initialize()
            node = redis.get_node_from_key(queue.keys.events)
            if node is None:
                raise ConnectionError(f"no cluster node serves {queue.keys.events}")
            pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
            self._pubsub_client = Redis(connection_pool=pool)
        return self._pubsub_client

    async def watch(self, wake: Callable[[], None]) -> None:
        queue = self._open()
        if self._hub is not None and not isinstance(queue.redis, RedisCluster):
            await self._hub.watch(self._url, queue.keys.events, wake)
            return
        pubsub = (await self._subscriber(queue)).pubsub()
        try:
            await pubsub.subscribe(queue.keys.events)
            while True:
                message = await pubsub.get_message(timeout=PUBSUB_READ_TIMEOUT)
                if message is None:
                    continue
                # wake once subscribed (the server delivers from here on: nothing slips
                # between this evaluation and the next notification), then on every message
                if message.get("type") in ("subscribe", "message"):
                    wake()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        redis, self._redis, self._queue = self._redis, None, None
        client, self._pubsub_client = self._pubsub_client, None
        if client is not None:
            await client.aclose()
        if redis is not None:
            if self._hub is not None:
                await self._hub.release(self._url)
            else:
                await redis.aclose()
