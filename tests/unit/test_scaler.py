"""The scaler loop with in-memory fakes of its three ports (metrics, scale target, reporter)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from jobqueue_operator import ports
from jobqueue_operator import scaler as scaler_mod
from jobqueue_operator.adapters import (
    KubernetesScaleTarget,
    ReplicaCache,
    describe_error,
    replicas_handover_needed,
)
from jobqueue_operator.autoscaler import run_until_stopped
from jobqueue_operator.autoscaling import AutoscalingSpec, Reason, WorkerHeartbeat
from jobqueue_operator.ports import Condition, EventType, QueueSnapshot, ScalerConfig, ScalerStatus
from jobqueue_operator.redisops import redact
from jobqueue_operator.scaler import Scaler
from jobqueue_operator.sources import RedisMetricsSource
from jobqueue_operator.status import merge_conditions

PASSWORD = "s3cr3t-pw"


@dataclass(frozen=True)
class W:
    id: str
    busy: bool
    in_flight: int
    last_seen: float = 0.0


class FakeMetrics:
    format = "jobqueue"
    wakeup = "events"

    def __init__(self) -> None:
        self.ready = 0
        self.in_flight = 0
        self.delayed = 0
        self.dead = 0
        self.workers: tuple[W, ...] = ()
        self.error: Exception | None = None
        self.failures = 0  # the next this many snapshots fail with a timeout
        self.watch_error: Exception | None = None
        self.snapshots = 0
        self.watches = 0
        self.closed = False
        self.notifications: asyncio.Queue[int] = asyncio.Queue()

    async def snapshot(self) -> QueueSnapshot:
        self.snapshots += 1
        if self.error is not None:
            raise self.error
        if self.failures:
            self.failures -= 1
            raise TimeoutError()
        return QueueSnapshot(self.ready, self.in_flight, self.delayed, self.dead, self.workers)

    async def watch(self, wake: Callable[[], None]) -> None:
        self.watches += 1
        if self.watch_error is not None:
            raise self.watch_error
        wake()
        while True:
            for _ in range(await self.notifications.get()):
                wake()

    async def close(self) -> None:
        self.closed = True


class FakeTarget:
    def __init__(self, replicas: int | None = 0) -> None:
        self.current = replicas
        self.reads = 0
        self.calls: list[tuple[str, Any]] = []
        self.error: Exception | None = None
        self.prefer_idle_error: Exception | None = None
        self.scaled = asyncio.Event()
        self.cached_reads: list[bool] = []  # the ``cached`` flag of every read

    async def replicas(self, *, cached: bool = False) -> int | None:
        self.reads += 1
        self.cached_reads.append(cached)
        return self.current

    async def scale(self, replicas: int) -> None:
        if self.error is not None:
            raise self.error
        self.calls.append(("scale", replicas))
        self.current = replicas
        self.scaled.set()

    async def prefer_idle(self, workers: Sequence[WorkerHeartbeat]) -> None:
        self.calls.append(("prefer_idle", tuple(w.id for w in workers)))
        if self.prefer_idle_error is not None:
            raise self.prefer_idle_error

    @property
    def scales(self) -> list[int]:
        return [n for op, n in self.calls if op == "scale"]


@dataclass
class FakeReporter:
    statuses: list[ScalerStatus] = field(default_factory=list)
    events: list[tuple[EventType, str, str]] = field(default_factory=list)

    async def report(self, status: ScalerStatus) -> None:
        self.statuses.append(status)

    async def event(self, type_: EventType, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    @property
    def last(self) -> ScalerStatus:
        return self.statuses[-1]

    def condition(self, ctype: str) -> Condition:
        return next(c for c in self.last.conditions if c.type == ctype)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    metrics: FakeMetrics
    target: FakeTarget
    reporter: FakeReporter
    clock: Clock
    scaler: Scaler
    spec: dict[str, Any]

    def set_spec(self, **changes: Any) -> None:
        self.spec.update(changes)


def make_rig(replicas: int | None = 0, concurrency: int = 5, **spec: Any) -> Rig:
    metrics, target, reporter, clock = FakeMetrics(), FakeTarget(replicas), FakeReporter(), Clock()
    live: dict[str, Any] = {
        "minReplicas": 0,
        "maxReplicas": 10,
        "scaleDownStabilizationSeconds": 30,
        "cooldownSeconds": 60,
        **spec,
    }
    scaler = Scaler(
        metrics=metrics,
        target=target,
        reporter=reporter,
        config=lambda: ScalerConfig(AutoscalingSpec.model_validate(live), concurrency),
        clock=clock,
        wall=lambda: datetime(2026, 11, 24, 12, 0, int(clock.now) % 60, tzinfo=UTC),
        secrets=(PASSWORD,),
        name="ns/q",
        redis_retries=(0.0, 0.0),
    )
    return Rig(metrics, target, reporter, clock, scaler, live)


# ---------------------------------------------------------------------------------------------
# One evaluation


async def test_scales_up_from_zero_to_the_full_count_in_one_write() -> None:
    rig = make_rig(replicas=0)
    rig.metrics.ready = 38
    await rig.scaler.evaluate()
    assert rig.target.calls == [("scale", 8)]
    [(kind, reason, message)] = rig.reporter.events
    assert (kind, reason) == ("Normal", "ScaledUp")
    assert "scaled up from 0 to 8" in message and "ready=38" in message
    status = rig.reporter.last
    assert status.fields() == {
        "queue": {
            "ready": 38,
            "inFlight": 0,
            "delayed": 0,
            "dead": 0,
            "format": "jobqueue",
            "wakeup": "events",
        },
        "desiredWorkers": 8,
        "lastScaleTime": "2026-11-24T12:00:40Z",
    }
    assert rig.reporter.condition("Scaling") == Condition(
        "Scaling", "True", "ScaledUp", status.conditions[0].message
    )
    assert rig.reporter.condition("RedisReachable").status == "True"


async def test_scale_down_marks_idle_pods_before_lowering_replicas() -> None:
    rig = make_rig(replicas=4, scaleDownStabilizationSeconds=0, cooldownSeconds=0)
    rig.metrics.in_flight = 3
    rig.metrics.workers = (W("p-1", True, 3), W("p-2", False, 0))
    await rig.scaler.evaluate()
    assert rig.target.calls == [("prefer_idle", ("p-1", "p-2")), ("scale", 1)]
    assert [e[1] for e in rig.reporter.events] == ["ScaledDown"]


async def test_a_failed_pod_deletion_cost_patch_does_not_block_the_scale_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from kubernetes.client.exceptions import ApiException

    rig = make_rig(replicas=4, scaleDownStabilizationSeconds=0, cooldownSeconds=0)
    rig.metrics.in_flight = 3
    rig.metrics.workers = (W("p-1", True, 3), W("p-2", False, 0))
    error = ApiException(status=403, reason="Forbidden")
    error.body = json.dumps({"message": f"pods is forbidden (token {PASSWORD})"})
    rig.target.prefer_idle_error = error
    with caplog.at_level("WARNING", logger=scaler_mod.__name__):
        assert await rig.scaler.evaluate() is False  # nothing to retry
    assert rig.target.calls == [("prefer_idle", ("p-1", "p-2")), ("scale", 1)]
    assert [e[1] for e in rig.reporter.events] == ["ScaledDown"]
    scaling = rig.reporter.condition("Scaling")
    assert (scaling.status, scaling.reason) == ("True", "ScaledDown")
    [record] = [r for r in caplog.records if "deletion cost" in r.getMessage()]
    assert record.levelname == "WARNING"
    assert "scaling down anyway" in record.getMessage()
    assert "HTTP 403 Forbidden" in record.getMessage()
    assert PASSWORD not in caplog.text


async def test_busy_workers_hold_replicas_up() -> None:
    rig = make_rig(replicas=4, scaleDownStabilizationSeconds=0, cooldownSeconds=0)
    rig.metrics.in_flight = 4
    rig.metrics.workers = tuple(W(f"p-{i}", True, 1) for i in range(4))
    await rig.scaler.evaluate()
    assert rig.target.calls == []
    assert rig.reporter.condition("Scaling").reason == "BusyWorkers"


async def test_redis_error_holds_replicas_and_reports_the_error_without_the_password() -> None:
    rig = make_rig(replicas=3)
    rig.metrics.error = ConnectionError(
        f"Error 111 connecting to redis://:{PASSWORD}@10.0.0.9:6379"
    )
    await rig.scaler.evaluate()
    rig.clock.now += 100  # far past window and cooldown: an error is still not an empty queue
    await rig.scaler.evaluate()
    assert rig.target.calls == []
    redis = rig.reporter.condition("RedisReachable")
    assert redis.status == "False"
    assert redis.message == "ConnectionError: Error 111 connecting to redis://:***@10.0.0.9:6379"
    assert PASSWORD not in repr(rig.reporter.statuses) + repr(rig.reporter.events)
    scaling = rig.reporter.condition("Scaling")
    assert (scaling.status, scaling.reason) == ("False", "RedisUnreachable")
    assert "queue" not in rig.reporter.last.fields()  # the last numbers are kept, not zeroed
    assert [(e[0], e[1]) for e in rig.reporter.events] == [("Warning", "RedisUnreachable")]


async def test_a_queue_read_that_fails_once_or_twice_is_tried_again_before_it_counts() -> None:
    """A restarted operator's 1,000 autoscalers read at once, and some reads time out: each
    reported RedisUnreachable (an Event and two status writes) for a queue that was fine."""
    rig = make_rig(replicas=1)
    await rig.scaler.evaluate()
    writes = len(rig.reporter.statuses)
    for failures in (1, 2):
        rig.metrics.failures = failures
        before = rig.metrics.snapshots
        rig.clock.now += 1
        await rig.scaler.evaluate()
        assert rig.metrics.snapshots == before + failures + 1
    assert rig.reporter.events == []
    assert rig.reporter.condition("RedisReachable").status == "True"
    assert len(rig.reporter.statuses) == writes  # nothing changed: no status write

    rig.metrics.failures = 3  # a third failure in a row counts
    rig.clock.now += 1
    await rig.scaler.evaluate()
    assert rig.reporter.condition("RedisReachable").status == "False"
    assert [e[1] for e in rig.reporter.events] == ["RedisUnreachable"]
    rig.metrics.failures = 1  # once unreachable, each evaluation reads once (no retries)
    before = rig.metrics.snapshots
    rig.clock.now += 1
    await rig.scaler.evaluate()
    assert rig.metrics.snapshots == before + 1


async def test_redis_recovery_resumes_scaling() -> None:
    rig = make_rig(replicas=1)
    rig.metrics.error = ConnectionError("Connection refused")
    await rig.scaler.evaluate()
    rig.metrics.error = None
    rig.metrics.ready = 20
    await rig.scaler.evaluate()
    assert rig.target.scales == [4]
    assert rig.reporter.condition("RedisReachable").status == "True"


async def test_missing_deployment_holds_and_says_so() -> None:
    rig = make_rig(replicas=None)
    rig.metrics.ready = 10
    await rig.scaler.evaluate()
    assert rig.target.calls == []
    scaling = rig.reporter.condition("Scaling")
    assert (scaling.status, scaling.reason) == ("False", "TargetNotFound")


async def test_paused_holds() -> None:
    rig = make_rig(replicas=2, paused=True)
    rig.metrics.ready = 100
    await rig.scaler.evaluate()
    assert rig.target.calls == []
    assert rig.reporter.condition("Scaling").reason == "Paused"
    assert rig.reporter.last.fields()["queue"]["ready"] == 100


async def test_a_restart_never_scales_down_at_once() -> None:
    rig = make_rig(replicas=5, cooldownSeconds=0)
    await rig.scaler.evaluate()  # empty queue, but the current count seeds the window
    assert rig.target.calls == []
    assert rig.reporter.condition("Scaling").reason == "Stabilizing"


async def test_a_starting_scaler_writes_nothing_to_the_deployment() -> None:
    """spec.replicas passes to the autoscaler at its first scale or at the reconcile's
    hand-over (tests/integration/test_autoscaling_operator.py), not by a write at its start:
    a restart of 1,000 autoscalers wrote 1,000 applies."""
    rig = make_rig(replicas=5)
    for _ in range(3):
        rig.clock.now += 1
        await rig.scaler.evaluate()
    assert rig.target.calls == []


def test_handover_is_needed_only_when_the_reconcile_owned_replicas() -> None:
    desired = {"kind": "Deployment", "spec": {"template": {}}}

    def live(manager: str, operation: str, fields: dict[str, Any]) -> dict[str, Any]:
        entry = {"manager": manager, "operation": operation, "fieldsV1": {"f:spec": fields}}
        return {"metadata": {"managedFields": [entry]}, "spec": {"replicas": 5}}

    owned = live("jobqueue-operator", "Apply", {"f:replicas": {}, "f:template": {}})
    assert replicas_handover_needed(desired, owned) is True
    assert replicas_handover_needed(desired, live("jobqueue-operator", "Apply", {})) is False
    scaler_owned = live("jobqueue-autoscaler", "Update", {"f:replicas": {}})
    assert replicas_handover_needed(desired, scaler_owned) is False
    assert replicas_handover_needed({"spec": {"replicas": 2}}, owned) is False
    assert replicas_handover_needed(desired, None) is False


async def test_drain_waits_for_the_window_then_the_cooldown() -> None:
    rig = make_rig(replicas=0, scaleDownStabilizationSeconds=30, cooldownSeconds=60)
    rig.metrics.ready = 20
    await rig.scaler.evaluate()
    assert rig.target.scales == [4]
    rig.metrics.ready = 0  # drained at t=1000
    reasons = []
    for _ in range(14):
        rig.clock.now += 5
        await rig.scaler.evaluate()
        reasons.append(rig.reporter.condition("Scaling").reason)
    # held for the 30 s window, then one worker until 60 s of empty queue, then zero
    assert rig.target.scales == [4, 1, 0]
    assert reasons[:5] == ["Stabilizing"] * 5
    assert reasons[6:10] == ["CoolingDown"] * 4
    assert reasons[-1] == "Idle"


async def test_spec_edits_apply_at_the_next_evaluation() -> None:
    rig = make_rig(replicas=0)
    rig.metrics.ready = 100
    await rig.scaler.evaluate()
    rig.set_spec(maxReplicas=3)
    await rig.scaler.evaluate()
    assert rig.target.scales == [10, 3]


async def test_event_driven_evaluations_reuse_the_count_until_a_write() -> None:
    rig = make_rig(replicas=2)
    rig.metrics.ready = 10
    await rig.scaler.evaluate(fresh=True)
    assert rig.target.reads == 1
    await rig.scaler.evaluate(fresh=False)  # no change: no API read
    assert rig.target.reads == 1
    rig.metrics.ready = 30
    await rig.scaler.evaluate(fresh=False)  # a change: re-read before writing
    assert (rig.target.reads, rig.target.scales) == (2, [6])


async def test_polls_trust_the_watched_count_and_only_writes_read_the_api_first() -> None:
    rig = make_rig(replicas=2)
    rig.metrics.ready = 10  # 2 workers' worth: nothing to do
    await rig.scaler.evaluate(fresh=True)  # the first read too: a start reads nothing (1,000
    for _ in range(3):  # JobQueues created or resumed at once would be 1,000 GETs)
        rig.clock.now += 5
        await rig.scaler.evaluate(fresh=True)
    assert rig.target.cached_reads == [True, True, True, True]
    rig.metrics.ready = 30
    rig.clock.now += 5
    await rig.scaler.evaluate(fresh=True)  # a change: the cached count is checked first
    assert rig.target.cached_reads[-2:] == [True, False]
    assert rig.target.scales == [6]
    for _ in range(100):  # an idle hour of polls: the watch's count, no API request
        rig.clock.now += 36
        await rig.scaler.evaluate(fresh=True)
    assert rig.target.cached_reads[-100:] == [True] * 100


async def test_a_stale_cached_count_never_drives_a_write() -> None:
    rig = make_rig(replicas=6)
    rig.metrics.ready = 30
    await rig.scaler.evaluate(fresh=True)  # verified at 6: holding

    class StaleCache(FakeTarget):
        async def replicas(self, *, cached: bool = False) -> int | None:
            value = await super().replicas(cached=cached)
            return 2 if cached else value  # the watch still says 2

    stale = StaleCache(6)
    rig.scaler.target = stale
    rig.clock.now += 5
    await rig.scaler.evaluate(fresh=True)
    assert stale.cached_reads == [True, False]  # 2 would mean "scale up": checked first
    assert stale.calls == []  # the API says 6 = desired: no write


async def test_an_external_scale_seen_before_writing_prevents_a_stale_write() -> None:
    rig = make_rig(replicas=2)
    rig.metrics.ready = 10
    await rig.scaler.evaluate(fresh=True)
    rig.target.current = 6  # kubectl scale behind the scaler's back
    rig.metrics.ready = 20
    await rig.scaler.evaluate(fresh=False)
    # decided on the fresh count: a scale-down from 6 (idle pods first), not an "up" from 2
    assert rig.target.calls == [("prefer_idle", ()), ("scale", 4)]
    assert rig.reporter.events[-1][1:2] == ("ScaledDown",)
    assert "scaled down from 6 to 4" in rig.reporter.events[-1][2]


async def test_a_failed_scale_is_reported_and_retried() -> None:
    rig = make_rig(replicas=0)
    rig.metrics.ready = 5
    rig.target.error = RuntimeError("HTTP 503 Service Unavailable")
    assert await rig.scaler.evaluate() is True
    scaling = rig.reporter.condition("Scaling")
    assert (scaling.status, scaling.reason) == ("False", "ScaleFailed")
    assert "could not scale the workers from 0 to 1" in scaling.message
    rig.target.error = None
    assert await rig.scaler.evaluate() is False
    assert rig.target.scales == [1]


async def test_queue_numbers_alone_are_written_at_most_every_few_seconds() -> None:
    rig = make_rig(replicas=10)
    for ready in (200, 201, 202):
        rig.metrics.ready = ready
        rig.clock.now += 1
        await rig.scaler.evaluate()
    assert len(rig.reporter.statuses) == 1
    rig.clock.now += scaler_mod.STATUS_MIN_INTERVAL
    await rig.scaler.evaluate()
    assert len(rig.reporter.statuses) == 2
    rig.metrics.error = ConnectionError("down")  # a condition change is written at once
    rig.clock.now += 0.1
    await rig.scaler.evaluate()
    assert len(rig.reporter.statuses) == 3


async def test_identical_status_is_not_rewritten() -> None:
    rig = make_rig(replicas=0)
    for i in range(3):
        rig.clock.now += 10
        rig.metrics.workers = (W("idle-pod", busy=False, in_flight=0, last_seen=float(i)),)
        await rig.scaler.evaluate()
    assert len(rig.reporter.statuses) == 1  # a fresh heartbeat alone is nothing to write


# ---------------------------------------------------------------------------------------------
# The running loop: wake-ups, coalescing, reconnects, cancellation


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def running_rig(**spec: Any) -> Rig:
    rig = make_rig(replicas=0, pollIntervalSeconds=300, **spec)
    rig.scaler.clock = asyncio.get_running_loop().time
    return rig


async def test_an_enqueue_notification_wakes_the_loop_before_the_poll() -> None:
    rig = running_rig()
    task = asyncio.create_task(rig.scaler.run())
    await _until(lambda: len(rig.reporter.statuses) >= 1)  # first poll-time evaluation done
    rig.metrics.ready = 3
    rig.metrics.notifications.put_nowait(1)
    await _until(lambda: rig.target.scales == [1])  # poll interval is 300 s: only a wake-up
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rig.metrics.closed


async def test_a_burst_of_notifications_coalesces() -> None:
    rig = running_rig()
    task = asyncio.create_task(rig.scaler.run())
    await _until(lambda: len(rig.reporter.statuses) >= 1)
    before = rig.scaler.evaluations
    rig.metrics.ready = 50
    rig.metrics.notifications.put_nowait(1000)  # 1000 wake() calls in one go
    await _until(lambda: rig.target.scales == [10])
    await asyncio.sleep(2 * scaler_mod.MIN_EVALUATION_GAP)
    assert rig.scaler.evaluations - before <= 2
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_lost_subscription_reconnects_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scaler_mod, "RECONNECT_BACKOFF_INITIAL", 0.01)
    rig = running_rig()
    rig.metrics.watch_error = ConnectionError(f"redis://u:{PASSWORD}@h closed")
    task = asyncio.create_task(rig.scaler.run())
    await _until(lambda: rig.metrics.watches >= 3)
    rig.metrics.watch_error = None
    watches = rig.metrics.watches
    await _until(lambda: rig.metrics.watches > watches)
    rig.metrics.ready = 1
    rig.metrics.notifications.put_nowait(1)
    await _until(lambda: rig.target.scales == [1])
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_reconnect_delays_are_jittered_below_the_exponential_ceiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 23: fixed delays brought every autoscaler on a restarted Redis back at once."""
    delays: list[float] = []
    real = scaler_mod.backoff_delay

    def record(attempt: int, base: float, cap: float, u: float) -> float:
        delays.append(real(attempt, base, cap, u))
        return 0.0  # the test does not wait for them

    rig = running_rig()
    rig.metrics.watch_error = ConnectionError("closed")
    monkeypatch.setattr(scaler_mod, "backoff_delay", record)
    watcher = asyncio.create_task(rig.scaler._watch())
    await _until(lambda: len(delays) >= 12)
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    ceilings = [min(10.0, 0.2 * 2**i) for i in range(12)]
    assert all(0 <= d <= top for d, top in zip(delays, ceilings, strict=False)), delays
    assert len({round(d, 6) for d in delays}) == len(delays)  # no two alike: jittered
    assert delays != ceilings[: len(delays)]


