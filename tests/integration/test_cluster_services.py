"""The API and a worker process, unchanged, on a real 3-node Redis Cluster (redis+cluster://)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from jobqueue import JobStatus, Queue
from tests.cluster.redis_server import RedisServer
from tests.integration.worker_support import WorkerProcess, eventually
from tests.support.api import make_settings, serve


@pytest.fixture
def cluster_url(cluster_nodes: list[RedisServer]) -> str:
    node = cluster_nodes[1]
    return f"redis+cluster://{node.bind}:{node.port}"


@pytest.fixture
async def worker(cluster_url: str, queue_name: str, tmp_path: Path) -> AsyncIterator[WorkerProcess]:
    w = WorkerProcess.start(cluster_url, queue_name, tmp_path, worker_concurrency=4)
    try:
        await w.wait_healthy()
        yield w
    finally:
        await w.stop()


async def test_jobs_posted_to_the_api_are_done_by_a_worker_on_a_redis_cluster(
    cluster: RedisCluster,
    cluster_url: str,
    queue_name: str,
    worker: WorkerProcess,
) -> None:
    queue = Queue(cluster, queue_name)
    async with serve(make_settings(cluster_url, queue_name)) as (api, _):
        ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text
        single = await api.post("/jobs", json={"type": "email", "payload": {"to": "a@b.c"}})
        batch = await api.post("/jobs:batch", json={"jobs": [{"type": "noop"}] * 20})
        assert single.status_code == 202 and batch.status_code == 202
        ids = [single.json()["job_id"], *batch.json()["job_ids"]]

        async def all_done() -> bool:
            jobs = await queue.get_many(ids)
            return all(j is not None and j.status == JobStatus.COMPLETED for j in jobs)

        await eventually(all_done, timeout=30)
        stats = (await api.get("/stats")).json()
        assert stats["completed_total"] == len(ids)
    await queue.purge()
