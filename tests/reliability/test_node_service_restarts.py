"""On the real node: the kubelet and containerd restarted (stopped with SIGTERM, started again
with their own command lines, as a supervisor would) while worker pods run jobs.

The containers live on in their shims meanwhile, so no worker dies: every job completes, none
runs twice (each execution is recorded by the chaos task module), and the same pods are Running
and Ready again once the kubelet is back.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from jobqueue import JobSpec, Queue
from tests.cluster import node
from tests.cluster.controlplane import ControlPlane
from tests.cluster.redis_server import RedisServer
from tests.reliability.kube_support import RESTRICTED, KubeHttp, OperatorProc, wait_settled
from tests.reliability.node_support import (
    chaos_worker,
    ready_pods,
    restart_counts,
    start_operator,
    tasks_configmap,
)
from tests.reliability.support import Figures, await_until, executions, forget_queue, sizes

pytestmark = [pytest.mark.node, pytest.mark.timeout(1800)]
SECTION = "Faults: kubelet and containerd restarted under running pods (real node)"
NAME = "services"
WORKER = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=worker"


@dataclass(frozen=True)
class Size:
    jobs: int
    ms: int
    pods: int
    restarts: int


FAST = Size(jobs=300, ms=200, pods=2, restarts=1)
FULL = Size(jobs=3000, ms=100, pods=3, restarts=4)


@pytest.fixture
def operator(node_cluster: node.NodeCluster, tmp_path: Path) -> Iterator[OperatorProc]:
    op = start_operator(node_cluster.kube, tmp_path, "jqsvc-*")
    yield op
    op.stop()


@pytest.mark.parametrize("size", sizes(FAST, FULL))
async def test_kubelet_and_containerd_restarts_lose_no_job_and_keep_the_pods(
    node_cluster: node.NodeCluster,
    node_redis: RedisServer,
    operator: OperatorProc,
    figures: Figures,
    size: Size,
) -> None:
    api = KubeHttp(node_cluster.kube)
    ns = api.namespace("jqsvc-", RESTRICTED)
    redis = aioredis.Redis.from_url(node_redis.url)
    queue = Queue(redis, f"{ns}/{NAME}")
    the_node = node.Node(node_cluster.state_dir, ControlPlane.attach(node_cluster.state_dir))
    restarts = 0
    started = time.monotonic()
    try:
        tasks_configmap(api, ns)
        status, body = api.create_jq(
            ns,
            NAME,
            {
                "redis": {"url": node_redis.url},
                "api": {"enabled": False},
                "worker": chaos_worker(size.pods, 4, 10),
                "autoscaling": {"enabled": False},
            },
        )
        assert status == 201, body
        pods = wait_settled(
            f"{size.pods} ready worker pods",
            lambda: p if len(p := ready_pods(api, ns, WORKER)) == size.pods else None,
            timeout=180,
            on_fail=operator.tail,
        )
        before = restart_counts(api, ns, WORKER, "worker")
        ids = [uuid.uuid4().hex for _ in range(size.jobs)]
        for i in range(0, size.jobs, 1000):
            specs = [
                JobSpec("track", {"ms": size.ms}, job_id=j, max_retries=20)
                for j in ids[i : i + 1000]
            ]
            await queue.enqueue_many(specs)
        while restarts < size.restarts:
            await asyncio.sleep(2.0)
            assert (await queue.stats()).completed_total < size.jobs, "done before the restarts"
            await asyncio.to_thread(the_node.restart, node.KUBELET, node.CONTAINERD)
            restarts += 1

        async def done() -> bool:
            s = await queue.stats()
            return s.ready == 0 and s.in_flight == 0 and s.delayed == 0

        await await_until("every job completed", done, timeout=600)
        again = wait_settled(
            "the same worker pods ready again",
            lambda: p if (p := ready_pods(api, ns, WORKER)) == pods else None,
            timeout=180,
        )
        ran = await executions(redis, queue.name)
        after = restart_counts(api, ns, WORKER, "worker")
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
    duplicated = [j for j in ids if ran.get(j, 0) > 1]
    figures.set(
        jobs_enqueued=size.jobs,
        worker_pods=size.pods,
        restarts=restarts * 2,
        kubelet_restarts=restarts,
        containerd_restarts=restarts,
        same_pods_ready_after=again == pods,
        worker_container_restarts=sum(after.values()) - sum(before.values()),
        lost=len(lost),
        duplicated=len(duplicated),
        seconds=round(time.monotonic() - started, 1),
    )
    assert not lost, f"{len(lost)} jobs never ran"
    assert not duplicated, f"{len(duplicated)} jobs ran twice though no worker died"