class Flag:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    def wait(self) -> Any:
        return self.event.wait()


async def test_the_stop_flag_ends_the_loop_cleanly() -> None:
    rig = running_rig()
    flag = Flag()
    runner = asyncio.create_task(run_until_stopped(rig.scaler.run(), flag))
    await _until(lambda: rig.metrics.watches == 1)
    flag.event.set()
    await asyncio.wait_for(runner, 5)
    assert rig.metrics.closed
    assert runner.exception() is None


async def test_a_crash_of_the_loop_is_raised_to_the_daemon() -> None:
    async def boom() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await run_until_stopped(boom(), Flag())


# ---------------------------------------------------------------------------------------------
# The Redis client of the metrics source (nothing is connected here)


@pytest.mark.parametrize(
    ("url", "cluster", "tls"),
    [
        ("redis://127.0.0.1:6379/0", False, False),
        ("rediss://:pw@127.0.0.1:6380/0", False, True),
        ("redis+cluster://127.0.0.1:7000", True, False),
        ("rediss+cluster://127.0.0.1:7000", True, True),
    ],
)
async def test_every_url_scheme_gets_the_autoscaler_timeouts_and_health_checks(
    url: str, cluster: bool, tls: bool
) -> None:
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.connection import SSLConnection

    source = RedisMetricsSource(url, "ns/q")
    redis = source._open().redis
    try:
        assert isinstance(redis, RedisCluster) is cluster
        if isinstance(redis, RedisCluster):
            options = redis.nodes_manager.connection_kwargs
            connection_class = options["connection_class"]
        else:
            options = redis.connection_pool.connection_kwargs
            connection_class = redis.connection_pool.connection_class
        assert issubclass(connection_class, SSLConnection) is tls
        # a dead peer of the idle subscription is noticed (the cluster one included)
        assert options["health_check_interval"] == ports.PUBSUB_HEALTH_CHECK_INTERVAL
        assert options["socket_timeout"] == ports.REDIS_TIMEOUT
        assert options["socket_connect_timeout"] == ports.REDIS_CONNECT_TIMEOUT
    finally:
        await source.close()


