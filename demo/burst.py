"""The burst of jobs: a deterministic plan (pure) and the HTTP sender that posts it.

The plan mixes every way the API takes a job: the seeds' ``POST /enqueue`` and
``POST /tasks?task_type=``, the typed ``POST /jobs`` and ``POST /jobs:batch``. It includes jobs
that fail once and then succeed (a retry), slow jobs that report progress, and exactly one job
that always fails and so lands in the dead-letter queue.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from demo import constants as c

Expect = Literal["completed", "dead"]


class Route(enum.StrEnum):
    """How a job is posted (the value is what the summary prints)."""

    ENQUEUE = "POST /enqueue"
    TASKS = "POST /tasks"
    JOBS = "POST /jobs"
    BATCH = "POST /jobs:batch"


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """One job of the burst and what must become of it."""

    queue: str
    route: Route
    type: str
    payload: Any
    priority: str = "normal"
    max_retries: int | None = None  # None: the route's default (3)
    expect: Expect = "completed"

    def job_body(self) -> dict[str, Any]:
        """The typed body (POST /jobs and each item of POST /jobs:batch)."""
        body: dict[str, Any] = {"type": self.type, "payload": self.payload}
        if self.priority != "normal":
            body["priority"] = self.priority
        if self.max_retries is not None:
            body["max_retries"] = self.max_retries
        return body


@dataclass(frozen=True, slots=True)
class BurstPlan:
    jobs: tuple[PlannedJob, ...]

    def for_queue(self, queue: str) -> tuple[PlannedJob, ...]:
        return tuple(j for j in self.jobs if j.queue == queue)

    def expected(self, queue: str | None = None) -> Counter[str]:
        """How many jobs must end `completed` and `dead` (of one queue, or all)."""
        return Counter(j.expect for j in self.jobs if queue is None or j.queue == queue)

    def routes(self) -> Counter[str]:
        return Counter(j.route.value for j in self.jobs)


def split(total: int, shares: Mapping[str, float]) -> dict[str, int]:
    """`total` jobs split by share (each queue at least 1 when total allows); sums to total."""
    names = list(shares)
    counts = {name: int(total * shares[name]) for name in names}
    if total >= len(names):
        for name in names:
            counts[name] = max(1, counts[name])
    counts[names[0]] += total - sum(counts.values())
    return counts


def _email(i: int) -> dict[str, Any]:
    return {"to": f"user{i}@example.com", "latency": c.EMAIL_LATENCY_SECONDS}


def _resize(i: int) -> dict[str, Any]:
    return {"width": 640 + i % 7 * 160, "height": 480, "work": c.RESIZE_WORK_SECONDS}


def plan_queue(queue: str, n: int, *, with_dlq: bool) -> list[PlannedJob]:
    """The jobs of one queue: a mix of routes and outcomes, `n` in all."""
    jobs: list[PlannedJob] = []
    if with_dlq and n > 0:
        jobs.append(
            PlannedJob(
                queue,
                Route.JOBS,
                "fail",
                {"message": "boom: this one always fails"},
                max_retries=c.DLQ_MAX_RETRIES,
                expect="dead",
            )
        )
    rest = n - len(jobs)
    n_flaky = min(rest, max(1, rest * 3 // 100))
    n_slow = min(rest - n_flaky, max(1, rest // 100))
    n_enqueue = (rest - n_flaky - n_slow) * 15 // 100
    n_tasks = (rest - n_flaky - n_slow) * 10 // 100
    n_jobs = (rest - n_flaky - n_slow) * 5 // 100
    n_batch = rest - n_flaky - n_slow - n_enqueue - n_tasks - n_jobs
    jobs += [
        PlannedJob(queue, Route.JOBS, "flaky", {"succeed_on": c.FLAKY_SUCCEED_ON}, max_retries=3)
        for _ in range(n_flaky)
    ]
    jobs += [
        PlannedJob(queue, Route.TASKS, "slow", {"seconds": c.SLOW_SECONDS, "steps": c.SLOW_STEPS})
        for _ in range(n_slow)
    ]
    jobs += [PlannedJob(queue, Route.ENQUEUE, "email", _email(i)) for i in range(n_enqueue)]
    jobs += [PlannedJob(queue, Route.TASKS, "resize", _resize(i)) for i in range(n_tasks)]
    jobs += [
        PlannedJob(queue, Route.JOBS, "email", _email(i), priority="high") for i in range(n_jobs)
    ]
    jobs += [
        PlannedJob(
            queue,
            Route.BATCH,
            *(("email", _email(i)) if i % 3 else ("resize", _resize(i))),
            priority="low" if i % 5 == 0 else "normal",
        )
        for i in range(n_batch)
    ]
    return jobs


def plan(total: int, queues: Sequence[str], shares: Mapping[str, float] | None = None) -> BurstPlan:
    """The whole burst: `total` jobs over `queues`; the DLQ job goes to the first queue."""
    if total < 1 or not queues:
        raise ValueError("a burst needs at least one job and one queue")
    wanted = {q: (shares or c.QUEUE_SHARES).get(q, 0.0) for q in queues}
    if not any(wanted.values()):
        wanted = dict.fromkeys(queues, 1.0 / len(queues))
    counts = split(total, wanted)
    jobs: list[PlannedJob] = []
    for i, queue in enumerate(queues):
        jobs += plan_queue(queue, counts[queue], with_dlq=i == 0)
    return BurstPlan(tuple(jobs))


# ---------------------------------------------------------------------------------------------
# Sending


@dataclass(frozen=True, slots=True)
class Target:
    """One JobQueue's API as the demo reaches it."""

    queue: str  # the JobQueue's name
    namespace: str
    base_url: str
    token: str | None = None
    min_workers: int = 0
    max_workers: int = 1

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


