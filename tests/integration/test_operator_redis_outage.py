"""A Redis that goes away and comes back, seen by the reconcile alone (no autoscaler): Ready
turns False with the reason within seconds and back to True once Redis answers again, with no
change to the JobQueue and no resync in between (a failed check is looked at again soon)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobqueue_operator import constants as c

from tests.cluster.controlplane import Kube
from tests.cluster.redis_server import RedisServer
from tests.support.kube import apply, temporary_namespace
from tests.support.operator import running_operator
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

RECOVERY_S = 45.0  # the re-check comes 15 s after a failed one (plus its own retry, timeouts)


@pytest.fixture
def ns(kube: Kube) -> Iterator[str]:
    yield from temporary_namespace(kube, "jqoutage-")


def ready(kube: Kube, ns: str) -> dict[str, Any]:
    jq = kube.kubectl_json("get", "jq", "q", "-n", ns)
    for cond in (jq.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Ready":
            return dict(cond)
    return {}


def test_ready_follows_a_redis_outage_without_waiting_for_a_resync(
    kube: Kube, ns: str, tmp_path: Path
) -> None:
    redis = RedisServer().start()
    try:
        # the resync (300 s, the default) cannot be what notices the recovery
        env = {"RESYNC_INTERVAL_SECONDS": "300"}
        with running_operator(kube, ns, tmp_path / "operator.log", env):
            spec = {
                "redis": {"url": redis.url},
                "api": {"replicas": 0},
                "worker": {"replicas": 0},
                "autoscaling": {"enabled": False},
            }
            apply(kube, {"apiVersion": "jobqueue.io/v1alpha1", "kind": "JobQueue",
                         "metadata": {"name": "q", "namespace": ns}, "spec": spec})  # fmt: skip
            wait_for("Ready", lambda: ready(kube, ns).get("status") == "True")
            redis.stop()
            time.sleep(c.REDIS_CHECK_TTL + 1)  # the last good check is no longer reused
            # a child's change makes the operator look (here: a label on the worker Secret)
            kube.kubectl("label", "secret", "q-worker", "-n", ns, "poke=1", "--overwrite")
            down = wait_for(
                "Ready=False", lambda: ready(kube, ns).get("status") == "False" and ready(kube, ns)
            )
            assert down["reason"] == "RedisUnreachable"
            redis.start()
            back = time.monotonic()
            wait_for(
                "Ready again", lambda: ready(kube, ns).get("status") == "True", timeout=RECOVERY_S
            )
            assert time.monotonic() - back < RECOVERY_S
    finally:
        redis.cleanup()
