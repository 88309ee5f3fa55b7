"""The schedule runner alone (no Redis, no cluster): what it enqueues when, its status writes,
its retries, and where a restarted runner picks up (status, creation time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jobqueue_operator.redishub import RedisHub
from jobqueue_operator.scheduler import ScheduleRunner
from jobqueue_operator.spec import ScheduleSpec, parse_spec

import jobqueue

T0 = datetime(2026, 12, 7, 12, 0, 30, tzinfo=UTC)


class Rig:
    def __init__(self, spec: dict[str, Any], status: dict[str, Any] | None = None) -> None:
        self.clock = T0
        self.spec = parse_spec(spec)
        self.url: str | None = "redis://127.0.0.1:1/0"  # never connected: enqueue is faked
        self.enqueued: list[tuple[str, str, datetime]] = []
        self.fail = False
        self.known: set[str] = set()
        self.writes: list[list[dict[str, Any]]] = []
        self.runner = ScheduleRunner(
            namespace="ns",
            name="q",
            spec=lambda: self.spec,
            url=lambda: self.url,
            hub=RedisHub(),
            write_status=self.write,
            created=T0 - timedelta(minutes=10),
            status=status or {},
            enqueue=self.enqueue,
            now=lambda: self.clock,
        )

    async def enqueue(
        self, redis: Any, queue: str, sched: ScheduleSpec, fire: datetime
    ) -> jobqueue.EnqueueResult:
        if self.fail:
            raise ConnectionError("redis://:pw@r:6379 refused")
        key = f"{sched.name}:{fire.isoformat()}"
        created = key not in self.known
        self.known.add(key)
        self.enqueued.append((queue, sched.name, fire))
        return jobqueue.EnqueueResult(job_id=f"job-{key}", created=created)

    async def write(self, entries: list[dict[str, Any]]) -> None:
        self.writes.append(entries)


def every_minute(**extra: Any) -> dict[str, Any]:
    sched = {"name": "tick", "cron": "* * * * *", "type": "t"} | extra
    return {"redis": {"url": "redis://r:6379"}, "schedules": [sched]}


async def test_a_due_fire_time_is_enqueued_once_and_status_written_once() -> None:
    rig = Rig(every_minute())
    delay = await rig.runner.tick()
    # the latest missed fire time within the starting deadline: 12:00:00
    assert rig.enqueued == [("ns/q", "tick", T0.replace(second=0))]
    assert rig.writes[-1][0]["lastFireTime"] == "2026-12-07T12:00:00Z"
    assert rig.writes[-1][0]["nextFireTime"] == "2026-12-07T12:01:00Z"
    assert 0 < delay <= 1.0  # the spec check interval
    await rig.runner.tick()
    assert len(rig.enqueued) == 1 and len(rig.writes) == 1  # nothing new: no enqueue, no write
    rig.clock = T0 + timedelta(seconds=31)  # 12:01:01
    await rig.runner.tick()
    assert rig.enqueued[-1][2] == T0.replace(minute=1, second=0)
    assert len(rig.writes) == 2


async def test_a_restarted_runner_does_not_fire_what_status_says_it_fired() -> None:
    fired = {"name": "tick", "lastFireTime": "2026-12-07T12:00:00Z", "lastJobId": "j1"}
    rig = Rig(every_minute(), status={"schedules": [fired | {"nextFireTime": "x"}]})
    await rig.runner.tick()
    assert rig.enqueued == []


async def test_a_failed_enqueue_is_retried_after_the_delay_without_secrets_in_the_log(
    caplog: Any,
) -> None:
    rig = Rig(every_minute())
    rig.fail = True
    await rig.runner.tick()
    assert rig.enqueued == []
    assert "enqueue of 2026-12-07T12:00:00Z failed" in caplog.text
    assert ":pw@" not in caplog.text
    rig.fail = False
    rig.clock = T0 + timedelta(seconds=2)
    await rig.runner.tick()
    assert rig.enqueued == []  # not before the retry delay
    rig.clock = T0 + timedelta(seconds=6)
    await rig.runner.tick()
    assert [e[2] for e in rig.enqueued] == [T0.replace(second=0)]


async def test_suspended_and_unresolved_schedules_wait() -> None:
    rig = Rig(every_minute(suspend=True))
    await rig.runner.tick()
    assert rig.enqueued == []
    assert "nextFireTime" not in rig.writes[-1][0]
    rig = Rig(every_minute())
    rig.url = None  # the reconcile has not resolved the URL yet
    assert await rig.runner.tick() == 1.0
    assert rig.enqueued == [] and rig.writes == []


async def test_a_schedule_added_later_counts_from_when_it_appeared() -> None:
    rig = Rig({"redis": {"url": "redis://r:6379"}})
    await rig.runner.tick()
    rig.spec = parse_spec(every_minute())
    await rig.runner.tick()  # 12:00:30: 12:00:00 was before the schedule existed
    assert rig.enqueued == []
    rig.clock = T0 + timedelta(seconds=30)
    await rig.runner.tick()
    assert [e[2] for e in rig.enqueued] == [T0.replace(minute=1, second=0)]
