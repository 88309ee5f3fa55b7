"""A worker in the shape of seed 000's job-worker: BLPOPs job ids from the Redis list `jobs`
and processes each one; /healthz on port 8080 (Flask, the loop in a daemon thread). Each job
takes WORK_SECONDS and counts itself in `jobs:done`. Reads REDIS_URL.

A job is taken off the list before it runs, so a worker stopped mid-job loses that job: on
SIGTERM it finishes the job in hand first (stop claiming, finish, exit), which is what a
scale-down sends. The reliable-queue pattern (BLMOVE into a processing list, see the README's
"Bring your own workers") keeps a job visible while it runs."""

import os
import signal
import threading
import time

import redis
from flask import Flask

QUEUE = os.environ.get("QUEUE_NAME", "jobs")
WORK_SECONDS = float(os.environ.get("WORK_SECONDS", "0.2"))
r = redis.from_url(os.environ["REDIS_URL"])
stopping = threading.Event()
app = Flask(__name__)


def process_loop():
    while not stopping.is_set():
        item = r.blpop(QUEUE, timeout=1)
        if item is None:
            continue
        time.sleep(WORK_SECONDS)  # the work
        r.incr(f"{QUEUE}:done")
    os._exit(0)


@app.get("/healthz")
def healthz():
    return "ok"


def main():
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    threading.Thread(target=process_loop, daemon=True).start()
    from waitress import serve

    serve(app, host="0.0.0.0", port=8080, threads=2)  # noqa: S104


if __name__ == "__main__":
    main()
