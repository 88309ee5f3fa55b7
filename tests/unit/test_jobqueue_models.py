"""JobSpec validation and the value types of the queue protocol (no I/O)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobqueue import JobSpec, JobStatus, Priority
from jobqueue.constants import MAX_IDEMPOTENCY_KEY_LENGTH, MAX_RETRIES_LIMIT, MAX_TYPE_LENGTH
from jobqueue.models import PRIORITIES, PRIORITY_INDEX, new_job_ids, validate_job_id


def test_defaults_match_the_contract() -> None:
    spec = JobSpec("email")
    assert spec.payload is None
    assert spec.priority is Priority.NORMAL
    assert spec.delay == 0.0
    assert spec.idempotency_key is None
    assert spec.max_retries == 3
    assert spec.job_id is None


def test_priority_given_as_a_string_becomes_the_enum() -> None:
    assert JobSpec("t", priority="high").priority is Priority.HIGH  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": ""}, "type must be a non-empty string"),
        ({"type": "   "}, "type must be a non-empty string"),
        ({"type": "x" * (MAX_TYPE_LENGTH + 1)}, f"longer than {MAX_TYPE_LENGTH}"),
        ({"priority": "urgent"}, "priority must be one of high, normal, low"),
        ({"delay": -1}, "delay must be a finite number of seconds >= 0"),
        ({"delay": math.inf}, "finite"),
        ({"delay": math.nan}, "finite"),
        ({"delay": "5"}, "delay must be a number"),
        ({"delay": True}, "delay must be a number"),
        ({"max_retries": -1}, f"between 0 and {MAX_RETRIES_LIMIT}"),
        ({"max_retries": MAX_RETRIES_LIMIT + 1}, f"between 0 and {MAX_RETRIES_LIMIT}"),
        ({"max_retries": 1.5}, "max_retries must be an integer"),
        ({"max_retries": True}, "max_retries must be an integer"),
        ({"idempotency_key": ""}, "idempotency_key must be a non-empty string"),
        (
            {"idempotency_key": "k" * (MAX_IDEMPOTENCY_KEY_LENGTH + 1)},
            f"longer than {MAX_IDEMPOTENCY_KEY_LENGTH}",
        ),
        ({"job_id": ""}, "job_id must be a non-empty string"),
        ({"job_id": "has space"}, "job_id may only contain"),
        ({"job_id": '"quoted"'}, "job_id may only contain"),
        ({"job_id": "-leading-dash"}, "must start with a letter or digit"),
        ({"job_id": "a" * 201}, "longer than 200"),
    ],
)
def test_invalid_spec_is_rejected_with_a_clear_message(
    kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"type": "email", **kwargs}
    with pytest.raises(ValueError, match=message):
        JobSpec(**args)  # type: ignore[arg-type]


def test_boundary_values_are_accepted() -> None:
    JobSpec("t" * MAX_TYPE_LENGTH, max_retries=0, delay=0)
    JobSpec("t", max_retries=MAX_RETRIES_LIMIT, delay=86400 * 365)
    JobSpec("t", idempotency_key="k" * MAX_IDEMPOTENCY_KEY_LENGTH, job_id="a" * 200)


@given(st.uuids())
def test_uuid_hex_ids_are_valid_job_ids(u: object) -> None:
    assert validate_job_id(u.hex) == u.hex  # type: ignore[attr-defined]


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,50}", fullmatch=True))
def test_safe_alphabet_ids_are_valid(job_id: str) -> None:
    assert JobSpec("t", job_id=job_id).job_id == job_id


@given(st.text(min_size=1, max_size=30).filter(lambda s: any(c in s for c in ' "\\\n\t{}/')))
def test_ids_with_unsafe_characters_are_rejected(job_id: str) -> None:
    with pytest.raises(ValueError):
        validate_job_id(job_id)


def test_priority_index_orders_high_first() -> None:
    assert [PRIORITY_INDEX[p] for p in PRIORITIES] == [0, 1, 2]
    assert PRIORITIES[0] is Priority.HIGH and PRIORITIES[2] is Priority.LOW


def test_status_strings_match_the_contract() -> None:
    assert {s.value for s in JobStatus} == {
        "queued",
        "processing",
        "completed",
        "failed",
        "dead",
        "cancelled",
    }


def test_specs_are_frozen() -> None:
    spec = JobSpec("t")
    with pytest.raises(AttributeError):
        spec.type = "other"  # type: ignore[misc]


def test_generated_ids_are_distinct_hex_and_valid() -> None:
    ids = new_job_ids(1000) + new_job_ids(1) + new_job_ids(1000)
    assert len(ids) == 2001 and len(set(ids)) == 2001
    for job_id in ids:
        assert len(job_id) == 32 and int(job_id, 16) >= 0
        assert validate_job_id(job_id) == job_id
    assert new_job_ids(0) == []
