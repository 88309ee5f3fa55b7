"""What kopf 1.45 lacks at operator exit: a latch that keeps daemons from running once the
operator is stopping (see :class:`ExitLatch`)."""

from __future__ import annotations

from typing import Any

import kopf


class ExitLatch:
    """Set once kopf stops one of our daemons because the operator is exiting.

    kopf 1.45 stops every daemon when the operator exits, then lets the handlers in flight
    finish; a JobQueue's handler that finishes after that spawns its daemons again, and nothing
    stops those: they held the exit for kopf's 5 s grace and were then cancelled (seen in the
    helm-upgrade test: an operator SIGTERMed during a reconcile took 10 s to stop). A daemon
    started once the latch is set returns at once.
    """

    def __init__(self) -> None:
        self.exiting = False

    def note(self, stopped: kopf.DaemonStopped) -> None:
        reason = stopped.reason
        if reason is not None and reason & kopf.DaemonStoppingReason.OPERATOR_EXITING:
            self.exiting = True


def latch(memo: Any) -> ExitLatch:
    """The operator's latch in kopf's memo (made here for a memo without startup)."""
    found = memo.get("exit")
    if not isinstance(found, ExitLatch):  # a memo without startup (unit tests)
        found = memo["exit"] = ExitLatch()
    return found
