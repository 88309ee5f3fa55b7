"""Every name, size and timing of the demo in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[1]

# Where the demo puts things in the cluster.
NAMESPACE: Final = "jobqueue-demo"
OPERATOR_NAMESPACE: Final = "jobqueue-system"
RELEASE: Final = "jobqueue-operator"
CHART: Final = REPO / "charts" / "jobqueue-operator"
CRD: Final = REPO / "crds" / "jobqueue.io_jobqueues.yaml"
EXAMPLE_MANAGED: Final = REPO / "examples" / "jobqueue-managed.yaml"
EXAMPLE_SECRET: Final = REPO / "examples" / "jobqueue-secret.yaml"
CRD_NAME: Final = "jobqueues.jobqueue.io"
FIELD_MANAGER: Final = "jobqueue-demo"
OPERATOR_COMPONENT: Final = "jobqueue-operator"  # source.component of the operator's Events

# What the local demo records beside the cluster (.cluster/): processes, its state file.
REDIS_PROC: Final = "demo-redis"  # the Secret example's redis-server
OPERATOR_PROC: Final = "demo-operator"  # the no-node fallback's operator process
DEMO_STATE: Final = "demo.json"

# Images on this machine (built without a registry by tests/cluster/images.py).
IMAGE_TAG: Final = "dev"
LOCAL_REGISTRY: Final = "localhost"
REDIS_IMAGE_NAME: Final = "redis"  # localhost/jobqueue-redis:dev
REDIS_DOCKERFILE: Final = "demo/redis-image/Dockerfile"

# The two example JobQueues and how the demo tunes them (short timings, small pods).
MANAGED_QUEUE: Final = "emails"  # examples/jobqueue-managed.yaml
SECRET_QUEUE: Final = "reports"  # noqa: S105 - examples/jobqueue-secret.yaml
EXTERNAL_REDIS_SECRET: Final = "redis-creds"  # noqa: S105 - a Secret's name
EXTERNAL_REDIS_SECRET_KEY: Final = "url"  # noqa: S105 - a key name
API_TOKEN_SECRET: Final = "reports-api-token"  # noqa: S105 - a Secret's name
API_TOKEN_SECRET_KEY: Final = "token"  # noqa: S105 - a key name
MANAGED_STORAGE: Final = "256Mi"

# Autoscaling of the demo queues: short windows so a whole cycle takes well under a minute.
SCALE_DOWN_STABILIZATION_SECONDS: Final = 4
COOLDOWN_SECONDS: Final = 8
POLL_INTERVAL_SECONDS: Final = 1
WORKER_CONCURRENCY: Final = 4
TARGET_JOBS_PER_WORKER: Final = 25
#: name -> (minReplicas, maxReplicas)
WORKER_BOUNDS: Final = {MANAGED_QUEUE: (0, 6), SECRET_QUEUE: (1, 3)}

# The burst.
DEFAULT_BURST: Final = 1000
#: Share of the burst each queue gets (the rest goes to the first queue).
QUEUE_SHARES: Final = {MANAGED_QUEUE: 0.75, SECRET_QUEUE: 0.25}
EMAIL_LATENCY_SECONDS: Final = 0.25
RESIZE_WORK_SECONDS: Final = 0.05
SLOW_SECONDS: Final = 3.0
SLOW_STEPS: Final = 6
FLAKY_SUCCEED_ON: Final = 2  # attempt 1 fails, attempt 2 succeeds: one retry
DLQ_MAX_RETRIES: Final = 2  # the `fail` job: 3 attempts, then the dead-letter queue
BATCH_SIZE: Final = 100
SEND_CONCURRENCY: Final = 16
HTTP_TIMEOUT: Final = 10.0
VERIFY_CONCURRENCY: Final = 32

# The live view and the end of the run.
REFRESH_PER_SECOND: Final = 4
SAMPLE_INTERVAL: Final = 1.0 / REFRESH_PER_SECOND
EVENTS_INTERVAL: Final = 1.0  # the operator's Events are listed this often
RATE_WINDOW_SECONDS: Final = 2.0  # jobs done per second over this window
PLAIN_LINE_INTERVAL: Final = 2.0  # --no-live: one status line this often
EVENTS_SHOWN: Final = 8
SPARK_POINTS: Final = 48
DRAIN_TIMEOUT_SECONDS: Final = 240.0  # the burst must be processed within this
SETTLE_TIMEOUT_SECONDS: Final = 120.0  # then the workers must be back at the minimum within this

# Set-up timeouts.
HELM_TIMEOUT: Final = "180s"
READY_TIMEOUT_SECONDS: Final = 240.0
