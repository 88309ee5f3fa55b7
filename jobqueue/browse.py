"""Listing jobs by state, a page at a time: the states, their order, cursors and the page type.

Every listing is one call of ``lua/browse.lua``, which examines at most ``budget`` job ids
whatever the queue's length (seeks are O(log n): ZCOUNT plus a binary search by rank), so a
page of a queue of a million jobs costs what a page of ten does. A filter (type, or the
status that tells a retry from a delayed job) can make a page short or even empty while more
matches lie further on: the answer then still carries a cursor, as Redis's own SCAN does.

Where each state is read from, and its order:

* ``queued``: the ready lists, high then normal then low, each in claim order (FIFO). The
  cursor is a position, so a queue that moves between two pages may skip or repeat a job.
* ``running``: the lease ZSET, the lease that runs out first first.
* ``delayed``: jobs enqueued with a delay, due first first; ``failed``: jobs whose attempt
  failed and whose retry waits out its backoff, next retry first (both from the delayed ZSET).
* ``dead``: the dead-letter queue, newest death first.
* ``completed`` and ``cancelled``: the finished jobs whose result is still kept, newest first.
  Their index is the ``expiry`` ZSET the reaper already keeps (one member per acknowledged
  batch, scored finish time + result TTL), so listing them adds nothing to the hot path;
  the order is exact while every process of the queue uses the same result TTL.

A cursor is opaque to callers; this module only checks it has the shape its state uses, so a
forged one is refused before it reaches Redis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from jobqueue import codec
from jobqueue.models import Job

DEFAULT_BUDGET = 1000  # job ids examined per call at most
MAX_LIMIT = 500


class ListState(str, Enum):  # noqa: UP042 (the contract's type; str() unchanged)
    """What ``Queue.list_jobs`` can list."""

    QUEUED = "queued"
    RUNNING = "running"
    DELAYED = "delayed"
    FAILED = "failed"
    DEAD = "dead"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


NEWEST_FIRST = frozenset({ListState.DEAD, ListState.COMPLETED, ListState.CANCELLED})

_LIST_CURSOR = re.compile(r"[0-2]\|\d{1,12}")
_ZSET_CURSOR = re.compile(r"\d{1,16}(?:\.\d{1,16})?\|[A-Za-z0-9][A-Za-z0-9._:-]{0,199}\|\d{1,5}")


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a listing; ``cursor`` is None at the end."""

    jobs: list[Job]
    cursor: str | None


def check_cursor(state: ListState, cursor: str) -> str:
    """Return ``cursor`` if it has the shape ``state``'s listing produces, else ValueError."""
    pattern = _LIST_CURSOR if state is ListState.QUEUED else _ZSET_CURSOR
    if not isinstance(cursor, str) or pattern.fullmatch(cursor) is None:
        raise ValueError(f"not a cursor of a {state.value} listing")
    return cursor


def script_args(
    state: ListState, *, job_type: str | None, limit: int, cursor: str | None, budget: int
) -> tuple[str, int, int, str, str]:
    """ARGV of browse.lua, validated (ValueError with the reason)."""
    state = ListState(state)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer between 1 and {MAX_LIMIT}")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < limit:
        raise ValueError("budget must be an integer >= limit")
    encoded = "" if job_type is None else codec.dumps(job_type)
    type_arg = encoded.decode() if isinstance(encoded, bytes) else encoded
    cursor_arg = "" if cursor is None else check_cursor(state, cursor)
    return state.value, limit, budget, type_arg, cursor_arg
