"""Dramatiq 2.x on the Redis broker: the INCR actor and a producer (actor.send)."""

from __future__ import annotations

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from bench.peers._env import COUNTER, QUEUE, REDIS_URL, produce_main

broker = RedisBroker(url=REDIS_URL)
dramatiq.set_broker(broker)
_client = redis.Redis.from_url(REDIS_URL)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def incr(body: str = "") -> None:
    _client.incr(COUNTER)


def _enqueue_n(n: int, body: str) -> None:
    for _ in range(n):
        incr.send(body)


if __name__ == "__main__":
    produce_main(_enqueue_n)
