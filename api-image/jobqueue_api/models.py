"""Request (input) and response (output) models of the HTTP API, kept separate on purpose."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from jobqueue import EnqueueResult, Job, JobSpec, JobStatus, Priority, QueueStats, WorkerInfo
from jobqueue_api import constants as c

_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _not_json(value: Any) -> ValueError:
    return ValueError(
        f"must be JSON (object, array, string, number, boolean or null), not {type(value).__name__}"
    )


# NaN and Infinity are not JSON (RFC 8259), yet the body parser reads them (and 1e400 as
# inf); orjson would then store them as null, silently changing the job. Refused instead.
_NOT_FINITE = "must not contain NaN or Infinity (not JSON numbers)"


def _check_children(container: dict[Any, Any] | list[Any], levels_left: int) -> None:
    children = container.values() if isinstance(container, dict) else container
    for child in children:
        kind = type(child)
        if kind in _JSON_SCALARS:
            if kind is float and not math.isfinite(child):
                raise ValueError(_NOT_FINITE)
            continue
        if kind is dict or kind is list or isinstance(child, dict | list):
            if levels_left == 0:
                raise ValueError(f"is nested deeper than {c.MAX_JSON_DEPTH} levels")
            _check_children(child, levels_left - 1)
        elif not isinstance(child, str | int | float):
            raise _not_json(child)


def check_json_value(value: Any) -> Any:
    """Return `value` if Redis can store it and clients can read it back, else ValueError.

    Refuses what a parsed body can carry past the JSON parser but not through the queue:
    raw bytes (a body sent without a JSON content type), nesting deeper than MAX_JSON_DEPTH,
    integers beyond 64 bits and lone UTF-16 surrogates (both unencodable by orjson, which
    the protocol encodes payloads with), and NaN/Infinity (orjson would store them as null).
    On the hot path: scalars cost one set lookup.
    """
    if isinstance(value, dict | list):
        _check_children(value, c.MAX_JSON_DEPTH - 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(_NOT_FINITE)
    elif type(value) not in _JSON_SCALARS and not isinstance(value, str | int | float):
        raise _not_json(value)
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"cannot be stored as JSON: {exc}") from None
    return value


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


JsonValue = Annotated[Any, AfterValidator(check_json_value)]
# JSON numbers as JSON Schema reads them: 3.0 is an integer; true and false are not numbers.
Integer = Annotated[int, BeforeValidator(_not_a_bool)]
Number = Annotated[float, BeforeValidator(_not_a_bool)]
JobType = Annotated[
    str,
    StringConstraints(min_length=1, max_length=c.MAX_TYPE_LENGTH, pattern=c.TYPE_PATTERN),
]
JobId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=c.MAX_JOB_ID_LENGTH, pattern=c.JOB_ID_PATTERN),
]
IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=c.MAX_IDEMPOTENCY_KEY_LENGTH),
]


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


# ---- input models ---------------------------------------------------------------------------


class JobCreate(BaseModel):
    """A job to enqueue (POST /jobs, and each item of POST /jobs:batch)."""

    model_config = ConfigDict(extra="forbid")

    type: JobType = Field(description="Task name a worker has registered, e.g. `email`.")
    payload: JsonValue = Field(default=None, description="Any JSON value, handed to the task.")
    priority: Priority = Priority.NORMAL
    delay_seconds: Number = Field(
        default=0.0, ge=0, le=c.MAX_DELAY_SECONDS, allow_inf_nan=False, description="Run no sooner."
    )
    idempotency_key: IdempotencyKey | None = Field(
        default=None, description="Same key, same job: a repeat returns the first job's id."
    )
    max_retries: Integer = Field(
        default=3,
        ge=0,
        le=c.MAX_RETRIES_LIMIT,
        description="Retries after the first attempt before the job goes to the dead-letter queue.",
    )

    def to_spec(self) -> JobSpec:
        return JobSpec(
            type=self.type,
            payload=self.payload,
            priority=self.priority,
            delay=self.delay_seconds,
            idempotency_key=self.idempotency_key,
            max_retries=self.max_retries,
        )


class JobBatchCreate(BaseModel):
    """Many jobs in one request, enqueued in one Redis round trip (POST /jobs:batch)."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobCreate] = Field(min_length=1, description="At most MAX_BATCH jobs.")


class EnqueueRequest(BaseModel):
    """The optional body of the seed-compatible POST /enqueue."""

    model_config = ConfigDict(extra="forbid")

    type: JobType = c.DEFAULT_JOB_TYPE
    payload: JsonValue = None

    def to_spec(self) -> JobSpec:
        return JobSpec(type=self.type, payload=self.payload)


# ---- output models --------------------------------------------------------------------------


class EnqueueAccepted(BaseModel):
    """Seed 000's answer to POST /enqueue."""

    job_id: str


class JobAccepted(BaseModel):
    """Answer to POST /jobs: the job's id; created is false when the idempotency key hit."""

    job_id: str
    created: bool

    @classmethod
    def of(cls, result: EnqueueResult) -> JobAccepted:
        return cls(job_id=result.job_id, created=result.created)


class BatchAccepted(BaseModel):
    """Answer to POST /jobs:batch: ids and created flags in request order."""

    job_ids: list[str]
    created: list[bool]

    @classmethod
    def of(cls, results: list[EnqueueResult]) -> BatchAccepted:
        return cls(job_ids=[r.job_id for r in results], created=[r.created for r in results])


