"""Pure autoscaling policy: how many workers a queue needs, and which pods to remove first.

Nothing here does I/O. The scaler loop (``scaler.py``) gathers the inputs (queue depth,
in-flight jobs, worker heartbeats, current replicas, a short memory of past recommendations),
calls :func:`decide`, and applies the one resulting write. Keeping the policy pure lets it be
tested table-style and with property tests, as cert-manager does with its policies.

How it differs from KEDA + HPA, on purpose:

* depth counts waiting *and* in-flight jobs, and the number of workers with jobs in flight is
  a floor: a busy worker is never scaled away (KEDA counts only the list length);
* scale-up goes to the full desired count in one step (the HPA doubles at most per 15 s);
* scale-down takes the highest recommendation of a short stabilization window, and zero only
  after the queue has been empty (ready and in flight) for the whole cooldown;
* an unreadable queue holds the current replicas: an error is never an empty queue.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from jobqueue_operator import constants as c

# Pod deletion costs (annotation ``controller.kubernetes.io/pod-deletion-cost``): the
# ReplicaSet removes the lowest cost first among otherwise equal (running, ready) pods.
POD_DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
COST_IDLE = -1000  # a heartbeat says the worker has nothing in flight: remove first
COST_UNKNOWN = 0  # no heartbeat (starting, or wedged): the Kubernetes default
COST_BUSY = 1000  # plus the jobs in flight, so the busiest pods go last
COST_MAX = 2**31 - 1  # the annotation is an int32

# Separators a worker id may use after its pod name (``<pod>``, ``<pod>-1``, ``<pod>:3``, ...).
_WORKER_ID_SEPARATORS = ("-", ":", "/", ".", "_", "@")


class AutoscalingSpec(BaseModel):
    """The ``spec.autoscaling`` block of a JobQueue, parsed once at the boundary."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
    )

    enabled: bool = True
    min_replicas: int = Field(default=0, ge=0, le=c.MAX_WORKER_REPLICAS)
    max_replicas: int = Field(default=10, ge=1, le=c.MAX_WORKER_REPLICAS)
    target_jobs_per_worker: int | None = Field(
        default=None,
        ge=1,
        description="Jobs (ready + in flight) per worker; unset means the worker concurrency.",
    )
    activation_jobs: int = Field(default=1, ge=1)
    poll_interval_seconds: int | None = Field(
        default=None,
        ge=1,
        le=300,
        description="How often the queue is read. Unset: 5 s for format jobqueue (an enqueue "
        "wakes the autoscaler at once), 1 s for the other formats (polled unless Redis "
        "keyspace notifications are on).",
    )
    scale_down_stabilization_seconds: int = Field(default=60, ge=0, le=3600)
    cooldown_seconds: int = Field(default=120, ge=0, le=86400)
    paused: bool = False

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"autoscaling.minReplicas ({self.min_replicas}) must not be greater than "
                f"autoscaling.maxReplicas ({self.max_replicas})"
            )
        return self

    def poll_interval(self, *, foreign: bool) -> int:
        """The effective poll interval: the explicit one, else the format's default."""
        if self.poll_interval_seconds is not None:
            return self.poll_interval_seconds
        return c.POLL_INTERVAL_FOREIGN if foreign else c.POLL_INTERVAL_JOBQUEUE

    def target_per_worker(self, worker_concurrency: int) -> int:
        """The effective jobs-per-worker target: the explicit one, else the concurrency."""
        if self.target_jobs_per_worker is not None:
            return self.target_jobs_per_worker
        return max(1, worker_concurrency)


class Reason(enum.StrEnum):
    """Why the scaler chose its replica count (the Scaling condition's and Event's reason)."""

    SCALED_UP = "ScaledUp"
    SCALED_DOWN = "ScaledDown"
    STABILIZING = "Stabilizing"  # lower demand, but a higher recommendation is in the window
    COOLING_DOWN = "CoolingDown"  # queue empty, but not yet for the whole cooldown
    BUSY_WORKERS = "BusyWorkers"  # held up by workers with jobs in flight
    HOLDING = "Holding"  # desired equals current
    AT_MAX = "AtMax"  # demand exceeds maxReplicas
    IDLE = "Idle"  # at zero, below the activation threshold
    PAUSED = "Paused"
    REDIS_UNREACHABLE = "RedisUnreachable"
    TARGET_NOT_FOUND = "TargetNotFound"  # the worker Deployment does not exist (yet)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One past recommendation (already clamped to [min, max]) and when it was made."""

    at: float
    replicas: int