@dataclass
class SentBurst:
    """What was posted: the id of every job that was accepted, and what went wrong."""

    ids: dict[str, list[tuple[str, PlannedJob]]] = field(default_factory=dict)  # queue -> ...
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    def add(self, job_id: str, job: PlannedJob) -> None:
        self.ids.setdefault(job.queue, []).append((job_id, job))

    @property
    def accepted(self) -> int:
        return sum(len(v) for v in self.ids.values())

    def accepted_by_queue(self, queue: str) -> int:
        return len(self.ids.get(queue, ()))


class SendError(RuntimeError):
    """The API refused a job; the message has the status and body."""


async def _post(
    client: httpx.AsyncClient,
    path: str,
    *,
    json: Any = None,
    params: Mapping[str, str] | None = None,
    attempts: int = 5,
) -> Any:
    """POST with a few retries on 503 (backpressure or Redis restarting), honouring Retry-After."""
    for attempt in range(attempts):
        response = await client.post(path, json=json, params=params)
        if response.status_code == 503 and attempt < attempts - 1:
            await asyncio.sleep(min(5.0, float(response.headers.get("Retry-After", "1"))))
            continue
        if response.status_code >= 300:
            raise SendError(f"{path}: HTTP {response.status_code} {response.text[:200]}")
        return response.json()
    raise AssertionError("unreachable")


async def _send_one(client: httpx.AsyncClient, job: PlannedJob) -> str:
    if job.route is Route.ENQUEUE:
        body = await _post(client, "/enqueue", json={"type": job.type, "payload": job.payload})
        return str(body["job_id"])
    if job.route is Route.TASKS:
        body = await _post(client, "/tasks", json=job.payload, params={"task_type": job.type})
        return str(body["id"])
    body = await _post(client, "/jobs", json=job.job_body())
    return str(body["job_id"])


async def _send_batch(client: httpx.AsyncClient, jobs: Sequence[PlannedJob]) -> list[str]:
    body = await _post(client, "/jobs:batch", json={"jobs": [j.job_body() for j in jobs]})
    ids = [str(i) for i in body["job_ids"]]
    if len(ids) != len(jobs):
        raise SendError(f"/jobs:batch answered {len(ids)} ids for {len(jobs)} jobs")
    return ids


