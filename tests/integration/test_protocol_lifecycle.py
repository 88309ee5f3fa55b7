"""Queue protocol against a real redis-server: life cycle, priorities, batches, TTL, stats."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial

import pytest
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import ResponseError

from jobqueue import FailOutcome, JobSpec, JobStatus, Priority, Queue
from jobqueue.constants import MAX_BATCH
from jobqueue.scripts import script
from tests.support import waiting


@pytest.fixture
async def queue(redis_client: aioredis.Redis, queue_name: str) -> AsyncIterator[Queue]:
    q = Queue(redis_client, queue_name, lease_seconds=30, backoff_base=0.001)
    yield q
    await q.purge()
    await q.aclose()


eventually = partial(waiting.eventually, timeout=5.0, interval=0.02)


async def subscribed(r: aioredis.Redis, channel: str) -> PubSub:
    """A pub/sub connection whose subscription the server has confirmed."""
    pubsub = r.pubsub()
    await pubsub.subscribe(channel)
    msg = await pubsub.get_message(timeout=5)
    assert msg is not None and msg["type"] == "subscribe"
    return pubsub


async def next_event(pubsub: PubSub, timeout: float = 5.0) -> dict[str, object] | None:
    msg = await pubsub.get_message(timeout=timeout)
    return None if msg is None else dict(json.loads(msg["data"]))


async def queue_keys(r: aioredis.Redis, q: Queue) -> list[bytes]:
    return [k async for k in r.scan_iter(match=f"jq:{{{q.name}}}:*")]


async def test_enqueue_claim_complete_round_trip(queue: Queue) -> None:
    res = await queue.enqueue(JobSpec("email", {"to": "a@b.c"}, max_retries=5))
    assert res.created
    job = await queue.get(res.job_id)
    assert job is not None
    assert (job.status, job.type, job.payload, job.attempts) == (
        JobStatus.QUEUED,
        "email",
        {"to": "a@b.c"},
        0,
    )
    assert job.max_retries == 5 and job.priority is Priority.NORMAL
    assert job.started_at is None and job.finished_at is None and job.run_at is None

    [claimed] = await queue.claim("w1", 10)
    assert (claimed.id, claimed.type, claimed.payload, claimed.attempt) == (
        res.job_id,
        "email",
        {"to": "a@b.c"},
        1,
    )
    assert claimed.max_retries == 5 and claimed.token >= 1
    job = await queue.get(res.job_id)
    assert job is not None and job.status is JobStatus.PROCESSING and job.started_at is not None

    assert await queue.complete([(claimed.id, claimed.token, {"sent": True})]) == [True]
    job = await queue.get(res.job_id)
    assert job is not None
    assert (job.status, job.result, job.progress, job.attempts) == (
        JobStatus.COMPLETED,
        {"sent": True},
        100,
        1,
    )
    assert job.finished_at is not None and job.finished_at >= job.created_at
    # a second ack of the same lease is refused
    assert await queue.complete([(claimed.id, claimed.token, None)]) == [False]
    assert await queue.claim("w1") == []


async def test_priorities_drain_high_first_and_fifo_within_a_priority(queue: Queue) -> None:
    order = [
        Priority.LOW,
        Priority.NORMAL,
        Priority.HIGH,
        Priority.LOW,
        Priority.HIGH,
        Priority.NORMAL,
    ]
    results = await queue.enqueue_many([JobSpec("t", i, priority=p) for i, p in enumerate(order)])
    claimed = [c.payload for c in await queue.claim("w", 4)]
    claimed += [c.payload for c in await queue.claim("w", 10)]
    assert claimed == [2, 4, 1, 5, 0, 3]
    assert len(results) == 6


async def test_claim_takes_at_most_count(queue: Queue) -> None:
    await queue.enqueue_many([JobSpec("t", i) for i in range(5)])
    assert [c.payload for c in await queue.claim("w", 2)] == [0, 1]
    assert [c.payload for c in await queue.claim("w", 2)] == [2, 3]
    assert [c.payload for c in await queue.claim("w", 2)] == [4]
    with pytest.raises(ValueError, match="count"):
        await queue.claim("w", 0)
    with pytest.raises(ValueError, match="count"):
        await queue.claim("w", MAX_BATCH + 1)


async def test_batches_larger_than_one_script_call(queue: Queue) -> None:
    n = 2 * MAX_BATCH + 500
    results = await queue.enqueue_many([JobSpec("t", i) for i in range(n)])
    assert len(results) == n and all(r.created for r in results)
    assert len({r.job_id for r in results}) == n
    stats = await queue.stats()
    assert stats.ready == n and stats.enqueued_total == n
    claimed = []
    while len(claimed) < n:
        got = await queue.claim("w", MAX_BATCH)
        assert got
        claimed += got
    assert [c.payload for c in claimed] == list(range(n))  # FIFO across chunks
    assert [c.id for c in claimed] == [r.job_id for r in results]
    assert await queue.renew([(c.id, c.token) for c in claimed]) == [True] * n
    acks = await queue.complete([(c.id, c.token, c.payload) for c in claimed])
    assert acks == [True] * n
    stats = await queue.stats()
    assert (stats.ready, stats.in_flight, stats.completed_total) == (0, 0, n)


async def test_idempotency_key_returns_the_same_job(queue: Queue) -> None:
    first = await queue.enqueue(JobSpec("t", 1, idempotency_key="order-42"))
    again = await queue.enqueue(JobSpec("t", 2, idempotency_key="order-42"))
    other = await queue.enqueue(JobSpec("t", 3, idempotency_key="order-43"))
    assert first.created and not again.created and other.created
    assert again.job_id == first.job_id != other.job_id
    batch = await queue.enqueue_many(
        [
            JobSpec("t", 4, idempotency_key="k"),
            JobSpec("t", 5, idempotency_key="k"),
            JobSpec("t", 6),
        ]
    )
    assert [r.created for r in batch] == [True, False, True]
    assert batch[0].job_id == batch[1].job_id
    assert (await queue.stats()).ready == 4
    job = await queue.get(first.job_id)
    assert job is not None and job.payload == 1  # the duplicate did not overwrite it


async def test_idempotency_key_expires(redis_client: aioredis.Redis, queue_name: str) -> None:
    q = Queue(redis_client, queue_name, idempotency_ttl=0.2)
    try:
        a = await q.enqueue(JobSpec("t", idempotency_key="once"))
        await asyncio.sleep(0.3)
        b = await q.enqueue(JobSpec("t", idempotency_key="once"))
        assert a.created and b.created and a.job_id != b.job_id
    finally:
        await q.purge()


async def test_explicit_job_id_is_never_overwritten(queue: Queue) -> None:
    a = await queue.enqueue(JobSpec("t", "first", job_id="invoice-7"))
    b = await queue.enqueue(JobSpec("t", "second", job_id="invoice-7"))
    assert (a.job_id, a.created, b.job_id, b.created) == ("invoice-7", True, "invoice-7", False)
    job = await queue.get("invoice-7")
    assert job is not None and job.payload == "first"
    assert (await queue.stats()).ready == 1


async def test_finished_jobs_expire_after_the_result_ttl(
    redis_client: aioredis.Redis, queue_name: str
) -> None:
    q = Queue(redis_client, queue_name, result_ttl=0.2)
    try:
        done, cancelled, kept = await q.enqueue_many([JobSpec("t"), JobSpec("t"), JobSpec("t")])
        assert await q.cancel(cancelled.job_id)
        [c] = await q.claim("w")
        assert await q.complete([(c.id, c.token, "r")]) == [True]
        assert (await q.get(done.job_id)) is not None
        await asyncio.sleep(0.3)
        await q.claim("w", 1)  # reaping rides along with claim (and enqueue)
        assert await q.get(done.job_id) is None
        assert await q.get(cancelled.job_id) is None
        # only finished records go: the job claimed above is still there
        job = await q.get(kept.job_id)
        assert job is not None and job.status is JobStatus.PROCESSING
        for column in q.keys.columns:
            assert not await redis_client.hexists(column, done.job_id)
    finally:
        await q.purge()


async def test_stats_counts_waiting_busy_delayed_and_dead(queue: Queue) -> None:
    await queue.enqueue_many([JobSpec("t", i) for i in range(5)])
    await queue.enqueue(JobSpec("t", "later", delay=3600))
    await queue.enqueue(JobSpec("t", "soon", delay=0.05))
    dead = await queue.enqueue(JobSpec("t", "doomed", max_retries=0, priority=Priority.HIGH))
    [d] = await queue.claim("w")
    assert d.id == dead.job_id
    assert (await queue.fail(d.id, d.token, "boom")).value == "dead"
    busy = await queue.claim("w", 2)
    await asyncio.sleep(0.1)  # "soon" is now due but not promoted yet
    stats = await queue.stats()
    assert stats.in_flight == 2  # busy workers never look idle
    assert stats.ready == 3 + 1  # 3 waiting + 1 due delayed job
    assert stats.delayed == 1
    assert stats.dead == 1
    assert stats.oldest_ready_age > 0
    assert (stats.enqueued_total, stats.failed_total, stats.completed_total) == (8, 1, 0)
    await queue.complete([(c.id, c.token, None) for c in busy])
    stats = await queue.stats()
    assert (stats.in_flight, stats.completed_total) == (0, 2)


async def test_stats_of_an_empty_queue(queue: Queue) -> None:
    stats = await queue.stats()
    assert (stats.ready, stats.in_flight, stats.delayed, stats.dead) == (0, 0, 0, 0)
    assert stats.oldest_ready_age == 0.0


async def test_delayed_job_runs_only_when_due(queue: Queue) -> None:
    res = await queue.enqueue(JobSpec("t", delay=0.3))
    job = await queue.get(res.job_id)
    assert job is not None and job.status is JobStatus.QUEUED and job.run_at is not None
    assert await queue.claim("w") == []
    stats = await queue.stats()
    assert (stats.ready, stats.delayed) == (0, 1)
    got: list[object] = []

    async def claimed() -> bool:
        got.extend(await queue.claim("w"))
        return bool(got)

    await eventually(claimed)
    job = await queue.get(res.job_id)
    assert job is not None and job.started_at is not None and job.started_at >= job.run_at


async def test_cancel_only_touches_waiting_jobs(queue: Queue) -> None:
    queued, delayed, running = await queue.enqueue_many(
        [
            JobSpec("t", priority=Priority.LOW),
            JobSpec("t", delay=60),
            JobSpec("t", priority=Priority.HIGH),
        ]
    )
    [c] = await queue.claim("w")
    assert c.id == running.job_id
    assert await queue.cancel(queued.job_id)
    assert await queue.cancel(delayed.job_id)
    assert not await queue.cancel(running.job_id)
    assert not await queue.cancel(queued.job_id)  # already cancelled
    assert not await queue.cancel("no-such-job")
    job = await queue.get(queued.job_id)
    assert job is not None and job.status is JobStatus.CANCELLED and job.finished_at is not None
    stats = await queue.stats()
    assert (stats.ready, stats.delayed, stats.in_flight) == (0, 0, 1)
    assert await queue.claim("w") == []
    assert await queue.complete([(c.id, c.token, None)]) == [True]
    assert not await queue.cancel(running.job_id)


async def test_events_one_message_per_call(queue: Queue, redis_client: aioredis.Redis) -> None:
    """One message per call, none for a claim (it leaves ready + in flight unchanged)."""
    pubsub = await subscribed(redis_client, queue.keys.events)
    try:
        await queue.enqueue_many([JobSpec("t", i) for i in range(5)])
        claimed = await queue.claim("w", 5)
        assert await queue.set_progress(claimed[0].id, claimed[0].token, 40)
        await queue.complete([(c.id, c.token, None) for c in claimed])
        assert await next_event(pubsub) == {"event": "enqueued", "n": 5}
        assert await next_event(pubsub) == {
            "event": "progress",
            "id": claimed[0].id,
            "progress": 40,
        }
        assert await next_event(pubsub) == {"event": "completed", "ids": [c.id for c in claimed]}
        assert await next_event(pubsub, 0.2) is None
    finally:
        await pubsub.aclose()


async def test_progress_is_recorded_for_the_lease_holder_only(queue: Queue) -> None:
    res = await queue.enqueue(JobSpec("t"))
    [c] = await queue.claim("w")
    assert await queue.set_progress(c.id, c.token, 55)
    assert not await queue.set_progress(c.id, c.token + 1, 70)
    job = await queue.get(res.job_id)
    assert job is not None and job.progress == 55
    with pytest.raises(ValueError, match="between 0 and 100"):
        await queue.set_progress(c.id, c.token, 101)


async def test_wait_for_jobs(queue: Queue) -> None:
    assert await queue.wait_for_jobs(0.2) is False  # nothing arrives
    waiter = asyncio.create_task(queue.wait_for_jobs(30))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await queue.enqueue(JobSpec("t"))
    assert await asyncio.wait_for(waiter, 10) is True  # woken by the event, long before 30 s
    assert await queue.wait_for_jobs(30) is True  # a job is ready: returns at once
    [c] = await queue.claim("w")
    await queue.enqueue(JobSpec("t", delay=0.3))
    assert await asyncio.wait_for(queue.wait_for_jobs(30), 10) is True  # the delayed job falls due
    waiter = asyncio.create_task(queue.wait_for_jobs(30))
    await asyncio.sleep(0.1)
    await queue.release([(c.id, c.token)])
    assert await asyncio.wait_for(waiter, 10) is True  # woken by the release


async def test_concurrent_waiters_on_one_queue_respect_their_timeouts(queue: Queue) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    results = await asyncio.gather(*(queue.wait_for_jobs(0.3) for _ in range(3)))
    assert results == [False, False, False]
    assert loop.time() - start < 3 * 0.3  # each within its own timeout, not one after another
    waiters = [asyncio.create_task(queue.wait_for_jobs(30)) for _ in range(3)]
    await asyncio.sleep(0.2)
    await queue.enqueue(JobSpec("t"))
    assert await asyncio.wait_for(asyncio.gather(*waiters), 10) == [True, True, True]


async def test_a_cancelled_wait_leaves_the_queue_usable(queue: Queue) -> None:
    waiter = asyncio.create_task(queue.wait_for_jobs(30))
    await asyncio.sleep(0.2)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    waiter = asyncio.create_task(queue.wait_for_jobs(30))
    await asyncio.sleep(0.2)
    await queue.enqueue(JobSpec("t"))
    assert await asyncio.wait_for(waiter, 10) is True


async def test_wait_for_jobs_reuses_one_subscription_connection(
    queue: Queue, redis_client: aioredis.Redis
) -> None:
    for _ in range(3):
        assert await queue.wait_for_jobs(0.05) is False
    clients = await redis_client.client_list()
    assert sum(1 for c in clients if int(c.get("sub", 0)) > 0) == 0  # unsubscribed when idle
    first = queue._pubsub
    assert await queue.wait_for_jobs(0.05) is False
    assert queue._pubsub is first


async def test_heartbeats_and_worker_listing(queue: Queue) -> None:
    await queue.heartbeat("w-a", busy=True, in_flight=3, ttl=30)
    await queue.heartbeat("w-b", busy=False, in_flight=0, ttl=0.1)
    workers = await queue.workers()
    assert [(w.id, w.busy, w.in_flight) for w in workers] == [("w-a", True, 3), ("w-b", False, 0)]
    assert all(w.last_seen > 0 for w in workers)
    await asyncio.sleep(0.2)
    assert [w.id for w in await queue.workers()] == ["w-a"]


async def test_purge_deletes_every_key_of_the_queue(
    queue: Queue, redis_client: aioredis.Redis
) -> None:
    await queue.enqueue_many([JobSpec("t", idempotency_key=f"k{i}") for i in range(3)])
    await queue.enqueue(JobSpec("t", delay=60))
    [c] = await queue.claim("w")
    await queue.complete([(c.id, c.token, 1)])
    await queue.heartbeat("w", busy=False, in_flight=0, ttl=10)
    assert await queue_keys(redis_client, queue)
    assert await queue.purge() == 4
    assert await queue_keys(redis_client, queue) == []


async def test_other_queues_are_untouched(redis_client: aioredis.Redis, queue: Queue) -> None:
    other = Queue(redis_client, queue.name + "-other")
    try:
        await other.enqueue(JobSpec("t"))
        await queue.enqueue(JobSpec("t"))
        await queue.purge()
        assert (await other.stats()).ready == 1
        assert len(await other.claim("w", 10)) == 1
    finally:
        await other.purge()


async def test_bad_input_in_a_batch_writes_nothing(
    queue: Queue, redis_client: aioredis.Redis
) -> None:
    specs = [JobSpec("t", 1), JobSpec("t", {"bad": {1, 2}}), JobSpec("t", 3)]
    with pytest.raises(ValueError, match="JSON"):
        await queue.enqueue_many(specs)
    with pytest.raises(TypeError):
        await queue.enqueue_many([JobSpec("t"), {"type": "t"}])  # type: ignore[list-item]
    assert await queue_keys(redis_client, queue) == []

    await queue.enqueue_many([JobSpec("t", 1), JobSpec("t", 2)])
    claimed = await queue.claim("w", 2)
    with pytest.raises(ValueError, match="job_id"):
        await queue.complete([(claimed[0].id, claimed[0].token, None), ("bad id", 1, None)])
    stats = await queue.stats()
    assert (stats.in_flight, stats.completed_total) == (2, 0)


async def test_a_script_error_leaves_no_half_written_job(
    queue: Queue, redis_client: aioredis.Redis
) -> None:
    """The scripts read and check everything before their first write."""
    s = script("enqueue")
    keys = s.keys_for(queue.keys)
    spec = json.dumps([1, 3, "t", None])
    with pytest.raises(ResponseError):
        # a delay that is not a number: the script fails while checking its input
        await redis_client.eval(s.source, len(keys), *keys, 1000, 10, "a b", "0 zzz", 0, spec, spec)
    assert (await queue.stats()).ready == 0
    assert await queue.get("a") is None and await queue.get("b") is None
    assert await queue_keys(redis_client, queue) == []


async def test_unknown_jobs(queue: Queue) -> None:
    assert await queue.get("nope") is None
    known = await queue.enqueue(JobSpec("t", "x"))
    many = await queue.get_many(["nope", known.job_id, ""])
    assert many[0] is None and many[2] is None
    assert many[1] is not None and many[1].payload == "x"
    await queue.purge()
    assert await queue.get("") is None
    assert await queue.complete([("nope", 1, None)]) == [False]
    assert await queue.renew([("nope", 1)]) == [False]
    assert await queue.release([("nope", 1)]) == [False]
    assert (await queue.fail("nope", 1, "x")).value == "stale"
    assert await queue.complete([]) == [] and await queue.enqueue_many([]) == []


async def test_a_client_that_decodes_responses_works_too(redis_url: str, queue_name: str) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    q = Queue(client, queue_name, backoff_base=0.001)
    try:
        a, b = await q.enqueue_many([JobSpec("t", {"k": "ü"}, idempotency_key="x"), JobSpec("t")])
        assert (await q.enqueue(JobSpec("t", idempotency_key="x"))).job_id == a.job_id
        claimed = await q.claim("w", 2)
        assert [c.payload for c in claimed] == [{"k": "ü"}, None]
        assert await q.complete([(claimed[0].id, claimed[0].token, "r")]) == [True]
        assert await q.fail(claimed[1].id, claimed[1].token, "e", retry=False) is FailOutcome.DEAD
        job = await q.get(a.job_id)
        assert job is not None and (job.status, job.result) == (JobStatus.COMPLETED, "r")
        assert [j.id for j in await q.dead_jobs()] == [b.job_id]
        await q.heartbeat("w", busy=True, in_flight=1, ttl=5)
        assert [w.id for w in await q.workers()] == ["w"]
        assert (await q.stats()).dead == 1
        waiter = asyncio.create_task(q.wait_for_jobs(30))
        await asyncio.sleep(0.1)
        await q.enqueue(JobSpec("t"))
        assert await asyncio.wait_for(waiter, 10) is True
    finally:
        await q.purge()
        await q.aclose()
        await client.aclose()


async def test_a_claim_the_lists_cannot_fill_promotes_due_jobs_in_priority_order(
    queue: Queue,
) -> None:
    """Between maintenance runs (MAINTENANCE_INTERVAL_MS) a claim that the ready lists cannot
    fill promotes due delayed jobs itself, and still returns the highest priority first."""
    high = await queue.enqueue(JobSpec("t", "high", priority=Priority.HIGH, delay=0.03))
    assert await queue.claim("w", 5) == []  # runs the maintenance: the gate is now closed
    low = await queue.enqueue(JobSpec("t", "low", priority=Priority.LOW))
    await asyncio.sleep(0.05)  # "high" is due, the gate still closed
    got = await queue.claim("w", 5)
    assert [c.id for c in got] == [high.job_id, low.job_id]
