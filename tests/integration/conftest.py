"""Fixtures of the integration tests: a queue on the session's redis-server, worker processes
stopped at the end of the test (started with `worker_support.start_worker`), and the Redis
topologies of tests/support/redis_topologies.py (a Redis Cluster, a TLS redis-server)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from jobqueue import Queue
from tests.integration.worker_support import WorkerProcess
from tests.support.redis_topologies import cluster, cluster_nodes, tls_server  # noqa: F401


@pytest.fixture
async def queue(redis_client: aioredis.Redis, queue_name: str) -> AsyncIterator[Queue]:
    """A `Queue` with default settings, purged after the test (modules that need other lease or
    backoff settings define their own `queue`)."""
    q = Queue(redis_client, queue_name)
    yield q
    await q.purge()
    await q.aclose()


@pytest.fixture
async def workers() -> AsyncIterator[list[WorkerProcess]]:
    """The worker processes a test starts; each is stopped (SIGTERM, then SIGKILL) afterwards."""
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        await w.stop()
