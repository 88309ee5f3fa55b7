"""Celery 5.x on the Redis broker, acks_late: the INCR task and a producer (apply_async)."""

from __future__ import annotations

import os

import redis
from celery import Celery

from bench.peers._env import COUNTER, QUEUE, REDIS_URL, produce_main

app = Celery("bench", broker=REDIS_URL)
app.conf.update(
    task_acks_late=os.environ.get("BENCH_ACKS_LATE", "1") == "1",  # Celery's default: off
    task_ignore_result=True,  # no result backend: the counter is the result
    worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH", "1")),
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
    task_send_sent_event=False,
)
_client = redis.Redis.from_url(REDIS_URL)


@app.task(name="incr")
def incr(body: str = "") -> None:
    _client.incr(COUNTER)


def _enqueue_n(n: int, body: str) -> None:
    for _ in range(n):
        incr.apply_async((body,))


if __name__ == "__main__":
    produce_main(_enqueue_n)
