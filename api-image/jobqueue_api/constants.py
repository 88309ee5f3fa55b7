"""Every constant of the job API in one place: defaults, limits, names and header values."""

from __future__ import annotations

from typing import Final

SERVICE_NAME: Final = "jobqueue-api"

# Settings defaults (env names live on the Settings fields).
DEFAULT_HOST: Final = "0.0.0.0"  # noqa: S104 - a container service listens on every interface
DEFAULT_MAX_PAYLOAD_BYTES: Final = 1024 * 1024
DEFAULT_MAX_BATCH: Final = 1000
DEFAULT_MAX_BATCH_BYTES: Final = 16 * 1024 * 1024
DEFAULT_LOG_LEVEL: Final = "INFO"
DEFAULT_REDIS_CONNECT_TIMEOUT: Final = 2.0
DEFAULT_REDIS_SOCKET_TIMEOUT: Final = 5.0
DEFAULT_REDIS_MAX_CONNECTIONS: Final = 64

# Job fields.
DEFAULT_JOB_TYPE: Final = "default"  # POST /enqueue without a type (seed 000)
MAX_TYPE_LENGTH: Final = 200
# A letter, digit or underscore first (never blank), then anything but control characters.
TYPE_PATTERN: Final = r"^[A-Za-z0-9_][^\x00-\x1f\x7f]*$"
MAX_JOB_ID_LENGTH: Final = 200
JOB_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"  # the protocol's job id alphabet
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 200
MAX_RETRIES_LIMIT: Final = 100
MAX_DELAY_SECONDS: Final = 365 * 24 * 3600.0
MAX_JSON_DEPTH: Final = 64  # deeper payloads are refused (422) before they reach Redis

# Micro-batching of concurrent single enqueues.
COALESCE_MAX_JOBS: Final = 500  # most jobs in one coalesced enqueue_many
COALESCE_MAX_IN_FLIGHT: Final = 2

# Dead-letter listing.
DLQ_DEFAULT_LIMIT: Final = 100
DLQ_MAX_LIMIT: Final = 1000

# HTTP details.
RETRY_AFTER_BACKPRESSURE: Final = "5"  # seconds
RETRY_AFTER_REDIS_DOWN: Final = "2"
READINESS_TIMEOUT: Final = 2.0  # seconds for the PING behind /readyz
BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BATCH_PATH: Final = "/jobs:batch"
UNMATCHED_ROUTE: Final = "<unmatched>"  # metrics label for paths no route matched

BATCH_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

# Metric names.
METRIC_PREFIX: Final = "jobqueue_api"
LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

# GET /jobs: page size; the protocol bounds the jobs examined per call (jobqueue.browse).
JOBS_DEFAULT_LIMIT: Final = 50
JOBS_MAX_LIMIT: Final = 500
# GET /queues rates: counters sampled on each read, at most one sample per RATE_MIN_SPACING
# seconds, rates measured over the last RATE_WINDOW_SECONDS (longer while samples are sparse,
# up to RATE_MAX_AGE_SECONDS; older samples are dropped).
RATE_WINDOW_SECONDS: Final = 60.0
RATE_MIN_SPACING: Final = 1.0
RATE_MAX_AGE_SECONDS: Final = 600.0
# /metrics queue gauges: exported by the one replica holding a Redis lease of this length,
# renewed on each of its scrapes (see metrics.py).
METRICS_LEASE_SECONDS: Final = 60.0
# GET /events: a comment line this often keeps proxies from closing an idle stream.
EVENTS_KEEPALIVE_SECONDS: Final = 15.0