# ---------------------------------------------------------------------------------------------
# The replica cache in front of the scale subresource


class FakeKube:
    """The scale reads of the Kubernetes layer (``Kube.get`` of ``.../scale``), counted."""

    def __init__(self, replicas: int | None) -> None:
        self.replicas = replicas
        self.reads = 0

    async def get(self, kind: str, namespace: str, name: str, sub: str | None = None) -> Any:
        assert (kind, namespace, name, sub) == ("Deployment", "ns", "q-worker", "scale")
        self.reads += 1
        return None if self.replicas is None else {"spec": {"replicas": self.replicas}}


def cached_target(cache: ReplicaCache, api_replicas: int | None) -> tuple[Any, FakeKube]:
    apps = FakeKube(api_replicas)
    return KubernetesScaleTarget(apps, "ns", "q-worker", cache=cache), apps  # type: ignore[arg-type]


async def test_a_cached_count_saves_the_api_read_and_an_unknown_one_falls_back() -> None:
    cache = ReplicaCache()
    target, apps = cached_target(cache, api_replicas=3)
    assert await target.replicas(cached=True) == 3  # not seen by the watch yet: the API
    assert apps.reads == 1
    cache.observe("ns", "q-worker", 5)
    cache.observe("other", "q-worker", 9)  # another namespace's Deployment of the same name
    assert await target.replicas(cached=True) == 5
    assert apps.reads == 1
    assert await target.replicas() == 3  # not asked for a cached value: always the API
    assert apps.reads == 2
    cache.observe("ns", "q-worker", None)  # deleted
    apps.replicas = None
    assert await target.replicas(cached=True) is None
    assert apps.reads == 3


