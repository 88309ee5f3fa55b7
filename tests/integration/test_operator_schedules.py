"""spec.schedules on the real control plane and a real redis-server, with the operator as real
processes: two replicas run at once, and both are killed (SIGKILL) right after a fire and
started again; a ``* * * * *`` schedule still enqueues exactly one job per fire time. Bad cron
expressions and time zones are refused at admission.

It waits for real minute boundaries (no non-standard cron): two fire times, under 2.5 minutes.
The operators here watch ``jqsched-*`` namespaces only, so no other test's operator sees them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from jobqueue_operator import schedules

from jobqueue import JobSpec, Queue
from tests.cluster.controlplane import Kube
from tests.cluster.procs import free_port
from tests.cluster.redis_server import RedisServer
from tests.support.jobqueues import (
    admit,
    crd,
    get,
    jobqueue,
    must_get,
    url_for,
    wait_for,
)
from tests.support.kube import apply
from tests.support.operator import OperatorProcess, operator_env
from tests.support.services import REPO

__all__ = ["crd"]  # fixture, re-used

pytestmark = pytest.mark.cluster

NS_PREFIX = "jqsched-"
FIRE_WAIT = 75.0  # the next minute boundary, plus the operator's start-up


@dataclass
class Replicas:
    """Operator processes that can be killed and started again; logs appended per replica."""

    kube: Kube
    logs: Path
    procs: dict[str, OperatorProcess] = field(default_factory=dict)
    starts: int = 0  # each start logs to its own file: <name>-<start>.log
    current: dict[str, Path] = field(default_factory=dict)

    def start(self, name: str, **extra: str) -> None:
        env = {"RESYNC_INTERVAL_SECONDS": "3", "HEALTH_PORT": str(free_port()), **extra}
        self.starts += 1
        self.current[name] = self.logs / f"{name}-{self.starts}.log"
        settings = operator_env(self.kube, f"{NS_PREFIX}*", env)
        self.procs[name] = OperatorProcess(settings, self.current[name])

    def wait_healthy(self, name: str) -> None:
        self.procs[name].wait_healthy()

    def kill(self, name: str) -> None:
        self.procs.pop(name).kill()

    def tail(self, name: str, chars: int = 4000) -> str:
        return self.current[name].read_text(errors="replace")[-chars:]

    def text(self, *, running: bool = False) -> str:
        """Every log, or only those of the processes started last (``running``)."""
        paths = sorted(self.current.values()) if running else sorted(self.logs.glob("*.log"))
        return "".join(p.read_text(errors="replace") for p in paths)

    def stop(self) -> None:
        """SIGTERM to every replica at once, then each stopped (SIGKILL after a while)."""
        for operator in self.procs.values():
            operator.proc.terminate()
        for operator in self.procs.values():
            try:
                operator.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                operator.kill()
        self.procs.clear()


@pytest.fixture
def replicas(kube: Kube, crd: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    out = Replicas(kube, tmp_path_factory.mktemp("operators"))
    try:
        yield out
    finally:
        out.stop()


@pytest.fixture
def ns(kube: Kube, crd: None) -> Iterator[str]:
    name = f"{NS_PREFIX}{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    yield name
    # the JobQueue's finalizer needs an operator: take it off, then drop the namespace
    for jq in kube.kubectl("get", "jq", "-n", name, "-o", "name").stdout.split():
        kube.kubectl(
            "patch",
            jq,
            "-n",
            name,
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )
    kube.kubectl("delete", "namespace", name, "--wait=false")


async def _jobs(url: str, queue: str) -> tuple[int, int]:
    """(jobs waiting, jobs ever created) of a queue."""
    client = aioredis.Redis.from_url(url)
    try:
        stats = await Queue(client, queue).stats()
        return stats.ready + stats.delayed, stats.enqueued_total
    finally:
        await client.aclose()


async def _enqueue_again(url: str, queue: str, key: str) -> tuple[str, bool]:
    client = aioredis.Redis.from_url(url)
    try:
        result = await Queue(client, queue).enqueue(JobSpec(type="tick", idempotency_key=key))
        return result.job_id, result.created
    finally:
        await client.aclose()


async def _job(url: str, queue: str, job_id: str) -> Any:
    client = aioredis.Redis.from_url(url)
    try:
        return await Queue(client, queue).get(job_id)
    finally:
        await client.aclose()


def schedule_status(kube: Kube, ns: str) -> dict[str, Any]:
    status = (get(kube, "jq", ns, "cron") or {}).get("status") or {}
    entries = status.get("schedules") or [{}]
    return dict(entries[0])


def test_every_minute_exactly_one_job_per_fire_time_across_restarts_and_two_replicas(
    kube: Kube, ns: str, redis_server: RedisServer, replicas: Replicas
) -> None:
    url = url_for(redis_server)
    queue = f"{ns}/cron"
    replicas.start("a")
    replicas.start("b")
    replicas.wait_healthy("a")
    replicas.wait_healthy("b")
    spec = {
        "redis": {"url": url},
        "autoscaling": {"enabled": False},
        "api": {"enabled": False},
        "schedules": [
            {
                "name": "tick",
                "cron": "* * * * *",
                "type": "tick",
                "payload": {"from": "schedule"},
                "priority": "high",
            }
        ],
    }
    apply(kube, jobqueue(ns, "cron", spec))
    next_fire = wait_for(
        "status.schedules[].nextFireTime", lambda: schedule_status(kube, ns).get("nextFireTime")
    )
    first = schedules.parse_time(next_fire)
    assert first is not None and first.second == 0

    # the first fire: as soon as its job is in Redis, kill both replicas, and drop what they
    # wrote to status (as if killed before writing it): the restarted replicas must find the
    # fire time due again and make its enqueue a no-op through the idempotency key
    wait_for("the first job", lambda: asyncio.run(_jobs(url, queue))[1] >= 1, timeout=FIRE_WAIT)
    replicas.kill("a")
    replicas.kill("b")
    assert asyncio.run(_jobs(url, queue)) == (1, 1)
    kube.kubectl(
        "patch",
        "jq",
        "cron",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"schedules":null}}',
    )
    key = schedules.idempotency_key("tick", first)
    first_job, created = asyncio.run(_enqueue_again(url, queue, key))
    assert not created  # the key of the first fire time is there
    replicas.start("a")
    replicas.start("b")
    replicas.wait_healthy("a")
    replicas.wait_healthy("b")

    def recorded() -> dict[str, Any] | None:
        entry = schedule_status(kube, ns)
        return entry if entry.get("lastFireTime") == schedules.isoformat(first) else None

    entry = wait_for("status.schedules[] of the first fire, written again", recorded)
    assert entry["lastJobId"] == first_job
    assert asyncio.run(_jobs(url, queue)) == (1, 1)
    hits = f"fired for {schedules.isoformat(first)}: job {first_job} (already enqueued"
    assert hits in replicas.text(running=True)  # said by a restarted replica
    job = asyncio.run(_job(url, queue, first_job))
    assert job is not None and job.type == "tick" and job.payload == {"from": "schedule"}
    assert job.priority.value == "high"

    # the second fire time: one more job, and only one, from two live replicas
    second = schedules.next_fire("* * * * *", schedules.zone("UTC"), first)
    wait_for("the second job", lambda: asyncio.run(_jobs(url, queue))[1] >= 2, timeout=FIRE_WAIT)
    time.sleep(3)  # give a duplicate every chance to appear
    assert asyncio.run(_jobs(url, queue)) == (2, 2)
    entry = wait_for(
        "status of the second fire",
        lambda: (
            schedule_status(kube, ns)
            if schedule_status(kube, ns).get("lastFireTime") == schedules.isoformat(second)
            else None
        ),
    )
    assert entry["lastJobId"] != first_job
    assert entry["nextFireTime"] == schedules.isoformat(
        schedules.next_fire("* * * * *", schedules.zone("UTC"), second)
    )
    fired = [line for line in replicas.text().splitlines() if "schedule tick of" in line]
    assert fired, "no replica logged a fire"


PEERING_CRD = REPO / "charts" / "jobqueue-operator" / "files" / "kopf.dev_clusterkopfpeerings.yaml"
TAKEOVER_S = 15.0


def test_with_leader_election_a_standby_takes_over_within_15_s_of_a_sigkill(
    kube: Kube, ns: str, redis_server: RedisServer, replicas: Replicas
) -> None:
    """Two replicas as the chart runs them with replicaCount 2 (kopf peering, the chart's
    CRD): one works, the other stands by; the worker is SIGKILLed and the standby reconciles
    a new JobQueue within 15 s, and a schedule keeps firing exactly once per fire time."""
    kube.kubectl("apply", "--server-side", "-f", str(PEERING_CRD))
    kube.wait_established("clusterkopfpeerings.kopf.dev")
    # Both watch this test's namespace only: what the standby takes over is this test's work,
    # not the JobQueues other tests of the module left finalizing in theirs.
    peering = {"PEERING": "true", "PEERING_NAME": f"test-{ns}", "WATCH_NAMESPACES": ns}
    replicas.start("leader", **peering, PEERING_PRIORITY="200")
    replicas.wait_healthy("leader")
    replicas.start("standby", **peering, PEERING_PRIORITY="100")
    replicas.wait_healthy("standby")
    # kopf starts a replica paused (mandatory peering) and resumes it once no peer outranks it
    resumed = "Resuming operations after the pause"
    wait_for("the leader to work", lambda: resumed in replicas.tail("leader", 200_000))
    url = url_for(redis_server)
    queue = f"{ns}/cron"
    tick = {"name": "tick", "cron": "* * * * *", "type": "tick"}
    spec = {"redis": {"url": url}, "api": {"enabled": False}, "schedules": [tick]}
    apply(kube, jobqueue(ns, "cron", spec))
    wait_for("the leader's reconcile", lambda: observed_generation(kube, ns, "cron"))
    standby_log = replicas.tail("standby", 200_000)
    assert resumed not in standby_log and f"applied {ns}/cron" not in standby_log  # it stood by

    replicas.kill("leader")
    killed = time.monotonic()
    killed_at = datetime.now(UTC)
    apply(kube, jobqueue(ns, "after", {"redis": {"url": url}, "api": {"enabled": False}}))
    wait_for(
        "the standby's reconcile of a new JobQueue",
        lambda: observed_generation(kube, ns, "after"),
        timeout=TAKEOVER_S + 5,
    )
    took = time.monotonic() - killed
    assert took < TAKEOVER_S, f"took over after {took:.1f} s"

    # the next fire time after the kill: enqueued by the new leader, once
    due = schedules.next_fire("* * * * *", schedules.zone("UTC"), killed_at)
    wait_for(
        "the fire after the kill",
        lambda: schedule_status(kube, ns).get("lastFireTime") == schedules.isoformat(due),
        timeout=FIRE_WAIT,
    )
    time.sleep(2)  # give a duplicate every chance to appear
    waiting, created = asyncio.run(_jobs(url, queue))
    created_at = schedules.parse_time(
        must_get(kube, "jq", ns, "cron")["metadata"]["creationTimestamp"]
    )
    assert created_at is not None
    fire_times = 0
    at = schedules.next_fire("* * * * *", schedules.zone("UTC"), created_at)
    while at <= due:
        fire_times += 1
        at = schedules.next_fire("* * * * *", schedules.zone("UTC"), at)
    assert (waiting, created) == (fire_times, fire_times)  # one job per fire time, none missed
    assert f"schedule tick of {ns}/cron fired for {schedules.isoformat(due)}" in replicas.tail(
        "standby", 200_000
    )


def observed_generation(kube: Kube, ns: str, name: str) -> bool:
    status = (get(kube, "jq", ns, name) or {}).get("status") or {}
    return status.get("observedGeneration") == 1


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"cron": "* * * *"}, "cron must be a standard 5-field cron expression"),
        ({"cron": "*/5 * * * * *"}, "cron must be a standard 5-field cron expression"),
        ({"cron": "61 * * * *"}, "cron must be a standard 5-field cron expression"),
        ({"cron": "@hourly"}, "cron must be a standard 5-field cron expression"),
        ({"timeZone": "not a zone"}, "timeZone must be an IANA time zone name"),
        ({"priority": "urgent"}, "spec.schedules[0].priority"),
    ],
)
def test_bad_schedules_are_refused_at_admission(
    kube: Kube, ns: str, schedule: dict[str, Any], message: str
) -> None:
    entry = {"name": "s", "cron": "0 3 * * *", "type": "t"} | schedule
    spec = {"redis": {"url": "redis://r:6379"}, "schedules": [entry]}
    result = admit(kube, ns, "bad", spec, "--dry-run=server")
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_duplicate_schedule_names_are_refused_and_a_good_one_admitted(kube: Kube, ns: str) -> None:
    entry = {"name": "s", "cron": "0 3 * * *", "type": "t", "timeZone": "Europe/Berlin"}
    spec: dict[str, Any] = {"redis": {"url": "redis://r:6379"}, "schedules": [entry, entry]}
    result = admit(kube, ns, "bad", spec, "--dry-run=server")
    assert result.returncode != 0
    assert "every schedule needs a different name" in result.stderr, result.stderr
    spec["schedules"] = [entry | {"payload": {"a": [1, {"b": "c"}], "n": 2.5}}]
    result = admit(kube, ns, "good", spec, "--dry-run=server", "-o", "json")
    assert result.returncode == 0, result.stderr
    stored = json.loads(result.stdout)["spec"]["schedules"][0]
    assert stored["payload"] == {"a": [1, {"b": "c"}], "n": 2.5}
    assert stored["startingDeadlineSeconds"] == 300 and stored["priority"] == "normal"


def test_an_unknown_time_zone_passes_admission_but_is_degraded_with_a_clear_message(
    kube: Kube, ns: str, redis_server: RedisServer, replicas: Replicas
) -> None:
    replicas.start("a")
    replicas.wait_healthy("a")
    entry = {"name": "s", "cron": "0 3 * * *", "type": "t", "timeZone": "Mars/Olympus_Mons"}
    spec = {"redis": {"url": url_for(redis_server)}, "schedules": [entry]}
    apply(kube, jobqueue(ns, "cron", spec))

    def degraded() -> dict[str, Any] | None:
        for cond in ((get(kube, "jq", ns, "cron") or {}).get("status") or {}).get(
            "conditions"
        ) or []:
            if cond["type"] == "Degraded" and cond["status"] == "True":
                return dict(cond)
        return None

    cond = wait_for("Degraded=True", degraded)
    assert cond["reason"] == "InvalidSpec"
    assert "spec.schedules.0.timeZone" in cond["message"]
    assert "timeZone must be an IANA time zone name" in cond["message"]
    assert "'Mars/Olympus_Mons' is not one" in cond["message"]
