"""Queue statistics: /stats (depth and counters), /queues (per queue and priority, with rates)."""

from __future__ import annotations

from fastapi import APIRouter

from jobqueue_api.deps import RatesDep, RoutedDep
from jobqueue_api.errors import UNAVAILABLE
from jobqueue_api.models import (
    AllStatsPublic,
    QueuePublic,
    QueueRates,
    QueuesPublic,
    ReadyByPriority,
)

router = APIRouter(tags=["stats"], responses=UNAVAILABLE)


@router.get("/stats", summary="Queue depth and counters, summed over every queue")
async def get_stats(queues: RoutedDep) -> AllStatsPublic:
    stats = await queues.all_stats()
    return AllStatsPublic.of_all([(q.name, s) for q, s in zip(queues.all, stats, strict=True)])


@router.get("/queues", summary="Every queue: depth by state and priority, oldest age, rates")
async def list_queues(queues: RoutedDep, rates: RatesDep) -> QueuesPublic:
    """Rates are the counters' increase per second over about the last minute, from samples
    this API process takes each time it is asked (see `window_seconds`)."""
    out: list[QueuePublic] = []
    for q, s in zip(queues.all, await queues.all_stats(), strict=True):
        r = rates.observe(q.name, s)
        high, normal, low = s.ready_by_priority
        out.append(
            QueuePublic(
                name=q.name,
                pool=queues.pool_of(q),
                ready=ReadyByPriority(high=high, normal=normal, low=low),
                in_flight=s.in_flight,
                delayed=s.delayed,
                dead=s.dead,
                oldest_age_seconds=s.oldest_ready_age,
                rates=QueueRates(
                    enqueued_per_s=r.enqueued_per_s,
                    completed_per_s=r.completed_per_s,
                    failed_per_s=r.failed_per_s,
                    window_seconds=r.window_seconds,
                ),
            )
        )
    return QueuesPublic(queues=out)
