"""The autoscaling loop of one JobQueue: read the queue, decide, scale the workers, report.

One :class:`Scaler` runs per JobQueue with autoscaling enabled (a kopf daemon starts it via
``autoscaler.run_scaler``). Its I/O goes through three narrow ports (ports.py), KEDA style, so
the loop is tested alone with in-memory fakes; the real ones are sources.py's (Redis) and
adapters.py's (Kubernetes):

* :class:`MetricsSource` reads the queue (``stats()`` + ``workers()`` concurrently, one round
  trip of latency) and subscribes to the queue's enqueue notifications;
* :class:`ScaleTarget` reads and patches the worker Deployment's scale subresource, and marks
  pods with a ``pod-deletion-cost`` so a scale-down removes idle workers first (best effort: a
  failed mark is logged and the scale-down goes ahead, the ReplicaSet then picks the pods);
* :class:`Reporter` writes the JobQueue's status fields and posts one Event per scaling
  decision.

Timing: an enqueue notification wakes the loop at once (notifications arriving while an
evaluation runs, or within :data:`MIN_EVALUATION_GAP` of the last one, coalesce into one
more evaluation); otherwise it polls every ``pollIntervalSeconds``. Event-driven evaluations
trust the replica count read at the last poll and re-read it only before a write, so a burst of
enqueues costs Redis round trips, not API server requests. Polls take the count from a
:class:`ReplicaCache` (fed by the operator's existing watch of its Deployments) and ask the API
only the first time, when the cache does not know the Deployment, and before every write: an
idle JobQueue costs no API request at all (the watch delivers every change of the count).

Failure policy: a queue that cannot be read holds the current replicas and reports
``RedisReachable=False`` with the error (passwords redacted); the subscription reconnects with
exponential backoff. A failing Kubernetes call is logged, reported, and retried at the next
evaluation. The loop is cancellation-safe: cancelling :meth:`Scaler.run` (or setting the kopf
``stopped`` flag) stops the watcher task and closes the Redis connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from jobqueue import backoff_delay
from jobqueue_operator import constants as c
from jobqueue_operator import metrics
from jobqueue_operator.adapters import describe_error, rfc3339
from jobqueue_operator.autoscaling import (
    Decision,
    Reason,
    Recommendation,
    ScalingInputs,
    WorkerHeartbeat,
    count_busy,
    decide,
    last_active,
    remember,
)
from jobqueue_operator.ports import (
    REDIS_TIMEOUT,
    Condition,
    EventType,
    MetricsSource,
    QueueSnapshot,
    Reporter,
    ScalerConfig,
    ScalerStatus,
    ScaleTarget,
)

log = logging.getLogger(__name__)

# Timing of the loop (seconds).
MIN_EVALUATION_GAP = 0.05  # notifications closer than this coalesce into one evaluation
STATUS_MIN_INTERVAL = 5.0  # queue numbers alone are written at most this often
RECONNECT_BACKOFF_INITIAL = 0.2
RECONNECT_BACKOFF_MAX = 10.0
KUBERNETES_ERROR_RETRY = 2.0  # a failed Kubernetes call is retried this soon
#: A failed queue read is tried again this many times, after about these seconds (jittered),
#: before it is reported: a restarted operator's 1,000 first reads at once time out together.
REDIS_READ_RETRIES = (0.5, 1.5)


TARGET_MISSING = Condition(
    c.CONDITION_SCALING,
    "False",
    Reason.TARGET_NOT_FOUND.value,
    "the worker Deployment does not exist (yet)",
)


# ---------------------------------------------------------------------------------------------
# The loop


@dataclass
class _Memory:
    """What the loop remembers between evaluations (all times on the monotonic clock)."""

    active_at: float  # the queue was last non-empty then (or the loop started)
    history: tuple[Recommendation, ...] = ()
    current: int | None = None  # replicas read at the last poll (or written by us)
    last_scale_time: str | None = None
    last_desired: int | None = None
    last_queue: QueueSnapshot | None = None
    redis_error: str | None = None
    reported: ScalerStatus | None = None
    reported_at: float = float("-inf")
    seeded: bool = False


@dataclass
class Scaler:
    """The autoscaling loop of one JobQueue. ``run()`` until cancelled."""

    metrics: MetricsSource
    target: ScaleTarget
    reporter: Reporter
    config: Callable[[], ScalerConfig]
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    secrets: tuple[str, ...] = ()  # never in a message (the Redis URL: its secret parts too)
    name: str = ""
    #: (namespace, JobQueue, pool, queue) of the Prometheus series this loop sets; None: none
    series: tuple[str, str, str, str] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _memory: _Memory | None = field(default=None, init=False)
    evaluations: int = field(default=0, init=False)
    redis_retries: tuple[float, ...] = REDIS_READ_RETRIES

    def wake(self) -> None:
        """Ask for an evaluation now (an enqueue notification, a spec change)."""
        self._wake.set()

    async def run(self) -> None:
        """Evaluate on every wake-up and every poll interval, until cancelled."""
        watcher = asyncio.create_task(self._watch(), name=f"jobqueue-scaler-watch:{self.name}")
        try:
            last = float("-inf")
            fresh = True
            while True:
                gap = MIN_EVALUATION_GAP - (self.clock() - last)
                if gap > 0:
                    await asyncio.sleep(gap)
                self._wake.clear()
                last = self.clock()
                retry = await self.evaluate(fresh=fresh)
                poll = self.config().poll_interval
                timeout = min(poll, KUBERNETES_ERROR_RETRY) if retry else poll
                # asyncio.timeout, not wait_for: on Python 3.11 a cancel that lands while
                # wait_for's own timeout fires comes out as TimeoutError, and the loop went on
                # (an operator stopping then ended with that error, exit 1).
                try:
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                    fresh = False
                except TimeoutError:
                    fresh = True
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            with contextlib.suppress(Exception):
                await self.metrics.close()
            if self.series is not None:
                metrics.pool_stopped(*self.series[:3])

    async def _watch(self) -> None:
        """Keep the enqueue subscription up; reconnect with exponential backoff, full jitter.

        A subscription that comes up resets the backoff. The first loss is logged as a warning,
        further failed attempts at debug level (the evaluations report an unreachable Redis in
        status), the recovery at info.
        """
        failures = 0

        def on_wake() -> None:
            nonlocal failures
            if failures:
                log.info(
                    "queue subscription re-established after %d failed attempts",
                    failures - 1,
                    extra={"jobqueue": self.name},
                )
                failures = 0
            self.wake()

        while True:
            try:
                await self.metrics.watch(on_wake)
                error = "subscription ended"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = describe_error(exc, *self.secrets)
            failures += 1
            # Full jitter, so the autoscalers of many JobQueues on one Redis that went away
            # do not all come back in the same instant.
            backoff = backoff_delay(
                failures, RECONNECT_BACKOFF_INITIAL, RECONNECT_BACKOFF_MAX, random.random()
            )
            log.log(
                logging.WARNING if failures == 1 else logging.DEBUG,
                "queue subscription lost, reconnecting in %.1fs: %s",
                backoff,
                error,
                extra={"jobqueue": self.name, "retry_in": backoff},
            )
            self.wake()  # evaluate now: the poll notices (and reports) an unreachable Redis
            await asyncio.sleep(backoff)

    async def evaluate(self, *, fresh: bool = True) -> bool:
        """One evaluation: read, decide, write. Returns True when it should be retried soon.

        ``fresh``: re-read the replica count even if nothing will change (polls: from the
        target's cache, which a watch keeps); event-driven evaluations use the last count.
        Every write is decided on a count just read from the API, so neither a stale cache nor
        an old count ever scales from a wrong number.
        """
        now = self.clock()
        cfg = self.config()
        spec = cfg.spec
        mem = self._memory
        if mem is None:
            mem = self._memory = _Memory(active_at=now)
        self.evaluations += 1

        # 1. The queue.
        snapshot = await self._observe_queue(mem, now)

        # 2. The Deployment.
        try:
            if fresh or mem.current is None:  # the watch's count (the API if it has none)
                mem.current = await self.target.replicas(cached=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return await self._kubernetes_failed("read the worker Deployment's scale", exc)
        if mem.current is None:
            await self._report(mem, snapshot, TARGET_MISSING, now)
            return False
        if not mem.seeded:
            # After a (re)start the current count counts as a recommendation made now, so an
            # operator restart never causes an immediate scale-down. No write: spec.replicas
            # passes to the autoscaler at its first scale (an Update takes the field), or at
            # the reconcile's hand-over before an apply that stops sending it.
            mem.history = (Recommendation(at=now, replicas=mem.current),)
            mem.seeded = True

        # 3. Decide.
        decision = self._decide(cfg, mem, snapshot, now)
        if decision.changed:  # a write: decided again on the API's count, not the watch's
            try:
                mem.current = await self.target.replicas()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return await self._kubernetes_failed("read the worker Deployment's scale", exc)
            if mem.current is None:
                return False
            decision = self._decide(cfg, mem, snapshot, now)
        mem.history = remember(mem.history, decision, now, spec.scale_down_stabilization_seconds)
        if self.series is not None:
            metrics.scale_decision(self.series[0], self.series[1], decision.reason.value)

        # 4. Write.
        if decision.changed and (failed := await self._scale(mem, decision, snapshot)) is not None:
            return failed
        if decision.recommendation is not None:
            mem.last_desired = decision.replicas
        self._export(mem)

        active = decision.reason not in (Reason.PAUSED, Reason.REDIS_UNREACHABLE)
        scaling = Condition(
            c.CONDITION_SCALING,
            "True" if active else "False",
            decision.reason.value,
            decision.message,
        )
        await self._report(mem, snapshot, scaling, now)
        return False

    async def _observe_queue(self, mem: _Memory, now: float) -> QueueSnapshot | None:
        """Read the queue; an unreadable queue (after the read's retries) is logged and posted
        once, and remembered in ``mem`` until it is readable again."""
        snapshot: QueueSnapshot | None = None
        try:
            snapshot = await self._read_queue(retry=mem.redis_error is None)
            if mem.redis_error is not None:
                log.info("queue readable again", extra={"jobqueue": self.name})
            mem.redis_error = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = describe_error(exc, *self.secrets)
            if mem.redis_error is None:
                log.warning(
                    "queue unreadable, holding replicas: %s", message, extra={"jobqueue": self.name}
                )
                await self._event(
                    "Warning",
                    Reason.REDIS_UNREACHABLE.value,
                    f"queue unreadable, holding replicas: {message}",
                )
            mem.redis_error = message
        if snapshot is not None:
            mem.active_at = last_active(mem.active_at, snapshot.ready, snapshot.in_flight, now)
            mem.last_queue = snapshot
        return snapshot

    async def _scale(
        self, mem: _Memory, decision: Decision, snapshot: QueueSnapshot | None
    ) -> bool | None:
        """Write the decided count (idle workers first on a scale-down). None when written;
        when the write failed, what :meth:`evaluate` returns (see :meth:`_kubernetes_failed`)."""
        if decision.replicas < decision.current and snapshot is not None:
            await self._prefer_idle(snapshot.workers)
        try:
            await self.target.scale(decision.replicas)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return await self._kubernetes_failed(
                f"scale the workers from {decision.current} to {decision.replicas}", exc
            )
        mem.current = decision.replicas
        mem.last_scale_time = rfc3339(self.wall())
        log.info(
            "%s: %s",
            decision.reason.value,
            decision.message,
            extra={
                "jobqueue": self.name,
                "replicas": decision.replicas,
                "previous": decision.current,
                "reason": decision.reason.value,
            },
        )
        await self._event("Normal", decision.reason.value, decision.message)
        return None

    async def _read_queue(self, *, retry: bool) -> QueueSnapshot:
        """One read of the queue; with ``retry`` (the last read succeeded), a failure is tried
        again after the short, jittered delays of ``redis_retries`` before it counts."""
        delays = self.redis_retries if retry else ()
        for delay in (*delays, None):
            try:
                async with asyncio.timeout(REDIS_TIMEOUT):
                    return await self.metrics.snapshot()
            except Exception:
                if delay is None:
                    raise
            await asyncio.sleep(delay * (0.5 + random.random()))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _export(self, mem: _Memory) -> None:
        """The Prometheus series of this loop: desired and current workers, queue depth."""
        if self.series is None:
            return
        namespace, name, pool, queue = self.series
        metrics.workers(namespace, name, pool, mem.last_desired, mem.current)
        if mem.last_queue is not None:
            depth = mem.last_queue.ready + mem.last_queue.in_flight
            metrics.queue_depth(namespace, name, queue, depth)

    async def _prefer_idle(self, workers: Sequence[WorkerHeartbeat]) -> None:
        """Mark idle pods for removal first; best effort. Without the marks the ReplicaSet
        picks the pods by its own rules (a busy worker may go, and its jobs come back through
        lease expiry), which is better than no scale-down at all."""
        try:
            await self.target.prefer_idle(workers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "could not set the pod deletion costs (idle workers first), scaling down "
                "anyway: %s",
                describe_error(exc, *self.secrets),
                extra={"jobqueue": self.name},
            )

    def _decide(
        self, cfg: ScalerConfig, mem: _Memory, snapshot: QueueSnapshot | None, now: float
    ) -> Decision:
        assert mem.current is not None
        return decide(
            ScalingInputs(
                current_replicas=mem.current,
                spec=cfg.spec,
                target_per_worker=cfg.target_per_worker,
                now=now,
                last_active_at=mem.active_at,
                ready=snapshot.ready if snapshot else 0,
                in_flight=snapshot.in_flight if snapshot else 0,
                busy_workers=count_busy(snapshot.workers) if snapshot else 0,
                recommendations=mem.history,
                redis_ok=snapshot is not None,
                redis_error=mem.redis_error or "",
            )
        )

    async def _kubernetes_failed(self, what: str, exc: Exception) -> bool:
        message = f"could not {what}: {describe_error(exc, *self.secrets)}"
        log.warning(message, extra={"jobqueue": self.name})
        mem = self._memory
        assert mem is not None
        await self._report(
            mem,
            mem.last_queue if mem.redis_error is None else None,
            Condition(c.CONDITION_SCALING, "False", c.REASON_SCALE_FAILED, message),
            self.clock(),
        )
        return True

    async def _report(
        self, mem: _Memory, snapshot: QueueSnapshot | None, scaling: Condition, now: float
    ) -> None:
        redis = (
            Condition(c.CONDITION_REDIS_REACHABLE, "False", c.REASON_REDIS_FAILED, mem.redis_error)
            if mem.redis_error is not None
            else Condition(
                c.CONDITION_REDIS_REACHABLE, "True", c.REASON_REDIS_OK, c.MESSAGE_REDIS_OK
            )
        )
        status = ScalerStatus(
            queue=snapshot,
            desired_workers=mem.last_desired,
            last_scale_time=mem.last_scale_time,
            conditions=(scaling, redis),
            format=self.metrics.format,
            wakeup=self.metrics.wakeup,
        )
        previous = mem.reported
        if previous is not None and status.significant() == previous.significant():
            # (not ``status == previous``: heartbeats in the snapshot change every read)
            same = status.written() == previous.written()
            if same or now - mem.reported_at < STATUS_MIN_INTERVAL:
                return
        try:
            await self.reporter.report(status)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "could not write the status: %s",
                describe_error(exc, *self.secrets),
                extra={"jobqueue": self.name},
            )
            return
        mem.reported, mem.reported_at = status, now

    async def _event(self, type_: EventType, reason: str, message: str) -> None:
        try:
            await self.reporter.event(type_, reason, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "could not post an event: %s",
                describe_error(exc, *self.secrets),
                extra={"jobqueue": self.name},
            )
