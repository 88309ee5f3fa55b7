"""The autoscaler's ports, KEDA style, and the values that cross them.

A :class:`~jobqueue_operator.scaler.Scaler` sees the world only through these narrow
interfaces, so its loop is tested alone with in-memory fakes: a :class:`MetricsSource` reads
one queue (``sources.py``: our protocol; ``foreign.py``: other libraries' layouts), a
:class:`ScaleTarget` is the worker Deployment and a :class:`Reporter` writes status and Events
(``scaler.py`` holds their Kubernetes adapters).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from jobqueue_operator.autoscaling import AutoscalingSpec, WorkerHeartbeat
from jobqueue_operator.kubetypes import CondSpec

# Timing of a queue read and of a subscription (seconds), shared by every MetricsSource.
REDIS_TIMEOUT = 5.0  # one read of the queue, connect included
REDIS_CONNECT_TIMEOUT = 2.0
PUBSUB_READ_TIMEOUT = 1.0  # get_message wait; also how often the health check may run
PUBSUB_HEALTH_CHECK_INTERVAL = 10  # PING an idle subscription this often (dead peers)

EventType = Literal["Normal", "Warning"]
#: A ``metav1.Condition`` without its times: the status module's, shared with the reconcile.
Condition = CondSpec
#: How a source notices new work: our protocol's events channel, Redis keyspace
#: notifications, or only the poll interval.
Wakeup = Literal["events", "keyspace-notifications", "polling"]


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """What one read of the queue returns: depth, and the workers' heartbeats."""

    ready: int
    in_flight: int
    delayed: int
    dead: int
    workers: tuple[WorkerHeartbeat, ...] = ()


@dataclass(frozen=True, slots=True)
class ScalerStatus:
    """The status fields the scaler owns on its JobQueue."""

    queue: QueueSnapshot | None  # None: unreadable, keep the last numbers written
    desired_workers: int | None
    last_scale_time: str | None  # RFC 3339, UTC
    conditions: tuple[Condition, ...]
    format: str = "jobqueue"  # the queue's format (spec.queue.format)
    wakeup: Wakeup = "events"  # how the source notices new work, as last seen

    def fields(self) -> dict[str, Any]:
        """The status fields as a JSON merge patch body (without conditions)."""
        body: dict[str, Any] = {}
        if self.queue is not None:
            body["queue"] = {
                "ready": self.queue.ready,
                "inFlight": self.queue.in_flight,
                "delayed": self.queue.delayed,
                "dead": self.queue.dead,
                "format": self.format,
                "wakeup": self.wakeup,
            }
        if self.desired_workers is not None:
            body["desiredWorkers"] = self.desired_workers
        if self.last_scale_time is not None:
            body["lastScaleTime"] = self.last_scale_time
        return body

    def written(self) -> tuple[object, ...]:
        """Everything that ends up in the object: equal means nothing to write."""
        return (self.fields(), self.conditions)

    def significant(self) -> tuple[object, ...]:
        """What must be written at once when it changes (not the queue numbers)."""
        return (
            self.desired_workers,
            self.last_scale_time,
            self.wakeup,
            tuple((x.type, x.status, x.reason) for x in self.conditions),
        )


@dataclass(frozen=True, slots=True)
class ScalerConfig:
    """The live configuration of one scaler (re-read before every evaluation)."""

    spec: AutoscalingSpec
    worker_concurrency: int = 1
    foreign: bool = False  # the queue is not in the jobqueue format (polled more often)

    @property
    def target_per_worker(self) -> int:
        return self.spec.target_per_worker(self.worker_concurrency)

    @property
    def poll_interval(self) -> float:
        return float(self.spec.poll_interval(foreign=self.foreign))


# ---------------------------------------------------------------------------------------------
# Ports


class MetricsSource(Protocol):
    """Reads one queue; raises on any failure (an error is never an empty queue)."""

    @property
    def format(self) -> str:
        """The queue's format (``spec.queue.format``)."""
        ...

    @property
    def wakeup(self) -> Wakeup:
        """How new work is noticed right now (status shows it)."""
        ...

    async def snapshot(self) -> QueueSnapshot: ...

    async def watch(self, wake: Callable[[], None]) -> None:
        """Subscribe to the queue's notifications and call ``wake()`` once subscribed
        (something may have been missed) and on every enqueue; return or raise when the
        subscription ends."""
        ...

    async def close(self) -> None: ...


class ScaleTarget(Protocol):
    """The worker Deployment."""

    async def replicas(self, *, cached: bool = False) -> int | None:
        """spec.replicas, or None when the Deployment does not exist. ``cached``: a count a
        watch delivered is good enough (a target without a cache reads the API anyway)."""
        ...

    async def scale(self, replicas: int) -> None: ...

    async def prefer_idle(self, workers: Sequence[WorkerHeartbeat]) -> None:
        """Mark pods so the next scale-down removes idle workers first; raises when a mark
        could not be written (the loop scales down anyway)."""
        ...


class Reporter(Protocol):
    async def report(self, status: ScalerStatus) -> None: ...

    async def event(self, type_: EventType, reason: str, message: str) -> None: ...


class StopFlag(Protocol):
    """kopf's ``stopped`` kwarg of async daemons (``DaemonStopped``) fits."""

    def wait(self) -> Awaitable[object]: ...
