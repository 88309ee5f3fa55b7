"""On the real node: a worker volume (`persistentVolumeClaim`) on the default StorageClass,
provisioned by Rancher's local-path-provisioner (tests/cluster/node.py).

A job writes a file into it; the pod is deleted and the next pod's job reads the file; the
JobQueue is deleted with `deletionPolicy: Retain` and the claim, its volume and the file stay, so
a new JobQueue of the same name reads it; deleted with `Purge`, the claim goes, and with it the
volume and its directory on the node (the StorageClass reclaims with Delete).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from jobqueue import JobSpec, JobStatus, Queue
from tests.cluster import node
from tests.cluster.redis_server import RedisServer
from tests.reliability.kube_support import RESTRICTED, KubeHttp, OperatorProc, wait_settled
from tests.reliability.node_support import (
    chaos_worker,
    ready_pods,
    start_operator,
    tasks_configmap,
)
from tests.reliability.support import Figures, await_until, forget_queue

pytestmark = [pytest.mark.node, pytest.mark.timeout(900)]
SECTION = "Faults: worker pods and JobQueues deleted, a worker volume kept (real node)"
NAME = "files"
CLAIM = f"{NAME}-worker-data"
WORKER = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=worker"


@pytest.fixture
def operator(node_cluster: node.NodeCluster, tmp_path: Path) -> Iterator[OperatorProc]:
    op = start_operator(node_cluster.kube, tmp_path, "jqvol-*")
    yield op
    op.stop()


def _spec(redis_url: str, policy: str) -> dict[str, Any]:
    worker = chaos_worker(1, 2, 10)
    worker["env"].append({"name": "DATA_DIR", "value": "/data"})
    worker["volumes"].append(
        {"name": "data", "mountPath": "/data", "persistentVolumeClaim": {"size": "16Mi"}}
    )
    return {
        "redis": {"url": redis_url},
        "api": {"enabled": False},
        "worker": worker,
        "autoscaling": {"enabled": False},
        "deletionPolicy": policy,
    }


async def test_a_worker_volume_outlives_its_pods_and_a_retained_jobqueue_until_purge(
    node_cluster: node.NodeCluster,
    node_redis: RedisServer,
    operator: OperatorProc,
    figures: Figures,
) -> None:
    api = KubeHttp(node_cluster.kube)
    ns = api.namespace("jqvol-", RESTRICTED)
    redis = aioredis.Redis.from_url(node_redis.url)
    queue = Queue(redis, f"{ns}/{NAME}")
    text = uuid.uuid4().hex
    jobs = 0
    started = time.monotonic()
    claim_path = f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{CLAIM}"

    async def run(task: str) -> dict[str, Any]:
        nonlocal jobs
        jobs += 1
        job_id = uuid.uuid4().hex
        await queue.enqueue_many([JobSpec(task, {"name": "note.txt", "text": text}, job_id=job_id)])

        async def finished() -> bool:
            job = await queue.get(job_id)
            return job is not None and job.status in (JobStatus.COMPLETED, JobStatus.DEAD)

        await await_until(f"job {task} finished", finished, timeout=120)
        job = await queue.get(job_id)
        assert job is not None and job.status is JobStatus.COMPLETED, job
        result: dict[str, Any] = job.result
        return result

    def one_pod(other_than: str = "") -> str:
        """The one ready worker pod (not `other_than`), once there is exactly one."""

        def probe() -> str | None:
            every = ready_pods(api, ns, WORKER)
            return every[0] if len(every) == 1 and every[0] != other_than else None

        name: str = wait_settled("one ready worker pod", probe, timeout=180, on_fail=operator.tail)
        return name

    try:
        tasks_configmap(api, ns)
        status, body = api.create_jq(ns, NAME, _spec(node_redis.url, "Retain"))
        assert status == 201, body
        first = one_pod()
        claim = api.get(claim_path)
        assert claim is not None and claim["spec"]["storageClassName"] == node.STORAGE_CLASS
        pv = api.get(f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}")
        assert pv is not None
        host_dir = Path(pv["spec"]["hostPath"]["path"])
        assert host_dir.parent == node_cluster.state_dir / "node" / "local-path", host_dir
        assert (await run("write-file"))["pod"] == first
        assert (host_dir / "note.txt").read_text() == text

        # 1. the pod deleted: the Deployment's next pod reads the file
        api.delete(f"/api/v1/namespaces/{ns}/pods/{first}")
        second = one_pod(other_than=first)
        read = await run("read-file")
        assert read == {"pod": second, "text": text}

        # 2. the JobQueue deleted (Retain): the claim stays, a new JobQueue of the name reads it
        api.delete(api.jq_path(ns, NAME))
        wait_settled("the JobQueue gone", lambda: api.get(api.jq_path(ns, NAME)) is None)
        wait_settled("its worker pods gone", lambda: not ready_pods(api, ns, WORKER))
        kept = api.get(claim_path)
        assert kept is not None and not kept["metadata"].get("deletionTimestamp"), kept
        status, body = api.create_jq(ns, NAME, _spec(node_redis.url, "Purge"))
        assert status == 201, body
        third = one_pod()
        assert await run("read-file") == {"pod": third, "text": text}

        # 3. deleted with Purge: claim, volume and the directory on the node go
        api.delete(api.jq_path(ns, NAME))
        wait_settled("the claim gone", lambda: api.get(claim_path) is None, timeout=120)
        wait_settled(
            "the volume gone",
            lambda: api.get(f"/api/v1/persistentvolumes/{pv['metadata']['name']}") is None,
            timeout=120,
        )
        wait_settled("its directory removed", lambda: not host_dir.exists(), timeout=60)
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
    figures.set(
        pods_deleted=1,
        jobqueues_deleted=2,
        jobs=jobs,
        lost=0,
        duplicated=0,
        file_read_by_pods=3,
        purge_removed_volume=True,
        seconds=round(time.monotonic() - started, 1),
    )
