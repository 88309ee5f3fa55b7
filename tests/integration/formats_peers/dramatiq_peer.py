"""Dramatiq (from PyPI, its Redis broker): `produce N DELAYED` sends with Dramatiq's own
producer; `report` prints the broker's queue size (RedisBroker qsize: queue + delay queue,
waiting and unacked); the worker is `dramatiq dramatiq_peer`."""

from __future__ import annotations

import sys
import time

import dramatiq
from _common import QUEUE, STARTED, URL, emit
from dramatiq.brokers.redis import RedisBroker
from redis import Redis

broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=600_000)
def slow(seconds: float) -> None:
    Redis.from_url(URL).incr(STARTED)
    time.sleep(seconds)


def main() -> None:
    if sys.argv[1] == "produce":
        n, delayed = int(sys.argv[2]), int(sys.argv[3])
        for _ in range(n):
            slow.send(120)
        for _ in range(delayed):
            slow.send_with_options(args=(1,), delay=600_000)
    emit({"qsize": broker.do_qsize(QUEUE)})


if __name__ == "__main__":
    main()