def client_for(target: Target) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=c.SEND_CONCURRENCY * 2)
    return httpx.AsyncClient(
        base_url=target.base_url, headers=target.headers(), timeout=c.HTTP_TIMEOUT, limits=limits
    )


async def send(
    burst: BurstPlan, clients: Mapping[str, httpx.AsyncClient], sent: SentBurst | None = None
) -> SentBurst:
    """Post the whole burst at once (singles with bounded concurrency, batches of BATCH_SIZE).

    `sent` is filled in as answers arrive, so a live view can show the progress of the send.
    """
    sent = sent if sent is not None else SentBurst()
    sent.started = time.monotonic()
    gate = asyncio.Semaphore(c.SEND_CONCURRENCY)

    async def one(job: PlannedJob) -> None:
        async with gate:
            try:
                sent.add(await _send_one(clients[job.queue], job), job)
            except (SendError, httpx.HTTPError) as exc:
                sent.errors.append(f"{job.queue} {job.route.value} {job.type}: {exc!r}")

    async def batch(jobs: Sequence[PlannedJob]) -> None:
        async with gate:
            try:
                ids = await _send_batch(clients[jobs[0].queue], jobs)
            except (SendError, httpx.HTTPError) as exc:
                sent.errors.append(f"{jobs[0].queue} {Route.BATCH.value} x{len(jobs)}: {exc!r}")
                return
            for job_id, job in zip(ids, jobs, strict=True):
                sent.add(job_id, job)

    tasks: list[asyncio.Task[None]] = []
    async with asyncio.TaskGroup() as group:
        for queue in dict.fromkeys(j.queue for j in burst.jobs):
            batched = [j for j in burst.for_queue(queue) if j.route is Route.BATCH]
            for start in range(0, len(batched), c.BATCH_SIZE):
                tasks.append(group.create_task(batch(batched[start : start + c.BATCH_SIZE])))
        for job in burst.jobs:
            if job.route is not Route.BATCH:
                tasks.append(group.create_task(one(job)))
    sent.finished = time.monotonic()
    return sent


# ---------------------------------------------------------------------------------------------
# Checking the outcome


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of the burst, read back job by job through GET /jobs/{id}."""

    status: Counter[str]  # status -> jobs
    retried: int  # jobs that needed more than one attempt
    wrong: tuple[str, ...]  # "<id> <type>: expected X, is Y"
    slow_progress: tuple[int, ...]  # progress of the slow jobs (100 when done)

    @property
    def ok(self) -> bool:
        return not self.wrong


def judge(records: Sequence[tuple[PlannedJob, Mapping[str, Any] | None, str]]) -> Outcome:
    """Pure: compare each job's record (None: not found) with what the plan expects."""
    status: Counter[str] = Counter()
    retried = 0
    wrong: list[str] = []
    progress: list[int] = []
    for job, record, job_id in records:
        actual = "missing" if record is None else str(record.get("status"))
        status[actual] += 1
        if record is not None and int(record.get("attempts", 0)) > 1:
            retried += 1
        if job.type == "slow" and record is not None:
            progress.append(int(record.get("progress", 0)))
        if actual != job.expect:
            wrong.append(f"{job_id} {job.type}: expected {job.expect}, is {actual}")
    return Outcome(status, retried, tuple(wrong), tuple(progress))


async def read_back(
    sent: SentBurst, clients: Mapping[str, httpx.AsyncClient]
) -> list[tuple[PlannedJob, dict[str, Any] | None, str]]:
    """GET /jobs/{id} for every accepted job (bounded concurrency)."""
    gate = asyncio.Semaphore(c.VERIFY_CONCURRENCY)
    out: list[tuple[PlannedJob, dict[str, Any] | None, str]] = []

    async def get(queue: str, job_id: str, job: PlannedJob) -> None:
        async with gate:
            response = await clients[queue].get(f"/jobs/{job_id}")
        record: dict[str, Any] | None = response.json() if response.status_code == 200 else None
        out.append((job, record, job_id))

    async with asyncio.TaskGroup() as group:
        for queue, items in sent.ids.items():
            for job_id, job in items:
                group.create_task(get(queue, job_id, job))
    return out
