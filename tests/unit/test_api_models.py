"""Input and output models: what is accepted, what is refused with which field, conversions."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jobqueue_api import constants as c
from jobqueue_api.models import (
    EnqueueRequest,
    JobBatchCreate,
    JobCreate,
    JobPublic,
    TaskPublic,
    check_json_value,
)
from pydantic import ValidationError

from jobqueue import Job, JobSpec, JobStatus, Priority


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [None, 1, 1.5, "x", True, {"to": "a@b.c", "n": [1, 2, {"k": None}]}, _nested(c.MAX_JSON_DEPTH)],
)
def test_plain_json_is_accepted(value: Any) -> None:
    assert check_json_value(value) is value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"raw", "must be JSON"),
        ({"a": {1, 2}}, "must be JSON"),
        (_nested(c.MAX_JSON_DEPTH + 1), "nested deeper than"),
        ({"n": 2**70}, "cannot be stored as JSON"),
        (["\ud800"], "cannot be stored as JSON"),
    ],
)
def test_values_redis_cannot_hold_are_refused(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_json_value(value)


def test_job_create_defaults_and_spec() -> None:
    job = JobCreate.model_validate({"type": "email", "payload": {"to": "x"}})
    spec = job.to_spec()
    assert spec == JobSpec(type="email", payload={"to": "x"})
    assert (spec.priority, spec.delay, spec.max_retries, spec.idempotency_key) == (
        Priority.NORMAL,
        0.0,
        3,
        None,
    )


def test_job_create_carries_every_option_to_the_spec() -> None:
    job = JobCreate.model_validate(
        {
            "type": "resize",
            "payload": [1],
            "priority": "high",
            "delay_seconds": 2.5,
            "idempotency_key": "k-1",
            "max_retries": 0,
        }
    )
    assert job.to_spec() == JobSpec(
        type="resize",
        payload=[1],
        priority=Priority.HIGH,
        delay=2.5,
        idempotency_key="k-1",
        max_retries=0,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "type"),
        ({"type": ""}, "type"),
        ({"type": " padded"}, "type"),
        ({"type": "a\nb"}, "type"),
        ({"type": "x" * (c.MAX_TYPE_LENGTH + 1)}, "type"),
        ({"type": "t", "priority": "urgent"}, "priority"),
        ({"type": "t", "delay_seconds": -1}, "delay_seconds"),
        ({"type": "t", "delay_seconds": "inf"}, "delay_seconds"),
        ({"type": "t", "max_retries": 101}, "max_retries"),
        ({"type": "t", "max_retries": -1}, "max_retries"),
        ({"type": "t", "idempotency_key": ""}, "idempotency_key"),
        ({"type": "t", "payload": _nested(100)}, "payload"),
        ({"type": "t", "priorty": "high"}, "priorty"),
    ],
)
def test_job_create_names_the_field_at_fault(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        JobCreate.model_validate(body)
    assert [e["loc"][0] for e in info.value.errors()] == [field]


def test_a_batch_needs_at_least_one_job_and_valid_items() -> None:
    with pytest.raises(ValidationError):
        JobBatchCreate.model_validate({"jobs": []})
    with pytest.raises(ValidationError) as info:
        JobBatchCreate.model_validate({"jobs": [{"type": "a"}, {"type": ""}]})
    assert info.value.errors()[0]["loc"][:3] == ("jobs", 1, "type")


def test_enqueue_request_defaults_to_the_default_type() -> None:
    assert EnqueueRequest().to_spec() == JobSpec(type=c.DEFAULT_JOB_TYPE, payload=None)


_TYPE_RE = re.compile(c.TYPE_PATTERN)


@given(st.text(max_size=c.MAX_TYPE_LENGTH))
def test_every_type_the_api_accepts_the_protocol_accepts(text: str) -> None:
    """No type string passes validation here and then fails in JobSpec (which would be a 500)."""
    if _TYPE_RE.fullmatch(text) and len(text) >= 1:
        JobSpec(type=text)


@given(st.from_regex(c.JOB_ID_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 200))
def test_every_job_id_the_api_accepts_the_protocol_accepts(job_id: str) -> None:
    JobSpec(type="t", job_id=job_id)


def test_job_public_converts_epoch_seconds_to_utc_datetimes() -> None:
    job = Job(
        id="abc",
        type="email",
        payload={"a": 1},
        priority=Priority.LOW,
        status=JobStatus.COMPLETED,
        attempts=1,
        max_retries=3,
        progress=100,
        result={"ok": True},
        error=None,
        created_at=0.0,
        started_at=1.5,
        finished_at=2.0,
        run_at=None,
    )
    public = JobPublic.of(job)
    doc = public.model_dump(mode="json")
    assert doc["created_at"] == "1970-01-01T00:00:00Z"
    assert doc["started_at"] == "1970-01-01T00:00:01.500000Z"
    assert doc["run_at"] is None
    assert doc["status"] == "completed" and doc["priority"] == "low"
    task = TaskPublic.of(job).model_dump(mode="json")
    assert task == {"id": "abc", "type": "email", "payload": {"a": 1}, "status": "completed"}


@pytest.mark.parametrize("field", ["max_retries", "delay_seconds"])
def test_booleans_are_not_numbers(field: str) -> None:
    with pytest.raises(ValidationError) as info:
        JobCreate.model_validate({"type": "t", field: True})
    assert "not a boolean" in info.value.errors()[0]["msg"]


def test_an_integral_float_is_an_integer_as_in_json_schema() -> None:
    assert JobCreate.model_validate({"type": "t", "max_retries": 5.0}).max_retries == 5
    with pytest.raises(ValidationError):
        JobCreate.model_validate({"type": "t", "max_retries": 5.5})