@dataclass(frozen=True, slots=True)
class ScalingInputs:
    """Everything :func:`decide` looks at. Times are seconds on one monotonic clock."""

    current_replicas: int
    spec: AutoscalingSpec
    target_per_worker: int
    now: float
    last_active_at: float  # last time ready + in flight was > 0 (or the loop's start)
    ready: int = 0
    in_flight: int = 0
    busy_workers: int = 0  # workers whose heartbeat says they have jobs in flight
    recommendations: Sequence[Recommendation] = ()
    redis_ok: bool = True
    redis_error: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """The replica count to have, why, and the numbers behind it.

    ``recommendation`` is the demand-based count clamped to [min, max], before stabilization,
    cooldown and the busy floor; the loop remembers it for the stabilization window. It is None
    when nothing was computed (paused, Redis unreachable).
    """

    replicas: int
    reason: Reason
    message: str
    recommendation: int | None = None
    current: int = 0

    @property
    def changed(self) -> bool:
        return self.replicas != self.current


def desired_replicas(ready: int, in_flight: int, target_per_worker: int) -> int:
    """ceil((ready + in flight) / target): the unclamped demand."""
    total = max(0, ready) + max(0, in_flight)
    return math.ceil(total / max(1, target_per_worker))


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def decide(inputs: ScalingInputs) -> Decision:
    """Choose the worker replica count from queue depth; pure and deterministic.

    Rules, in order: paused or Redis unreachable hold the current count; at zero, wake only
    once ``ready + in_flight >= activationJobs`` (or when minReplicas > 0); any increase goes
    at once to the full desired count; a decrease goes only down to the highest recommendation
    of the stabilization window, never below the workers with jobs in flight, and to zero only
    after the queue has been empty for ``cooldownSeconds``.
    """
    spec = inputs.spec
    current = max(0, inputs.current_replicas)
    lo, hi = spec.min_replicas, spec.max_replicas

    if spec.paused:
        return Decision(
            current, Reason.PAUSED, f"autoscaling paused; holding {current}", None, current
        )
    if not inputs.redis_ok:
        return Decision(
            current,
            Reason.REDIS_UNREACHABLE,
            f"queue unreadable, holding {current} replicas: {inputs.redis_error or 'error'}",
            None,
            current,
        )

    ready, in_flight, busy = (
        max(0, inputs.ready),
        max(0, inputs.in_flight),
        max(0, inputs.busy_workers),
    )
    total = ready + in_flight
    raw = desired_replicas(ready, in_flight, inputs.target_per_worker)
    rec = _clamp(raw, lo, hi)
    numbers = (
        f"ready={ready} inFlight={in_flight} busyWorkers={busy} "
        f"target={inputs.target_per_worker}/worker -> desired={raw}"
        f" (min {lo}, max {hi}), current={current}"
    )

    def result(replicas: int, reason: Reason, why: str) -> Decision:
        return Decision(replicas, reason, f"{why}; {numbers}", rec, current)

    # Activation: from zero, a handful of jobs below the threshold does not wake a worker.
    if current == 0 and lo == 0 and total < spec.activation_jobs:
        return result(0, Reason.IDLE, f"below activation threshold ({spec.activation_jobs} jobs)")

    if rec > current:
        capped = " (capped at maxReplicas)" if raw > hi else ""
        return result(rec, Reason.SCALED_UP, f"scaled up from {current} to {rec}{capped}")
    if rec == current:
        if raw > hi:
            return result(current, Reason.AT_MAX, f"at maxReplicas {hi}")
        return result(current, Reason.HOLDING, f"holding {current}")

    candidate, reason, why = _scale_down_floor(inputs, rec, current, busy)
    if candidate < current:
        suffix = f" ({why})" if why else ""
        return result(
            candidate, Reason.SCALED_DOWN, f"scaled down from {current} to {candidate}{suffix}"
        )
    return result(current, reason, f"holding {current}: {why}")


