"""An RQ worker on the queue `emails` of REDIS_URL (what `rq worker --url $REDIS_URL emails`
does, without a shell to expand the variable). RQ records the job it runs in its started-job
registry, which the operator counts as in flight."""

import os

from redis import Redis
from rq import Queue, Worker

if __name__ == "__main__":
    connection = Redis.from_url(os.environ["REDIS_URL"])
    Worker([Queue("emails", connection=connection)], connection=connection).work()
