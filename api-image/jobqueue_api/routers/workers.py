"""The live workers of every queue of the JobQueue (their heartbeats)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from jobqueue_api.deps import RoutedDep
from jobqueue_api.errors import UNAVAILABLE
from jobqueue_api.models import WorkerPublic, WorkersPublic

router = APIRouter(tags=["workers"], responses=UNAVAILABLE)


@router.get("/workers", summary="Live workers of every queue")
async def list_workers(queues: RoutedDep) -> WorkersPublic:
    """Workers whose heartbeat has not expired, by queue (default first), then by id."""
    found = await asyncio.gather(*(q.workers() for q in queues.all))
    return WorkersPublic(
        workers=[
            WorkerPublic.of(w, q.name, queues.pool_of(q))
            for q, workers in zip(queues.all, found, strict=True)
            for w in workers
        ]
    )
