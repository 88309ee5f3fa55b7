"""A sample TASKS_MODULE: the tasks the worker image runs by default (TASKS_MODULE=examples.tasks).

Build your own image FROM the worker image, add a module like this one and set TASKS_MODULE.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from jobqueue_worker import JobContext, SyncJobContext, task

log = logging.getLogger(__name__)


class DeliberateFailure(RuntimeError):
    """Raised by the `fail` and `flaky` tasks, to exercise retries and the dead-letter queue."""


def _field(payload: Any, name: str, default: Any) -> Any:
    return payload.get(name, default) if isinstance(payload, dict) else default


@task("email")
async def send_email(payload: dict[str, Any]) -> dict[str, Any]:
    """Pretend to send an email: a short sleep stands in for the SMTP round trip."""
    await asyncio.sleep(float(_field(payload, "latency", 0.05)))
    return {"sent": True, "to": _field(payload, "to", None)}


@task("resize")
def resize_image(payload: dict[str, Any], ctx: SyncJobContext) -> dict[str, Any]:
    """A sync (CPU-style) task: runs in the worker's thread pool and reports progress."""
    width, height = int(_field(payload, "width", 640)), int(_field(payload, "height", 480))
    scale = float(_field(payload, "scale", 0.5))
    time.sleep(float(_field(payload, "work", 0.01)))
    ctx.progress(50)
    return {"width": max(1, int(width * scale)), "height": max(1, int(height * scale))}


@task("fail")
def always_fail(payload: Any) -> None:
    """Fails every attempt: the job retries with backoff, then lands in the dead-letter queue."""
    raise DeliberateFailure(str(_field(payload, "message", "this task always fails")))


@task("flaky")
async def flaky(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Fails until attempt `succeed_on` (default 2), then succeeds: a retry that works."""
    succeed_on = int(_field(payload, "succeed_on", 2))
    if ctx.attempt < succeed_on:
        raise DeliberateFailure(f"attempt {ctx.attempt} fails (succeeds on {succeed_on})")
    return {"attempt": ctx.attempt}


@task("slow")
async def slow(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Sleeps `seconds` (default 5) in `steps` steps, reporting progress after each one."""
    seconds = float(_field(payload, "seconds", 5.0))
    steps = max(1, int(_field(payload, "steps", 10)))
    for step in range(1, steps + 1):
        await asyncio.sleep(seconds / steps)
        await ctx.progress(step * 100 // steps)
    return {"slept": seconds}


@task("noop")
async def noop(payload: Any) -> None:
    """Does nothing: the benchmark's task, so a run measures the runtime and the protocol."""
    return None
