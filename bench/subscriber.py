"""`python -m bench.subscriber URL QUEUE`: the autoscaler's load on a queue, as in production.

Subscribes to the queue's events channel and, on every message, reads `Queue.stats()` and
`Queue.workers()` concurrently, then waits 50 ms before it reacts again (the operator's scaler
does the same: MIN_EVALUATION_GAP), so the worker benchmarks at defaults pay what a subscribed
autoscaler costs Redis. Reimplemented here so that it does not depend on operator internals.
"""

from __future__ import annotations

import asyncio
import sys

from jobqueue import Queue, connect

REACT_GAP_S = 0.05


async def main(url: str, name: str) -> None:
    redis = connect(url)
    queue = Queue(redis, name)
    pubsub = redis.pubsub()
    await pubsub.subscribe(queue.keys.events)
    while True:
        message = await pubsub.get_message(timeout=1.0)
        if message is None:
            continue
        await asyncio.gather(queue.stats(), queue.workers())
        await asyncio.sleep(REACT_GAP_S)
        # what arrived meanwhile coalesces into the next evaluation, as in the scaler
        while await pubsub.get_message(timeout=0) is not None:
            pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
