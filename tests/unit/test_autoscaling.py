"""Table tests of the pure autoscaling policy: the spec model, decide(), and deletion costs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from jobqueue_operator.autoscaling import (
    COST_BUSY,
    COST_IDLE,
    COST_UNKNOWN,
    AutoscalingSpec,
    Decision,
    Reason,
    Recommendation,
    ScalingInputs,
    count_busy,
    decide,
    deletion_cost_changes,
    desired_replicas,
    last_active,
    pod_deletion_costs,
    pod_for_worker,
    remember,
)
from pydantic import ValidationError

# ---------------------------------------------------------------------------------------------
# The spec model


def test_spec_defaults_match_the_issue() -> None:
    spec = AutoscalingSpec()
    assert spec.model_dump(by_alias=True) == {
        "enabled": True,
        "minReplicas": 0,
        "maxReplicas": 10,
        "targetJobsPerWorker": None,
        "activationJobs": 1,
        "pollIntervalSeconds": None,
        "scaleDownStabilizationSeconds": 60,
        "cooldownSeconds": 120,
        "paused": False,
    }


def test_spec_parses_camel_case_and_is_frozen() -> None:
    spec = AutoscalingSpec.model_validate(
        {"minReplicas": 2, "maxReplicas": 50, "targetJobsPerWorker": 10, "paused": True}
    )
    assert (spec.min_replicas, spec.max_replicas, spec.target_jobs_per_worker) == (2, 50, 10)
    assert spec.paused is True
    with pytest.raises(ValidationError):
        spec.paused = False


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"minReplicas": 5, "maxReplicas": 2}, "minReplicas (5) must not be greater"),
        ({"minReplicas": -1}, "greater than or equal to 0"),
        ({"maxReplicas": 0}, "greater than or equal to 1"),
        ({"maxReplicas": 1001}, "less than or equal to 1000"),
        ({"minReplicas": 1001, "maxReplicas": 1000}, "less than or equal to 1000"),
        ({"targetJobsPerWorker": 0}, "greater than or equal to 1"),
        ({"activationJobs": 0}, "greater than or equal to 1"),
        ({"pollIntervalSeconds": 0}, "greater than or equal to 1"),
        ({"pollIntervalSeconds": 301}, "less than or equal to 300"),
        ({"scaleDownStabilizationSeconds": 3601}, "less than or equal to 3600"),
        ({"cooldownSeconds": 86401}, "less than or equal to 86400"),
        ({"maxReplica": 3}, "Extra inputs are not permitted"),
    ],
)
def test_spec_rejects_bad_values_with_a_clear_message(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as err:
        AutoscalingSpec.model_validate(body)
    assert fragment in str(err.value)


def test_target_per_worker_defaults_to_the_worker_concurrency() -> None:
    assert AutoscalingSpec().target_per_worker(8) == 8
    assert AutoscalingSpec(target_jobs_per_worker=3).target_per_worker(8) == 3
    assert AutoscalingSpec().target_per_worker(0) == 1


# ---------------------------------------------------------------------------------------------
# decide(): one row per rule


NOW = 10_000.0


@dataclass(frozen=True)
class Row:
    name: str
    ready: int = 0
    in_flight: int = 0
    busy: int = 0
    current: int = 0
    spec: dict[str, Any] | None = None
    target: int = 5
    history: tuple[tuple[float, int], ...] = ()  # (seconds ago, replicas)
    empty_for: float = 1e9  # seconds since the queue was last non-empty
    redis_ok: bool = True
    want: int = 0
    reason: Reason = Reason.HOLDING


BASE = {"minReplicas": 0, "maxReplicas": 10, "scaleDownStabilizationSeconds": 60}

ROWS = [
    Row("idle at zero stays at zero", current=0, want=0, reason=Reason.IDLE),
    Row("one job wakes a worker from zero", ready=1, want=1, reason=Reason.SCALED_UP),
    Row(
        "below the activation threshold stays at zero",
        ready=4,
        spec={**BASE, "activationJobs": 5},
        want=0,
        reason=Reason.IDLE,
    ),
    Row(
        "at the activation threshold wakes",
        ready=5,
        spec={**BASE, "activationJobs": 5},
        want=1,
        reason=Reason.SCALED_UP,
    ),
    Row(
        "in-flight jobs count toward activation",
        ready=2,
        in_flight=3,
        spec={**BASE, "activationJobs": 5},
        want=1,
        reason=Reason.SCALED_UP,
    ),
    Row("scale-up is one step to the full count", ready=99, want=10, reason=Reason.SCALED_UP),
    Row("scale-up from 1 to 8 in one step", ready=38, current=1, want=8, reason=Reason.SCALED_UP),
    Row(
        "in-flight counts as demand",
        ready=0,
        in_flight=20,
        current=1,
        want=4,
        reason=Reason.SCALED_UP,
    ),
    Row("at max holds with AtMax", ready=500, current=10, want=10, reason=Reason.AT_MAX),
    Row("steady state holds", ready=10, current=2, want=2, reason=Reason.HOLDING),
    Row(
        "minReplicas is a floor even when idle",
        spec={**BASE, "minReplicas": 2},
        current=0,
        want=2,
        reason=Reason.SCALED_UP,
    ),
    Row(
        "lowered max scales down at once",
        ready=100,
        current=8,
        spec={**BASE, "maxReplicas": 3},
        history=((5, 8),),
        want=3,
        reason=Reason.SCALED_DOWN,
    ),
    Row(
        "no history: scale down to the recommendation",
        ready=10,
        current=6,
        want=2,
        reason=Reason.SCALED_DOWN,
    ),
    Row(
        "a higher recommendation in the window holds",
        ready=10,
        current=6,
        history=((30, 6),),
        want=6,
        reason=Reason.STABILIZING,
    ),
    Row(
        "down only to the highest recommendation in the window",
        ready=10,
        current=6,
        history=((50, 6), (20, 4), (5, 3)),
        want=6,
        reason=Reason.STABILIZING,
    ),
    Row(
        "partial scale-down to the window's highest",
        ready=5,
        current=6,
        history=((70, 6), (20, 4)),
        want=4,
        reason=Reason.SCALED_DOWN,
    ),
    Row(
        "recommendations older than the window are forgotten",
        ready=10,
        current=6,
        history=((61, 6),),
        want=2,
        reason=Reason.SCALED_DOWN,
    ),
    Row(
        "empty queue keeps one worker during the cooldown",
        current=1,
        empty_for=30,
        want=1,
        reason=Reason.COOLING_DOWN,
    ),
    Row(
        "empty queue goes to one, not zero, before the cooldown ends",
        current=4,
        empty_for=90,
        want=1,
        reason=Reason.SCALED_DOWN,
    ),
    Row(
        "empty for the whole cooldown goes to zero",
        current=3,
        empty_for=120,
        want=0,
        reason=Reason.SCALED_DOWN,
    ),
    Row(
        "cooldown zero scales to zero at once",
        current=2,
        spec={**BASE, "cooldownSeconds": 0, "scaleDownStabilizationSeconds": 0},
        empty_for=0,
        want=0,
        reason=Reason.SCALED_DOWN,
    ),
    Row(
        "busy workers are a floor",
        ready=0,
        in_flight=4,
        busy=4,
        current=5,
        want=4,
        reason=Reason.SCALED_DOWN,
    ),
    Row(
        "busy workers hold the current count",
        ready=0,
        in_flight=4,
        busy=5,
        current=5,
        target=10,
        want=5,
        reason=Reason.BUSY_WORKERS,
    ),
    Row(
        "busy workers never add replicas",
        in_flight=30,
        busy=7,
        current=2,
        target=10,
        want=3,
        reason=Reason.SCALED_UP,
    ),
    Row(
        "busy workers above a lowered max are kept until they finish",
        in_flight=6,
        busy=6,
        current=6,
        spec={**BASE, "maxReplicas": 2},
        want=6,
        reason=Reason.BUSY_WORKERS,
    ),
    Row(
        "paused holds",
        ready=100,
        current=1,
        spec={**BASE, "paused": True},
        want=1,
        reason=Reason.PAUSED,
    ),
    Row(
        "paused holds at zero",
        ready=100,
        current=0,
        spec={**BASE, "paused": True},
        want=0,
        reason=Reason.PAUSED,
    ),
    Row(
        "redis unreachable holds",
        current=4,
        redis_ok=False,
        want=4,
        reason=Reason.REDIS_UNREACHABLE,
    ),
    Row(
        "redis unreachable is never an empty queue",
        current=3,
        redis_ok=False,
        empty_for=1e9,
        want=3,
        reason=Reason.REDIS_UNREACHABLE,
    ),
]


def _inputs(row: Row) -> ScalingInputs:
    return ScalingInputs(
        ready=row.ready,
        in_flight=row.in_flight,
        busy_workers=row.busy,
        current_replicas=row.current,
        spec=AutoscalingSpec.model_validate(row.spec if row.spec is not None else BASE),
        target_per_worker=row.target,
        recommendations=tuple(Recommendation(NOW - ago, n) for ago, n in row.history),
        last_active_at=NOW - row.empty_for,
        now=NOW,
        redis_ok=row.redis_ok,
        redis_error="" if row.redis_ok else "Error 111 connecting to 127.0.0.1:6390.",
    )


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_decide(row: Row) -> None:
    decision = decide(_inputs(row))
    assert (decision.replicas, decision.reason) == (row.want, row.reason), decision.message
    assert decision.current == row.current
    assert decision.changed is (row.want != row.current)


def test_messages_carry_the_numbers() -> None:
    decision = decide(_inputs(Row("x", ready=38, in_flight=2, current=1, busy=1)))
    assert decision.message == (
        "scaled up from 1 to 8; ready=38 inFlight=2 busyWorkers=1 target=5/worker -> "
        "desired=8 (min 0, max 10), current=1"
    )


def test_redis_unreachable_message_carries_the_error() -> None:
    decision = decide(_inputs(Row("x", current=2, redis_ok=False)))
    assert decision.message == (
        "queue unreadable, holding 2 replicas: Error 111 connecting to 127.0.0.1:6390."
    )
    assert decision.recommendation is None


def test_cooldown_message_says_how_long_the_queue_was_empty() -> None:
    decision = decide(_inputs(Row("x", current=1, empty_for=30)))
    assert decision.message.startswith(
        "holding 1: queue empty for 30s of the 120s cooldown before scaling to zero"
    )


@pytest.mark.parametrize(
    ("ready", "in_flight", "target", "want"),
    [(0, 0, 5, 0), (1, 0, 5, 1), (5, 0, 5, 1), (6, 0, 5, 2), (3, 3, 5, 2), (100, 0, 1, 100)],
)
def test_desired_replicas_is_the_ceiling(
    ready: int, in_flight: int, target: int, want: int
) -> None:
    assert desired_replicas(ready, in_flight, target) == want


def test_remember_prunes_the_window_and_appends() -> None:
    history = (Recommendation(NOW - 100, 9), Recommendation(NOW - 10, 4))
    decision = Decision(3, Reason.SCALED_DOWN, "", recommendation=3, current=4)
    assert remember(history, decision, NOW, 60) == (
        Recommendation(NOW - 10, 4),
        Recommendation(NOW, 3),
    )
    held = Decision(3, Reason.REDIS_UNREACHABLE, "", recommendation=None, current=3)
    assert remember(history, held, NOW, 60) == (Recommendation(NOW - 10, 4),)


def test_last_active_moves_only_while_the_queue_has_jobs() -> None:
    assert last_active(5.0, 0, 0, 9.0) == 5.0
    assert last_active(5.0, 1, 0, 9.0) == 9.0
    assert last_active(5.0, 0, 1, 9.0) == 9.0


# ---------------------------------------------------------------------------------------------
# Idle-first scale-down: pod deletion costs


@dataclass(frozen=True)
class W:
    id: str
    busy: bool
    in_flight: int


PODS = ["emails-worker-7d9f-abcde", "emails-worker-7d9f-fghij", "emails-worker-7d9f-klmno"]


def test_idle_pods_cost_least_busy_pods_most() -> None:
    workers = [
        W("emails-worker-7d9f-abcde", busy=False, in_flight=0),
        W("emails-worker-7d9f-fghij", busy=True, in_flight=3),
    ]
    assert pod_deletion_costs(PODS, workers) == {
        "emails-worker-7d9f-abcde": COST_IDLE,
        "emails-worker-7d9f-fghij": COST_BUSY + 3,
        "emails-worker-7d9f-klmno": COST_UNKNOWN,
    }
    assert COST_IDLE < COST_UNKNOWN < COST_BUSY


def test_worker_ids_with_a_suffix_map_to_their_pod() -> None:
    workers = [
        W("emails-worker-7d9f-abcde:1", busy=False, in_flight=0),
        W("emails-worker-7d9f-abcde:2", busy=False, in_flight=2),
        W("some-other-host-1", busy=True, in_flight=1),
    ]
    costs = pod_deletion_costs(PODS, workers)
    assert costs["emails-worker-7d9f-abcde"] == COST_BUSY + 2
    assert costs["emails-worker-7d9f-fghij"] == COST_UNKNOWN


def test_longest_pod_name_wins() -> None:
    assert pod_for_worker("a-b-1", ["a-b", "a-b-1"]) == "a-b-1"
    assert pod_for_worker("a-b-1-x", ["a-b", "a-b-1"]) == "a-b-1"
    assert pod_for_worker("a-bc", ["a-b"]) is None


def test_busy_flag_without_in_flight_still_counts_as_busy() -> None:
    workers = [W(PODS[0], busy=True, in_flight=0), W(PODS[1], busy=False, in_flight=0)]
    assert pod_deletion_costs(PODS, workers)[PODS[0]] == COST_BUSY
    assert count_busy(workers) == 1


def test_only_changed_annotations_are_written() -> None:
    desired = {"a": COST_IDLE, "b": COST_BUSY, "c": COST_UNKNOWN, "gone": COST_IDLE}
    current: dict[str, str | None] = {"a": str(COST_IDLE), "b": str(COST_IDLE), "c": None}
    assert deletion_cost_changes(current, desired) == {"b": COST_BUSY}
