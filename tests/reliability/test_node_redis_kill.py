"""On the real node: the managed Redis (StatefulSet, AOF on its local-path volume) killed with
kill -9 of its container's host process while clients post jobs through the JobQueue's API.

The kubelet restarts the container in the same pod, on the same volume; Redis loads its AOF.
With `spec.redis.managed.appendfsync: always` every job the API acknowledged (202) is there
afterwards and completes. With `everysec` a process crash loses nothing either (the page cache
survives it); what a host crash at the kill would have lost is measured from an strace of the
Redis process's fsyncs (attached on the host, by pid): the acknowledged jobs written after the
last completed fsync before each kill, and that window in ms.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis.asyncio as aioredis

from jobqueue import Queue
from tests.cluster import host_tools, node
from tests.reliability.kube_support import (
    RESTRICTED,
    KubeHttp,
    OperatorProc,
    wait_settled,
)
from tests.reliability.node_support import (
    ContainerProcess,
    container_processes,
    kill9,
    ready_pods,
    restart_counts,
    start_operator,
    wait_gone,
)
from tests.reliability.support import (
    Figures,
    Load,
    await_until,
    count_status,
    host_crash_exposure,
    parse_fsyncs,
)

pytestmark = [pytest.mark.node, pytest.mark.timeout(1800)]
SECTION = "Faults: managed Redis killed (kill -9 of its container, real node)"
NAME = "store"
REDIS_POD = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=redis"
JOB = {"type": "email", "payload": {"latency": 0.0}, "max_retries": 10}
CLIENTS = 4


@dataclass(frozen=True)
class Size:
    kills: int
    run_s: float  # load before the first kill and after each recovery


FAST = Size(kills=1, run_s=3.0)
FULL = Size(kills=3, run_s=8.0)
CASES = [
    pytest.param("always", FAST, id="always-fast", marks=pytest.mark.chaos_fast),
    pytest.param("always", FULL, id="always-full", marks=pytest.mark.chaos_full),
    pytest.param("everysec", FULL, id="everysec-full", marks=pytest.mark.chaos_full),
]


@pytest.fixture
def operator(node_cluster: node.NodeCluster, tmp_path: Path) -> Iterator[OperatorProc]:
    op = start_operator(node_cluster.kube, tmp_path, "jqredis-*")
    yield op
    op.stop()


def _strace(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """strace attached to every thread of a running process (AOF fsyncs run on a bio thread);
    it exits when the process dies."""
    cmd = [host_tools.require("strace"), "-f", "-ttt", "-T", "-e", "trace=fsync,fdatasync"]
    proc = subprocess.Popen([*cmd, "-o", str(out), "-p", str(pid)], stderr=subprocess.DEVNULL)
    wait_settled("strace attached", lambda: out.exists() or proc.poll() is not None, timeout=10)
    assert proc.poll() is None, f"strace -p {pid} exited with {proc.returncode}"
    time.sleep(0.2)  # every thread attached: milliseconds after the output file appears
    return proc


@pytest.mark.parametrize(("fsync", "size"), CASES)
async def test_kill9_of_the_managed_redis_loses_no_acknowledged_job(
    node_cluster: node.NodeCluster,
    operator: OperatorProc,
    figures: Figures,
    tmp_path: Path,
    fsync: str,
    size: Size,
) -> None:
    api = KubeHttp(node_cluster.kube)
    ns = api.namespace("jqredis-", RESTRICTED)
    started = time.monotonic()
    kills: list[tuple[float, float]] = []
    traces: list[Path] = []
    recovery: list[float] = []
    redis: aioredis.Redis | None = None
    try:
        status, body = api.create_jq(
            ns,
            NAME,
            {
                "redis": {"managed": {"storage": "64Mi", "appendfsync": fsync}},
                "api": {"replicas": 1},
                "worker": {"replicas": 1, "concurrency": 8},
                "autoscaling": {"enabled": False},
            },
        )
        assert status == 201, body

        # Its pods, not the JobQueue's Ready: this operator runs on the host, which cannot
        # resolve the managed Redis' Service name (a cluster DNS name) to check it.
        def ready() -> bool:
            return all(
                len(ready_pods(api, ns, f"app.kubernetes.io/instance={NAME},{c}")) == 1
                for c in ("app.kubernetes.io/component=api", "app.kubernetes.io/component=worker")
            ) and bool(ready_pods(api, ns, REDIS_POD))

        wait_settled("its API, worker and Redis pods ready", ready, timeout=300,
                     on_fail=operator.tail)  # fmt: skip
        svc = api.must("GET", f"/api/v1/namespaces/{ns}/services/{NAME}-api")
        url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
        secret = api.must("GET", f"/api/v1/namespaces/{ns}/secrets/{NAME}-redis")
        password = base64.b64decode(secret["data"]["password"]).decode()
        rsvc = api.must("GET", f"/api/v1/namespaces/{ns}/services/{NAME}-redis")
        redis = aioredis.Redis.from_url(
            f"redis://:{quote(password, safe='')}@{rsvc['spec']['clusterIP']}:6379/0"
        )
        queue = Queue(redis, f"{ns}/{NAME}")

        async def api_ready() -> bool:
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(f"{url}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await await_until("the API answering through its Service", api_ready, timeout=60)
        before = restart_counts(api, ns, REDIS_POD, "redis")
        load = Load(url, JOB)
        clients = [asyncio.create_task(load.client()) for _ in range(CLIENTS)]
        try:
            for i in range(size.kills):
                redis_proc = _one(container_processes(node_cluster, ns, "redis"))
                trace = tmp_path / f"fsync-{i}.trace"
                tracer = _strace(redis_proc.pid, trace) if fsync == "everysec" else None
                await asyncio.sleep(size.run_s)
                killed = kill9(redis_proc)
                wait_gone(redis_proc.pid)
                kills.append((killed, time.time()))
                if tracer is not None:
                    tracer.wait(timeout=10)
                    traces.append(trace)

                def restarted(old: int = redis_proc.pid) -> bool:
                    now = container_processes(node_cluster, ns, "redis")
                    return len(now) == 1 and now[0].pid != old

                wait_settled("the Redis container restarted", restarted, timeout=120)

                async def acknowledged_after(t: float = killed) -> bool:
                    return any(s.started > t for s in load.accepted())

                await await_until("a 202 again after the restart", acknowledged_after, 120)
                recovery.append(min(s.done for s in load.accepted() if s.started > killed) - killed)
            await asyncio.sleep(size.run_s)
        finally:
            load.stop.set()
            await asyncio.gather(*clients)
        accepted = [s.job_id for s in load.accepted() if s.job_id]

        async def all_done() -> bool:
            counts = await count_status(queue, accepted)
            return counts.get("completed", 0) + counts.get("missing", 0) == len(accepted)

        await await_until("every acknowledged job finished", all_done, timeout=300)
        counts = await count_status(queue, accepted)
        after = restart_counts(api, ns, REDIS_POD, "redis")
    finally:
        if redis is not None:
            await redis.aclose()
        api.delete(api.jq_path(ns, NAME))
        wait_settled(
            "the JobQueue gone", lambda: not api.items(api.jq_path(ns)), on_fail=operator.tail
        )
        api.delete(f"/api/v1/namespaces/{ns}")
        api.close()
    statuses = [s.status for s in load.results]
    window, at_risk = host_crash_exposure(parse_fsyncs(traces), kills, load.accepted())
    figures.set(
        appendfsync=fsync,
        sigkills=len(kills),
        restarts=sum(after.values()) - sum(before.values()),
        acknowledged_202=len(accepted),
        n503=statuses.count(503),
        other_answers=len(statuses) - statuses.count(202) - statuses.count(503),
        completed=counts.get("completed", 0),
        lost_acknowledged=counts.get("missing", 0),
        seconds_to_first_202_after_kill=[round(r, 1) for r in recovery],
        **(
            {"host_crash_window_ms": round(window), "host_crash_acks_at_risk": at_risk}
            if fsync == "everysec"
            else {}
        ),
        seconds=round(time.monotonic() - started, 1),
    )
    assert len(kills) == size.kills
    assert sum(after.values()) - sum(before.values()) >= size.kills, (before, after)
    assert counts.get("missing", 0) == 0, f"{counts['missing']} acknowledged jobs lost"
    assert counts.get("completed", 0) == len(accepted), counts


def _one(processes: list[ContainerProcess]) -> ContainerProcess:
    assert len(processes) == 1, processes
    return processes[0]
