"""One Redis client and one pub/sub connection per Redis endpoint, shared by every JobQueue on it.

At 1,000 JobQueues on one Redis, a client per autoscaler (plus its subscription, plus the
reconcile's short-lived check clients) is thousands of connections and their buffers in the
operator and in Redis. :class:`RedisHub` keys clients by URL: :meth:`RedisHub.acquire` hands out
the endpoint's client (counted; the last :meth:`RedisHub.release` closes it), and
:meth:`RedisHub.watch` subscribes a channel on the endpoint's one subscriber connection, calling
``wake`` once the subscription is confirmed and on every message, until the connection is lost
(then every watcher's call raises, and each reconnects with its own backoff). A managed Redis
per JobQueue has its own URL, so its own client. Redis Cluster subscriptions stay with the
caller (a channel lives on the node owning its slot; see sources.RedisMetricsSource).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from jobqueue import AnyRedis, connect_any

log = logging.getLogger(__name__)

Wake = Callable[[], None]


@dataclass
class _Subscriber:
    """The one pub/sub connection of an endpoint and the watchers of each channel."""

    pubsub: PubSub
    read_timeout: float
    watchers: dict[str, set[Wake]] = field(default_factory=dict)
    lost: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    reader: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def start(self) -> None:
        if self.reader is None:
            self.reader = asyncio.create_task(self._read(), name="jobqueue-redis-subscriber")

    async def _read(self) -> None:
        try:
            while True:
                message = await self.pubsub.get_message(timeout=self.read_timeout)
                if message is None or message.get("type") not in ("subscribe", "message"):
                    continue
                channel = message.get("channel")
                if isinstance(channel, bytes):
                    channel = channel.decode()
                for wake in list(self.watchers.get(str(channel), ())):
                    wake()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the connection is gone: every watcher reconnects
            if not self.lost.done():
                self.lost.set_exception(exc)
                self.lost.exception()  # retrieved: no "never retrieved" warning if none waits


@dataclass
class _Endpoint:
    client: AnyRedis
    users: int = 0
    subscriber: _Subscriber | None = None


class RedisHub:
    """Shared clients and subscriptions by Redis URL (see the module docstring). Only used
    from the event loop's thread."""

    def __init__(self, *, read_timeout: float = 1.0, **client_options: Any) -> None:
        self._options = client_options
        self._read_timeout = read_timeout
        self._endpoints: dict[str, _Endpoint] = {}

    def acquire(self, url: str) -> AnyRedis:
        """The endpoint's client (opened on first use; a malformed URL raises
        ``jobqueue.ConfigError``). Pair with :meth:`release`."""
        endpoint = self._endpoints.get(url)
        if endpoint is None:
            endpoint = self._endpoints[url] = _Endpoint(connect_any(url, **self._options))
        endpoint.users += 1
        return endpoint.client

    async def release(self, url: str) -> None:
        """One user fewer; the last one closes the client and its subscriber."""
        endpoint = self._endpoints.get(url)
        if endpoint is None:
            return
        endpoint.users -= 1
        if endpoint.users > 0:
            return
        del self._endpoints[url]
        await self._close_subscriber(endpoint)
        with contextlib.suppress(Exception):
            await endpoint.client.aclose()

    def clients(self) -> int:
        """How many endpoints have an open client (for tests and metrics)."""
        return len(self._endpoints)

    async def watch(self, url: str, channel: str, wake: Wake) -> None:
        """Call ``wake`` once ``channel`` is subscribed and on every message on it; returns
        never, raises when the subscriber connection is lost. Needs an :meth:`acquire` of
        ``url`` held by the caller."""
        endpoint = self._endpoints[url]
        client = endpoint.client
        if not isinstance(client, Redis):
            raise TypeError("shared subscriptions are for standalone Redis and Sentinel")
        subscriber = endpoint.subscriber
        if subscriber is None or subscriber.lost.done():
            if subscriber is not None:
                await self._close_subscriber(endpoint)
            subscriber = endpoint.subscriber = _Subscriber(client.pubsub(), self._read_timeout)
        watchers = subscriber.watchers.setdefault(channel, set())
        watchers.add(wake)
        try:
            if len(watchers) == 1:
                async with subscriber.lock:
                    await subscriber.pubsub.subscribe(channel)
            else:
                wake()  # already subscribed: nothing slips between now and the next message
            subscriber.start()
            await asyncio.shield(subscriber.lost)
        finally:
            watchers.discard(wake)
            if not watchers and subscriber.watchers.get(channel) is watchers:
                del subscriber.watchers[channel]
                if not subscriber.lost.done():
                    with contextlib.suppress(Exception):
                        async with subscriber.lock:
                            await subscriber.pubsub.unsubscribe(channel)

    async def _close_subscriber(self, endpoint: _Endpoint) -> None:
        subscriber, endpoint.subscriber = endpoint.subscriber, None
        if subscriber is None:
            return
        if subscriber.reader is not None:
            subscriber.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await subscriber.reader
        if not subscriber.lost.done():
            subscriber.lost.set_exception(ConnectionError("the Redis client was closed"))
            subscriber.lost.exception()
        with contextlib.suppress(Exception):
            await subscriber.pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        """Close every client (operator shutdown)."""
        for url in list(self._endpoints):
            endpoint = self._endpoints.pop(url)
            await self._close_subscriber(endpoint)
            with contextlib.suppress(Exception):
                await endpoint.client.aclose()
