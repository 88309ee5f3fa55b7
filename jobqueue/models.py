"""The protocol's value types: enums, the job spec a producer sends and the records read back."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from jobqueue.constants import (
    DEFAULT_MAX_RETRIES,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_JOB_ID_LENGTH,
    MAX_RETRIES_LIMIT,
    MAX_TYPE_LENGTH,
)


class Priority(str, Enum):  # noqa: UP042 (the contract's type; str() unchanged)
    """Job priority; claim drains HIGH before NORMAL before LOW."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class JobStatus(str, Enum):  # noqa: UP042 (the contract's type; str() unchanged)
    """Life-cycle state of a job record."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"  # an attempt failed, a retry is scheduled (backoff)
    DEAD = "dead"  # in the dead-letter queue
    CANCELLED = "cancelled"


class FailOutcome(str, Enum):  # noqa: UP042 (the contract's type; str() unchanged)
    """What ``Queue.fail`` did with the job."""

    RETRYING = "retrying"
    DEAD = "dead"
    STALE = "stale"


# Priority <-> the small integer stored in Redis (also the index of its ready list).
PRIORITIES: tuple[Priority, Priority, Priority] = (Priority.HIGH, Priority.NORMAL, Priority.LOW)
PRIORITY_INDEX: dict[Priority, int] = {p: i for i, p in enumerate(PRIORITIES)}

# Job ids travel in URLs, log lines and pub/sub JSON, so a caller-chosen id is restricted
# to a safe alphabet (generated ids, 32 hex digits, always match).
_JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")


def new_job_ids(count: int) -> list[str]:
    """``count`` fresh job ids, each 128 bits from the OS's CSPRNG as 32 hex digits (what
    ``uuid4().hex`` looks like, without its version bits), with one ``os.urandom`` call for
    them all: a UUID object per id cost more than the rest of an id's enqueue arguments."""
    raw = os.urandom(16 * count).hex()
    return [raw[i : i + 32] for i in range(0, 32 * count, 32)]


def validate_job_id(job_id: str) -> str:
    """Return ``job_id`` if it is a valid job id, else raise ValueError."""
    if not isinstance(job_id, str) or not job_id:
        raise ValueError("job_id must be a non-empty string")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise ValueError(f"job_id is longer than {MAX_JOB_ID_LENGTH} characters")
    if _JOB_ID_RE.fullmatch(job_id) is None:
        raise ValueError(
            "job_id may only contain letters, digits and '._:-', and must start with a "
            "letter or digit"
        )
    return job_id


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a producer enqueues. Validated on construction (ValueError with a clear message)."""

    type: str
    payload: Any = None  # JSON-serialisable
    priority: Priority = Priority.NORMAL
    delay: float = 0.0  # seconds
    idempotency_key: str | None = None
    max_retries: int = DEFAULT_MAX_RETRIES  # attempts allowed = 1 + max_retries
    job_id: str | None = None  # default: new_job_ids()

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type.strip():
            raise ValueError("type must be a non-empty string")
        if len(self.type) > MAX_TYPE_LENGTH:
            raise ValueError(f"type is longer than {MAX_TYPE_LENGTH} characters")
        if not isinstance(self.priority, Priority):
            try:
                object.__setattr__(self, "priority", Priority(self.priority))
            except ValueError:
                allowed = ", ".join(p.value for p in Priority)
                raise ValueError(
                    f"priority must be one of {allowed}, not {self.priority!r}"
                ) from None
        delay = self.delay
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise ValueError("delay must be a number of seconds")
        if not math.isfinite(delay) or delay < 0:
            raise ValueError("delay must be a finite number of seconds >= 0")
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise ValueError("max_retries must be an integer")
        if not 0 <= retries <= MAX_RETRIES_LIMIT:
            raise ValueError(f"max_retries must be between 0 and {MAX_RETRIES_LIMIT}")
        key = self.idempotency_key
        if key is not None:
            if not isinstance(key, str) or not key:
                raise ValueError("idempotency_key must be a non-empty string or None")
            if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
                raise ValueError(
                    f"idempotency_key is longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
                )
        if self.job_id is not None:
            validate_job_id(self.job_id)


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """Outcome of one enqueue: ``created`` is False when the idempotency key or id existed."""

    job_id: str
    created: bool


@dataclass(frozen=True, slots=True)
class Job:
    """The full record of a job (``Queue.get``, ``Queue.dead_jobs``); times in epoch seconds."""

    id: str
    type: str
    payload: Any
    priority: Priority
    status: JobStatus
    attempts: int
    max_retries: int
    progress: int
    result: Any
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    run_at: float | None  # epoch seconds when delayed / retry due


@dataclass(frozen=True, slots=True)
class Claimed:
    """One claimed job, as a worker gets it; ``token`` fences every later call on it."""

    id: str
    token: int
    type: str
    payload: Any
    attempt: int
    max_retries: int
    priority: Priority


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A point-in-time view of one queue, read in one round trip."""

    ready: int  # waiting now, including delayed jobs already due
    in_flight: int  # claimed, lease held (busy workers never look idle)
    delayed: int  # not yet due
    dead: int
    oldest_ready_age: float  # seconds, 0.0 when nothing waits
    completed_total: int
    failed_total: int
    enqueued_total: int
    # the ready lists alone by priority (high, normal, low); due delayed jobs not promoted
    # yet count in ``ready`` only
    ready_by_priority: tuple[int, int, int] = (0, 0, 0)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker's last heartbeat."""

    id: str
    busy: bool
    in_flight: int
    last_seen: float
