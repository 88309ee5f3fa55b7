"""The FastAPI application: routers, error handlers, edge middleware and an explicit lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import NoBackoff

import jobqueue
from jobqueue import AnyRedis
from jobqueue_api import constants as c
from jobqueue_api import docs
from jobqueue_api.body import add_body_schemas
from jobqueue_api.deps import require_token
from jobqueue_api.enqueuer import Enqueuer
from jobqueue_api.errors import UNAUTHORIZED, install_error_handlers
from jobqueue_api.events import EventHub
from jobqueue_api.exporter import ExporterLease
from jobqueue_api.fastpath import FastEnqueue
from jobqueue_api.metrics import Metrics
from jobqueue_api.middleware import EdgeMiddleware
from jobqueue_api.models import EnqueueRequest, JobBatchCreate, JobCreate
from jobqueue_api.rates import RateTracker
from jobqueue_api.routers import dlq, enqueue, events, health, jobs, stats, tasks, ui, workers
from jobqueue_api.routing import RoutedQueues
from jobqueue_api.settings import Settings

log = logging.getLogger("jobqueue_api")

API_VERSION = "1.0.0"
DESCRIPTION = """Accepts background jobs into a Redis queue shared with the jobqueue workers.

Seed-compatible endpoints (`POST /enqueue`, `POST /tasks`, `GET /tasks/{id}`, `GET /health`)
sit beside the typed job API. Errors: 422 names the field at fault, 413 a body over the size
limit, 415 a body that is not JSON, 401 a missing or wrong bearer token (when `API_TOKEN` is
set), 503 with `Retry-After` when the queue is over its backpressure limit or Redis is down.

Every route covers every queue of the JobQueue: the default one and each worker pool's. Job
state changes stream as server-sent events from `GET /events` (`text/event-stream`, bearer
token as everywhere; not listed below, being an endless stream): see the API README.
"""


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The Sentinels' primary, through a bounded pool that waits for a free connection."""


def connect_redis(settings: Settings) -> AnyRedis:
    """The Redis client: short timeouts, one immediate retry, a bounded pool that waits.

    `jobqueue.connect` validates the URL and options (password-free errors); its pool is then
    swapped for a BlockingConnectionPool with the same connection settings, so a burst of
    requests queues for a connection instead of opening thousands, or failing with
    "Too many connections". A Redis Cluster URL (redis+cluster://) gets a cluster client,
    whose per-node pools are bounded by redis-py itself; a Sentinel URL (redis+sentinel://)
    the same bounded, waiting pool on the primary the Sentinels name.
    """
    url = settings.redis_url.get_secret_value()
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.redis_connect_timeout,
        "socket_timeout": settings.redis_socket_timeout,
    }
    bounded: dict[str, Any] = {
        "max_connections": settings.redis_max_connections,
        "timeout": max(1, round(settings.redis_socket_timeout)),  # wait for a free connection
    }
    if jobqueue.is_cluster_url(url):
        return jobqueue.connect_cluster(url, **options)
    if jobqueue.is_sentinel_url(url):
        return jobqueue.connect_sentinel(
            url,
            retry=Retry(NoBackoff(), 1),
            connection_pool_class=BlockingSentinelPool,
            **bounded,
            **options,
        )
    probe = jobqueue.connect(url, retry=Retry(NoBackoff(), 1), **options)
    template = probe.connection_pool
    pool = BlockingConnectionPool(
        connection_class=template.connection_class, **bounded, **template.connection_kwargs
    )
    return Redis.from_pool(pool)


def on_shutdown_signal(app: FastAPI) -> None:
    """The server got SIGTERM/SIGINT: end the endless responses (/events) so the drain can
    finish. Called from the signal handler: only thread-safe calls."""
    hub: EventHub | None = getattr(app.state, "events", None)
    if hub is not None:
        hub.close_soon()


def create_app(settings: Settings) -> FastAPI:
    """Build the app for these settings; Redis is connected by the lifespan, not here."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = connect_redis(settings)
        queue = jobqueue.Queue(redis, settings.queue_name)
        # With pools, backpressure is checked per target queue by RoutedQueues.
        routed = RoutedQueues.build(
            redis, queue, settings.job_routes, max_depth=settings.max_queue_depth
        )
        enqueuer = Enqueuer(
            routed if settings.job_routes else queue,
            max_depth=0 if settings.job_routes else settings.max_queue_depth,
            coalesce=settings.coalesce_enqueues,
            on_created=metrics.enqueued.inc,
            on_round_trip=metrics.enqueue_batch.observe,
        )
        app.state.redis = redis
        app.state.queue = queue
        app.state.routed = routed
        app.state.enqueuer = enqueuer
        app.state.events = hub = EventHub(routed)
        app.state.exporter = ExporterLease(redis, queue, c.METRICS_LEASE_SECONDS)
        log.info(
            "api starting",
            extra={
                "redis_url": settings.redacted_redis_url,
                "queue": settings.queue_name,
                "port": settings.port,
                "auth": settings.api_token is not None,
                "max_payload_bytes": settings.max_payload_bytes,
                "max_queue_depth": settings.max_queue_depth,
                "coalesce_enqueues": settings.coalesce_enqueues,
                "event_loop": type(asyncio.get_running_loop()).__module__,  # uvloop expected
            },
        )
        try:
            await asyncio.wait_for(redis.ping(), c.READINESS_TIMEOUT)
        except (redis_errors.RedisError, TimeoutError, OSError) as exc:
            log.warning("redis not reachable yet: 503 until it is", extra={"error": str(exc)})
        try:
            yield
        finally:
            await hub.aclose()
            await enqueuer.aclose()
            await redis.aclose()
            log.info("api stopped")

    app = FastAPI(
        title="jobqueue API",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by docs.install with vendored assets, not from a CDN
        redoc_url=None,
        strict_content_type=False,  # a body without Content-Type is read as JSON
        # No OpenTelemetry: metrics are Prometheus. Off, FastAPI skips its per-request checks.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.rates = RateTracker()
    install_error_handlers(app)

    protected = [Depends(require_token)] if settings.api_token is not None else []
    auth_docs = UNAUTHORIZED if settings.api_token is not None else {}
    # hot routes first: matched in order
    for module in (jobs, enqueue, tasks, dlq, stats, workers, events):
        app.include_router(module.router, dependencies=protected, responses=auth_docs)
    app.include_router(health.router)
    docs.install(app, app.title)
    ui.install(app)  # the dashboard at /ui: public files, every call they make needs the token

    add_body_schemas(app, [JobCreate, JobBatchCreate, EnqueueRequest])
    token = settings.api_token.get_secret_value() if settings.api_token is not None else None
    fast = FastEnqueue(app, token)
    app.add_middleware(EdgeMiddleware, settings=settings, metrics=metrics, fast=fast)
    return app
