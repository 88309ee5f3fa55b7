"""The schedules of one JobQueue (spec.schedules), as the operator's kopf daemon runs them.

:class:`ScheduleRunner` wakes at the next fire time (and every SCHEDULE_SPEC_CHECK_INTERVAL,
to follow the live spec), enqueues each due fire time with the idempotency key
``schedule:<name>:<fire time>`` (so a restarted operator, or a second replica, enqueueing the
same fire time is a no-op), and writes ``status.schedules`` when it changed. A schedule present
when the runner starts counts from the JobQueue's creation (a fire time missed while the
operator was away is caught up); one added later, from then. A failed enqueue is retried after
SCHEDULE_RETRY_DELAY. The Redis client is the endpoint's shared one (redishub).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import jobqueue
from jobqueue import AnyRedis, JobSpec, Priority, Queue
from jobqueue_operator import constants as c
from jobqueue_operator import metrics, redisops, schedules
from jobqueue_operator.redishub import RedisHub
from jobqueue_operator.spec import JobQueueSpec, ScheduleSpec
from jobqueue_operator.status import Fired, schedule_status

log = logging.getLogger(__name__)

Enqueue = Callable[[AnyRedis, str, ScheduleSpec, datetime], Awaitable[jobqueue.EnqueueResult]]


class Stopped(Protocol):
    """kopf's ``stopped`` (``DaemonStopped``): truthy once stopped, waits with a timeout."""

    def __bool__(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> Awaitable[object]: ...


async def enqueue_fire(
    redis: AnyRedis, queue: str, sched: ScheduleSpec, fire: datetime
) -> jobqueue.EnqueueResult:
    """Enqueue one fire time of a schedule (a no-op returning the first job if it already was)."""
    job = JobSpec(
        type=sched.type,
        payload=sched.payload,
        priority=Priority(sched.priority),
        idempotency_key=schedules.idempotency_key(sched.name, fire),
    )
    async with asyncio.timeout(c.REDIS_CHECK_TIMEOUT * 2):
        return await Queue(redis, queue).enqueue(job)


def fired_from_status(status: Mapping[str, Any]) -> dict[str, Fired]:
    """The last fire of each schedule, as status.schedules recorded it."""
    out = {}
    for entry in status.get("schedules") or []:
        at = schedules.parse_time(entry.get("lastFireTime"))
        if at is not None and entry.get("name"):
            out[str(entry["name"])] = Fired(at, str(entry.get("lastJobId") or ""))
    return out


@dataclass
class ScheduleRunner:
    """The schedule loop of JobQueue ``namespace/name``; :meth:`tick` is one pass."""

    namespace: str
    name: str
    spec: Callable[[], JobQueueSpec]  # the live spec (the last good one if it stops parsing)
    url: Callable[[], str | None]  # the Redis URL the reconcile resolved, once it has
    hub: RedisHub
    write_status: Callable[[list[dict[str, Any]]], Awaitable[None]]
    created: datetime | None  # the JobQueue's creation: where schedules present at start count
    status: Mapping[str, Any] = field(default_factory=dict)  # status when the runner started
    enqueue: Enqueue = enqueue_fire
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    fired: dict[str, Fired] = field(init=False)
    _since: dict[str, datetime | None] = field(init=False)
    _retry_at: dict[str, datetime] = field(default_factory=dict, init=False)
    _written: list[dict[str, Any]] | None = field(default=None, init=False)
    _redis_url: str | None = field(default=None, init=False)
    _redis: AnyRedis | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.fired = fired_from_status(self.status)
        self._since = {s.name: self.created for s in self.spec().schedules}

    async def run(self, stopped: Stopped) -> None:
        """Tick until ``stopped``; the shared client is released at the end."""
        try:
            while not stopped:
                await stopped.wait(await self.tick())
        finally:
            await self._release()

    async def _release(self) -> None:
        if self._redis_url is not None:
            await self.hub.release(self._redis_url)
            self._redis_url, self._redis = None, None

    async def _client(self, url: str) -> AnyRedis:
        """The shared client of ``url`` (held from first use; a rotated URL swaps it)."""
        if self._redis is None or self._redis_url != url:
            await self._release()
            self._redis, self._redis_url = self.hub.acquire(url), url
        return self._redis

    async def tick(self) -> float:
        """Enqueue what is due, write status if it changed; seconds until the next tick."""
        parsed = self.spec()
        url = self.url()
        if url is None:  # the reconcile has not resolved the Redis URL yet
            return c.SCHEDULE_SPEC_CHECK_INTERVAL
        client = await self._client(url)
        now = self.now()
        wake = now + timedelta(seconds=c.SCHEDULE_SPEC_CHECK_INTERVAL)
        for sched in parsed.schedules:
            self._since.setdefault(sched.name, now)
            if sched.suspend or self._retry_at.get(sched.name, now) > now:
                continue
            tz = schedules.zone(sched.time_zone)
            await self._fire_if_due(parsed, sched, client, url, now)
            if not sched.suspend:
                wake = min(wake, schedules.next_fire(sched.cron, tz, now))
        await self._report(parsed, now)
        return max((wake - self.now()).total_seconds(), 0.05)

    async def _fire_if_due(
        self, parsed: JobQueueSpec, sched: ScheduleSpec, client: AnyRedis, url: str, now: datetime
    ) -> None:
        previous = self.fired.get(sched.name)
        due = schedules.due_fire(
            sched.cron,
            schedules.zone(sched.time_zone),
            now,
            window=sched.starting_deadline_seconds,
            last_fire=previous.at if previous else None,
            earliest=self._since[sched.name],
        )
        if due is None:
            return
        queue = parsed.queue_of(self.namespace, self.name, sched.type)
        try:
            result = await self.enqueue(client, queue, sched, due)
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            self._retry_at[sched.name] = now + timedelta(seconds=c.SCHEDULE_RETRY_DELAY)
            log.warning(
                "schedule %s of %s/%s: enqueue of %s failed: %s",
                sched.name,
                self.namespace,
                self.name,
                schedules.isoformat(due),
                redisops.describe(exc, (url,)),
            )
            return
        self._retry_at.pop(sched.name, None)
        self.fired[sched.name] = Fired(due, result.job_id)
        if result.created:
            metrics.schedule_fire(self.namespace, self.name, sched.name)
        log.info(
            "schedule %s of %s/%s fired for %s: job %s%s",
            sched.name,
            self.namespace,
            self.name,
            schedules.isoformat(due),
            result.job_id,
            "" if result.created else " (already enqueued: idempotency key hit)",
        )

    async def _report(self, parsed: JobQueueSpec, now: datetime) -> None:
        entries = schedule_status(parsed, self.fired, now)
        if entries == self._written or entries == (self.status.get("schedules") or []):
            self._written = entries
            return
        try:
            await self.write_status(entries)
        except Exception as exc:
            log.warning("status.schedules of %s/%s: %s", self.namespace, self.name, exc)
        else:
            self._written = entries
