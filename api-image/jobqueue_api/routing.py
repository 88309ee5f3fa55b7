"""Job routing to worker pools: each job type listed in JOB_ROUTES goes to its pool's queue.

The operator runs one worker pool per queue (``<QUEUE_NAME>/<pool>``) and tells the API, in
JOB_ROUTES (JSON ``{"<job type>": "<queue name>"}``), which job types go where; every other type
goes to QUEUE_NAME, the default pool's queue. The protocol is unchanged: a pool is just a queue.
Reads by id look in the default queue first, then in each pool's (job ids are unique uuids).
Backpressure (MAX_QUEUE_DEPTH) counts the default queue; a batch that spans pools is one
round trip per queue, each atomic on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from jobqueue import AnyRedis, EnqueueResult, Job, JobSpec, Queue, QueueStats


class RoutedQueues:
    """The default queue plus one queue per routed pool; an ``EnqueueTarget`` for the enqueuer."""

    def __init__(self, default: Queue, routes: Mapping[str, Queue]) -> None:
        self.default = default
        self.routes = dict(routes)
        by_name = {q.name: q for q in self.routes.values() if q.name != default.name}
        self.all: tuple[Queue, ...] = (default, *by_name.values())

    @classmethod
    def build(cls, redis: AnyRedis, default: Queue, routes: Mapping[str, str]) -> RoutedQueues:
        queues: dict[str, Queue] = {default.name: default}
        for name in routes.values():
            queues.setdefault(name, Queue(redis, name))
        return cls(default, {t: queues[name] for t, name in routes.items()})

    def for_type(self, job_type: str) -> Queue:
        return self.routes.get(job_type, self.default)

    async def enqueue(self, spec: JobSpec) -> EnqueueResult:
        return await self.for_type(spec.type).enqueue(spec)

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        if not self.routes:
            return await self.default.enqueue_many(specs)
        groups: dict[str, tuple[Queue, list[int]]] = {}
        for i, spec in enumerate(specs):
            queue = self.for_type(spec.type)
            groups.setdefault(queue.name, (queue, []))[1].append(i)
        results: list[EnqueueResult | None] = [None] * len(specs)
        done = await asyncio.gather(
            *(q.enqueue_many([specs[i] for i in idx]) for q, idx in groups.values())
        )
        for (_, idx), out in zip(groups.values(), done, strict=True):
            for i, result in zip(idx, out, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    async def stats(self) -> QueueStats:
        return await self.default.stats()

    async def get(self, job_id: str) -> tuple[Queue, Job] | None:
        """The job and the queue it is in, looking in the default queue first."""
        for queue in self.all:
            job = await queue.get(job_id)
            if job is not None:
                return queue, job
        return None
