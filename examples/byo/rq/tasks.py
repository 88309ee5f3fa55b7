"""The job functions of an RQ worker image (seed 003's RQ users): `tasks.send_email`."""

import os
import time

import redis

done = redis.from_url(os.environ["REDIS_URL"])


def send_email(seconds: float = 0.1) -> None:
    time.sleep(seconds)  # the work
    done.incr("emails:done")
