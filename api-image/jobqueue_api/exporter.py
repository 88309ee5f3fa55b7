"""Which API replica exports the queue gauges: the one holding a short lease in Redis.

Queue depth is a property of the queue, not of an API process. If every replica exported it,
a JobQueue with three API pods would have three identical series per queue, and any `sum`
in a dashboard or alert would triple it. Labelling by queue and asking every query to use
`max by (queue)` works too, but puts a trap in every query someone writes later. So one
replica exports them: the one holding ``jq:{<default queue>}:exporter``, a lease of
METRICS_LEASE_SECONDS that its own scrapes renew (SET NX PX, then PEXPIRE while it is ours).
The others export no queue gauges (``jobqueue_api_queue_exporter`` 0) and take over at
their first scrape after the holder stopped being scraped for a lease's length: at worst one
lease of missing points when the holder dies, against duplicates all the time. Process
metrics (requests, enqueues, redis_up) stay per replica, as they should.
"""

from __future__ import annotations

import uuid

from jobqueue import AnyRedis, Queue


class ExporterLease:
    """This process's claim on exporting the queue gauges of one JobQueue."""

    def __init__(self, redis: AnyRedis, default: Queue, lease_seconds: float) -> None:
        self._redis = redis
        self._key = default.keys.exporter
        self._ms = max(1, round(lease_seconds * 1000))
        self.holder_id = uuid.uuid4().hex  # unique per process, restarts included

    async def hold(self) -> bool:
        """Take or renew the lease; True while this process holds it."""
        if await self._redis.set(self._key, self.holder_id, nx=True, px=self._ms):
            return True
        current = await self._redis.get(self._key)
        if current is not None and _text(current) == self.holder_id:
            await self._redis.pexpire(self._key, self._ms)
            return True
        return False


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
