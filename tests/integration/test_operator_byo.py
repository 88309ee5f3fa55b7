"""Queues of other formats under the operator process (kopf), a real control plane and real
redis-servers: the depth in status, the autoscaler on it (polled, or woken by keyspace
notifications), and a key of the wrong type (Degraded, replicas held, nothing touched).

No node: the worker Deployment's ``spec.replicas`` is what the autoscaler decides.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.cluster.controlplane import Kube
from tests.cluster.redis_server import RedisServer
from tests.support.kube import temporary_namespace
from tests.support.operator import running_operator
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster
QUICK = {"scaleDownStabilizationSeconds": 0, "cooldownSeconds": 0, "maxReplicas": 5}


@pytest.fixture(scope="module")
def ns(kube: Kube) -> Iterator[str]:
    yield from temporary_namespace(kube, "byo-", digits=6)


@pytest.fixture(scope="module")
def operator(kube: Kube, ns: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    logfile = tmp_path_factory.mktemp("operator") / "operator.log"
    with running_operator(kube, ns, logfile) as log_path:
        yield log_path


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A private redis-server: these tests change its keyspace-notification setting."""
    server = RedisServer().start()
    yield server
    server.cleanup()


class Foreign:
    """One JobQueue over a foreign-format queue, with reads of what the operator wrote."""

    def __init__(self, kube: Kube, ns: str, url: str, spec: dict[str, Any]) -> None:
        self.kube, self.ns, self.name = kube, ns, f"f{uuid.uuid4().hex[:6]}"
        manifest = {
            "apiVersion": "jobqueue.io/v1alpha1",
            "kind": "JobQueue",
            "metadata": {"name": self.name, "namespace": ns},
            "spec": {"redis": {"url": url}, "api": {"enabled": False}, **spec},
        }
        kube.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def status(self) -> dict[str, Any]:
        got = self.kube.kubectl_json("get", "jq", self.name, "-n", self.ns)
        return dict(got.get("status") or {})

    def condition(self, kind: str) -> dict[str, Any]:
        return next((c for c in self.status().get("conditions", []) if c["type"] == kind), {})

    def replicas(self) -> int | None:
        out = self.kube.kubectl(
            "get", "deployment", f"{self.name}-worker", "-n", self.ns,
            "-o", "jsonpath={.spec.replicas}", check=False,
        )  # fmt: skip
        return int(out.stdout) if out.returncode == 0 and out.stdout.strip() else None


def _spec(names: list[str], **autoscaling: Any) -> dict[str, Any]:
    return {
        "queue": {"format": "list", "names": names},
        "worker": {"image": "job-worker:1", "concurrency": 2},
        "autoscaling": {**QUICK, **autoscaling},
    }


def test_a_plain_list_is_polled_its_depth_shown_and_the_workers_scaled_on_it(
    kube: Kube, ns: str, operator: Path, own_redis: RedisServer
) -> None:
    r = redis.Redis.from_url(own_redis.url)
    jq = Foreign(kube, ns, own_redis.url, _spec(["jobs"]))
    wait_for("the workers at 0", lambda: jq.replicas() == 0, 60)
    r.lpush("jobs", *[f"job-{i}" for i in range(7)])
    wait_for("4 workers for 7 jobs at 2 each", lambda: jq.replicas() == 4, 30)
    queue = wait_for("status.queue", lambda: jq.status().get("queue"), 30)
    assert (queue["ready"], queue["inFlight"], queue["format"]) == (7, 0, "list")
    assert queue["wakeup"] == "polling"  # this Redis sends no keyspace notifications
    r.delete("jobs")
    wait_for("the workers back at 0", lambda: jq.replicas() == 0, 30)


def test_keyspace_notifications_wake_the_autoscaler_and_allow_config_turns_them_on(
    kube: Kube, ns: str, operator: Path, own_redis: RedisServer
) -> None:
    r = redis.Redis.from_url(own_redis.url)
    assert r.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""
    # Polled once a minute: only a notification can wake it within the wait below.
    spec = _spec(["jobs"], pollIntervalSeconds=60)
    spec["redis"] = {"url": own_redis.url, "allowConfig": True}
    jq = Foreign(kube, ns, own_redis.url, spec)
    wait_for(
        "the keyspace-notification wake-up",
        lambda: (
            jq.status().get("queue", {}).get("wakeup") == "keyspace-notifications"
            and jq.replicas() == 0
        ),
        60,
    )
    flags = r.config_get("notify-keyspace-events")["notify-keyspace-events"]
    assert "K" in flags and "l" in flags, flags
    t0 = time.monotonic()
    r.lpush("jobs", "one")
    wait_for("a worker for the first job", lambda: jq.replicas() == 1, 10)
    assert time.monotonic() - t0 < 10  # far inside the 60 s poll interval


def test_a_key_of_the_wrong_type_degrades_holds_the_workers_and_is_left_alone(
    kube: Kube, ns: str, operator: Path, own_redis: RedisServer
) -> None:
    r = redis.Redis.from_url(own_redis.url)
    r.hset("jobs-hash", mapping={"a": "1", "b": "2"})
    jq = Foreign(kube, ns, own_redis.url, _spec(["jobs-hash"], minReplicas=1))
    degraded = wait_for(
        "Degraded=True", lambda: jq.condition("Degraded").get("status") == "True" or None, 60
    )
    cond = jq.condition("Degraded")
    assert degraded and cond["reason"] == "QueueFormatMismatch", cond
    assert "jobs-hash is a hash" in cond["message"] and "format list" in cond["message"], cond
    assert jq.condition("Ready")["status"] == "False"
    for _ in range(3):  # held at its minimum, not scaled on a made-up depth
        assert jq.replicas() == 1
        time.sleep(1)
    assert r.hgetall("jobs-hash") == {b"a": b"1", b"b": b"2"}