class JobPublic(BaseModel):
    """The full job record as clients see it."""

    id: str
    type: str
    payload: Any
    priority: Priority
    status: JobStatus
    attempts: int
    max_retries: int
    progress: int = Field(ge=0, le=100)
    result: Any
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_at: datetime | None = Field(description="When a delayed job or a retry is due.")
    queue: str | None = Field(
        default=None, description="The queue the job is in (listings name it; else null)."
    )

    @classmethod
    def of(cls, job: Job, queue: str | None = None) -> JobPublic:
        return cls(
            queue=queue,
            id=job.id,
            type=job.type,
            payload=job.payload,
            priority=job.priority,
            status=job.status,
            attempts=job.attempts,
            max_retries=job.max_retries,
            progress=job.progress,
            result=job.result,
            error=job.error,
            created_at=datetime.fromtimestamp(job.created_at, UTC),
            started_at=_ts(job.started_at),
            finished_at=_ts(job.finished_at),
            run_at=_ts(job.run_at),
        )


class TaskPublic(BaseModel):
    """Seed 001's task shape: POST /tasks and GET /tasks/{id}."""

    id: str
    type: str
    payload: Any
    status: JobStatus

    @classmethod
    def of(cls, job: Job) -> TaskPublic:
        return cls(id=job.id, type=job.type, payload=job.payload, status=job.status)


class DeadJobsPage(BaseModel):
    """One page of the dead-letter queue, oldest first."""

    jobs: list[JobPublic]
    offset: int
    limit: int
    total: int = Field(description="Jobs in the dead-letter queue now.")


class RetriedCount(BaseModel):
    retried: int


class PurgedCount(BaseModel):
    purged: int


class StatsPublic(BaseModel):
    """Queue depth and counters (GET /stats)."""

    queue: str
    ready: int = Field(description="Waiting now, including delayed jobs already due.")
    in_flight: int = Field(description="Claimed by a worker, lease held.")
    delayed: int
    dead: int
    oldest_ready_age_seconds: float
    enqueued_total: int
    completed_total: int
    failed_total: int

    @classmethod
    def of(cls, name: str, stats: QueueStats) -> StatsPublic:
        return cls(
            queue=name,
            ready=stats.ready,
            in_flight=stats.in_flight,
            delayed=stats.delayed,
            dead=stats.dead,
            oldest_ready_age_seconds=stats.oldest_ready_age,
            enqueued_total=stats.enqueued_total,
            completed_total=stats.completed_total,
            failed_total=stats.failed_total,
        )


class AllStatsPublic(StatsPublic):
    """GET /stats: the sums over every queue of the JobQueue (oldest age: the largest), with
    ``queue`` naming the default queue, then each queue on its own."""

    queues: list[StatsPublic]

    @classmethod
    def of_all(cls, named: list[tuple[str, QueueStats]]) -> AllStatsPublic:
        each = [StatsPublic.of(name, stats) for name, stats in named]
        return cls(
            queue=each[0].queue,
            ready=sum(s.ready for s in each),
            in_flight=sum(s.in_flight for s in each),
            delayed=sum(s.delayed for s in each),
            dead=sum(s.dead for s in each),
            oldest_ready_age_seconds=max(s.oldest_ready_age_seconds for s in each),
            enqueued_total=sum(s.enqueued_total for s in each),
            completed_total=sum(s.completed_total for s in each),
            failed_total=sum(s.failed_total for s in each),
            queues=each,
        )


class JobsPage(BaseModel):
    """GET /jobs: one page; pass ``next_cursor`` back as ``cursor`` for the next one."""

    jobs: list[JobPublic]
    next_cursor: str | None = Field(
        description="Null at the end. A filtered page can be short or empty with a cursor: "
        "each call examines a bounded number of jobs."
    )


class DeletedJob(BaseModel):
    deleted: str = Field(description="The id of the job deleted.")


class WorkerPublic(BaseModel):
    """A live worker (its heartbeat has not expired)."""

    id: str
    queue: str
    pool: str | None = Field(description="Null for the default pool.")
    busy: bool
    in_flight: int = Field(description="Jobs it holds a lease on (running or prefetched).")
    last_seen: datetime

    @classmethod
    def of(cls, info: WorkerInfo, queue: str, pool: str | None) -> WorkerPublic:
        return cls(
            id=info.id,
            queue=queue,
            pool=pool,
            busy=info.busy,
            in_flight=info.in_flight,
            last_seen=datetime.fromtimestamp(info.last_seen, UTC),
        )


class WorkersPublic(BaseModel):
    workers: list[WorkerPublic]


class ReadyByPriority(BaseModel):
    high: int
    normal: int
    low: int


class QueueRates(BaseModel):
    """Per-second rates of the queue's counters over the last RATE_WINDOW_SECONDS."""

    enqueued_per_s: float
    completed_per_s: float
    failed_per_s: float = Field(description="Failed attempts (retried or dead) per second.")
    window_seconds: float = Field(
        description="The span the rates were measured over; 0 until this API process has "
        "two samples (the first read of /queues takes the first sample)."
    )


class QueuePublic(BaseModel):
    """One queue of the JobQueue: depth by state and priority, oldest age, rates."""

    name: str
    pool: str | None = Field(description="Null for the default queue.")
    ready: ReadyByPriority = Field(description="The ready lists (due delayed jobs not counted).")
    in_flight: int
    delayed: int
    dead: int
    oldest_age_seconds: float = Field(description="How long the oldest waiting job has waited.")
    rates: QueueRates


class QueuesPublic(BaseModel):
    queues: list[QueuePublic]


class HealthStatus(BaseModel):
    status: str = Field(examples=["ok"])


class ErrorDetail(BaseModel):
    """Every non-validation error: a human-readable detail."""

    detail: str


class FieldError(BaseModel):
    """One validation problem, as FastAPI reports it; `loc` leads to the field at fault."""

    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationErrors(BaseModel):
    """The 422 answer."""

    detail: list[FieldError]
