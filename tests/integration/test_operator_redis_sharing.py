"""The operator's shared Redis connections (redishub): every JobQueue on one endpoint shares one
client and one subscriber connection, wake-ups still reach the right autoscaler, and a lost
subscriber connection makes every watcher reconnect (real redis-server)."""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis
from jobqueue_operator.ports import PUBSUB_READ_TIMEOUT
from jobqueue_operator.redishub import RedisHub
from jobqueue_operator.sources import CLIENT_OPTIONS, RedisMetricsSource

from jobqueue import JobSpec, Queue

QUEUES = 20


async def connections(admin: aioredis.Redis, name: str) -> int:
    """The connections open under a client name."""
    return sum(1 for c in await admin.client_list() if c.get("name") == name)


async def test_many_jobqueues_on_one_redis_share_one_client_and_one_subscriber(
    redis_url: str, queue_name: str
) -> None:
    hub = RedisHub(read_timeout=PUBSUB_READ_TIMEOUT, client_name=queue_name, **CLIENT_OPTIONS)
    admin = aioredis.Redis.from_url(redis_url)
    names = [f"{queue_name}-{i}" for i in range(QUEUES)]
    sources = [RedisMetricsSource(redis_url, n, hub=hub) for n in names]
    woken = {n: asyncio.Event() for n in names}
    subscribed = {n: asyncio.Event() for n in names}

    def waker(n: str) -> object:
        def wake() -> None:
            if subscribed[n].is_set():
                woken[n].set()
            subscribed[n].set()  # the first call: the subscription is confirmed

        return wake

    watches = [asyncio.create_task(s.watch(waker(n))) for s, n in zip(sources, names, strict=True)]
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in subscribed.values())), 10)
        snapshots = await asyncio.gather(*(s.snapshot() for s in sources))
        assert all(s.ready == 0 for s in snapshots)
        assert hub.clients() == 1
        # one subscriber connection, and the reads' pool (bounded by the concurrent reads,
        # never one client per JobQueue)
        opened = await connections(admin, queue_name)
        assert 2 <= opened <= QUEUES + 1, opened
        pubsub = await admin.pubsub_numsub(*(Queue(admin, n).keys.events for n in names))
        assert all(count == 1 for _, count in pubsub)
        # an enqueue wakes its own queue's watcher only
        await Queue(admin, names[3]).enqueue(JobSpec(type="t", payload={}))
        await asyncio.wait_for(woken[names[3]].wait(), 5)
        await asyncio.sleep(0.2)
        assert [n for n in names if woken[n].is_set()] == [names[3]]
    finally:
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
        for source in sources:
            await source.close()
        for n in names:
            await Queue(admin, n).purge()
    assert hub.clients() == 0  # the last user closed it
    await asyncio.sleep(0.2)
    assert await connections(admin, queue_name) == 0
    await admin.aclose()


async def test_a_lost_subscriber_connection_fails_every_watcher_and_they_resubscribe(
    redis_url: str, queue_name: str
) -> None:
    hub = RedisHub(read_timeout=PUBSUB_READ_TIMEOUT, **CLIENT_OPTIONS)
    admin = aioredis.Redis.from_url(redis_url)
    client = hub.acquire(redis_url)
    calls: dict[str, int] = {"a": 0, "b": 0}

    def wake_of(key: str) -> object:
        def wake() -> None:
            calls[key] += 1

        return wake

    a = asyncio.create_task(hub.watch(redis_url, f"{queue_name}:a", wake_of("a")))
    b = asyncio.create_task(hub.watch(redis_url, f"{queue_name}:b", wake_of("b")))
    try:
        for _ in range(100):
            if calls["a"] and calls["b"]:
                break
            await asyncio.sleep(0.05)
        assert calls == {"a": 1, "b": 1}
        # kill the subscriber connection from the server side
        for c in await admin.client_list():
            if int(c.get("sub", 0)) > 0:
                await admin.client_kill_filter(_id=c["id"])
        results = await asyncio.wait_for(asyncio.gather(a, b, return_exceptions=True), 10)
        assert all(isinstance(r, Exception) for r in results), results
        # a watcher coming back gets a new subscriber connection
        again = asyncio.create_task(hub.watch(redis_url, f"{queue_name}:a", wake_of("a")))
        for _ in range(100):
            if calls["a"] == 2:
                break
            await asyncio.sleep(0.05)
        assert calls["a"] == 2
        await admin.publish(f"{queue_name}:a", "x")
        for _ in range(100):
            if calls["a"] == 3:
                break
            await asyncio.sleep(0.05)
        assert calls["a"] == 3
        again.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await again
    finally:
        for task in (a, b):
            task.cancel()
        await asyncio.gather(a, b, return_exceptions=True)
        assert client is not None
        await hub.release(redis_url)
        await admin.aclose()
