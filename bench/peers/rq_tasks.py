"""RQ 3.x: the INCR task and a producer (Queue.enqueue, one call per job)."""

from __future__ import annotations

import redis
from rq import Queue

from bench.peers._env import COUNTER, QUEUE, REDIS_URL, produce_main

_client = redis.Redis.from_url(REDIS_URL)


def incr(body: str = "") -> None:
    _client.incr(COUNTER)


def _enqueue_n(n: int, body: str) -> None:
    q = Queue(QUEUE, connection=redis.Redis.from_url(REDIS_URL))
    for _ in range(n):
        q.enqueue("bench.peers.rq_tasks.incr", body)


if __name__ == "__main__":
    produce_main(_enqueue_n)
