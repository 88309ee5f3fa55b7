"""The enqueuer: coalescing of concurrent single enqueues, backpressure, errors, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from jobqueue_api.enqueuer import Enqueuer, QueueFull

from jobqueue import EnqueueResult, JobSpec, QueueStats


class FakeQueue:
    """In-memory stand-in for the three Queue methods the enqueuer calls (no I/O)."""

    def __init__(self, ready: int = 0, fail: Exception | None = None, delay: float = 0.0) -> None:
        self.ready = ready
        self.fail = fail
        self.delay = delay
        self.calls: list[list[str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.keys: dict[str, str] = {}

    async def enqueue(self, spec: JobSpec) -> EnqueueResult:
        return (await self.enqueue_many([spec]))[0]

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if self.fail is not None:
                raise self.fail
            self.calls.append([str(s.payload) for s in specs])
            results = []
            for spec in specs:
                if spec.idempotency_key and spec.idempotency_key in self.keys:
                    results.append(EnqueueResult(self.keys[spec.idempotency_key], False))
                    continue
                job_id = f"id-{spec.payload}"
                if spec.idempotency_key:
                    self.keys[spec.idempotency_key] = job_id
                self.ready += 1
                results.append(EnqueueResult(job_id, True))
            return results
        finally:
            self.in_flight -= 1

    async def stats(self) -> QueueStats:
        return QueueStats(
            ready=self.ready,
            in_flight=0,
            delayed=0,
            dead=0,
            oldest_ready_age=0.0,
            completed_total=0,
            failed_total=0,
            enqueued_total=self.ready,
        )


def spec(n: int, key: str | None = None) -> JobSpec:
    return JobSpec(type="t", payload=n, idempotency_key=key)


async def test_concurrent_single_enqueues_share_round_trips_and_keep_their_results() -> None:
    queue = FakeQueue(delay=0.01)
    enq = Enqueuer(queue, max_in_flight=2)
    results = await asyncio.gather(*(enq.enqueue(spec(i)) for i in range(200)))
    assert [r.job_id for r in results] == [f"id-{i}" for i in range(200)]
    assert enq.round_trips == len(queue.calls) < 10
    assert sorted(int(p) for call in queue.calls for p in call) == list(range(200))
    assert queue.max_in_flight <= 2


async def test_a_lone_enqueue_is_one_round_trip() -> None:
    queue = FakeQueue()
    enq = Enqueuer(queue)
    assert (await enq.enqueue(spec(7))).job_id == "id-7"
    assert queue.calls == [["7"]]


async def test_flushes_are_bounded_in_size() -> None:
    queue = FakeQueue()
    enq = Enqueuer(queue, max_jobs_per_flush=30)
    await asyncio.gather(*(enq.enqueue(spec(i)) for i in range(100)))
    assert max(len(call) for call in queue.calls) <= 30
    assert sum(len(call) for call in queue.calls) == 100


async def test_without_coalescing_each_job_is_its_own_round_trip() -> None:
    queue = FakeQueue()
    enq = Enqueuer(queue, coalesce=False)
    await asyncio.gather(*(enq.enqueue(spec(i)) for i in range(5)))
    assert len(queue.calls) == 5 and enq.round_trips == 5


async def test_a_redis_error_reaches_every_waiter_of_the_flush() -> None:
    queue = FakeQueue(fail=ConnectionError("down"))
    enq = Enqueuer(queue)
    waiters = (enq.enqueue(spec(i)) for i in range(5))
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)


@pytest.mark.parametrize("coalesce", [True, False])
async def test_backpressure_refuses_at_the_limit(coalesce: bool) -> None:
    queue = FakeQueue(ready=9)
    enq = Enqueuer(queue, max_depth=10, coalesce=coalesce)
    await enq.enqueue(spec(1))  # 9 ready < 10: accepted
    with pytest.raises(QueueFull) as info:
        await enq.enqueue(spec(2))
    assert (info.value.ready, info.value.limit) == (10, 10)
    with pytest.raises(QueueFull):
        await enq.enqueue_many([spec(3), spec(4)])
    assert queue.ready == 10


async def test_no_limit_means_no_stats_call() -> None:
    queue = FakeQueue(ready=10**9)
    enq = Enqueuer(queue, max_depth=0)
    await enq.enqueue_many([spec(1)])
    assert queue.calls == [["1"]]


async def test_created_jobs_are_counted_but_idempotent_repeats_are_not() -> None:
    counted: list[int] = []
    enq = Enqueuer(FakeQueue(), on_created=counted.append)
    await enq.enqueue(spec(1, key="k"))
    await enq.enqueue(spec(2, key="k"))
    await enq.enqueue_many([spec(3), spec(4, key="k")])
    assert sum(counted) == 2


async def test_aclose_sends_what_is_pending() -> None:
    queue = FakeQueue(delay=0.01)
    enq = Enqueuer(queue, max_in_flight=1)
    waiters = [asyncio.ensure_future(enq.enqueue(spec(i))) for i in range(10)]
    await asyncio.sleep(0)
    await enq.aclose()
    assert sum(len(call) for call in queue.calls) == 10
    assert all(w.done() for w in waiters)


async def test_a_cancelled_waiter_does_not_break_the_flush() -> None:
    queue = FakeQueue(delay=0.01)
    enq = Enqueuer(queue)
    first = asyncio.ensure_future(enq.enqueue(spec(1)))
    second = asyncio.ensure_future(enq.enqueue(spec(2)))
    await asyncio.sleep(0)
    first.cancel()
    assert (await second).job_id == "id-2"
    assert queue.calls == [["1", "2"]]  # the job was sent; only its answer went unheard
