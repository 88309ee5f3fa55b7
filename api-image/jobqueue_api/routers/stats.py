"""Queue statistics: depth by state and the monotonic counters."""

from __future__ import annotations

from fastapi import APIRouter

from jobqueue_api.deps import QueueDep
from jobqueue_api.errors import UNAVAILABLE
from jobqueue_api.models import StatsPublic

router = APIRouter(tags=["stats"], responses=UNAVAILABLE)


@router.get("/stats", summary="Queue depth and counters")
async def get_stats(queue: QueueDep) -> StatsPublic:
    return StatsPublic.of(queue.name, await queue.stats())
