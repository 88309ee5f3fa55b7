"""On the real node: worker pods deleted with grace 0 (force) every few seconds while jobs
flow; no job is lost, and only jobs the deleted pod held run again.

Full size only (`make chaos`): it brings up the one-node cluster of tests/e2e (kubelet,
containerd, the locally built images): the session fixture `node_cluster` of tests/conftest.py,
shared with tests/e2e when both run in one session.

The worker image has no task that records executions, so a re-run is read from the protocol
itself: a completed job with ``attempts > 1`` was claimed more than once (an upper bound of
the jobs that ran twice). Each must have been leased by a pod when it was deleted (the lease
ZSET is read at the deletion and again once the container is surely gone, before the lease
could expire and be recovered).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from jobqueue import JobSpec, JobStatus, Queue
from tests.cluster import node
from tests.cluster.redis_server import RedisServer
from tests.reliability.kube_support import RESTRICTED, KubeHttp, OperatorProc, wait_settled
from tests.reliability.support import Figures, await_until, leased_by
from tests.support.kube import install_jobqueue_crd

pytestmark = [pytest.mark.node, pytest.mark.chaos_full, pytest.mark.timeout(3600)]
SECTION = "Faults: worker pods deleted with grace 0 (real node)"
JOBS = 20_000  # 0.1 s each, 3 pods x 8 at a time: about 90 s of work, ~20 deletions
LEASE_SECONDS = 5
MIN_DELETIONS = 8
WORKER = "app.kubernetes.io/instance=chaos,app.kubernetes.io/component=worker"


@pytest.fixture
def operator(node_cluster: node.NodeCluster, tmp_path: Path) -> Iterator[OperatorProc]:
    kube = node_cluster.kube
    install_jobqueue_crd(kube)
    op = OperatorProc(
        kube,
        tmp_path,
        watch="jqnode-*",
        extra_env={
            "DEFAULT_API_IMAGE": "localhost/jobqueue-api:dev",
            "DEFAULT_WORKER_IMAGE": "localhost/jobqueue-worker:dev",
            "IMAGE_PULL_POLICY": "IfNotPresent",
        },
    ).start()
    yield op
    op.stop()


async def test_force_deleted_worker_pods_lose_no_job(
    node_cluster: node.NodeCluster,
    node_redis: RedisServer,
    operator: OperatorProc,
    figures: Figures,
) -> None:
    rng = random.Random()
    kube = node_cluster.kube
    api = KubeHttp(kube)
    ns = api.namespace("jqnode-", RESTRICTED)
    redis = aioredis.Redis.from_url(node_redis.url)
    queue = Queue(redis, f"{ns}/chaos")
    held: list[set[str]] = []
    started = time.monotonic()
    try:
        status, body = api.create_jq(
            ns,
            "chaos",
            {
                "redis": {"url": node_redis.url},
                "api": {"enabled": False},
                "worker": {
                    "replicas": 3,
                    "concurrency": 8,
                    "env": [{"name": "LEASE_SECONDS", "value": str(LEASE_SECONDS)}],
                },
                "autoscaling": {"enabled": False},
            },
        )
        assert status == 201, body

        def running() -> list[str]:
            pods = api.items(f"/api/v1/namespaces/{ns}/pods?labelSelector={WORKER}")
            return [
                p["metadata"]["name"]
                for p in pods
                if p["status"].get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")
            ]

        wait_settled(
            "3 running worker pods", lambda: len(running()) == 3, timeout=300, on_fail=operator.tail
        )
        ids = [uuid.uuid4().hex for _ in range(JOBS)]
        for i in range(0, JOBS, 1000):
            await queue.enqueue_many(
                [
                    JobSpec("email", {"latency": 0.1}, job_id=j, max_retries=20)
                    for j in ids[i : i + 1000]
                ]
            )
        while (await queue.stats()).completed_total < JOBS:
            await asyncio.sleep(rng.uniform(3, 6))
            pods = running()
            if not pods:
                continue
            victim = rng.choice(pods)
            code, answer = api.request(
                "DELETE",
                f"/api/v1/namespaces/{ns}/pods/{victim}",
                {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
            )
            assert code == 200, answer
            before = set(await leased_by(redis, queue, victim))
            await asyncio.sleep(3)  # the kubelet SIGKILLs it; its leases are still there
            held.append(before | set(await leased_by(redis, queue, victim)))
            assert time.monotonic() - started < 1800

        async def quiet() -> bool:
            s = await queue.stats()
            return s.ready == 0 and s.in_flight == 0 and s.delayed == 0

        await await_until("an empty queue", quiet, timeout=300)
        jobs = [j for i in range(0, JOBS, 1000) for j in await queue.get_many(ids[i : i + 1000])]
    finally:
        api.delete(api.jq_path(ns, "chaos"))
        wait_settled(
            "the JobQueue gone", lambda: not api.items(api.jq_path(ns)), on_fail=operator.tail
        )
        api.delete(f"/api/v1/namespaces/{ns}")
        api.close()
        await queue.purge()
        await queue.aclose()
        await redis.aclose()
    completed = [j for j in jobs if j is not None and j.status is JobStatus.COMPLETED]
    rerun = {j.id for j in completed if j.attempts > 1}
    in_flight = set().union(*held) if held else set()
    figures.set(
        jobs_enqueued=JOBS,
        jobs_completed=len(completed),
        lost=JOBS - len(completed),
        pods_deleted=len(held),
        in_flight_at_deletions=sum(len(h) for h in held),
        rerun_jobs_attempts_over_1=len(rerun),
        seconds=round(time.monotonic() - started, 1),
    )
    assert len(completed) == JOBS
    assert rerun <= in_flight, f"{len(rerun - in_flight)} re-run without being in flight"
    assert len(held) >= MIN_DELETIONS
