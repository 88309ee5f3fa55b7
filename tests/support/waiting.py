"""Polling helpers of the tests: `wait_for` (sync, fails the test) and `eventually` (async)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")
WAIT = 60.0  # generous: controllers react in well under a second on an idle machine
POLL = 0.1
EVENTUALLY_WAIT = 10.0
EVENTUALLY_POLL = 0.05


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = WAIT,
    *,
    interval: float = POLL,
    tolerate: tuple[type[BaseException], ...] = (),
    check: Callable[[], None] | None = None,
    diagnose: Callable[[], str] | None = None,
) -> T:
    """Poll `probe` until it returns something truthy, and return that; fail naming `what`
    after `timeout` seconds.

    `tolerate`: exceptions of the probe to retry on (one may race with what it observes); the
    last one is named on timeout. `check`: called before every probe, it may fail at once.
    `diagnose`: text appended to the timeout message (a log tail, say)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        if check is not None:
            check()
        try:
            value = probe()
        except tolerate as exc:
            last = exc
        else:
            if value:
                return value
        if time.monotonic() > deadline:
            message = f"timed out after {timeout:.0f} s waiting for {what}"
            if last is not None:
                message += f" (last error: {last!r})"
            if diagnose is not None:
                message += f"\n{diagnose()}"
            pytest.fail(message)
        time.sleep(interval)


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    timeout: float = EVENTUALLY_WAIT,
    what: str = "condition",
    *,
    interval: float = EVENTUALLY_POLL,
) -> T:
    """Await `check` until it returns something truthy, and return that; AssertionError
    naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await check()):
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s")
        await asyncio.sleep(interval)
    return value
