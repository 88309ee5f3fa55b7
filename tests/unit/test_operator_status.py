"""Status decisions: conditions, who owns which fields, and "write only when it changed"."""

from __future__ import annotations

from typing import Any

from jobqueue_operator.kubetypes import CondSpec, JobQueueRef
from jobqueue_operator.redisops import NOT_CHECKED, QueueCounts, RedisCheck
from jobqueue_operator.spec import parse_spec
from jobqueue_operator.status import (
    Problem,
    desired_status,
    merge_conditions,
    status_patch,
    transitions,
)

REF = JobQueueRef(namespace="ns", name="q", uid="u", generation=4)
OK = RedisCheck(True, "the queue is readable", QueueCounts(ready=3, in_flight=1, delayed=0, dead=2))
DOWN = RedisCheck(False, "ConnectionError: Error 111 connecting to 127.0.0.1:1")
NOW = "2026-11-24T12:00:00Z"
LATER = "2026-11-24T12:05:00Z"


def spec(autoscaling: bool = False, api: bool = True) -> Any:
    return parse_spec(
        {
            "redis": {"url": "redis://127.0.0.1:6379/0"},
            "autoscaling": {"enabled": autoscaling},
            "api": {"enabled": api},
        }
    )


def deployment(desired: int, ready: int) -> dict[str, Any]:
    return {"spec": {"replicas": desired}, "status": {"replicas": desired, "readyReplicas": ready}}


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def apply(status: dict[str, Any], patch: dict[str, Any] | None) -> dict[str, Any]:
    """A JSON merge patch on status (the API server's part, for these tests)."""
    out = dict(status)
    for key, value in (patch or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def decide(**kw: Any) -> Any:
    args: dict[str, Any] = {
        "problem": None,
        "redis": OK,
        "api": deployment(1, 1),
        "workers": deployment(2, 2),
    }
    return desired_status(REF, kw.pop("spec", spec()), **(args | kw))


def test_all_ready_gives_ready_true_and_the_counts() -> None:
    status = apply({}, status_patch({}, decide(), NOW))
    cond = conditions(status)
    assert cond["Ready"]["status"] == "True"
    assert cond["Degraded"]["status"] == "False"
    assert cond["RedisReachable"]["status"] == "True"
    assert status["observedGeneration"] == 4
    assert status["queueName"] == "ns/q"
    assert status["api"] == {"desired": 1, "replicas": 1, "ready": 1}
    assert status["workers"]["ready"] == 2
    assert "app.kubernetes.io/component=worker" in status["workers"]["selector"]
    assert status["queue"] == {
        "ready": 3,
        "inFlight": 1,
        "delayed": 0,
        "dead": 2,
        "format": "jobqueue",
    }


def test_nothing_is_written_when_nothing_changed() -> None:
    status = apply({}, status_patch({}, decide(), NOW))
    assert status_patch(status, decide(), LATER) is None


def test_last_transition_time_is_kept_unless_the_status_flips() -> None:
    status = apply({}, status_patch({}, decide(), NOW))
    not_ready = apply(status, status_patch(status, decide(workers=deployment(2, 1)), LATER))
    cond = conditions(not_ready)
    assert cond["Ready"]["status"] == "False" and cond["Ready"]["reason"] == "WorkersNotReady"
    assert cond["Ready"]["message"] == "worker pods ready: 1/2"
    assert cond["Ready"]["lastTransitionTime"] == LATER
    assert cond["Degraded"]["lastTransitionTime"] == NOW
    assert cond["RedisReachable"]["lastTransitionTime"] == NOW


def test_a_problem_makes_it_degraded_and_not_ready_with_the_same_words() -> None:
    problem = Problem("SourceSecretMissing", "Secret ns/creds (spec.redis.urlFrom) not found")
    status = apply({}, status_patch({}, decide(problem=problem, redis=NOT_CHECKED), NOW))
    cond = conditions(status)
    assert cond["Degraded"] == {
        "type": "Degraded",
        "status": "True",
        "reason": "SourceSecretMissing",
        "message": "Secret ns/creds (spec.redis.urlFrom) not found",
        "lastTransitionTime": NOW,
    }
    assert cond["Ready"]["status"] == "False" and cond["Ready"]["reason"] == "SourceSecretMissing"
    assert cond["RedisReachable"]["status"] == "Unknown"


def test_unreachable_redis_is_reported_and_keeps_the_last_queue_numbers() -> None:
    status = apply({}, status_patch({}, decide(), NOW))
    down = apply(status, status_patch(status, decide(redis=DOWN), LATER))
    cond = conditions(down)
    assert cond["RedisReachable"]["status"] == "False"
    assert cond["RedisReachable"]["message"] == DOWN.message
    assert cond["Ready"]["reason"] == "RedisUnreachable"
    assert down["queue"] == status["queue"]


def test_while_autoscaling_the_scaler_owns_redis_reachable_and_queue() -> None:
    theirs = {
        "queue": {"ready": 9, "inFlight": 9, "delayed": 0, "dead": 0},
        "desiredWorkers": 3,
        "conditions": [
            {"type": "Scaling", "status": "True", "reason": "ScaledUp", "message": "m"},
            {"type": "RedisReachable", "status": "True", "reason": "Connected", "message": "m"},
        ],
    }
    desired = decide(spec=spec(autoscaling=True))
    assert "queue" not in desired.fields
    assert {x.type for x in desired.conditions} == {"Ready", "Degraded", "Exposed"}
    status = apply(theirs, status_patch(theirs, desired, NOW))
    assert status["queue"] == theirs["queue"] and status["desiredWorkers"] == 3
    cond = conditions(status)
    assert cond["Scaling"]["reason"] == "ScaledUp"
    assert cond["RedisReachable"] == theirs["conditions"][1]
    assert [c["type"] for c in status["conditions"][:2]] == ["Scaling", "RedisReachable"]


def test_a_disabled_api_removes_its_status_and_does_not_count_for_ready() -> None:
    status = apply({}, status_patch({}, decide(), NOW))
    desired = decide(spec=spec(api=False), api=None)
    patch = status_patch(status, desired, LATER)
    assert patch is not None and patch["api"] is None
    assert conditions(apply(status, patch))["Ready"]["status"] == "True"


def test_an_unparsed_spec_reports_only_generation_and_the_problem() -> None:
    desired = desired_status(
        REF, None, problem=Problem("InvalidSpec", "bad"), redis=NOT_CHECKED, api=None, workers=None
    )
    assert desired.fields == {"observedGeneration": 4}
    assert {c.type: c.status for c in desired.conditions} == {"Ready": "False", "Degraded": "True"}


def test_merge_conditions_keeps_other_types_and_appends_new_ones() -> None:
    existing = [{"type": "Scaling", "status": "True", "reason": "r", "message": "m"}]
    merged = merge_conditions(existing, [CondSpec("Ready", "True", "Ready", "ok")], NOW)
    assert merged[0] == existing[0]
    assert merged[1]["type"] == "Ready" and merged[1]["lastTransitionTime"] == NOW


def test_transitions_are_the_conditions_whose_status_or_reason_changes() -> None:
    status = apply({}, status_patch({}, decide(), NOW))
    changed = transitions(status, decide(redis=DOWN))
    assert {c.type for c in changed} == {"Ready", "RedisReachable"}
    assert transitions(status, decide()) == []