def _scale_down_floor(
    inputs: ScalingInputs, rec: int, current: int, busy: int
) -> tuple[int, Reason, str]:
    """How far a scale-down from ``current`` toward ``rec`` may go, why, and the reason to give
    when it holds: each floor (the stabilization window's highest recommendation, the cooldown
    before zero, the workers with jobs in flight) can only raise the candidate, never above
    ``current``."""
    spec = inputs.spec
    window = spec.scale_down_stabilization_seconds
    in_window = [r.replicas for r in inputs.recommendations if 0 <= inputs.now - r.at < window]
    stabilized = min(max([rec, *in_window]), current, spec.max_replicas)
    candidate, reason, why = rec, Reason.SCALED_DOWN, ""
    if stabilized > candidate:
        candidate, reason = stabilized, Reason.STABILIZING
        why = f"highest recommendation in the last {window}s is {stabilized}"
    if candidate == 0:
        empty_for = inputs.now - inputs.last_active_at
        if empty_for < spec.cooldown_seconds:
            candidate, reason = 1, Reason.COOLING_DOWN
            why = (
                f"queue empty for {empty_for:.0f}s of the {spec.cooldown_seconds}s cooldown"
                " before scaling to zero"
            )
    busy_floor = min(busy, current)
    if busy_floor > candidate:
        candidate, reason = busy_floor, Reason.BUSY_WORKERS
        why = f"{busy} workers have jobs in flight"
    return candidate, reason, why


def remember(
    history: Sequence[Recommendation], decision: Decision, now: float, window: float
) -> tuple[Recommendation, ...]:
    """The recommendation history after ``decision``: pruned to the window, newest appended."""
    kept = tuple(r for r in history if 0 <= now - r.at < window)
    if decision.recommendation is None:
        return kept
    return (*kept, Recommendation(at=now, replicas=decision.recommendation))


def last_active(previous: float, ready: int, in_flight: int, now: float) -> float:
    """When the queue was last non-empty (ready or in flight), for the cooldown."""
    return now if ready + in_flight > 0 else previous


class WorkerHeartbeat(Protocol):
    """What the policy needs from a worker's heartbeat (``jobqueue.WorkerInfo`` fits)."""

    @property
    def id(self) -> str: ...
    @property
    def busy(self) -> bool: ...
    @property
    def in_flight(self) -> int: ...


def is_busy(worker: WorkerHeartbeat) -> bool:
    return worker.busy or worker.in_flight > 0


def count_busy(workers: Iterable[WorkerHeartbeat]) -> int:
    """How many workers have jobs in flight: the floor under any scale-down."""
    return sum(1 for w in workers if is_busy(w))


def pod_for_worker(worker_id: str, pod_names: Iterable[str]) -> str | None:
    """The pod a worker id belongs to: equal to the pod name, or the pod name + a separator.

    Workers use ``POD_NAME`` as (the start of) their id; the longest match wins, so ``x-1``
    never claims the workers of ``x-1-2``.
    """
    best: str | None = None
    for pod in pod_names:
        if (
            worker_id == pod
            or any(worker_id.startswith(pod + sep) for sep in _WORKER_ID_SEPARATORS)
        ) and (best is None or len(pod) > len(best)):
            best = pod
    return best


def pod_deletion_costs(
    pod_names: Iterable[str], workers: Iterable[WorkerHeartbeat]
) -> dict[str, int]:
    """The pod-deletion-cost each pod should carry, so a scale-down removes idle pods first.

    Idle pods (a heartbeat with nothing in flight) get :data:`COST_IDLE`, pods without a
    heartbeat :data:`COST_UNKNOWN`, busy pods :data:`COST_BUSY` plus their jobs in flight.
    """
    pods = list(dict.fromkeys(pod_names))
    seen: dict[str, int] = {}  # pod -> jobs in flight (-1: heartbeat but idle)
    busy_pods: set[str] = set()
    for worker in workers:
        pod = pod_for_worker(worker.id, pods)
        if pod is None:
            continue
        seen[pod] = seen.get(pod, 0) + max(0, worker.in_flight)
        if is_busy(worker):
            busy_pods.add(pod)
    costs: dict[str, int] = {}
    for pod in pods:
        if pod in busy_pods:
            costs[pod] = min(COST_MAX, COST_BUSY + seen[pod])
        elif pod in seen:
            costs[pod] = COST_IDLE
        else:
            costs[pod] = COST_UNKNOWN
    return costs


def deletion_cost_changes(
    current: Mapping[str, str | None], desired: Mapping[str, int]
) -> dict[str, int]:
    """Only the pods whose annotation differs from the desired cost (fewest writes).

    ``current`` maps each live pod to its annotation value (None: not annotated, which
    Kubernetes reads as 0). Pods missing from ``current`` are gone and are skipped.
    """
    changes: dict[str, int] = {}
    for pod, cost in desired.items():
        if pod not in current:
            continue
        value = current[pod]
        if (value if value is not None else str(COST_UNKNOWN)) != str(cost):
            changes[pod] = cost
    return changes
