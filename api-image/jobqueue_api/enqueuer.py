"""The one way the API enqueues: backpressure check, then coalesced Redis round trips.

Concurrent single-job requests are coalesced: each submission joins a pending list that is
flushed with one `Queue.enqueue_many` on the next event-loop turn. At most
COALESCE_MAX_IN_FLIGHT flushes run at once; while they do, submissions keep piling up and go
out together when one finishes, so batches grow with load and a lone request still costs a
single round trip. Each job is still enqueued exactly as `Queue.enqueue` would do it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from jobqueue import EnqueueResult, JobSpec, QueueStats
from jobqueue_api import constants as c


class EnqueueTarget(Protocol):
    """The part of `jobqueue.Queue` the enqueuer needs."""

    async def enqueue(self, spec: JobSpec) -> EnqueueResult: ...

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]: ...

    async def stats(self) -> QueueStats: ...


class QueueFull(Exception):
    """The queue holds at least MAX_QUEUE_DEPTH ready jobs: refuse new ones for now."""

    def __init__(self, ready: int, limit: int) -> None:
        super().__init__(f"queue is over its backpressure limit ({ready} ready, limit {limit})")
        self.ready = ready
        self.limit = limit


_Pending = tuple[JobSpec, "asyncio.Future[EnqueueResult]"]


class Enqueuer:
    """Enqueue jobs with backpressure; coalesce concurrent single enqueues when enabled.

    Backpressure is a soft limit: the ready count is read once per round trip, so concurrent
    requests (and other API replicas) may overshoot it by what they send at the same moment.
    """

    def __init__(
        self,
        queue: EnqueueTarget,
        *,
        max_depth: int = 0,
        coalesce: bool = True,
        on_created: Callable[[int], None] | None = None,
        on_round_trip: Callable[[int], None] | None = None,
        max_jobs_per_flush: int = c.COALESCE_MAX_JOBS,
        max_in_flight: int = c.COALESCE_MAX_IN_FLIGHT,
    ) -> None:
        self._queue = queue
        self._max_depth = max_depth
        self._coalesce = coalesce
        self._on_created = on_created
        self._on_round_trip = on_round_trip
        self._max_jobs = max_jobs_per_flush
        self._max_in_flight = max_in_flight
        self._pending: list[_Pending] = []
        self._flush_scheduled = False
        self._flushes: set[asyncio.Task[None]] = set()
        self.round_trips = 0  # enqueue round trips made, for tests and the benchmark

    async def enqueue(self, spec: JobSpec) -> EnqueueResult:
        """Enqueue one job; raises QueueFull or the Redis error that stopped it."""
        if not self._coalesce:
            await self._check_depth()
            self._count_round_trip(1)
            result = await self._queue.enqueue(spec)
            self._count([result])
            return result
        fut: asyncio.Future[EnqueueResult] = asyncio.get_running_loop().create_future()
        self._pending.append((spec, fut))
        self._schedule_flush()
        return await fut

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        """Enqueue a batch in one round trip, all or nothing as far as backpressure goes."""
        await self._check_depth()
        self._count_round_trip(len(specs))
        results = await self._queue.enqueue_many(specs)
        self._count(results)
        return results

    async def aclose(self) -> None:
        """Send whatever is pending and wait for every flush in flight (shutdown)."""
        while self._pending or self._flushes:
            self._flush()
            if self._flushes:
                await asyncio.gather(*self._flushes, return_exceptions=True)

    # ---- internals ---------------------------------------------------------------------------

    async def _check_depth(self) -> None:
        if self._max_depth > 0:
            stats = await self._queue.stats()
            if stats.ready >= self._max_depth:
                raise QueueFull(stats.ready, self._max_depth)

    def _count_round_trip(self, jobs: int) -> None:
        self.round_trips += 1
        if self._on_round_trip is not None:
            self._on_round_trip(jobs)

    def _count(self, results: Sequence[EnqueueResult]) -> None:
        if self._on_created is not None:
            created = sum(1 for r in results if r.created)
            if created:
                self._on_created(created)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and len(self._flushes) < self._max_in_flight:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        loop = asyncio.get_running_loop()
        while self._pending and len(self._flushes) < self._max_in_flight:
            batch = self._pending[: self._max_jobs]
            del self._pending[: self._max_jobs]
            task = loop.create_task(self._send(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        if self._pending:
            self._schedule_flush()

    async def _send(self, batch: list[_Pending]) -> None:
        try:
            results = await self.enqueue_many([spec for spec, _ in batch])
        except Exception as exc:  # handed to every waiter; the request maps it to a status
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)
