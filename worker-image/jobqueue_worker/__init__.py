"""The worker runtime: runs user task functions against the jobqueue protocol.

Register tasks in your own module and name it in TASKS_MODULE::

    from jobqueue_worker import JobContext, task

    @task("email")
    async def send_email(payload: dict, ctx: JobContext) -> dict:
        await ctx.progress(50)
        return {"sent": True}

A task takes the job's payload and, optionally, a context (``JobContext`` for async tasks,
``SyncJobContext`` for sync ones, which run in a thread pool). Its return value, which must be
JSON-serialisable, is the job's result; an exception fails the attempt (retries, backoff and
the dead-letter queue are the protocol's).

``python -m jobqueue_worker`` exits 0 after a clean stop (SIGTERM/SIGINT: drain, then hand
back what is still running), 78 on bad configuration or an unusable TASKS_MODULE, 1 on a crash.
"""

from __future__ import annotations

from jobqueue_worker.context import BaseJobContext, JobContext, SyncJobContext
from jobqueue_worker.registry import TaskRegistry, TaskSpec, default_registry, task

__all__ = [
    "BaseJobContext",
    "JobContext",
    "SyncJobContext",
    "TaskRegistry",
    "TaskSpec",
    "default_registry",
    "task",
]
