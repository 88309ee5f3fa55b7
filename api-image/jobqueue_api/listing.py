"""GET /jobs over the JobQueue's queues: one in turn after the other, or merged newest first.

The waiting states (queued, running, delayed, failed) are listed queue after queue: their
order only means something within one queue, whose workers take them in that order. The
finished states (dead, completed, cancelled) are merged newest first across the queues, so a
pool's fresh failures are not hidden behind the default queue's older ones. A merged page asks
each queue for a page of ``limit`` (a k-way merge: the newest ``limit`` of all are among the
newest ``limit`` of each), keeps the newest ``limit`` of them, and moves each queue's position
past the jobs it gave (one more bounded call for a queue that gave only part of its page).
A queue whose page the protocol cut short (its examination budget spent, a filter matching
little) may still hold jobs newer than what the others gave: only jobs at least as new as the
last one it returned are taken from the others then, so the order holds; such a page can be
short or empty, with a cursor. Work per call: at most two protocol calls per queue, each
bounded (``jobqueue.browse``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

from jobqueue import Job, Queue
from jobqueue.browse import NEWEST_FIRST, JobPage, ListState
from jobqueue_api.cursors import BadCursor, Cursor, MergedCursor
from jobqueue_api.models import JobPublic, JobsPage


async def list_page(
    targets: Sequence[Queue],
    state: ListState,
    *,
    job_type: str | None,
    limit: int,
    cursor: str | None,
) -> JobsPage:
    """One page of GET /jobs over ``targets``; BadCursor for a cursor it cannot use."""
    if state in NEWEST_FIRST and len(targets) > 1:
        return await _merged(targets, state, job_type, limit, cursor)
    return await _in_turn(targets, state, job_type, limit, cursor)


async def _in_turn(
    targets: Sequence[Queue], state: ListState, job_type: str | None, limit: int, cursor: str | None
) -> JobsPage:
    start, position = 0, ""
    if cursor is not None:
        decoded = Cursor.decode(cursor, state)
        names = [q.name for q in targets]
        if decoded.queue not in names:
            raise BadCursor(f"cursor is for queue {decoded.queue!r}, not listed here")
        start, position = names.index(decoded.queue), decoded.position
    jobs: list[JobPublic] = []
    for i in range(start, len(targets)):
        q = targets[i]
        page = await q.list_jobs(
            state, job_type=job_type, limit=limit - len(jobs), cursor=position or None
        )
        jobs += [JobPublic.of(j, q.name) for j in page.jobs]
        position = ""
        if page.cursor is not None:
            return JobsPage(jobs=jobs, next_cursor=Cursor(q.name, state, page.cursor).encode())
        if len(jobs) >= limit and i + 1 < len(targets):
            return JobsPage(jobs=jobs, next_cursor=Cursor(targets[i + 1].name, state, "").encode())
    return JobsPage(jobs=jobs, next_cursor=None)


def _when(job: Job) -> float:
    return job.finished_at if job.finished_at is not None else 0.0


async def _merged(
    targets: Sequence[Queue], state: ListState, job_type: str | None, limit: int, cursor: str | None
) -> JobsPage:
    names = [q.name for q in targets]
    if cursor is None:
        positions: list[str | None] = [""] * len(targets)
    else:
        positions = list(MergedCursor.decode(cursor, state, names).positions)
    live = [i for i, p in enumerate(positions) if p is not None]

    async def page_of(i: int, n: int) -> JobPage:
        return await targets[i].list_jobs(
            state, job_type=job_type, limit=n, cursor=positions[i] or None
        )

    pages = dict(zip(live, await asyncio.gather(*(page_of(i, limit) for i in live)), strict=True))
    # Jobs older than a cut-short queue's last returned one may be preceded by jobs it has not
    # examined yet: take only those at least as new (none, if it returned nothing).
    frontier = -math.inf
    for page in pages.values():
        if page.cursor is not None and len(page.jobs) < limit:
            frontier = max(frontier, _when(page.jobs[-1]) if page.jobs else math.inf)
    ranked = sorted(
        ((job, i) for i, page in pages.items() for job in page.jobs if _when(job) >= frontier),
        key=lambda t: (-_when(t[0]), t[1]),
    )[:limit]
    counts = dict.fromkeys(live, 0)
    for _, i in ranked:
        counts[i] += 1
    # Each queue gives a prefix of its page (its own order), so its position can move past it.
    taken = [(job, i) for i in live for job in pages[i].jobs[: counts[i]]]
    taken.sort(key=lambda t: (-_when(t[0]), t[1]))
    partial = [i for i in live if 0 < counts[i] < len(pages[i].jobs)]
    again = dict(
        zip(partial, await asyncio.gather(*(page_of(i, counts[i]) for i in partial)), strict=True)
    )
    for i in live:
        if counts[i] == len(pages[i].jobs):
            positions[i] = pages[i].cursor  # past the whole page (None: exhausted)
        elif i in again:
            positions[i] = again[i].cursor
    jobs = [JobPublic.of(job, targets[i].name) for job, i in taken]
    if all(p is None for p in positions):
        return JobsPage(jobs=jobs, next_cursor=None)
    return JobsPage(jobs=jobs, next_cursor=MergedCursor(state, tuple(positions)).encode(names))
