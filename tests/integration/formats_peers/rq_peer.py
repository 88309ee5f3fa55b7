"""RQ (from PyPI, in its own venv): `produce N DELAYED [DUE]` enqueues with RQ's own producer and
prints what RQ reports; `report` prints RQ's counts; the worker is `rq worker` on this module."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

from _common import QUEUE, STARTED, URL, emit
from redis import Redis
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry


def slow(seconds: float) -> None:
    Redis.from_url(URL).incr(STARTED)
    time.sleep(seconds)


def report(q: Queue) -> dict[str, int]:
    return {
        "ready": q.count,
        "in_flight": StartedJobRegistry(queue=q).count,
        "delayed": ScheduledJobRegistry(queue=q).count,
        "dead": FailedJobRegistry(queue=q).count,
    }


def main() -> None:
    q = Queue(QUEUE, connection=Redis.from_url(URL))
    if sys.argv[1] == "produce":
        n, delayed = int(sys.argv[2]), int(sys.argv[3])
        due = int(sys.argv[4]) if len(sys.argv) > 4 else 0
        for _ in range(n):
            q.enqueue("rq_peer.slow", 120, job_timeout=600)
        for _ in range(delayed):
            q.enqueue_in(timedelta(seconds=600), "rq_peer.slow", 1)
        for _ in range(due):  # scheduled for now: due, but only a worker's scheduler enqueues it
            q.enqueue_at(datetime.now(UTC) - timedelta(seconds=1), "rq_peer.slow", 1)
    emit(report(q))


if __name__ == "__main__":
    main()
