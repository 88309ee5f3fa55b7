"""Probes and metrics, open without a token: /healthz, /readyz, /health, /metrics."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from jobqueue import QueueStats
from jobqueue_api import constants as c
from jobqueue_api.deps import MetricsDep, RoutedDep
from jobqueue_api.errors import OpenAPIResponses
from jobqueue_api.exporter import ExporterLease
from jobqueue_api.models import HealthStatus

router = APIRouter(tags=["health"])


async def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


RedisDep = Annotated[Redis, Depends(get_redis)]

_NOT_READY: OpenAPIResponses = {
    503: {
        "model": HealthStatus,
        "description": "Redis does not answer PING.",
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    }
}


@router.get("/healthz", summary="Liveness: the process serves HTTP (no Redis call)")
async def healthz() -> HealthStatus:
    return HealthStatus(status="ok")


async def _ready(redis: Redis) -> Response | HealthStatus:
    try:
        await asyncio.wait_for(redis.ping(), c.READINESS_TIMEOUT)
    except (redis_errors.RedisError, TimeoutError, OSError):
        return Response(
            b'{"status":"unavailable"}',
            status_code=503,
            media_type="application/json",
            headers={"Retry-After": c.RETRY_AFTER_REDIS_DOWN},
        )
    return HealthStatus(status="ok")


@router.get(
    "/readyz",
    responses=_NOT_READY,
    response_model=HealthStatus,
    summary="Readiness: Redis answers PING",
)
async def readyz(redis: RedisDep) -> Response | HealthStatus:
    return await _ready(redis)


@router.get(
    "/health",
    responses=_NOT_READY,
    response_model=HealthStatus,
    summary="Seed 001's health check (= /readyz)",
)
async def health(redis: RedisDep) -> Response | HealthStatus:
    return await _ready(redis)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics; queue gauges are read from Redis at scrape time",
)
async def metrics(request: Request, queues: RoutedDep, m: MetricsDep) -> Response:
    """Queue gauges for every queue (the default one and each pool), labelled by queue, from
    the one replica holding the exporter lease (see exporter.py); the others export none."""
    lease: ExporterLease = request.app.state.exporter

    async def read() -> list[tuple[str, QueueStats]]:
        if not await lease.hold():
            return []
        return [(q.name, s) for q, s in zip(queues.all, await queues.all_stats(), strict=True)]

    stats: list[tuple[str, QueueStats]] | None
    try:
        stats = await asyncio.wait_for(read(), c.READINESS_TIMEOUT)
    except (redis_errors.RedisError, TimeoutError, OSError):
        stats = None
    m.set_queue_stats(stats)
    return Response(m.render(), media_type=m.content_type)
