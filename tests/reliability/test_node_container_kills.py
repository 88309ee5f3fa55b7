"""On the real node: kill -9 of worker containers' processes on the host while jobs run.

The pid is containerd's (its CRI labels name the pod and container, its task list the pid), not
the API's: the kubelet learns of the death like of any crash and restarts the container; the
killed worker never drains, so the jobs it held (running and prefetched) come back only when
their leases expire, and the other pods (and the restarted one) complete them. The worker pods
run the suite's chaos task module (mounted from a ConfigMap), which records every execution in
Redis: a job that ran twice is seen, and must be one the killed worker held (lease ZSET read
right before the kill).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from jobqueue import JobSpec, Queue
from tests.cluster import node
from tests.cluster.redis_server import RedisServer
from tests.reliability.kube_support import RESTRICTED, KubeHttp, OperatorProc, wait_settled
from tests.reliability.node_support import (
    chaos_worker,
    container_processes,
    kill9,
    ready_pods,
    restart_counts,
    start_operator,
    tasks_configmap,
    wait_gone,
)
from tests.reliability.support import (
    Figures,
    await_until,
    executions,
    forget_queue,
    leased_by,
    sizes,
)

pytestmark = [pytest.mark.node, pytest.mark.timeout(1800)]
SECTION = "Faults: worker containers killed (kill -9 of the host process, real node)"
NAME = "kills"
WORKER = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=worker"


@dataclass(frozen=True)
class Size:
    jobs: int
    ms: int  # each job's task time
    pods: int
    kills: int
    lease_seconds: int


FAST = Size(jobs=300, ms=200, pods=2, kills=2, lease_seconds=4)
FULL = Size(jobs=6000, ms=100, pods=3, kills=12, lease_seconds=5)


@pytest.fixture
def operator(node_cluster: node.NodeCluster, tmp_path: Path) -> Iterator[OperatorProc]:
    op = start_operator(node_cluster.kube, tmp_path, "jqkill-*")
    yield op
    op.stop()


@pytest.mark.parametrize("size", sizes(FAST, FULL))
async def test_kill9_of_worker_containers_loses_no_job(
    node_cluster: node.NodeCluster,
    node_redis: RedisServer,
    operator: OperatorProc,
    figures: Figures,
    size: Size,
) -> None:
    rng = random.Random()
    api = KubeHttp(node_cluster.kube)
    ns = api.namespace("jqkill-", RESTRICTED)
    redis = aioredis.Redis.from_url(node_redis.url)
    queue = Queue(redis, f"{ns}/{NAME}")
    held: set[str] = set()
    kills: list[str] = []
    started = time.monotonic()
    try:
        tasks_configmap(api, ns)
        status, body = api.create_jq(
            ns,
            NAME,
            {
                "redis": {"url": node_redis.url},
                "api": {"enabled": False},
                "worker": chaos_worker(size.pods, 4, size.lease_seconds),
                "autoscaling": {"enabled": False},
            },
        )
        assert status == 201, body
        wait_settled(
            f"{size.pods} ready worker pods",
            lambda: len(ready_pods(api, ns, WORKER)) == size.pods,
            timeout=180,
            on_fail=operator.tail,
        )
        ids = [uuid.uuid4().hex for _ in range(size.jobs)]
        for i in range(0, size.jobs, 1000):
            specs = [
                JobSpec("track", {"ms": size.ms}, job_id=j, max_retries=20)
                for j in ids[i : i + 1000]
            ]
            await queue.enqueue_many(specs)
        before = restart_counts(api, ns, WORKER, "worker")
        while len(kills) < size.kills:
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            running = container_processes(node_cluster, ns, "worker")
            busy = [p for p in running if await leased_by(redis, queue, p.pod)]
            if not busy:
                assert (await queue.stats()).completed_total < size.jobs, (
                    f"all jobs done after {len(kills)} kills: make the run longer"
                )
                continue
            victim = rng.choice(busy)
            held |= set(await leased_by(redis, queue, victim.pod))
            kill9(victim)
            wait_gone(victim.pid)
            # Its leases stay until they expire: what it held at the moment it died.
            held |= set(await leased_by(redis, queue, victim.pod))
            kills.append(victim.pod)

        async def done() -> bool:
            s = await queue.stats()
            return s.ready == 0 and s.in_flight == 0 and s.delayed == 0

        await await_until("every job completed", done, timeout=600)
        ran = await executions(redis, queue.name)
        stats = await queue.stats()

        def restarted() -> dict[str, int] | None:
            # A container killed again soon after a restart waits out the kubelet's back-off
            # (10 s, then 20 s, ...) before it runs again: wait for every restart.
            now = restart_counts(api, ns, WORKER, "worker")
            done = sum(now.get(p, 0) - before.get(p, 0) for p in now) >= len(kills)
            return now if done else None

        after = wait_settled("every killed container restarted", restarted, timeout=120)
    finally:
        api.delete(api.jq_path(ns, NAME))
        wait_settled(
            "the JobQueue gone", lambda: not api.items(api.jq_path(ns)), on_fail=operator.tail
        )
        api.delete(f"/api/v1/namespaces/{ns}")
        api.close()
        await forget_queue(redis, queue)
        await queue.aclose()
        await redis.aclose()
    lost = [j for j in ids if ran.get(j, 0) == 0]
    duplicated = {j for j in ids if ran.get(j, 0) > 1}
    restarts = sum(after.get(p, 0) - before.get(p, 0) for p in after)
    figures.set(
        jobs_enqueued=size.jobs,
        task_ms=size.ms,
        worker_pods=size.pods,
        sigkills=len(kills),
        container_restarts=restarts,
        jobs_held_at_kills=len(held),
        completed=stats.completed_total,
        lost=len(lost),
        duplicated=len(duplicated),
        duplicated_not_held=len(duplicated - held),
        seconds=round(time.monotonic() - started, 1),
    )
    assert not lost, f"{len(lost)} jobs never ran"
    assert duplicated <= held, f"{len(duplicated - held)} ran twice without being held at a kill"
    assert restarts >= len(kills), f"the kubelet restarted {restarts} of {len(kills)} containers"
