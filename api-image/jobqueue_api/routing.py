"""Job routing to worker pools, and the view of every queue of the JobQueue the API serves.

The operator runs one worker pool per queue (``<QUEUE_NAME>/<pool>``) and tells the API, in
JOB_ROUTES (JSON ``{"<job type>": "<queue name>"}``), which job types go where; every other type
goes to QUEUE_NAME, the default pool's queue. The protocol is unchanged: a pool is just a queue.
Reads by id look in the default queue first, then in each pool's (job ids are unique uuids).

Every route covers all these queues (``RoutedQueues.all``: the default one first, then the
pools in JOB_ROUTES order). Backpressure (MAX_QUEUE_DEPTH) counts the queue a job goes to:
before a batch is sent, each queue it touches is checked, and the batch is refused whole
(503, nothing enqueued) if one of them holds MAX_QUEUE_DEPTH ready jobs or more. A batch that
spans pools is one round trip per queue, each atomic on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from jobqueue import AnyRedis, EnqueueResult, Job, JobSpec, Queue, QueueStats
from jobqueue_api.enqueuer import QueueFull


class RoutedQueues:
    """The default queue plus one queue per routed pool; an ``EnqueueTarget`` for the enqueuer."""

    def __init__(self, default: Queue, routes: Mapping[str, Queue], *, max_depth: int = 0) -> None:
        self.default = default
        self.routes = dict(routes)
        self.max_depth = max_depth
        by_name = {q.name: q for q in self.routes.values() if q.name != default.name}
        self.all: tuple[Queue, ...] = (default, *by_name.values())
        self._by_name = {q.name: q for q in self.all}

    @classmethod
    def build(
        cls, redis: AnyRedis, default: Queue, routes: Mapping[str, str], *, max_depth: int = 0
    ) -> RoutedQueues:
        queues: dict[str, Queue] = {default.name: default}
        for name in routes.values():
            queues.setdefault(name, Queue(redis, name))
        return cls(default, {t: queues[name] for t, name in routes.items()}, max_depth=max_depth)

    def pool_of(self, queue: Queue) -> str | None:
        """The pool a queue belongs to: None for the default queue, else the pool's name
        (the last part of ``<QUEUE_NAME>/<pool>``, or the whole name of a foreign queue)."""
        if queue.name == self.default.name:
            return None
        prefix = self.default.name + "/"
        return queue.name[len(prefix) :] if queue.name.startswith(prefix) else queue.name

    def find(self, name: str) -> Queue | None:
        """A queue by its name or its pool's name."""
        queue = self._by_name.get(name)
        if queue is not None:
            return queue
        for q in self.all[1:]:
            if self.pool_of(q) == name:
                return q
        return None

    def for_type(self, job_type: str) -> Queue:
        return self.routes.get(job_type, self.default)

    async def enqueue(self, spec: JobSpec) -> EnqueueResult:
        queue = self.for_type(spec.type)
        await self._check_depth((queue,))
        return await queue.enqueue(spec)

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        if not self.routes:
            await self._check_depth((self.default,))
            return await self.default.enqueue_many(specs)
        groups: dict[str, tuple[Queue, list[int]]] = {}
        for i, spec in enumerate(specs):
            queue = self.for_type(spec.type)
            groups.setdefault(queue.name, (queue, []))[1].append(i)
        await self._check_depth([q for q, _ in groups.values()])
        results: list[EnqueueResult | None] = [None] * len(specs)
        done = await asyncio.gather(
            *(q.enqueue_many([specs[i] for i in idx]) for q, idx in groups.values())
        )
        for (_, idx), out in zip(groups.values(), done, strict=True):
            for i, result in zip(idx, out, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    async def _check_depth(self, queues: Sequence[Queue]) -> None:
        if self.max_depth <= 0:
            return
        stats = await asyncio.gather(*(q.stats() for q in queues))
        for s in stats:
            if s.ready >= self.max_depth:
                raise QueueFull(s.ready, self.max_depth)

    async def stats(self) -> QueueStats:
        """The default queue's stats (the enqueuer's backpressure is checked here instead)."""
        return await self.default.stats()

    async def all_stats(self) -> list[QueueStats]:
        """Stats of every queue, in ``all`` order, read concurrently."""
        return list(await asyncio.gather(*(q.stats() for q in self.all)))

    async def get(self, job_id: str) -> tuple[Queue, Job] | None:
        """The job and the queue it is in, looking in the default queue first."""
        for queue in self.all:
            job = await queue.get(job_id)
            if job is not None:
                return queue, job
        return None
