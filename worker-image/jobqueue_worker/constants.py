"""Every constant of the worker runtime in one place: defaults, limits, exit codes, metric names."""

from __future__ import annotations

from typing import Final

from jobqueue import contract

SERVICE_NAME: Final = "jobqueue-worker"

# Exit codes of `python -m jobqueue_worker` (documented in the package docstring).
EXIT_OK: Final = 0  # clean stop, including after SIGTERM/SIGINT with the drain done
EXIT_ERROR: Final = 1  # an unexpected crash (a bug, or the health port already taken)
EXIT_CONFIG: Final = 78  # sysexits EX_CONFIG: bad environment, or no usable TASKS_MODULE

# Settings defaults (env names live on the Settings fields; those shared with the operator,
# and their defaults, in jobqueue.contract).
DEFAULT_REDIS_URL: Final = "redis://localhost:6379/0"
DEFAULT_CONCURRENCY: Final = contract.DEFAULT_WORKER_CONCURRENCY
MAX_CONCURRENCY: Final = contract.MAX_WORKER_CONCURRENCY
DEFAULT_TASKS_MODULE: Final = "examples.tasks"
DEFAULT_JOB_TIMEOUT: Final = float(contract.DEFAULT_JOB_TIMEOUT_SECONDS)  # 0: no timeout
DEFAULT_DRAIN_TIMEOUT: Final = float(contract.DEFAULT_DRAIN_TIMEOUT_SECONDS)
DEFAULT_HEALTH_HOST: Final = "0.0.0.0"  # noqa: S104 - the kubelet probes the pod IP
DEFAULT_LEASE_SECONDS: Final = 30.0
DEFAULT_LIVENESS_TIMEOUT: Final = 30.0  # /healthz fails once the loop is silent this long
DEFAULT_HEARTBEAT_INTERVAL: Final = 5.0  # worker heartbeat in Redis; TTL = 3 x this
DEFAULT_POLL_INTERVAL: Final = 1.0  # longest idle wait before claiming again
DEFAULT_LOG_LEVEL: Final = "INFO"
DEFAULT_JOB_LOG_LEVEL: Final = "INFO"  # level of the per-job start/finish lines
DEFAULT_REDIS_CONNECT_TIMEOUT: Final = 5.0
DEFAULT_REDIS_SOCKET_TIMEOUT: Final = 10.0

# Claim loop.
CLAIM_BATCH_MAX: Final = 500  # most jobs asked for in one claim round trip
# Prefetch (WORKER_PREFETCH): jobs claimed ahead of a free slot, by default this many times
# the concurrency; the buffer holds about PREFETCH_HORIZON seconds of work at the rate jobs
# have been ending (measured over RATE_WINDOW seconds), so slow jobs are not hoarded.
DEFAULT_PREFETCH_FACTOR: Final = 8
PREFETCH_HORIZON: Final = 0.05
RATE_WINDOW: Final = 0.25
# Acks: a batch smaller than ACK_BATCH waits up to ACK_LINGER seconds for more to finish.
ACK_BATCH: Final = 64
ACK_LINGER: Final = 0.001
HEARTBEAT_TTL_FACTOR: Final = 3.0
FINAL_HEARTBEAT_TTL: Final = 1.0  # the "gone" heartbeat written on the way out
REDIS_RETRY_MIN: Final = 0.2  # backoff after a failed round trip, seconds
REDIS_RETRY_MAX: Final = 5.0
TIMEOUT_CHECK_MIN: Final = 0.05  # the timeout sweep runs every timeout/10 within these bounds
TIMEOUT_CHECK_MAX: Final = 1.0
SHUTDOWN_FLUSH_TIMEOUT: Final = 5.0  # seconds to report finished jobs after the drain
CANCEL_GRACE: Final = 1.0  # seconds cancelled async tasks get to run their cleanup
PROGRESS_SYNC_TIMEOUT: Final = 5.0  # a sync task's progress call waits at most this long
MAX_ERROR_CHARS: Final = 4000  # error text stored on a failed job (message + traceback tail)

# Health server.
READINESS_TIMEOUT: Final = 2.0  # seconds for the PING behind /readyz

# Metrics.
METRIC_PREFIX: Final = "jobqueue_worker"
UNKNOWN_TYPE_LABEL: Final = "_unknown_"  # job types nobody registered share one label
DURATION_BUCKETS: Final = (
    0.001,
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
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
)

# Outcomes (the `outcome` label of jobs_processed_total and the job log lines).
OUTCOME_COMPLETED: Final = "completed"  # acknowledged with its result
OUTCOME_FAILED: Final = "failed"  # the task raised (or returned a non-JSON value)
OUTCOME_TIMED_OUT: Final = "timed_out"  # ran past JOB_TIMEOUT_SECONDS
OUTCOME_UNKNOWN_TASK: Final = "unknown_task"  # no task registered under its type
OUTCOME_LEASE_LOST: Final = "lease_lost"  # our lease expired; another worker owns it now
OUTCOME_RELEASED: Final = "released"  # handed back at shutdown, attempt not counted
OUTCOME_CANCELLED: Final = "cancelled"  # a user cancelled it while it ran (or was prefetched)
