"""Listing jobs by state, cancelling running jobs, deleting one dead job: real redis-server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from jobqueue import FailOutcome, JobSpec, JobStatus, Priority, Queue
from jobqueue.browse import JobPage, ListState


@pytest.fixture
async def queue(redis_client: aioredis.Redis, queue_name: str) -> AsyncIterator[Queue]:
    q = Queue(redis_client, queue_name, lease_seconds=30, backoff_base=60)
    yield q
    await q.purge()
    await q.aclose()


async def all_pages(queue: Queue, state: ListState, **kw: object) -> tuple[list[str], int]:
    """Every id the listing returns, page by page, and how many calls it took."""
    ids: list[str] = []
    cursor: str | None = None
    calls = 0
    while True:
        page: JobPage = await queue.list_jobs(state, cursor=cursor, **kw)  # type: ignore[arg-type]
        calls += 1
        ids += [j.id for j in page.jobs]
        if page.cursor is None:
            return ids, calls
        cursor = page.cursor
        assert calls < 10_000


async def test_queued_jobs_are_listed_in_claim_order_across_priorities(queue: Queue) -> None:
    low = await queue.enqueue_many([JobSpec("t", i, priority=Priority.LOW) for i in range(5)])
    high = await queue.enqueue_many([JobSpec("t", i, priority=Priority.HIGH) for i in range(4)])
    normal = await queue.enqueue_many([JobSpec("u", i) for i in range(3)])
    expected = [r.job_id for r in (*high, *normal, *low)]
    ids, calls = await all_pages(queue, ListState.QUEUED, limit=2)
    assert ids == expected and calls >= 6
    page = await queue.list_jobs(ListState.QUEUED, limit=50)
    assert [j.status for j in page.jobs] == [JobStatus.QUEUED] * 12
    typed, _ = await all_pages(queue, ListState.QUEUED, job_type="u", limit=2)
    assert typed == [r.job_id for r in normal]


async def test_each_state_lists_exactly_its_jobs(queue: Queue) -> None:
    q1, q2, d1, r1, f1, x1, c1, k1 = await queue.enqueue_many(
        [
            JobSpec("t"),
            JobSpec("t"),
            JobSpec("t", delay=600),
            JobSpec("t", priority=Priority.HIGH),
            JobSpec("t", priority=Priority.HIGH, max_retries=3),
            JobSpec("t", priority=Priority.HIGH, max_retries=0),
            JobSpec("t", priority=Priority.HIGH),
            JobSpec("t", priority=Priority.HIGH),
        ]
    )
    claimed = {c.id: c for c in await queue.claim("w", 5)}
    assert set(claimed) == {r1.job_id, f1.job_id, x1.job_id, c1.job_id, k1.job_id}
    f, x, c = claimed[f1.job_id], claimed[x1.job_id], claimed[c1.job_id]
    assert await queue.fail(f.id, f.token, "boom") is FailOutcome.RETRYING
    assert await queue.fail(x.id, x.token, "boom") is FailOutcome.DEAD
    assert await queue.complete([(c.id, c.token, {"ok": 1})]) == [True]
    assert await queue.cancel(k1.job_id, running=True)
    expected = {
        ListState.QUEUED: [q1.job_id, q2.job_id],
        ListState.RUNNING: [r1.job_id],
        ListState.DELAYED: [d1.job_id],
        ListState.FAILED: [f1.job_id],
        ListState.DEAD: [x1.job_id],
        ListState.COMPLETED: [c1.job_id],
        ListState.CANCELLED: [k1.job_id],
    }
    for state, ids in expected.items():
        page = await queue.list_jobs(state, limit=10)
        assert ([j.id for j in page.jobs], page.cursor) == (ids, None), state
    [done] = (await queue.list_jobs(ListState.COMPLETED)).jobs
    assert done.result == {"ok": 1} and done.status is JobStatus.COMPLETED


async def test_finished_jobs_are_listed_newest_first_through_batches(queue: Queue) -> None:
    """Completed jobs come back newest batch first; a cursor can stop inside a batch."""
    res = await queue.enqueue_many([JobSpec("t", i) for i in range(30)])
    batches: list[list[str]] = []
    for size in (7, 1, 12, 10):
        claimed = await queue.claim("w", size)
        assert await queue.complete([(c.id, c.token, None) for c in claimed]) == [True] * size
        batches.append([c.id for c in claimed])
        await asyncio.sleep(0.003)  # finish times (the index's scores) in distinct ms
    for limit in (1, 3, 7, 50):
        ids, _ = await all_pages(queue, ListState.COMPLETED, limit=limit)
        assert len(ids) == 30 and set(ids) == {r.job_id for r in res}
        # newest batch first (batches finishing in the same ms keep their relative order)
        positions = [ids.index(b[0]) for b in batches]
        assert positions == sorted(positions, reverse=True)
        for b in batches:  # a batch's ids stay together and in order
            start = ids.index(b[0])
            assert ids[start : start + len(b)] == b


async def test_dead_jobs_newest_first_and_paging_is_stable_under_equal_scores(
    queue: Queue,
) -> None:
    res = await queue.enqueue_many([JobSpec("t", i, max_retries=0) for i in range(25)])
    claimed = await queue.claim("w", 25)
    for c in claimed:
        assert await queue.fail(c.id, c.token, "x") is FailOutcome.DEAD
    ids, _ = await all_pages(queue, ListState.DEAD, limit=4)
    assert sorted(ids) == sorted(r.job_id for r in res) and len(set(ids)) == 25
    # the running listing sees 25 leases with one deadline: seek by rank keeps them apart
    await queue.retry_dead()
    claimed = await queue.claim("w", 25)
    running, calls = await all_pages(queue, ListState.RUNNING, limit=3)
    assert sorted(running) == sorted(c.id for c in claimed) and calls == 9


async def test_the_work_per_call_is_bounded_and_a_filtered_page_can_be_short(
    queue: Queue,
) -> None:
    await queue.enqueue_many([JobSpec("common", i) for i in range(300)])
    rare = await queue.enqueue(JobSpec("rare"))
    page = await queue.list_jobs(ListState.QUEUED, job_type="rare", limit=5, budget=100)
    assert page.jobs == [] and page.cursor is not None  # 100 examined, none matched
    ids, calls = await all_pages(queue, ListState.QUEUED, job_type="rare", limit=5, budget=100)
    assert ids == [rare.job_id] and calls == 4


async def test_bad_cursor_and_limit_are_refused_before_redis(queue: Queue) -> None:
    for state, cursor in (
        (ListState.QUEUED, "3|0"),
        (ListState.QUEUED, "x"),
        (ListState.DEAD, "0|1"),
        (ListState.COMPLETED, "12|a b|0"),
        (ListState.RUNNING, "12|{x}|0"),
    ):
        with pytest.raises(ValueError, match="cursor"):
            await queue.list_jobs(state, cursor=cursor)
    with pytest.raises(ValueError, match="limit"):
        await queue.list_jobs(ListState.QUEUED, limit=0)


async def test_cancel_a_running_job_drops_its_lease_and_tells_the_worker(
    queue: Queue, redis_client: aioredis.Redis
) -> None:
    res = await queue.enqueue(JobSpec("t"))
    [c] = await queue.claim("w")
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(queue.keys.control)
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"  # type: ignore[index]
    try:
        assert not await queue.cancel(res.job_id)  # waiting jobs only by default
        assert await queue.cancel(res.job_id, running=True)
        msg = await pubsub.get_message(timeout=5)
        assert msg is not None and json.loads(msg["data"]) == {"cancel": res.job_id}
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    job = await queue.get(res.job_id)
    assert job is not None and job.status is JobStatus.CANCELLED
    stats = await queue.stats()
    assert stats.in_flight == 0
    # the worker's late answers are stale and change nothing
    assert await queue.complete([(c.id, c.token, 1)]) == [False]
    assert await queue.fail(c.id, c.token, "x") is FailOutcome.STALE
    assert await queue.renew([(c.id, c.token)]) == [False]
    assert not await queue.cancel(res.job_id, running=True)  # finished now


async def test_delete_dead_removes_one_dead_job_only(queue: Queue) -> None:
    dead, alive = await queue.enqueue_many([JobSpec("t", max_retries=0), JobSpec("t")])
    [c] = await queue.claim("w")
    assert await queue.fail(c.id, c.token, "x") is FailOutcome.DEAD
    assert not await queue.delete_dead(alive.job_id)
    assert await queue.get(alive.job_id) is not None
    assert await queue.delete_dead(dead.job_id)
    assert await queue.get(dead.job_id) is None
    assert not await queue.delete_dead(dead.job_id)
    assert (await queue.stats()).dead == 0


async def test_stats_count_the_ready_lists_by_priority(queue: Queue) -> None:
    await queue.enqueue_many(
        [JobSpec("t", priority=p) for p in (Priority.HIGH, Priority.LOW, Priority.LOW)]
    )
    assert (await queue.stats()).ready_by_priority == (1, 0, 2)
