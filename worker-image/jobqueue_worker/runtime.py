"""The worker's engine: batched claims and acks, prefetch, bounded concurrency, leases, drain.

One asyncio loop does all queue I/O. The claim loop keeps the slots busy and a small buffer of
prefetched jobs behind them: it claims (one `claim` round trip) when a slot is free and the
buffer is empty, or when the buffer has fallen to a quarter of its target, so at concurrency 8
claims still carry many jobs each. A slot that frees starts the next buffered job at once, without a
round trip. The buffer's target adapts to the job rate: about `prefetch_horizon` seconds of
work, at most `prefetch` jobs, so slow jobs are never hoarded by one worker (at 8 jobs/s it is
0). Prefetched jobs are leased like running ones (renewed; a kill -9 returns them when their
lease expires) and handed back at once on SIGTERM. Async tasks run as asyncio tasks, sync tasks
in a thread pool sized to the concurrency. When the queue is empty the loop sleeps until an
enqueue notification (`wait_for_jobs`) or the poll interval. Finished jobs are acknowledged by
a separate reporter in batches: everything that finished while the previous `complete` round
trip was in flight (or within ACK_LINGER of the first) goes in the next one, so acks cost one
round trip per batch, not per job.
One `renew` round trip every lease/3 covers every job we hold.

A job's record moves BUFFERED (prefetched) -> RUNNING -> REPORTING (finished; ack or fail
queued) -> forgotten, or RUNNING -> DETACHED (lease lost or handed back at shutdown: whatever
the task returns later is ignored); a buffered job handed back is forgotten. A timed-out job
is failed at once; an async task is cancelled, a sync task cannot be, so its thread
keeps its slot until it returns (the `abandoned_threads` gauge counts those).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Protocol

from redis.exceptions import RedisError

from jobqueue import Claimed, FailOutcome, QueueError, reconnect_delay
from jobqueue.codec import Encoded, dumps
from jobqueue_worker import constants as c
from jobqueue_worker.context import JobContext, SyncJobContext
from jobqueue_worker.logs import JobLines
from jobqueue_worker.metrics import WorkerMetrics
from jobqueue_worker.registry import TaskRegistry, TaskSpec
from jobqueue_worker.settings import WorkerSettings

log = logging.getLogger("jobqueue_worker")

# Errors of a queue round trip that the worker rides out (retry, log); anything else is a bug.
QUEUE_ERRORS: Final = (RedisError, OSError, QueueError, asyncio.TimeoutError)

RUNNING: Final = 0
REPORTING: Final = 1
DETACHED: Final = 2
BUFFERED: Final = 3

_FAIL_PARALLELISM: Final = 16  # most `fail` round trips in flight at once
_COMPLETE_BATCH_MAX: Final = 2000  # most jobs in one `complete` round trip


class WorkerQueue(Protocol):
    """The part of `jobqueue.Queue` a worker uses (a protocol, so unit tests can fake it)."""

    async def claim(self, worker_id: str, count: int = 1) -> list[Claimed]: ...

    async def renew(self, leases: Sequence[tuple[str, int]]) -> list[bool]: ...

    async def complete(self, items: Sequence[tuple[str, int, Any]]) -> list[bool]: ...

    async def fail(
        self, job_id: str, token: int, error: str, *, retry: bool = True
    ) -> FailOutcome: ...

    async def release(self, leases: Sequence[tuple[str, int]]) -> list[bool]: ...

    async def set_progress(self, job_id: str, token: int, progress: int) -> bool: ...

    async def heartbeat(
        self, worker_id: str, *, busy: bool, in_flight: int, ttl: float
    ) -> None: ...

    async def wait_for_jobs(self, timeout: float) -> bool: ...  # noqa: ASYNC109 - the contract

    def cancelled_jobs(self) -> AsyncIterator[str]: ...


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """The runtime's knobs, decoupled from the environment so tests can build one directly."""

    worker_id: str
    concurrency: int = c.DEFAULT_CONCURRENCY
    job_timeout: float = c.DEFAULT_JOB_TIMEOUT  # 0 = none
    drain_timeout: float = c.DEFAULT_DRAIN_TIMEOUT
    lease_seconds: float = c.DEFAULT_LEASE_SECONDS
    heartbeat_interval: float = c.DEFAULT_HEARTBEAT_INTERVAL
    poll_interval: float = c.DEFAULT_POLL_INTERVAL
    job_log_level: int = logging.INFO
    prefetch: int = 0  # most jobs claimed ahead of a free slot (the settings' default: 8 x c)
    prefetch_horizon: float = c.PREFETCH_HORIZON  # seconds of work the buffer aims to hold

    @classmethod
    def from_settings(cls, s: WorkerSettings) -> WorkerConfig:
        return cls(
            worker_id=s.worker_id,
            concurrency=s.worker_concurrency,
            job_timeout=s.job_timeout_seconds,
            drain_timeout=s.drain_timeout_seconds,
            lease_seconds=s.lease_seconds,
            heartbeat_interval=s.heartbeat_interval_seconds,
            poll_interval=s.poll_interval_seconds,
            job_log_level=logging.getLevelNamesMapping()[s.job_log_level],
            prefetch=s.prefetch,
        )


