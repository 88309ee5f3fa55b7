"""Bring your own images (issue 19) on the real node: the examples of examples/byo/, built from
their Dockerfiles, run under a JobQueue each as written (only the namespace, the Redis URL and
shorter scaling timings laid over them), report their queue's depth and autoscale on it.

- seed 000's shape (Flask job-api, BLPOP job-worker, /healthz only): 500 jobs posted to the
  user's own `/enqueue` through its Service are all processed; the workers go 0 -> max -> 0;
  `kubectl get jq` shows the depth while it drains;
- seed 001's shape (FastAPI task-api, BRPOP task-worker without a port, both reading
  TASK_QUEUE_URL): the same with `POST /tasks?task_type=`;
- a real Celery worker and a real RQ worker (from PyPI, in images), fed by the libraries' own
  producers: while their jobs run with nothing left waiting, the autoscaler keeps the workers
  those running jobs need (in flight is counted), then scales to zero; every job ran once.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import yaml

from tests.cluster import images, node, peers
from tests.cluster.controlplane import REPO_ROOT
from tests.cluster.redis_server import RedisServer
from tests.e2e.helpers import (
    Operator,
    apply,
    describe,
    http,
    pod_logs,
    restricted_namespace,
    wait_for,
    wait_ready_count,
    wait_service_answers,
)

pytestmark = [pytest.mark.node, pytest.mark.timeout(900)]

EXAMPLES = REPO_ROOT / "examples" / "byo"
#: Timings laid over the examples so a test takes seconds, not minutes (the rest as written).
FAST = {"scaleDownStabilizationSeconds": 3, "cooldownSeconds": 3}
#: Redis databases of the shared node redis-server, one per example (their keys would clash).
DB = {"list": 1, "tasks": 2, "celery": 3, "rq": 4}


@pytest.fixture(scope="module")
def example_images(node_cluster: node.NodeCluster) -> None:
    """The examples' images built from their Dockerfiles (cached by input hash) and imported."""
    built = images.build_all([i.name for i in images.EXAMPLE_IMAGES])
    images.import_images(built, node_cluster.containerd_socket)


@dataclass
class Example:
    """One example applied in its own namespace: its JobQueue's name and its Redis."""

    cluster: node.NodeCluster
    operator: Operator
    namespace: str
    name: str
    url: str  # its Redis database
    redis: redis.Redis

    @property
    def kube(self) -> Any:
        return self.cluster.kube

    def selector(self, component: str) -> str:
        return f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component={component}"

    def jq(self) -> dict[str, Any]:
        got: dict[str, Any] = self.kube.kubectl_json("get", "jq", self.name, "-n", self.namespace)
        return got

    def workers(self) -> int:
        """The worker Deployment's spec.replicas (-1 while it does not exist)."""
        out = self.kube.kubectl(
            "get", "deployment", f"{self.name}-worker", "-n", self.namespace,
            "-o", "jsonpath={.spec.replicas}", check=False,
        )  # fmt: skip
        return int(out.stdout) if out.returncode == 0 and out.stdout.strip() else -1

    def table(self) -> dict[str, str]:
        """`kubectl get jq <name>` as a user sees it: column -> value."""
        out = self.kube.kubectl("get", "jq", self.name, "-n", self.namespace).stdout
        head, row = out.splitlines()[:2]
        return dict(zip(head.split(), row.split(), strict=False))

    def explain(self) -> str:
        return (
            describe(self.kube, self.namespace)
            + "\n--- jobqueue\n"
            + json.dumps(self.jq().get("status"), indent=1)
            + "\n--- worker logs\n"
            + pod_logs(self.kube, self.namespace, self.selector("worker"))[-3000:]
            + "\n--- operator log\n"
            + self.operator.tail()
        )

    def api_base(self) -> str:
        svc = self.kube.kubectl_json("get", "service", f"{self.name}-api", "-n", self.namespace)
        return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"


def _db_url(server: RedisServer, db: int) -> str:
    return server.url.rsplit("/", 1)[0] + f"/{db}"


def _documents(example: str, namespace: str, url: str, env: dict[str, str]) -> list[dict[str, Any]]:
    """examples/byo/<example>/jobqueue.yaml as written, in `namespace`, its Secret naming `url`,
    FAST scaling timings and `env` laid over the JobQueue's worker."""
    docs = [d for d in yaml.safe_load_all((EXAMPLES / example / "jobqueue.yaml").read_text()) if d]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "Secret":
            doc["stringData"] = {k: url for k in doc["stringData"]}
        else:
            doc["spec"]["autoscaling"].update(FAST)
            worker = doc["spec"]["worker"]
            merged = {e["name"]: e for e in worker.get("env", [])}
            merged |= {k: {"name": k, "value": v} for k, v in env.items()}
            worker["env"] = list(merged.values())
    return docs


@pytest.fixture
def byo(
    node_cluster: node.NodeCluster,
    node_redis: RedisServer,
    operator: Operator,
    example_images: None,
) -> Iterator[Any]:
    """Apply an example: ``byo("list", env={"WORK_SECONDS": "0.2"})`` -> :class:`Example`."""
    made: list[Example] = []

    def make(example: str, env: dict[str, str] | None = None) -> Example:
        kube = node_cluster.kube
        ns = restricted_namespace(kube, f"byo-{example}")
        url = _db_url(node_redis, DB[example])
        client = redis.Redis.from_url(url)
        client.flushdb()
        docs = _documents(example, ns, url, env or {})
        name = next(d["metadata"]["name"] for d in docs if d["kind"] == "JobQueue")
        apply(kube, *docs)
        ex = Example(node_cluster, operator, ns, name, url, client)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        ex.kube.kubectl("delete", "namespace", ex.namespace, "--wait=false", check=False)
        ex.redis.close()


