"""The context a task may take as its second argument: job identity and progress reporting."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Protocol

from jobqueue import AnyRedis
from jobqueue_worker import constants as c


class JobHandle(Protocol):
    """What a context needs from the runtime's record of the running job."""

    @property
    def abandoned(self) -> bool: ...

    @property
    def cancelled(self) -> bool: ...

    async def report_progress(self, percent: int) -> bool: ...


def clamp_percent(percent: float) -> int:
    """Progress as an int in 0..100."""
    return max(0, min(100, int(percent)))


class BaseJobContext:
    """Fields shared by both contexts. `abandoned` turns True once the job's result no longer
    counts (timed out, lease lost, handed back at shutdown, cancelled): a long task may stop
    early. `cancelled` turns True when a user cancelled the job while it ran (POST
    /jobs/{id}/cancel): an async task is cancelled as well (CancelledError at its next await),
    a sync task cannot be, so it should check `ctx.cancelled` and return."""

    __slots__ = ("_handle", "attempt", "job_id", "max_retries", "type")

    def __init__(
        self, handle: JobHandle, *, job_id: str, type: str, attempt: int, max_retries: int
    ) -> None:
        self._handle = handle
        self.job_id = job_id
        self.type = type
        self.attempt = attempt  # 1 on the first run
        self.max_retries = max_retries  # attempts allowed = 1 + max_retries

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= 1 + self.max_retries

    @property
    def abandoned(self) -> bool:
        return self._handle.abandoned

    @property
    def cancelled(self) -> bool:
        return self._handle.cancelled

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(job_id={self.job_id!r}, type={self.type!r}, "
            f"attempt={self.attempt}, max_retries={self.max_retries})"
        )


class JobContext(BaseJobContext):
    """Context of an async task: `await ctx.progress(50)`, and `ctx.redis`: an asyncio Redis
    client on the worker's Redis that sends the commands of concurrent tasks together, one
    round trip per loop turn (`jobqueue_worker.taskredis`)."""

    __slots__ = ("_redis",)

    def __init__(
        self,
        handle: JobHandle,
        *,
        job_id: str,
        type: str,
        attempt: int,
        max_retries: int,
        redis: AnyRedis | None = None,
    ) -> None:
        super().__init__(handle, job_id=job_id, type=type, attempt=attempt, max_retries=max_retries)
        self._redis = redis

    @property
    def redis(self) -> AnyRedis:
        """The worker's Redis client for tasks (RuntimeError where the worker offers none)."""
        if self._redis is None:
            raise RuntimeError("this worker gives its tasks no Redis client")
        return self._redis

    async def progress(self, percent: float) -> bool:
        """Record progress 0..100 on the job; False if the job's lease is no longer ours."""
        return await self._handle.report_progress(clamp_percent(percent))


class SyncJobContext(BaseJobContext):
    """Context of a sync task (runs in a worker thread): `ctx.progress(50)`, no await."""

    __slots__ = ("_loop",)

    def __init__(
        self,
        handle: JobHandle,
        loop: asyncio.AbstractEventLoop,
        *,
        job_id: str,
        type: str,
        attempt: int,
        max_retries: int,
    ) -> None:
        super().__init__(handle, job_id=job_id, type=type, attempt=attempt, max_retries=max_retries)
        self._loop = loop

    def progress(self, percent: float) -> bool:
        """Record progress 0..100; blocks this thread for the round trip (at most a few seconds).

        Returns False if the lease is no longer ours or Redis did not answer in time."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError("SyncJobContext.progress called on the event loop; use JobContext")
        future = asyncio.run_coroutine_threadsafe(
            self._handle.report_progress(clamp_percent(percent)), self._loop
        )
        try:
            return future.result(timeout=c.PROGRESS_SYNC_TIMEOUT)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            future.cancel()
            return False