def format_error(exc: BaseException, limit: int = c.MAX_ERROR_CHARS) -> str:
    """`Type: message` then the traceback's tail, at most `limit` characters."""
    head = f"{type(exc).__name__}: {exc}"
    tb = "".join(traceback.format_exception(exc)).rstrip()
    text = head if not tb else f"{head}\n{tb}"
    return text if len(text) <= limit else text[: limit // 2] + "\n...\n" + text[-limit // 2 :]


class _Job:
    """One claimed job, from claim to report. Implements the context's JobHandle."""

    __slots__ = (
        "cancelled",
        "claimed",
        "deadline",
        "duration",
        "handle",
        "spec",
        "started",
        "state",
        "thread_abandoned",
        "worker",
    )

    def __init__(
        self, worker: Worker, claimed: Claimed, spec: TaskSpec | None, started: float
    ) -> None:
        self.worker = worker
        self.claimed = claimed
        self.spec = spec
        self.started = started
        self.deadline = math.inf
        self.duration = 0.0
        self.state = RUNNING
        self.handle: asyncio.Future[Any] | None = None
        self.thread_abandoned = False
        self.cancelled = False

    @property
    def abandoned(self) -> bool:
        return self.state != RUNNING

    async def report_progress(self, percent: int) -> bool:
        return await self.worker._set_progress(self, percent)


@dataclass(slots=True)
class _Failure:
    job: _Job
    error: str
    retry: bool
    outcome: str


class Worker:
    """Runs jobs from one queue until `request_stop`; `run()` returns after the drain."""

    def __init__(
        self,
        queue: WorkerQueue,
        registry: TaskRegistry,
        config: WorkerConfig,
        metrics: WorkerMetrics | None = None,
        task_redis: Any = None,
    ) -> None:
        self._queue = queue
        self._task_redis = task_redis  # `ctx.redis` of async tasks (None: not offered)
        self._registry = registry
        self.config = config
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self._leases: dict[str, _Job] = {}  # every job whose lease we hold, by id
        self._buffer: deque[_Job] = deque()  # prefetched, leased, not started (BUFFERED)
        self._low_water = 0  # the claim loop wants a wake-up once the buffer is this low
        self._rate = 0.0  # jobs ended per second, measured over RATE_WINDOW
        self._rate_n = 0
        self._rate_t0 = time.monotonic()
        self._running = 0  # task functions executing now (incl. abandoned sync threads)
        self._abandoned_threads = 0
        self._acks: list[tuple[str, int, Any]] = []
        self._ack_jobs: list[_Job] = []
        self._fails: list[_Failure] = []
        self._report_wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._stop = asyncio.Event()
        self._stop_now = asyncio.Event()
        self._stopping = False
        self._fatal: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=config.concurrency, thread_name_prefix="jobqueue-task"
        )
        self._log_jobs = log.isEnabledFor(config.job_log_level)
        self._log_starts = log.isEnabledFor(logging.DEBUG)
        self._lines = JobLines(log, config.job_log_level)
        self.last_beat = time.monotonic()
        self.metrics.bind_state(
            in_flight=lambda: float(len(self._leases)),
            running=lambda: float(self._running),
            loop_silence=self.loop_silence,
            abandoned_threads=lambda: float(self._abandoned_threads),
            concurrency=config.concurrency,
        )

    # ---- public surface -------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def in_flight(self) -> int:
        return len(self._leases)

    @property
    def running(self) -> int:
        return self._running

    @property
    def abandoned_threads(self) -> int:
        return self._abandoned_threads

    def loop_silence(self) -> float:
        """Seconds since the claim (or drain) loop last went round: the liveness signal."""
        return time.monotonic() - self.last_beat

    def request_stop(self, reason: str = "stop requested") -> None:
        """First call: stop claiming and drain. Second call: hand back in-flight jobs now."""
        if not self._stopping:
            self._stopping = True
            self._stop.set()
            self._slot_freed.set()  # wake a claim loop waiting for a slot: it stops at once
            log.info(
                "stopping: no more claims, draining in-flight jobs",
                extra={
                    "reason": reason,
                    "in_flight": len(self._leases),
                    "drain_timeout_s": self.config.drain_timeout,
                },
            )
        elif not self._stop_now.is_set():
            self._stop_now.set()
            log.info("stopping now: handing back in-flight jobs", extra={"reason": reason})

    async def run(self) -> None:
        """Claim and run jobs until stopped; then drain, hand back the rest, report everything."""
        self._loop = asyncio.get_running_loop()
        background = [
            self._supervised(self._report_loop(), "reporter"),
            self._supervised(self._renew_loop(), "lease renewal"),
            self._supervised(self._heartbeat_loop(), "heartbeat"),
            self._supervised(self._control_loop(), "cancel listener"),
        ]
        if self.config.job_timeout > 0:
            background.append(self._supervised(self._timeout_loop(), "timeout sweep"))
        claim_loop = self._supervised(self._claim_loop(), "claim loop")
        try:
            await self._stop.wait()
            # The claim loop notices the stop at its next turn; a claim stuck on a dead
            # connection is abandoned (its jobs come back when their lease expires).
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a crash is logged
                await asyncio.wait_for(asyncio.shield(claim_loop), c.CANCEL_GRACE * 2)
            claim_loop.cancel()
            await self._release_buffered()
            await self._drain()
            await self._hand_back()
            await self._flush_remaining()
            await self._goodbye()
        finally:
            for task in [*background, claim_loop]:
                task.cancel()
            await asyncio.gather(*background, claim_loop, return_exceptions=True)
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._fatal is not None:
            raise self._fatal

    # ---- claim loop -----------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        queue, cfg = self._queue, self.config
        cap = c.CLAIM_BATCH_MAX
        failures = 0
        buffer = self._buffer
        while not self._stopping:
            self.last_beat = now = time.monotonic()
            self._start_buffered()
            target = self._prefetch_target(now)
            room = cfg.concurrency + target - self._running - len(buffer)
            # Claim when a slot is free and nothing is buffered, or when the buffer is down to
            # a quarter of its target: claims carry most of the buffer each, not one job.
            self._low_water = target // 4
            if room <= 0 or (buffer and len(buffer) > self._low_water):
                self._slot_freed.clear()
                await self._wait_slot(cfg.poll_interval)
                continue
            try:
                claimed = await queue.claim(cfg.worker_id, min(room, cap))
            except QUEUE_ERRORS as exc:
                self.metrics.redis_errors.labels("claim").inc()
                failures += 1
                # Jittered, so that the workers of a Redis that restarts do not all come back
                # in the same instant.
                delay = reconnect_delay(
                    failures, c.REDIS_RETRY_MIN, c.REDIS_RETRY_MAX, random.random()
                )
                log.warning(
                    "claim failed; retrying", extra={"error": repr(exc), "in_s": round(delay, 3)}
                )
                await self._wait(self._stop, delay)
                continue
            failures = 0
            self.metrics.claim_calls.inc()
            if claimed:
                self.metrics.claimed.inc(len(claimed))
                self._take(claimed)
            elif not self._stopping:
                await self._idle_wait()

    def _prefetch_target(self, now: float) -> int:
        """Jobs to hold beyond the slots: about `prefetch_horizon` s of work at the rate jobs
        have been ending, at most `prefetch` (none at start: the rate is not known yet)."""
        prefetch = self.config.prefetch
        if prefetch <= 0:
            return 0
        elapsed = now - self._rate_t0
        if elapsed >= c.RATE_WINDOW:
            self._rate = self._rate_n / elapsed
            self._rate_n = 0
            self._rate_t0 = now
        return min(prefetch, int(self._rate * self.config.prefetch_horizon))

    async def _idle_wait(self) -> None:
        """Sleep until an enqueue notification, the poll interval (delayed jobs and expired
        leases are promoted by `claim` itself), or a stop request."""
        waiter = asyncio.ensure_future(self._queue.wait_for_jobs(self.config.poll_interval))
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait((waiter, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not waiter.done():
                waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            if waiter.done() and not waiter.cancelled() and waiter.exception() is not None:
                self.metrics.redis_errors.labels("wait").inc()
                log.warning("waiting for jobs failed", extra={"error": repr(waiter.exception())})
                await self._wait(self._stop, c.REDIS_RETRY_MIN)

    async def _wait_slot(self, seconds: float) -> None:
        """Wait until a slot frees, at most `seconds`. A timer that sets the event is cheaper
        than wait_for (no extra task); a spurious wake-up only costs one more loop turn."""
        assert self._loop is not None
        timer = self._loop.call_later(seconds, self._slot_freed.set)
        try:
            await self._slot_freed.wait()
        finally:
            timer.cancel()

    @staticmethod
    async def _wait(event: asyncio.Event, seconds: float) -> None:
        """Wait for `event`, at most `seconds`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    # ---- starting and finishing jobs -------------------------------------------------------

    def _take(self, claimed: list[Claimed]) -> None:
        """Hold freshly claimed jobs: buffered (started by `_start_buffered` as slots free)."""
        registry, leases, buffer = self._registry, self._leases, self._buffer
        now = time.monotonic()
        for cl in claimed:
            spec = registry.get(cl.type)
            job = _Job(self, cl, spec, now)
            leases[cl.id] = job
            if spec is None:
                self._unknown_task(job)
                continue
            job.state = BUFFERED
            buffer.append(job)
        self._start_buffered()

    def _start_buffered(self) -> None:
        """Start buffered jobs while slots are free (not once stopping: they go back)."""
        buffer = self._buffer
        free = self.config.concurrency - self._running
        while free > 0 and buffer and not self._stopping:
            self._start(buffer.popleft())
            free -= 1

    def _start(self, job: _Job) -> None:
        loop = self._loop
        assert loop is not None
        spec = job.spec
        assert spec is not None
        cl = job.claimed
        job.state = RUNNING
        job.started = now = time.monotonic()
        timeout = self.config.job_timeout
        if timeout > 0:
            job.deadline = now + timeout
        self._running += 1
        if self._log_starts:
            log.debug(
                "job started",
                extra={"job_id": cl.id, "type": cl.type, "attempt": cl.attempt},
            )
        if spec.is_async:
            job.handle = loop.create_task(self._run_async(job, spec, cl))
        else:
            fut = loop.run_in_executor(self._pool, self._call_sync, job, spec, cl)
            fut.add_done_callback(functools.partial(self._sync_done, job))
            job.handle = fut

    async def _run_async(self, job: _Job, spec: TaskSpec, cl: Claimed) -> None:
        try:
            if spec.wants_context:
                ctx = JobContext(
                    job,
                    job_id=cl.id,
                    type=cl.type,
                    attempt=cl.attempt,
                    max_retries=cl.max_retries,
                    redis=self._task_redis,
                )
                result = await spec.func(cl.payload, ctx)
            else:
                result = await spec.func(cl.payload)
        except asyncio.CancelledError:
            self._ended(job)
            if job.state == RUNNING:  # cancelled from inside the task, not by us
                self._failed(job, "the task was cancelled", c.OUTCOME_FAILED)
        except Exception as exc:
            self._ended(job)
            if job.state == RUNNING:
                self._failed(job, format_error(exc), c.OUTCOME_FAILED)
        else:
            self._ended(job)
            self._succeeded(job, result)

    def _call_sync(self, job: _Job, spec: TaskSpec, cl: Claimed) -> Any:
        """Runs in a pool thread."""
        if spec.wants_context:
            assert self._loop is not None
            ctx = SyncJobContext(
                job,
                self._loop,
                job_id=cl.id,
                type=cl.type,
                attempt=cl.attempt,
                max_retries=cl.max_retries,
            )
            return spec.func(cl.payload, ctx)
        return spec.func(cl.payload)

    def _sync_done(self, job: _Job, fut: asyncio.Future[Any]) -> None:
        self._ended(job)
        if job.thread_abandoned:
            self._abandoned_threads -= 1
        if job.state != RUNNING or fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self._failed(job, format_error(exc), c.OUTCOME_FAILED)
        else:
            self._succeeded(job, fut.result())

    def _ended(self, job: _Job) -> None:
        """The task function returned (or raised): its slot is free again, and the next
        buffered job takes it at once; the claim loop wakes when the buffer runs low."""
        self._running -= 1
        self._rate_n += 1
        buffer = self._buffer
        if buffer and not self._stopping:
            self._start(buffer.popleft())
        if len(buffer) <= self._low_water:
            self._slot_freed.set()
        if job.state == RUNNING:
            job.duration = time.monotonic() - job.started
            self.metrics.duration_for(job.claimed.type).observe(job.duration)

    def _succeeded(self, job: _Job, result: Any) -> None:
        if job.state != RUNNING:
            return  # timed out, lease lost or handed back: the result no longer counts
        if result is not None:
            try:  # encoded once, here: the ack batch then cannot fail on one job's value
                result = Encoded(dumps(result))
            except ValueError as exc:  # no retry: the same code returns the same value
                self._failed(job, f"the task's returned {exc}", c.OUTCOME_FAILED, retry=False)
                return
        job.state = REPORTING
        cl = job.claimed
        self._acks.append((cl.id, cl.token, result))
        self._ack_jobs.append(job)
        self._report_wake.set()

    def _failed(self, job: _Job, error: str, outcome: str, *, retry: bool = True) -> None:
        job.state = REPORTING
        self._fails.append(_Failure(job, error, retry, outcome))
        self._report_wake.set()

    def _unknown_task(self, job: _Job) -> None:
        cl = job.claimed
        known = ", ".join(self._registry.names()) or "none"
        self._failed(
            job,
            f"unknown task type {cl.type!r}: no task is registered under that name "
            f"(this worker runs: {known})",
            c.OUTCOME_UNKNOWN_TASK,
            retry=False,
        )

    def _forget(self, job: _Job) -> None:
        if self._leases.get(job.claimed.id) is job:
            del self._leases[job.claimed.id]

    def _detach(self, job: _Job) -> None:
        """Stop caring about a running job: cancel it if async; a sync thread runs on."""
        job.state = DETACHED
        self._forget(job)
        handle = job.handle
        if handle is None:
            return
        if job.spec is not None and job.spec.is_async:
            handle.cancel()
        elif not handle.done() and not job.thread_abandoned:
            job.thread_abandoned = True
            self._abandoned_threads += 1

    # ---- reporting (batched acks, failures) ------------------------------------------------

    async def _report_loop(self) -> None:
        while True:
            await self._report_wake.wait()
            if len(self._acks) < c.ACK_BATCH and not self._fails and not self._stopping:
                # Let a few more finish: a millisecond of ack latency buys batches that cost
                # a fraction of a round trip per job at any concurrency.
                await asyncio.sleep(c.ACK_LINGER)
            self._report_wake.clear()
            if not await self._flush():
                await self._wait(self._stop_now, c.REDIS_RETRY_MIN)
                self._report_wake.set()
            elif self._acks or self._fails:
                self._report_wake.set()

    async def _flush(self) -> bool:
        """One batch: a single `complete` for every finished job plus a few `fail` calls.

        Returns False if a round trip failed (its items are put back for the next try)."""
        acks = self._acks[:_COMPLETE_BATCH_MAX]
        ack_jobs = self._ack_jobs[:_COMPLETE_BATCH_MAX]
        del self._acks[: len(acks)], self._ack_jobs[: len(ack_jobs)]
        fails = self._fails[:_FAIL_PARALLELISM]
        del self._fails[: len(fails)]
        calls: list[Coroutine[Any, Any, Any]] = []
        if acks:
            calls.append(self._queue.complete(acks))
        queue = self._queue
        calls.extend(
            queue.fail(f.job.claimed.id, f.job.claimed.token, f.error, retry=f.retry) for f in fails
        )
        if not calls:
            return True
        results: list[Any]
        if len(calls) == 1:  # the common case: acks only, no gather machinery
            try:
                results = [await calls[0]]
            except Exception as exc:
                results = [exc]
        else:
            results = await asyncio.gather(*calls, return_exceptions=True)
        ok = True
        if acks:
            done = results[0]
            results = results[1:]
            if isinstance(done, BaseException):
                ok = False
                self._report_error("complete", done)
                self._acks[:0], self._ack_jobs[:0] = acks, ack_jobs
            else:
                self._acked(ack_jobs, done)
        for failure, outcome in zip(fails, results, strict=True):
            if isinstance(outcome, BaseException):
                ok = False
                self._report_error("fail", outcome)
                self._fails.insert(0, failure)
            else:
                self._fail_reported(failure, outcome)
        return ok

    def _report_error(self, op: str, exc: BaseException) -> None:
        if not isinstance(exc, QUEUE_ERRORS):
            raise exc
        self.metrics.redis_errors.labels(op).inc()
        log.warning(f"{op} failed; will retry", extra={"error": repr(exc)})

    def _acked(self, jobs: list[_Job], accepted: list[bool]) -> None:
        counts: dict[tuple[str, str], int] = {}
        lines = self._lines.batch() if self._log_jobs else None
        leases = self._leases
        for job, ok in zip(jobs, accepted, strict=True):
            cl = job.claimed
            if leases.get(cl.id) is job:
                del leases[cl.id]
            outcome = c.OUTCOME_COMPLETED if ok else c.OUTCOME_LEASE_LOST
            key = (cl.type, outcome)
            counts[key] = counts.get(key, 0) + 1
            if not ok:
                self._log_finished(job, logging.WARNING, outcome, note="completion refused")
            elif lines is not None:
                lines.add(cl.id, cl.type, cl.attempt, job.duration, outcome)
        if lines is not None:
            lines.flush()
        for (job_type, outcome), n in counts.items():
            self.metrics.job_outcome(job_type, outcome, n)

    def _fail_reported(self, failure: _Failure, result: FailOutcome) -> None:
        job = failure.job
        self._forget(job)
        outcome = c.OUTCOME_LEASE_LOST if result == FailOutcome.STALE else failure.outcome
        label = job.claimed.type if job.spec is not None else c.UNKNOWN_TYPE_LABEL
        self.metrics.job_outcome(label, outcome)
        self._log_finished(
            job,
            logging.WARNING,
            outcome,
            error=failure.error.split("\n", 1)[0][:500],
            next=str(result.value),
        )

    def _log_finished(self, job: _Job, level: int, outcome: str, **extra: Any) -> None:
        cl = job.claimed
        fields = {
            "job_id": cl.id,
            "type": cl.type,
            "attempt": cl.attempt,
            "duration_ms": round(job.duration * 1000, 3),
            "outcome": outcome,
            **extra,
        }
        log.log(level, "job finished", extra=fields)

    # ---- leases, timeouts, heartbeats, progress --------------------------------------------

    async def _renew_loop(self) -> None:
        interval = self.config.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            jobs = list(self._leases.values())
            if not jobs:
                continue
            try:
                renewed = await self._queue.renew([(j.claimed.id, j.claimed.token) for j in jobs])
            except QUEUE_ERRORS as exc:
                self.metrics.redis_errors.labels("renew").inc()
                log.warning("lease renewal failed", extra={"error": repr(exc), "jobs": len(jobs)})
                continue
            for job, ok in zip(jobs, renewed, strict=True):
                if not ok and job.state == BUFFERED:  # never started: just let it go
                    job.state = DETACHED
                    self._forget(job)
                    with contextlib.suppress(ValueError):
                        self._buffer.remove(job)
                    self.metrics.job_outcome(job.claimed.type, c.OUTCOME_LEASE_LOST)
                elif not ok and job.state == RUNNING and self._leases.get(job.claimed.id) is job:
                    self._detach(job)
                    self.metrics.job_outcome(job.claimed.type, c.OUTCOME_LEASE_LOST)
                    job.duration = time.monotonic() - job.started
                    self._log_finished(
                        job, logging.WARNING, c.OUTCOME_LEASE_LOST, note="abandoned the job"
                    )

    async def _timeout_loop(self) -> None:
        timeout = self.config.job_timeout
        interval = min(max(timeout / 10, c.TIMEOUT_CHECK_MIN), c.TIMEOUT_CHECK_MAX)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for job in [j for j in self._leases.values() if j.deadline <= now]:
                if job.state != RUNNING:
                    continue
                job.duration = now - job.started
                self.metrics.duration_for(job.claimed.type).observe(job.duration)
                self._failed(
                    job,
                    f"timed out: still running after {timeout:g} s (JOB_TIMEOUT_SECONDS)",
                    c.OUTCOME_TIMED_OUT,
                )
                handle = job.handle
                if handle is not None and job.spec is not None and job.spec.is_async:
                    handle.cancel()
                elif handle is not None and not handle.done():
                    job.thread_abandoned = True
                    self._abandoned_threads += 1
                    log.warning(
                        "sync task past its timeout keeps its thread until it returns",
                        extra={"job_id": job.claimed.id, "type": job.claimed.type},
                    )

    async def _heartbeat_loop(self) -> None:
        cfg = self.config
        while True:
            try:
                await self._queue.heartbeat(
                    cfg.worker_id,
                    busy=bool(self._leases) or self._running > 0,
                    in_flight=len(self._leases),
                    ttl=cfg.heartbeat_interval * c.HEARTBEAT_TTL_FACTOR,
                )
            except QUEUE_ERRORS as exc:
                self.metrics.redis_errors.labels("heartbeat").inc()
                log.warning("heartbeat failed", extra={"error": repr(exc)})
            await asyncio.sleep(cfg.heartbeat_interval)

    async def _control_loop(self) -> None:
        """Hear which running jobs users cancel (the queue's control channel), stop them."""
        me = asyncio.current_task()
        while True:
            try:
                async for job_id in self._queue.cancelled_jobs():
                    self._cancel(job_id)
            except QUEUE_ERRORS as exc:
                if me is not None and me.cancelling():  # our stop, seen as a Redis error
                    raise asyncio.CancelledError from exc
                self.metrics.redis_errors.labels("control").inc()
                log.warning("cancel listener lost its connection", extra={"error": repr(exc)})
            await asyncio.sleep(c.REDIS_RETRY_MIN)

    def _cancel(self, job_id: str) -> None:
        """A user cancelled a job we hold; Redis has settled it already (lease gone, status
        cancelled), so nothing is reported: the task is stopped, its ctx says `cancelled`."""
        job = self._leases.get(job_id)
        if job is None or job.state not in (RUNNING, BUFFERED):
            return
        job.cancelled = True
        if job.state == BUFFERED:
            job.state = DETACHED
            self._forget(job)
            with contextlib.suppress(ValueError):
                self._buffer.remove(job)
        else:
            job.duration = time.monotonic() - job.started
            self._detach(job)
        self.metrics.job_outcome(job.claimed.type, c.OUTCOME_CANCELLED)
        self._log_finished(job, logging.INFO, c.OUTCOME_CANCELLED)

    async def _set_progress(self, job: _Job, percent: int) -> bool:
        if job.state != RUNNING:
            return False
        try:
            return await self._queue.set_progress(job.claimed.id, job.claimed.token, percent)
        except QUEUE_ERRORS as exc:
            self.metrics.redis_errors.labels("progress").inc()
            log.warning(
                "progress update failed", extra={"job_id": job.claimed.id, "error": repr(exc)}
            )
            return False

    # ---- shutdown --------------------------------------------------------------------------

    async def _release_buffered(self) -> None:
        """Hand prefetched jobs back at once (front of their queue; the attempt not counted),
        so other workers take them while this one drains."""
        jobs = [j for j in self._buffer if j.state == BUFFERED]
        self._buffer.clear()
        if not jobs:
            return
        for job in jobs:
            job.state = DETACHED
            self._forget(job)
        try:
            released = await self._queue.release([(j.claimed.id, j.claimed.token) for j in jobs])
        except QUEUE_ERRORS as exc:
            self.metrics.redis_errors.labels("release").inc()
            log.error(
                "handing back prefetched jobs failed; they return when their lease expires",
                extra={"error": repr(exc), "jobs": len(jobs)},
            )
            return
        n = sum(released)
        for job, ok in zip(jobs, released, strict=True):
            outcome = c.OUTCOME_RELEASED if ok else c.OUTCOME_LEASE_LOST
            self.metrics.job_outcome(job.claimed.type, outcome)
        log.info(
            "handed back prefetched jobs",
            extra={"jobs": n, "lost": len(jobs) - n},
        )

    def _has_running_jobs(self) -> bool:
        return any(j.state == RUNNING for j in self._leases.values())

    async def _drain(self) -> None:
        deadline = time.monotonic() + self.config.drain_timeout
        while self._has_running_jobs() and not self._stop_now.is_set():
            self.last_beat = time.monotonic()
            left = deadline - self.last_beat
            if left <= 0:
                break
            self._slot_freed.clear()
            waiters = (
                asyncio.ensure_future(self._slot_freed.wait()),
                asyncio.ensure_future(self._stop_now.wait()),
            )
            await asyncio.wait(waiters, timeout=min(left, 0.5), return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def _hand_back(self) -> None:
        """Release every job still running: it returns to the front of its queue at once."""
        jobs = [j for j in self._leases.values() if j.state == RUNNING]
        if not jobs:
            return
        for job in jobs:
            self._detach(job)
            job.duration = time.monotonic() - job.started
        try:
            released = await self._queue.release([(j.claimed.id, j.claimed.token) for j in jobs])
        except QUEUE_ERRORS as exc:
            self.metrics.redis_errors.labels("release").inc()
            log.error(
                "handing back jobs failed; they return when their lease expires",
                extra={"error": repr(exc), "jobs": len(jobs)},
            )
            released = [False] * len(jobs)
        for job, ok in zip(jobs, released, strict=True):
            outcome = c.OUTCOME_RELEASED if ok else c.OUTCOME_LEASE_LOST
            self.metrics.job_outcome(job.claimed.type, outcome)
            self._log_finished(job, logging.INFO, outcome, note="handed back at shutdown")
        tasks = [j.handle for j in jobs if j.handle is not None and j.spec and j.spec.is_async]
        if tasks:
            await asyncio.wait(tasks, timeout=c.CANCEL_GRACE)

    async def _flush_remaining(self) -> None:
        """Report what finished (acks, failures) before we go; bounded, Redis may be down."""
        deadline = time.monotonic() + c.SHUTDOWN_FLUSH_TIMEOUT
        while self._leases and time.monotonic() < deadline:
            self.last_beat = time.monotonic()
            self._report_wake.set()
            await asyncio.sleep(0.01)
        if self._leases:
            log.error(
                "could not report every finished job; they return when their lease expires",
                extra={"jobs": len(self._leases)},
            )

    async def _goodbye(self) -> None:
        with contextlib.suppress(*QUEUE_ERRORS):
            await self._queue.heartbeat(
                self.config.worker_id, busy=False, in_flight=0, ttl=c.FINAL_HEARTBEAT_TTL
            )
        log.info(
            "worker stopped",
            extra={
                "abandoned_threads": self._abandoned_threads,
                "worker_id": self.config.worker_id,
            },
        )

    def _supervised(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run a loop of the worker; if it dies of a bug, log it and stop the worker."""
        task = asyncio.ensure_future(coro)

        def done(t: asyncio.Task[None]) -> None:
            if t.cancelled():
                return
            exc = t.exception()
            if exc is not None:
                log.critical(f"{name} crashed", exc_info=exc)
                if self._fatal is None:
                    self._fatal = exc
                self.request_stop(f"{name} crashed")
                self._stop_now.set()

        task.add_done_callback(done)
        return task
