"""A Celery app as seed 003's teams run it: the broker is REDIS_URL (a JobQueue sets it), the
queue `emails`. Tasks are acknowledged late (after they run), so a running task stays in
kombu's unacked set and the operator counts it as in flight: a scale-down then keeps enough
workers for it (with Celery's default early acks only prefetched tasks would count)."""

import os
import time

import redis
from celery import Celery

app = Celery("shop", broker=os.environ["REDIS_URL"])
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue="emails",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
done = redis.from_url(os.environ["REDIS_URL"])


@app.task(name="shop.send_email")
def send_email(seconds: float = 0.1) -> None:
    time.sleep(seconds)  # the work
    done.incr("emails:done")
