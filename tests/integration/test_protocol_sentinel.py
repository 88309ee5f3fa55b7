"""Redis Sentinel (redis+sentinel:// URLs): the protocol, the API, a worker and the operator's
check on a real primary + replica + Sentinel, through a crash of the primary."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from jobqueue_operator import redisops
from jobqueue_operator.sources import RedisMetricsSource
from jobqueue_operator.spec import QueueSpec

from jobqueue import JobSpec, JobStatus, Queue, connect_sentinel
from tests.cluster.redis_server import SentinelGroup
from tests.integration.worker_support import WorkerProcess, eventually, start_worker
from tests.support.services import ApiProcess

PASSWORD = "sentinel-pw-3Kq"  # the primary's and the replica's: it travels in the URL


@pytest.fixture
def group() -> Iterator[SentinelGroup]:
    group = SentinelGroup(password=PASSWORD).start()
    yield group
    group.cleanup()


@pytest.fixture
async def queue(group: SentinelGroup, queue_name: str) -> AsyncIterator[Queue]:
    q = Queue(connect_sentinel(group.url(), socket_timeout=2.0), queue_name, lease_seconds=30)
    yield q
    await q.aclose()


async def test_the_protocol_runs_on_the_primary_the_sentinel_names(
    group: SentinelGroup, queue: Queue
) -> None:
    [created] = await queue.enqueue_many([JobSpec("t", {"n": 1})])
    [claimed] = await queue.claim("w1", 1)
    assert claimed.id == created.job_id
    assert await queue.complete([(claimed.id, claimed.token, {"ok": True})]) == [True]
    job = await queue.get(created.job_id)
    assert job is not None and job.status is JobStatus.COMPLETED and job.result == {"ok": True}
    # written on the primary; the replica has the same keys by replication (but the 100 ms
    # maintenance gate, which may expire between the two reads)
    group.sync_replica()
    with group.client(group.primary) as primary, group.client(group.replica) as replica:

        def lasting(client: redis.Redis) -> list[bytes]:
            return sorted(k for k in client.keys("*") if not k.endswith(b":maintenance"))

        keys = lasting(primary)
        assert keys and keys == lasting(replica)


async def test_the_operators_check_reads_the_queue_through_the_sentinel(
    group: SentinelGroup, queue: Queue, queue_name: str
) -> None:
    await queue.enqueue_many([JobSpec("t") for _ in range(3)])
    result = await redisops.check(group.url(), QueueSpec(), queue_name)
    assert result.ok is True, result.message
    assert result.counts is not None and result.counts.ready == 3
    assert PASSWORD not in result.message


async def test_the_autoscalers_wake_up_follows_the_primary_through_a_failover(
    group: SentinelGroup, queue: Queue, queue_name: str
) -> None:
    """The autoscaler's subscription (event-driven scale from zero) follows the promoted
    replica: re-subscribed as the scaler does when a subscription ends (same client), an
    enqueue after the failover still wakes it."""
    source = RedisMetricsSource(group.url(), queue_name)
    wakes: asyncio.Queue[None] = asyncio.Queue()

    async def subscribed() -> None:  # Scaler._watch's loop, without its backoff
        while True:
            with contextlib.suppress(Exception):
                await source.watch(lambda: wakes.put_nowait(None))
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(subscribed())
    try:
        await asyncio.wait_for(wakes.get(), 10)  # subscribed
        await queue.enqueue_many([JobSpec("t") for _ in range(2)])
        await asyncio.wait_for(wakes.get(), 10)
        group.sync_replica()
        await asyncio.to_thread(group.crash_primary)
        while not wakes.empty():  # wakes from the reconnect itself do not count
            wakes.get_nowait()
        await eventually(lambda: _enqueued(queue), 30, "an enqueue on the new primary")

        async def woken_by_enqueues() -> bool:
            await queue.enqueue_many([JobSpec("t")])
            try:
                await asyncio.wait_for(wakes.get(), 1)
            except TimeoutError:
                return False
            return True

        await eventually(woken_by_enqueues, 30, "a wake-up from an enqueue after the failover")
        snap = await source.snapshot()
        assert snap.ready >= 3  # the 2 replicated before the crash, and those after it
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await source.close()


async def _enqueued(queue: Queue) -> bool:
    try:
        await queue.enqueue_many([JobSpec("t")])
    except Exception:  # failing over: try again
        return False
    return True


async def test_api_and_worker_ride_through_a_crash_of_the_primary(
    group: SentinelGroup,
    queue: Queue,
    queue_name: str,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    """Jobs accepted before the crash (replicated) and after it (on the promoted replica)
    all complete; the API and the worker reconnect by themselves, without a restart."""
    worker = await start_worker(workers, group.url(), queue_name, tmp_path, lease_seconds=3)
    api = ApiProcess({"REDIS_URL": group.url(), "QUEUE_NAME": queue_name}).start()
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10.0) as http:

            async def post(n: int) -> str:
                """POST one job until it is accepted (503 while Redis fails over)."""
                for _ in range(200):
                    r = await http.post("/jobs", json={"type": "noop", "payload": {"n": n}})
                    if r.status_code == 202:
                        return str(r.json()["job_id"])
                    assert r.status_code == 503, r.text
                    await asyncio.sleep(0.1)
                raise AssertionError(f"job {n} never accepted:\n{api.logs()[-3000:]}")

            before = [await post(n) for n in range(50)]

            async def completed(n: int) -> bool:
                return (await queue.stats()).completed_total >= n

            await eventually(lambda: completed(50), 20, "the first 50 jobs")
            group.sync_replica()
            old_primary = group.primary.port
            await asyncio.to_thread(group.crash_primary)
            assert group.primary_port() == group.replica.port != old_primary
            after = [await post(n) for n in range(50, 100)]

            async def all_done() -> bool:
                jobs = [await queue.get(job_id) for job_id in before + after]
                return all(j is not None and j.status is JobStatus.COMPLETED for j in jobs)

            await eventually(all_done, 60, "every accepted job to complete after the failover")
        assert api.proc is not None and api.proc.poll() is None, api.logs()[-3000:]
        assert worker.proc.poll() is None, worker.log_text()[-3000:]
        assert PASSWORD not in api.logs() and PASSWORD not in worker.log_text()
        worker.signal(signal.SIGTERM)
        assert await worker.wait_exit() == 0
    finally:
        api.cleanup()
