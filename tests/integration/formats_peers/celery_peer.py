"""Celery (from PyPI, kombu's Redis transport): `produce N PRIORITIZED` sends with Celery's own
producer; `report` prints the passive queue_declare message count and the workers' active +
reserved tasks (celery inspect); the worker is `celery -A celery_peer worker`."""

from __future__ import annotations

import sys
import time

from _common import QUEUE, STARTED, URL, emit
from celery import Celery
from redis import Redis

app = Celery("celery_peer", broker=URL)
app.conf.update(
    task_acks_late=True,  # a running task stays unacked: in flight until it finishes
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    task_default_queue=QUEUE,
)


@app.task(name="slow")
def slow(seconds: float) -> None:
    Redis.from_url(URL).incr(STARTED)
    time.sleep(seconds)


def report(with_workers: bool) -> dict[str, int]:
    with app.connection_for_write() as conn:
        ready = conn.default_channel.queue_declare(queue=QUEUE, passive=True).message_count
    out = {"ready": ready}
    if with_workers:
        inspect = app.control.inspect(timeout=2.0)
        active = inspect.active() or {}
        reserved = inspect.reserved() or {}
        out["active"] = sum(len(v) for v in active.values())
        out["reserved"] = sum(len(v) for v in reserved.values())
    return out


def main() -> None:
    if sys.argv[1] == "produce":
        n, prioritized = int(sys.argv[2]), int(sys.argv[3])
        for _ in range(n):
            slow.apply_async(args=(120,), queue=QUEUE)
        for _ in range(prioritized):  # kombu puts these on the priority list <queue>\x06\x166
            slow.apply_async(args=(120,), queue=QUEUE, priority=6)
    emit(report(with_workers=sys.argv[1] == "report-workers"))


if __name__ == "__main__":
    main()
