"""The exit latch on kopf's own daemon stoppers: set only by an operator exit, and a daemon
started after it returns without touching anything."""

from __future__ import annotations

from typing import Any

import kopf
from jobqueue_operator import exiting, handlers
from kopf._core.intents.stoppers import DaemonStopper  # kopf's own flag, as daemons get it

R = kopf.DaemonStoppingReason


def stopped(reason: kopf.DaemonStoppingReason | None) -> Any:
    stopper: DaemonStopper = DaemonStopper()
    if reason is not None:
        stopper.set(reason=reason)
    return stopper.async_waiter


async def test_only_an_operator_exit_sets_the_latch() -> None:
    for reason in (None, R.RESOURCE_DELETED, R.FILTERS_MISMATCH, R.OPERATOR_PAUSING):
        latch = exiting.ExitLatch()
        latch.note(stopped(reason))
        assert latch.exiting is False, reason
    latch = exiting.ExitLatch()
    latch.note(stopped(R.OPERATOR_EXITING | R.DAEMON_SIGNALLED))
    assert latch.exiting is True


def test_the_latch_lives_in_the_shared_memo() -> None:
    memo: dict[str, Any] = {}
    assert exiting.latch(memo) is exiting.latch(memo) is memo["exit"]


class NoTouch(dict[str, Any]):
    """A memo that fails the test if a daemon reads anything but the latch from it."""

    def get(self, key: str, default: Any = None) -> Any:
        assert key == "exit", f"the daemon went on to read {key!r}"
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        assert key == "exit", f"the daemon went on to read {key!r}"
        return super().__getitem__(key)


async def test_daemons_started_once_the_operator_exits_return_at_once() -> None:
    spec = {
        "redis": {"url": "redis://127.0.0.1:1/0"},
        "autoscaling": {"enabled": True},
        "schedules": [{"name": "s", "cron": "* * * * *", "type": "t"}],
    }
    memo = NoTouch()
    exiting.latch(memo).note(stopped(R.OPERATOR_EXITING))
    kwargs = {"namespace": "ns", "name": "q", "spec": spec, "meta": {"generation": 1}}
    live = stopped(None)
    await handlers.autoscaler(uid="u", body={}, stopped=live, memo=memo, **kwargs)
    await handlers.scheduler(status={}, stopped=live, memo=memo, **kwargs)