async def test_zero_replicas_in_the_cache_is_a_count_not_a_miss() -> None:
    cache = ReplicaCache()
    cache.observe("ns", "q-worker", 0)
    target, apps = cached_target(cache, api_replicas=4)
    assert await target.replicas(cached=True) == 0
    assert apps.reads == 0


# ---------------------------------------------------------------------------------------------
# Pure helpers


def test_merge_conditions_keeps_others_and_transition_times() -> None:
    existing: list[dict[str, Any]] = [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Ok",
            "message": "",
            "lastTransitionTime": "t0",
        },
        {
            "type": "Scaling",
            "status": "True",
            "reason": "Holding",
            "message": "m",
            "lastTransitionTime": "t1",
            "observedGeneration": 3,
        },
        {
            "type": "RedisReachable",
            "status": "True",
            "reason": "Connected",
            "message": "",
            "lastTransitionTime": "t2",
        },
    ]
    merged = merge_conditions(
        existing,
        [
            Condition("Scaling", "True", "ScaledUp", "up"),
            Condition("RedisReachable", "False", "ConnectionFailed", "refused"),
        ],
        now="t9",
    )
    assert merged == [
        existing[0],
        {
            "type": "Scaling",
            "status": "True",
            "reason": "ScaledUp",
            "message": "up",
            "lastTransitionTime": "t1",
            "observedGeneration": 3,
        },
        {
            "type": "RedisReachable",
            "status": "False",
            "reason": "ConnectionFailed",
            "message": "refused",
            "lastTransitionTime": "t9",
        },
    ]
    assert merge_conditions([], [Condition("Scaling", "True", "Idle", "")], "t5") == [
        {
            "type": "Scaling",
            "status": "True",
            "reason": "Idle",
            "message": "",
            "lastTransitionTime": "t5",
        }
    ]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:p%40ss@h", "rediss://user:***@h"),
        ("no url here", "no url here"),
        ("redis://h:6379", "redis://h:6379"),
        (f"AUTH failed for {PASSWORD}", "AUTH failed for ***"),
    ],
)
def test_redact(text: str, want: str) -> None:
    assert redact(text, [PASSWORD]) == want


def test_describe_error_masks_the_url_and_its_secret_parts() -> None:
    url = "redis+sentinel://:p%40ss@h:1/m?sentinel_password=sp%21"
    assert describe_error(OSError("boom p@ss sp! p%40ss"), url) == "OSError: boom *** *** ***"
    assert describe_error(OSError("boom p@ss"), "p@ss") == "OSError: boom ***"
    assert describe_error(TimeoutError()) == "TimeoutError: TimeoutError()"


def test_kubernetes_errors_are_described_by_their_status_message() -> None:
    from kubernetes.client.exceptions import ApiException

    exc = ApiException(status=409, reason="Conflict")
    exc.body = json.dumps({"kind": "Status", "message": "the object has been modified"})
    assert describe_error(exc) == "HTTP 409 Conflict: the object has been modified"
    assert describe_error(ApiException(status=503, reason="Service Unavailable")) == (
        "HTTP 503 Service Unavailable"
    )


def test_reason_values_are_the_documented_names() -> None:
    assert {r.value for r in Reason} >= {
        "ScaledUp",
        "ScaledDown",
        "Stabilizing",
        "CoolingDown",
        "Holding",
        "Paused",
        "RedisUnreachable",
        "AtMax",
    }
