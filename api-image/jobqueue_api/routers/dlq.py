"""The dead-letter queue: list, retry one, retry all, purge."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from jobqueue_api import constants as c
from jobqueue_api.deps import QueueDep
from jobqueue_api.errors import NOT_FOUND, UNAVAILABLE
from jobqueue_api.models import DeadJobsPage, JobId, JobPublic, PurgedCount, RetriedCount

router = APIRouter(tags=["dead-letter queue"], responses=UNAVAILABLE)


@router.get("/dlq", summary="List dead jobs")
async def list_dead(
    queue: QueueDep,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    limit: Annotated[int, Query(ge=1, le=c.DLQ_MAX_LIMIT)] = c.DLQ_DEFAULT_LIMIT,
) -> DeadJobsPage:
    jobs, stats = await asyncio.gather(queue.dead_jobs(offset, limit), queue.stats())
    return DeadJobsPage(
        jobs=[JobPublic.of(j) for j in jobs], offset=offset, limit=limit, total=stats.dead
    )


@router.post("/dlq/{job_id}/retry", responses=NOT_FOUND, summary="Re-enqueue one dead job")
async def retry_dead(job_id: Annotated[JobId, Path()], queue: QueueDep) -> RetriedCount:
    retried = await queue.retry_dead(job_id)
    if retried == 0:
        raise HTTPException(404, f"job {job_id} is not in the dead-letter queue")
    return RetriedCount(retried=retried)


@router.post("/dlq:retry-all", summary="Re-enqueue every dead job")
async def retry_all_dead(queue: QueueDep) -> RetriedCount:
    return RetriedCount(retried=await queue.retry_dead(None))


@router.delete("/dlq", summary="Delete every dead job")
async def purge_dead(queue: QueueDep) -> PurgedCount:
    return PurgedCount(purged=await queue.purge_dead())
