"""A worker in the shape of seed 001's task-worker: BRPOPs tasks (JSON) from the Redis list
`tasks`, marks each processing then complete in `task:<id>`, and counts it in `tasks:done`.
No HTTP port (the JobQueue disables its probes). Reads TASK_QUEUE_URL. On SIGTERM it finishes
the task in hand and exits."""

import json
import logging
import os
import signal
import time

import redis

QUEUE_NAME = "tasks"
WORK_SECONDS = float(os.environ.get("WORK_SECONDS", "0.2"))
r = redis.from_url(os.environ["TASK_QUEUE_URL"])
stopping = False


def stop(*_: object) -> None:
    global stopping
    stopping = True


def main() -> None:
    signal.signal(signal.SIGTERM, stop)
    logging.basicConfig(level=logging.INFO)
    logging.info("worker started, waiting for tasks")
    while not stopping:
        item = r.brpop(QUEUE_NAME, timeout=1)
        if item is None:
            continue
        task = json.loads(item[1])
        r.hset(f"task:{task['id']}", "status", "processing")
        time.sleep(WORK_SECONDS)  # the work
        r.hset(f"task:{task['id']}", "status", "complete")
        r.incr(f"{QUEUE_NAME}:done")


if __name__ == "__main__":
    main()
