"""The worker runtime's logic against an in-memory queue: batching, concurrency, failures,
timeouts, lost leases, progress and the drain (no Redis here; tests/integration has that)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from jobqueue_worker import JobContext, SyncJobContext, TaskRegistry
from jobqueue_worker import constants as c
from jobqueue_worker.metrics import WorkerMetrics
from jobqueue_worker.runtime import Worker, WorkerConfig
from redis.exceptions import ConnectionError as RedisConnectionError

from jobqueue import Claimed, FailOutcome, Priority, codec


class FakeQueue:
    """Just enough of jobqueue.Queue, in memory, with knobs to inject failures."""

    def __init__(self) -> None:
        self.ready: deque[Claimed] = deque()
        self.leases: dict[str, int] = {}
        self.completed: dict[str, Any] = {}
        self.failed: list[tuple[str, str, bool]] = []
        self.released: list[str] = []
        self.progress: dict[str, list[int]] = {}
        self.claim_sizes: list[int] = []
        self.complete_sizes: list[int] = []
        self.renew_calls = 0
        self.lose_lease: set[str] = set()
        self.errors: dict[str, int] = {}  # op -> how many calls raise ConnectionError
        self.heartbeats: list[tuple[bool, int, float]] = []
        self._token = 0
        self._enqueued = asyncio.Event()
        self.cancels: asyncio.Queue[str] = asyncio.Queue()  # what cancelled_jobs() yields

    def add(self, type: str, payload: Any = None, *, max_retries: int = 3) -> str:
        job_id = uuid.uuid4().hex
        self.ready.append(Claimed(job_id, 0, type, payload, 0, max_retries, Priority.NORMAL))
        self._enqueued.set()
        return job_id

    async def _round_trip(self, op: str) -> None:
        await asyncio.sleep(0)
        if self.errors.get(op, 0) > 0:
            self.errors[op] -= 1
            raise RedisConnectionError(f"injected {op} failure")

    def _owns(self, job_id: str, token: int) -> bool:
        return self.leases.get(job_id) == token

    async def claim(self, worker_id: str, count: int = 1) -> list[Claimed]:
        await self._round_trip("claim")
        self.claim_sizes.append(count)
        out: list[Claimed] = []
        while self.ready and len(out) < count:
            job = self.ready.popleft()
            self._token += 1
            self.leases[job.id] = self._token
            out.append(
                Claimed(job.id, self._token, job.type, job.payload, job.attempt + 1,
                        job.max_retries, job.priority)
            )  # fmt: skip
        return out

    async def complete(self, items: Sequence[tuple[str, int, Any]]) -> list[bool]:
        await self._round_trip("complete")
        self.complete_sizes.append(len(items))
        out = []
        for job_id, token, result in items:
            ok = self._owns(job_id, token)
            if ok:
                del self.leases[job_id]
                # what the real queue stores: the worker hands over results already encoded
                assert result is None or isinstance(result, codec.Encoded), result
                self.completed[job_id] = result if result is None else codec.loads(result.text)
            out.append(ok)
        return out

    async def fail(self, job_id: str, token: int, error: str, *, retry: bool = True) -> FailOutcome:
        await self._round_trip("fail")
        if not self._owns(job_id, token):
            return FailOutcome.STALE
        del self.leases[job_id]
        self.failed.append((job_id, error, retry))
        return FailOutcome.RETRYING if retry else FailOutcome.DEAD

    async def release(self, leases: Sequence[tuple[str, int]]) -> list[bool]:
        await self._round_trip("release")
        out = []
        for job_id, token in leases:
            ok = self._owns(job_id, token)
            if ok:
                del self.leases[job_id]
                self.released.append(job_id)
            out.append(ok)
        return out

    async def renew(self, leases: Sequence[tuple[str, int]]) -> list[bool]:
        await self._round_trip("renew")
        self.renew_calls += 1
        out = []
        for job_id, token in leases:
            if job_id in self.lose_lease:
                self.leases.pop(job_id, None)
            out.append(self._owns(job_id, token))
        return out

    async def set_progress(self, job_id: str, token: int, progress: int) -> bool:
        await self._round_trip("progress")
        if not self._owns(job_id, token):
            return False
        self.progress.setdefault(job_id, []).append(progress)
        return True

    async def heartbeat(self, worker_id: str, *, busy: bool, in_flight: int, ttl: float) -> None:
        await self._round_trip("heartbeat")
        self.heartbeats.append((busy, in_flight, ttl))

    async def cancelled_jobs(self) -> AsyncIterator[str]:
        while True:
            yield await self.cancels.get()

    def cancel_running(self, job_id: str) -> None:
        """What Queue.cancel(running=True) does: the lease is gone, the worker is told."""
        self.leases.pop(job_id, None)
        self.cancels.put_nowait(job_id)

    async def wait_for_jobs(self, timeout: float) -> bool:
        self._enqueued.clear()
        try:
            await asyncio.wait_for(self._enqueued.wait(), timeout)
        except TimeoutError:
            return False
        return True


def make_worker(queue: FakeQueue, registry: TaskRegistry, **overrides: Any) -> Worker:
    cfg: dict[str, Any] = {
        "worker_id": "w1",
        "concurrency": 4,
        "job_timeout": 10.0,
        "drain_timeout": 5.0,
        "lease_seconds": 3.0,
        "heartbeat_interval": 0.05,
        "poll_interval": 0.05,
        "job_log_level": logging.DEBUG,
    }
    cfg.update(overrides)
    return Worker(queue, registry, WorkerConfig(**cfg), WorkerMetrics())


async def run_until(worker: Worker, done: Callable[[], bool], timeout: float = 5.0) -> None:
    """Run the worker until `done()` holds, then stop it and wait for the drain."""
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + timeout
    while not done():
        assert not task.done(), "the worker stopped on its own"
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)
    worker.request_stop("test")
    await asyncio.wait_for(task, timeout)


def sample(worker: Worker, name: str, **labels: str) -> float:
    value = worker.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_jobs_complete_with_results_acked_in_batches() -> None:
    registry = TaskRegistry()

    @registry.task("double")
    async def double(payload: dict[str, int]) -> int:
        return payload["n"] * 2

    queue = FakeQueue()
    ids = [queue.add("double", {"n": n}) for n in range(200)]
    worker = make_worker(queue, registry, concurrency=50)
    await run_until(worker, lambda: len(queue.completed) == 200)
    assert [queue.completed[i] for i in ids] == [n * 2 for n in range(200)]
    assert len(queue.complete_sizes) < 200 / 10, "completions were not batched"
    assert max(queue.claim_sizes) == 50
    assert sample(worker, "jobqueue_worker_jobs_processed_total", type="double",
                  outcome="completed") == 200  # fmt: skip
    assert not queue.leases


async def test_concurrency_is_never_exceeded() -> None:
    registry = TaskRegistry()
    running, peak = 0, 0

    @registry.task("work")
    async def work(payload: None) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    queue = FakeQueue()
    for _ in range(60):
        queue.add("work")
    worker = make_worker(queue, registry, concurrency=7)
    await run_until(worker, lambda: len(queue.completed) == 60)
    assert peak == 7


async def test_sync_tasks_run_in_threads_with_the_same_limit() -> None:
    registry = TaskRegistry()
    lock = threading.Lock()
    running, peak = 0, 0
    threads: set[str] = set()

    @registry.task("cpu")
    def cpu(payload: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            threads.add(threading.current_thread().name)
        time.sleep(0.01)
        with lock:
            running -= 1
        return payload + 1

    queue = FakeQueue()
    for n in range(30):
        queue.add("cpu", n)
    worker = make_worker(queue, registry, concurrency=3)
    await run_until(worker, lambda: len(queue.completed) == 30)
    assert peak <= 3
    assert sorted(queue.completed.values()) == list(range(1, 31))
    assert threading.current_thread().name not in threads


async def test_a_raising_task_fails_the_attempt_with_its_error() -> None:
    registry = TaskRegistry()

    @registry.task("boom")
    def boom(payload: None) -> None:
        raise ValueError("bad input 42")

    queue = FakeQueue()
    job_id = queue.add("boom")
    worker = make_worker(queue, registry)
    await run_until(worker, lambda: bool(queue.failed))
    [(failed_id, error, retry)] = queue.failed
    assert failed_id == job_id
    assert error.startswith("ValueError: bad input 42")
    assert "Traceback" in error
    assert retry is True
    assert sample(worker, "jobqueue_worker_jobs_processed_total", type="boom",
                  outcome="failed") == 1  # fmt: skip


async def test_unknown_type_is_dead_at_once_and_the_worker_goes_on() -> None:
    registry = TaskRegistry()

    @registry.task("known")
    async def known(payload: None) -> str:
        return "ok"

    queue = FakeQueue()
    bad = queue.add("nope")
    good = queue.add("known")
    worker = make_worker(queue, registry)
    await run_until(worker, lambda: bool(queue.failed) and good in queue.completed)
    [(failed_id, error, retry)] = queue.failed
    assert (failed_id, retry) == (bad, False)
    assert "unknown task type 'nope'" in error and "known" in error
    assert sample(worker, "jobqueue_worker_jobs_processed_total", type=c.UNKNOWN_TYPE_LABEL,
                  outcome="unknown_task") == 1  # fmt: skip


@pytest.mark.parametrize(
    ("result", "why"),
    [
        ({1, 2}, "set"),
        ({"x": float("inf"), "n": None}, "inf is not a JSON number"),  # orjson would write null
        # what the stdlib would accept but the queue's encoder (orjson) refuses
        ({1: "int key"}, "Dict key must be str"),
        ({"n": 2**70}, "Integer exceeds 64-bit range"),
        (["\ud800"], "surrogates not allowed"),
    ],
)
async def test_a_result_that_is_not_json_fails_without_retry(result: Any, why: str) -> None:
    registry = TaskRegistry()

    @registry.task("bad-result")
    async def bad_result(payload: None) -> Any:
        return result

    queue = FakeQueue()
    queue.add("bad-result")
    worker = make_worker(queue, registry)
    await run_until(worker, lambda: bool(queue.failed))
    [(_, error, retry)] = queue.failed
    assert "not JSON-serialisable" in error and why in error
    assert retry is False
    assert not queue.completed


async def test_async_task_past_its_timeout_is_cancelled_and_failed() -> None:
    registry = TaskRegistry()
    cancelled = asyncio.Event()

    @registry.task("hang")
    async def hang(payload: None) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    queue = FakeQueue()
    queue.add("hang")
    worker = make_worker(queue, registry, job_timeout=0.2)
    await run_until(worker, lambda: bool(queue.failed) and cancelled.is_set())
    [(_, error, retry)] = queue.failed
    assert "timed out" in error and "JOB_TIMEOUT_SECONDS" in error
    assert retry is True
    assert worker.running == 0


async def test_sync_task_past_its_timeout_is_failed_and_keeps_its_slot_until_it_returns() -> None:
    registry = TaskRegistry()
    release = threading.Event()

    @registry.task("stuck")
    def stuck(payload: None) -> str:
        release.wait(10)
        return "late"

    queue = FakeQueue()
    queue.add("stuck")
    worker = make_worker(queue, registry, job_timeout=0.2, concurrency=1)
    task = asyncio.create_task(worker.run())
    while not queue.failed:
        await asyncio.sleep(0.01)
    assert "timed out" in queue.failed[0][1]
    assert worker.abandoned_threads == 1 and worker.running == 1
    other = queue.add("stuck")
    await asyncio.sleep(0.2)
    assert other not in queue.leases, "claimed a job while the only slot was taken"
    release.set()
    while other not in queue.completed:
        await asyncio.sleep(0.01)
    assert worker.abandoned_threads == 0
    assert len(queue.completed) == 1, "the timed-out job's late result must be ignored"
    worker.request_stop()
    await asyncio.wait_for(task, 5)


async def test_a_lost_lease_abandons_the_job() -> None:
    registry = TaskRegistry()
    cancelled = asyncio.Event()

    @registry.task("long")
    async def long(payload: None) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    queue = FakeQueue()
    job_id = queue.add("long")
    queue.lose_lease.add(job_id)
    worker = make_worker(queue, registry, lease_seconds=0.6)
    await run_until(worker, cancelled.is_set)
    assert not queue.completed and not queue.failed and not queue.released
    assert sample(worker, "jobqueue_worker_jobs_processed_total", type="long",
                  outcome="lease_lost") == 1  # fmt: skip


async def test_leases_of_running_jobs_are_renewed_in_one_call() -> None:
    registry = TaskRegistry()

    @registry.task("nap")
    async def nap(payload: None) -> None:
        await asyncio.sleep(0.5)

    queue = FakeQueue()
    for _ in range(4):
        queue.add("nap")
    worker = make_worker(queue, registry, lease_seconds=0.3)
    await run_until(worker, lambda: len(queue.completed) == 4)
    assert 2 <= queue.renew_calls <= 8  # one call per lease/3 for all four jobs


async def test_progress_from_async_and_sync_tasks() -> None:
    registry = TaskRegistry()

    @registry.task("a")
    async def a(payload: None, ctx: JobContext) -> int:
        assert await ctx.progress(30)
        assert await ctx.progress(250)  # clamped to 100
        return ctx.attempt

    @registry.task("s")
    def s(payload: None, ctx: SyncJobContext) -> str:
        assert ctx.progress(40.7)
        return ctx.job_id

    queue = FakeQueue()
    ja, js = queue.add("a"), queue.add("s")
    worker = make_worker(queue, registry)
    await run_until(worker, lambda: len(queue.completed) == 2)
    assert queue.progress == {ja: [30, 100], js: [40]}
    assert queue.completed == {ja: 1, js: js}


async def test_stop_lets_running_jobs_finish_within_the_drain() -> None:
    registry = TaskRegistry()
    started = asyncio.Event()

    @registry.task("job")
    async def job(payload: None) -> str:
        started.set()
        await asyncio.sleep(0.3)
        return "done"

    queue = FakeQueue()
    first = queue.add("job")
    worker = make_worker(queue, registry, concurrency=1)
    task = asyncio.create_task(worker.run())
    await started.wait()
    queued = queue.add("job")
    worker.request_stop("SIGTERM")
    await asyncio.wait_for(task, 5)
    assert queue.completed == {first: "done"}
    assert not queue.released
    assert [j.id for j in queue.ready] == [queued], "a job was claimed after the stop"
    assert queue.heartbeats[-1] == (False, 0, c.FINAL_HEARTBEAT_TTL)


async def test_jobs_still_running_after_the_drain_are_handed_back() -> None:
    registry = TaskRegistry()
    started: list[str] = []

    @registry.task("long")
    async def long(payload: None, ctx: JobContext) -> None:
        started.append(ctx.job_id)
        await asyncio.sleep(60)

    @registry.task("quick")
    async def quick(payload: None) -> str:
        await asyncio.sleep(0.05)
        return "q"

    queue = FakeQueue()
    longs = {queue.add("long"), queue.add("long")}
    quick_id = queue.add("quick")
    worker = make_worker(queue, registry, drain_timeout=0.3)
    task = asyncio.create_task(worker.run())
    while len(started) < 2:
        await asyncio.sleep(0.01)
    worker.request_stop("SIGTERM")
    t0 = time.monotonic()
    await asyncio.wait_for(task, 5)
    assert 0.25 < time.monotonic() - t0 < 3
    assert set(queue.released) == longs
    assert queue.completed == {quick_id: "q"}
    assert not queue.leases


async def test_a_second_stop_hands_back_at_once() -> None:
    registry = TaskRegistry()
    started = asyncio.Event()

    @registry.task("long")
    def long(payload: None, ctx: SyncJobContext) -> None:
        started.set()
        while not ctx.abandoned:
            time.sleep(0.01)

    queue = FakeQueue()
    job_id = queue.add("long")
    worker = make_worker(queue, registry, drain_timeout=30)
    task = asyncio.create_task(worker.run())
    await started.wait()
    worker.request_stop("SIGTERM")
    await asyncio.sleep(0.1)
    assert not task.done()
    worker.request_stop("SIGINT")
    await asyncio.wait_for(task, 3)
    assert queue.released == [job_id]


async def test_redis_errors_are_retried_and_nothing_is_lost() -> None:
    registry = TaskRegistry()

    @registry.task("n")
    async def n(payload: int) -> int:
        return payload

    queue = FakeQueue()
    queue.errors = {"claim": 2, "complete": 2, "heartbeat": 1}
    for i in range(20):
        queue.add("n", i)
    worker = make_worker(queue, registry)
    await run_until(worker, lambda: len(queue.completed) == 20)
    assert sorted(queue.completed.values()) == list(range(20))
    assert sample(worker, "jobqueue_worker_redis_errors_total", op="complete") == 2
    assert sample(worker, "jobqueue_worker_redis_errors_total", op="claim") == 2


async def test_heartbeat_reports_busy_while_jobs_run() -> None:
    registry = TaskRegistry()

    @registry.task("nap")
    async def nap(payload: None) -> None:
        await asyncio.sleep(0.3)

    queue = FakeQueue()
    queue.add("nap")
    worker = make_worker(queue, registry)
    await run_until(worker, lambda: len(queue.completed) == 1)
    assert any(busy and n == 1 and ttl == pytest.approx(0.15) for busy, n, ttl in queue.heartbeats)


async def test_a_crashing_loop_stops_the_worker_with_its_error() -> None:
    registry = TaskRegistry()

    @registry.task("x")
    async def x(payload: None) -> None:
        return None

    class BrokenQueue(FakeQueue):
        async def heartbeat(self, worker_id: str, *, busy: bool, in_flight: int,
                            ttl: float) -> None:  # fmt: skip
            raise KeyError("a bug")

    worker = make_worker(BrokenQueue(), registry)
    with pytest.raises(KeyError):
        await asyncio.wait_for(worker.run(), 5)


async def test_loop_silence_grows_only_when_the_loop_stalls() -> None:
    registry = TaskRegistry()

    @registry.task("x")
    async def x(payload: None) -> None:
        return None

    queue = FakeQueue()
    worker = make_worker(queue, registry, poll_interval=0.05)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.3)
    assert worker.loop_silence() < 0.2
    time.sleep(0.3)  # block the event loop, like a misbehaving async task
    assert worker.loop_silence() >= 0.3
    worker.request_stop()
    await asyncio.wait_for(task, 5)


async def test_prefetch_claims_ahead_of_free_slots_without_exceeding_the_concurrency() -> None:
    registry = TaskRegistry()
    running, peak, started = 0, 0, 0

    @registry.task("quick")
    async def quick(payload: None) -> None:
        nonlocal running, peak, started
        running += 1
        started += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1

    queue = FakeQueue()
    for _ in range(600):
        queue.add("quick")
    worker = make_worker(queue, registry, concurrency=2, prefetch=20, prefetch_horizon=1.0)
    await run_until(worker, lambda: len(queue.completed) == 600)
    assert peak == 2
    assert started == 600
    assert max(queue.claim_sizes) > 2, "no claim asked for more jobs than free slots"
    assert not queue.leases


async def test_slow_jobs_are_not_prefetched() -> None:
    """The buffer holds about prefetch_horizon seconds of work: none for 50 ms jobs."""
    registry = TaskRegistry()

    @registry.task("slow")
    async def slow(payload: None) -> None:
        await asyncio.sleep(0.05)

    queue = FakeQueue()
    for _ in range(40):
        queue.add("slow")
    worker = make_worker(queue, registry, concurrency=2, prefetch=20, prefetch_horizon=0.01)
    await run_until(worker, lambda: len(queue.completed) == 40)
    assert max(queue.claim_sizes) <= 2


async def test_stop_hands_back_prefetched_jobs_before_the_drain() -> None:
    registry = TaskRegistry()
    started: list[str] = []

    @registry.task("work")
    async def work(payload: str) -> None:
        started.append(payload)
        await asyncio.sleep(0.002)

    queue = FakeQueue()
    payload_of = {queue.add("work", str(i)): str(i) for i in range(500)}
    worker = make_worker(queue, registry, concurrency=1, prefetch=10, prefetch_horizon=1.0)
    task = asyncio.create_task(worker.run())
    async with asyncio.timeout(5):
        while worker.in_flight < 4:  # one running, the rest prefetched
            await asyncio.sleep(0.001)
    worker.request_stop("test")
    await asyncio.wait_for(task, 5)
    assert len(queue.released) >= 2, "the prefetched jobs were not handed back"
    assert not queue.leases
    assert len(queue.completed) + len(queue.released) + len(queue.ready) == 500
    assert not {payload_of[i] for i in queue.released} & set(started), "a handed-back job ran"
    assert len(started) == len(queue.completed)


async def test_a_cancelled_running_job_is_stopped_and_reported_by_nobody() -> None:
    registry = TaskRegistry()
    seen: dict[str, bool] = {}
    started = asyncio.Event()

    @registry.task("long")
    async def long(payload: None, ctx: JobContext) -> str:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen["cancelled"] = ctx.cancelled
            seen["abandoned"] = ctx.abandoned
            raise
        return "finished"

    @registry.task("quick")
    async def quick(payload: None) -> str:
        return "ok"

    queue = FakeQueue()
    job_id = queue.add("long")
    worker = make_worker(queue, registry, concurrency=1)

    async def cancel_when_started() -> None:
        await started.wait()
        queue.cancel_running(job_id)
        queue.add("quick")

    canceller = asyncio.create_task(cancel_when_started())
    await run_until(worker, lambda: len(queue.completed) == 1)
    await canceller
    assert seen == {"cancelled": True, "abandoned": True}
    assert job_id not in queue.completed and not queue.failed  # Redis settled it already
    assert list(queue.completed.values()) == ["ok"]  # the slot was freed for the next job
    assert sample(worker, "jobqueue_worker_jobs_processed_total", type="long",
                  outcome="cancelled") == 1  # fmt: skip
