"""The scaler's Redis metrics source and loop against a real redis-server (no Kubernetes)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from jobqueue_operator.autoscaling import AutoscalingSpec, WorkerHeartbeat
from jobqueue_operator.ports import EventType, QueueSnapshot, ScalerConfig, ScalerStatus
from jobqueue_operator.scaler import Scaler
from jobqueue_operator.sources import RedisMetricsSource
from redis.exceptions import RedisError

from jobqueue import JobSpec, Queue, connect_any
from tests.cluster.redis_server import RedisServer

log = logging.getLogger(__name__)


@pytest.fixture
async def queue(redis_client: aioredis.Redis, queue_name: str) -> AsyncIterator[Queue]:
    q = Queue(redis_client, queue_name)
    yield q
    await q.purge()


@pytest.fixture
async def source(redis_url: str, queue_name: str) -> AsyncIterator[RedisMetricsSource]:
    s = RedisMetricsSource(redis_url, queue_name)
    yield s
    await s.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A server of this test's own, to stop and restart."""
    server = RedisServer(password="pw-never-shown").start()
    yield server
    server.cleanup()


async def test_snapshot_reads_depth_and_heartbeats(
    queue: Queue, source: RedisMetricsSource
) -> None:
    for i in range(5):
        await queue.enqueue(JobSpec(type="t", payload=i))
    await queue.enqueue(JobSpec(type="t", delay=3600))
    claimed = await queue.claim("q-worker-abc-12345", count=2)
    assert len(claimed) == 2
    await queue.heartbeat("q-worker-abc-12345", busy=True, in_flight=2, ttl=30)
    await queue.heartbeat("q-worker-abc-67890", busy=False, in_flight=0, ttl=30)

    snap = await source.snapshot()

    assert (snap.ready, snap.in_flight, snap.delayed, snap.dead) == (3, 2, 1, 0)
    assert [(w.id, w.busy, w.in_flight) for w in snap.workers] == [
        ("q-worker-abc-12345", True, 2),
        ("q-worker-abc-67890", False, 0),
    ]


async def test_an_enqueue_wakes_the_watcher(queue: Queue, source: RedisMetricsSource) -> None:
    wakes: asyncio.Queue[float] = asyncio.Queue()
    watcher = asyncio.create_task(source.watch(lambda: wakes.put_nowait(time.perf_counter())))
    try:
        await asyncio.wait_for(wakes.get(), 5)  # the "subscribed" wake-up
        latencies = []
        for _ in range(5):
            sent = time.perf_counter()
            await queue.enqueue(JobSpec(type="t"))
            latencies.append(await asyncio.wait_for(wakes.get(), 5) - sent)
        log.warning("enqueue -> wake-up latency (ms): %s", [round(x * 1000, 2) for x in latencies])
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def test_redis_down_raises_and_recovers(own_redis: RedisServer, queue_name: str) -> None:
    source = RedisMetricsSource(own_redis.url, queue_name)
    try:
        assert (await source.snapshot()).ready == 0
        own_redis.stop()
        with pytest.raises((RedisError, OSError)) as err:  # an error, never an empty queue
            await source.snapshot()
        assert "pw-never-shown" not in str(err.value)
        with pytest.raises((RedisError, OSError)):
            await source.watch(lambda: None)
        own_redis.start()
        assert (await source.snapshot()).ready == 0
    finally:
        await source.close()


class RecordingTarget:
    def __init__(self) -> None:
        self.current = 0
        self.scaled: asyncio.Queue[tuple[int, float]] = asyncio.Queue()

    async def replicas(self, *, cached: bool = False) -> int | None:
        return self.current

    async def scale(self, replicas: int) -> None:
        self.current = replicas
        self.scaled.put_nowait((replicas, time.perf_counter()))

    async def prefer_idle(self, workers: Sequence[WorkerHeartbeat]) -> None:
        return None


class NullReporter:
    def __init__(self) -> None:
        self.statuses: list[ScalerStatus] = []

    async def report(self, status: ScalerStatus) -> None:
        self.statuses.append(status)

    async def event(self, type_: EventType, reason: str, message: str) -> None:
        return None


async def test_the_loop_reacts_to_enqueues_not_the_poll(
    queue: Queue, source: RedisMetricsSource
) -> None:
    """Poll interval 300 s: any reaction at all comes from the enqueue notification."""
    target, reporter = RecordingTarget(), NullReporter()
    spec = AutoscalingSpec(max_replicas=20, target_jobs_per_worker=5, poll_interval_seconds=300)
    scaler = Scaler(
        metrics=source,
        target=target,
        reporter=reporter,
        config=lambda: ScalerConfig(spec, 5),
        wall=lambda: datetime.now(UTC),
    )
    task = asyncio.create_task(scaler.run())
    try:
        async with asyncio.timeout(5):
            while not reporter.statuses:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # idle: the "subscribed" evaluation is well past
        sent = time.perf_counter()
        await queue.enqueue(JobSpec(type="t"))
        replicas, at = await asyncio.wait_for(target.scaled.get(), 5)
        assert replicas == 1
        first = at - sent

        await asyncio.sleep(0.5)
        sent = time.perf_counter()
        await queue.enqueue_many([JobSpec(type="t") for _ in range(99)])
        replicas, at = await asyncio.wait_for(target.scaled.get(), 5)
        assert replicas == 20  # ceil(100 / 5) in one step
        log.warning(
            "enqueue -> scale (ms): 0->1 %.1f, 1->20 %.1f", first * 1000, (at - sent) * 1000
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_snapshot_type_is_what_the_loop_expects() -> None:
    snap = QueueSnapshot(1, 2, 3, 4)
    assert snap.workers == ()


async def test_redis_cluster_snapshot_and_wake_up(
    cluster_nodes: list[RedisServer],
) -> None:
    """On Redis Cluster the subscription listens on the node owning the queue's slot."""
    node = cluster_nodes[0]
    await _woken_then_counted(f"redis+cluster://{node.bind}:{node.port}", jobs=3)


async def test_tls_url_snapshot_and_wake_up(
    tls_server: tuple[RedisServer, int, Path],
) -> None:
    """rediss:// with the CA named in the URL (all a JobQueue's redis.url can carry)."""
    _server, port, certs = tls_server
    url = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={certs / 'ca.crt'}"
    await _woken_then_counted(url, jobs=2)


async def _woken_then_counted(url: str, jobs: int) -> None:
    """The source subscribes (a first wake), an enqueue wakes it again, and its snapshot
    counts the jobs: the autoscaler's whole Redis side on ``url``."""
    name = f"test/{uuid.uuid4().hex[:12]}"
    source = RedisMetricsSource(url, name)
    producer = connect_any(url)
    queue = Queue(producer, name)
    wakes: asyncio.Queue[None] = asyncio.Queue()
    watcher = asyncio.create_task(source.watch(lambda: wakes.put_nowait(None)))
    try:
        await asyncio.wait_for(wakes.get(), 10)  # subscribed
        await queue.enqueue_many([JobSpec(type="t") for _ in range(jobs)])
        await asyncio.wait_for(wakes.get(), 10)
        snap = await source.snapshot()
        assert (snap.ready, snap.in_flight) == (jobs, 0)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await queue.purge()
        await source.close()
        await producer.aclose()
