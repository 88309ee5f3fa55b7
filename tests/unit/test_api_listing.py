"""GET /jobs over several queues: finished jobs merged newest first, the order kept even when
a queue's page is cut short by its examination budget (fake queues with a tiny budget)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from jobqueue_api.listing import list_page

from jobqueue import Job, JobStatus, Priority
from jobqueue.browse import JobPage, ListState


def job(job_id: str, finished: float, job_type: str) -> Job:
    return Job(
        id=job_id,
        type=job_type,
        payload=None,
        priority=Priority.NORMAL,
        status=JobStatus.COMPLETED,
        attempts=1,
        max_retries=0,
        progress=100,
        result=None,
        error=None,
        created_at=0.0,
        started_at=None,
        finished_at=finished,
        run_at=None,
    )


class FakeQueue:
    """A queue's finished jobs, newest first, listed as browse.lua does: at most `budget`
    examined per call, a cursor "<index>|x|0" to go on from."""

    def __init__(self, name: str, jobs: list[Job], budget: int) -> None:
        self.name = name
        self.jobs = sorted(jobs, key=lambda j: -(j.finished_at or 0))
        self.budget = budget
        self.calls = 0

    async def list_jobs(
        self, state: ListState, *, job_type: str | None, limit: int, cursor: str | None
    ) -> JobPage:
        self.calls += 1
        i = 0 if cursor is None else int(cursor.split("|")[0])
        found: list[Job] = []
        examined = 0
        while i < len(self.jobs) and len(found) < limit and examined < self.budget:
            if job_type is None or self.jobs[i].type == job_type:
                found.append(self.jobs[i])
            i += 1
            examined += 1
        return JobPage(found, None if i >= len(self.jobs) else f"{i}|x|0")


def walk(queues: list[FakeQueue], limit: int, job_type: str | None) -> list[str]:
    async def run() -> list[str]:
        seen: list[str] = []
        cursor = None
        for _ in range(10_000):
            page = await list_page(
                queues,  # type: ignore[arg-type]
                ListState.COMPLETED,
                job_type=job_type,
                limit=limit,
                cursor=cursor,
            )
            assert len(page.jobs) <= limit
            seen += [j.id for j in page.jobs]
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor
        raise AssertionError("the listing never ended")

    return asyncio.run(run())


def test_merged_pages_list_every_job_once_newest_first_whatever_the_budget() -> None:
    rng = random.Random(7)
    for trial in range(200):
        times = rng.sample(range(1, 10_000), 60)  # distinct finish times
        queues: list[FakeQueue] = []
        every: list[Job] = []
        for q in range(rng.randint(2, 4)):
            jobs = [
                job(f"q{q}-{t}", t / 1000, rng.choice(["a", "b", "b", "b"]))
                for t in times[q * 15 : q * 15 + rng.randint(0, 15)]
            ]
            every += jobs
            queues.append(FakeQueue(f"q{q}", jobs, budget=rng.randint(1, 6)))
        job_type: Any = rng.choice([None, "a"])
        limit = rng.randint(1, 7)
        expected = [
            j.id
            for j in sorted(every, key=lambda j: -(j.finished_at or 0))
            if job_type is None or j.type == job_type
        ]
        assert walk(queues, limit, job_type) == expected, (trial, limit, job_type)


def test_a_page_costs_at_most_two_calls_per_queue() -> None:
    queues = [
        FakeQueue(f"q{q}", [job(f"{q}-{t}", t + q / 10, "a") for t in range(50)], budget=1000)
        for q in range(3)
    ]
    asyncio.run(
        list_page(
            queues,  # type: ignore[arg-type]
            ListState.COMPLETED,
            job_type=None,
            limit=10,
            cursor=None,
        )
    )
    assert all(q.calls <= 2 for q in queues)
