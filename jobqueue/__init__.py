"""The Redis queue protocol shared by the API, the worker and the operator."""

from __future__ import annotations

from jobqueue.backoff import backoff_ceiling, backoff_delay, reconnect_delay
from jobqueue.connection import (
    connect,
    connect_any,
    connect_cluster,
    connect_sentinel,
    is_cluster_url,
    is_sentinel_url,
    redact_url,
    url_secrets,
)
from jobqueue.errors import ConfigError, QueueError
from jobqueue.keys import QueueKeys
from jobqueue.models import (
    Claimed,
    EnqueueResult,
    FailOutcome,
    Job,
    JobSpec,
    JobStatus,
    Priority,
    QueueStats,
    WorkerInfo,
)
from jobqueue.queue import AnyRedis, Queue

__all__ = [
    "AnyRedis",
    "Claimed",
    "ConfigError",
    "EnqueueResult",
    "FailOutcome",
    "Job",
    "JobSpec",
    "JobStatus",
    "Priority",
    "Queue",
    "QueueError",
    "QueueKeys",
    "QueueStats",
    "WorkerInfo",
    "backoff_ceiling",
    "backoff_delay",
    "connect",
    "connect_any",
    "connect_cluster",
    "connect_sentinel",
    "is_cluster_url",
    "is_sentinel_url",
    "reconnect_delay",
    "redact_url",
    "url_secrets",
]