def _drain_and_watch(ex: Example, done_key: str, total: int, timeout: float) -> dict[str, int]:
    """Wait until `done_key` counts `total` jobs, watching `kubectl get jq` and the workers:
    the highest Queue column and worker count seen."""
    seen = {"queue": 0, "workers": 0}

    def finished() -> bool:
        table = ex.table()
        if table.get("QUEUE", "<none>").isdigit():
            seen["queue"] = max(seen["queue"], int(table["QUEUE"]))
        seen["workers"] = max(seen["workers"], ex.workers())
        return int(ex.redis.get(done_key) or 0) >= total

    try:
        wait_for(f"{total} jobs done ({done_key})", finished, timeout)
    except BaseException:
        print(ex.explain())
        raise
    return seen


def _scaled_to(ex: Example, replicas: int, timeout: float = 90.0) -> None:
    try:
        wait_for(f"{ex.name} workers at {replicas}", lambda: ex.workers() == replicas, timeout)
    except BaseException:
        print(ex.explain())
        raise


def test_seed_000_images_run_report_their_list_and_scale_from_zero_to_max_and_back(
    byo: Any,
) -> None:
    ex: Example = byo("list", env={"WORK_SECONDS": "0.2"})
    wait_ready_count(ex.kube, ex.namespace, ex.selector("api"), 1, timeout=180)
    _scaled_to(ex, 0)  # idle: no worker
    base = ex.api_base()
    wait_service_answers(base, "/healthz")
    for _ in range(500):
        status, body = http("POST", f"{base}/enqueue")
        assert status == 202 and "job_id" in body, body
    seen = _drain_and_watch(ex, "jobs:done", 500, timeout=240)
    maximum = ex.jq()["spec"]["autoscaling"]["maxReplicas"]
    assert seen["workers"] == maximum, seen
    assert seen["queue"] > 0, "kubectl get jq never showed the list's depth"
    _scaled_to(ex, 0)
    assert int(ex.redis.get("jobs:done") or 0) == 500
    assert ex.redis.llen("jobs") == 0
    queue = ex.jq()["status"]["queue"]
    assert (queue["format"], queue["wakeup"]) == ("list", "polling")
    ready = {c["type"]: c["status"] for c in ex.jq()["status"]["conditions"]}
    assert ready["Ready"] == "True" and ready["Degraded"] == "False", ready


def test_seed_001_images_read_task_queue_url_and_scale_on_their_tasks_list(byo: Any) -> None:
    ex: Example = byo("tasks", env={"WORK_SECONDS": "0.05"})
    wait_ready_count(ex.kube, ex.namespace, ex.selector("api"), 1, timeout=180)
    _scaled_to(ex, 0)
    base = ex.api_base()
    wait_service_answers(base, "/health")
    ids = []
    for i in range(200):
        status, body = http("POST", f"{base}/tasks?task_type=email", {"to": f"u{i}@x.y"})
        assert status == 202, body
        ids.append(body["id"])
    seen = _drain_and_watch(ex, "tasks:done", 200, timeout=180)
    assert seen["workers"] >= 1
    status, task = http("GET", f"{base}/tasks/{ids[-1]}")
    assert (status, task["status"]) == (200, "complete")
    _scaled_to(ex, 0)
    assert int(ex.redis.get("tasks:done") or 0) == 200


def _produce(peer: str, code: str, url: str) -> None:
    """Run `code` with the library's own producer, in its own venv (tests/cluster/peers)."""
    subprocess.run([str(peers.ensure(peer)), "-c", code, url], check=True, timeout=120)


CELERY_SEND = """
import sys
from celery import Celery
app = Celery(broker=sys.argv[1])
for _ in range(4):
    app.send_task("shop.send_email", args=[30.0], queue="emails")
"""
RQ_ENQUEUE = """
import sys
from redis import Redis
from rq import Queue
q = Queue("emails", connection=Redis.from_url(sys.argv[1]))
for _ in range(3):
    q.enqueue("tasks.send_email", 30.0, job_timeout=120)
"""


@pytest.mark.parametrize(
    ("example", "producer", "jobs", "per_worker"),
    [("celery", CELERY_SEND, 4, 2), ("rq", RQ_ENQUEUE, 3, 1)],
)
def test_a_library_worker_is_kept_while_its_jobs_run_and_scaled_to_zero_after(
    byo: Any, example: str, producer: str, jobs: int, per_worker: int
) -> None:
    """Jobs of 30 s, nothing left waiting once they are picked up: only the in-flight count
    (Celery's unacked messages, RQ's started registry) keeps the workers, for longer than the
    cooldown and the stabilization window; then all go, and every job ran exactly once."""
    ex: Example = byo(example)
    _scaled_to(ex, 0)
    _produce(example, producer, ex.url)
    needed = math.ceil(jobs / per_worker)

    def all_running() -> bool:
        queue = ex.jq().get("status", {}).get("queue", {})
        return queue.get("ready") == 0 and queue.get("inFlight") == jobs

    try:
        wait_for(f"{jobs} {example} jobs in flight", all_running, 120)
    except BaseException:
        print(ex.explain())
        raise
    held_until = time.monotonic() + 2 * sum(FAST.values()) + 2
    while time.monotonic() < held_until:
        assert ex.workers() >= needed, ex.explain()
        time.sleep(1)
    assert int(ex.redis.get("emails:done") or 0) < jobs  # still running: the hold was real
    wait_for(
        f"{jobs} {example} jobs done", lambda: int(ex.redis.get("emails:done") or 0) >= jobs, 90
    )
    _scaled_to(ex, 0)
    assert int(ex.redis.get("emails:done") or 0) == jobs
    assert ex.jq()["status"]["queue"]["format"] == example
