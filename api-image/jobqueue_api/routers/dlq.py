"""The dead-letter queue of every queue of the JobQueue: list, retry one or all, delete, purge."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from jobqueue import Job, Queue
from jobqueue_api import constants as c
from jobqueue_api.deps import RoutedDep
from jobqueue_api.errors import NOT_FOUND, UNAVAILABLE, OpenAPIResponses, error_doc
from jobqueue_api.models import (
    DeadJobsPage,
    DeletedJob,
    JobId,
    JobPublic,
    PurgedCount,
    RetriedCount,
)
from jobqueue_api.routing import RoutedQueues

router = APIRouter(tags=["dead-letter queue"], responses=UNAVAILABLE)

_BAD_QUEUE: OpenAPIResponses = {404: error_doc("A queue this API does not serve.")}


def _targets(queues: RoutedQueues, queue: str | None) -> tuple[Queue, ...]:
    if queue is None:
        return queues.all
    found = queues.find(queue)
    if found is None:
        served = ", ".join(q.name for q in queues.all)
        raise HTTPException(404, f"no queue {queue!r} here; this API serves: {served}")
    return (found,)


QueueFilter = Annotated[
    str | None,
    Query(min_length=1, max_length=200, description="A queue or pool name; default: all."),
]


@router.get("/dlq", responses=_BAD_QUEUE, summary="List dead jobs")
async def list_dead(
    queues: RoutedDep,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    limit: Annotated[int, Query(ge=1, le=c.DLQ_MAX_LIMIT)] = c.DLQ_DEFAULT_LIMIT,
    queue: QueueFilter = None,
) -> DeadJobsPage:
    """Oldest death first, queue after queue (the default one, then each pool's): `offset`
    counts across them. `GET /jobs?state=dead` lists them newest first with a cursor."""
    targets = _targets(queues, queue)
    stats = await asyncio.gather(*(q.stats() for q in targets))
    jobs: list[JobPublic] = []
    skip = offset
    for q, s in zip(targets, stats, strict=True):
        if skip >= s.dead:
            skip -= s.dead
            continue
        want = limit - len(jobs)
        if want <= 0:
            break
        page: list[Job] = await q.dead_jobs(skip, want)
        jobs += [JobPublic.of(j, q.name) for j in page]
        skip = 0
    return DeadJobsPage(jobs=jobs, offset=offset, limit=limit, total=sum(s.dead for s in stats))


@router.post("/dlq/{job_id}/retry", responses=NOT_FOUND, summary="Re-enqueue one dead job")
async def retry_dead(job_id: Annotated[JobId, Path()], queues: RoutedDep) -> RetriedCount:
    for q in queues.all:
        retried = await q.retry_dead(job_id)
        if retried:
            return RetriedCount(retried=retried)
    raise HTTPException(404, f"job {job_id} is not in the dead-letter queue")


@router.delete("/dlq/{job_id}", responses=NOT_FOUND, summary="Delete one dead job")
async def delete_dead(job_id: Annotated[JobId, Path()], queues: RoutedDep) -> DeletedJob:
    for q in queues.all:
        if await q.delete_dead(job_id):
            return DeletedJob(deleted=job_id)
    raise HTTPException(404, f"job {job_id} is not in the dead-letter queue")


@router.post("/dlq:retry-all", responses=_BAD_QUEUE, summary="Re-enqueue every dead job")
async def retry_all_dead(queues: RoutedDep, queue: QueueFilter = None) -> RetriedCount:
    done = await asyncio.gather(*(q.retry_dead(None) for q in _targets(queues, queue)))
    return RetriedCount(retried=sum(done))


@router.delete("/dlq", responses=_BAD_QUEUE, summary="Delete every dead job")
async def purge_dead(queues: RoutedDep, queue: QueueFilter = None) -> PurgedCount:
    done = await asyncio.gather(*(q.purge_dead() for q in _targets(queues, queue)))
    return PurgedCount(purged=sum(done))
