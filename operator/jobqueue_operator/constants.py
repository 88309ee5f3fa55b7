"""Every name the operator shares with Kubernetes, the images and its tests, in one place."""

from __future__ import annotations

from typing import Final

from jobqueue import contract

# The custom resource.
GROUP: Final = "jobqueue.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
# The User-Agent of the operator's own Kubernetes requests.
USER_AGENT: Final = "jobqueue-operator/0.1.0"
KIND: Final = "JobQueue"
PLURAL: Final = "jobqueues"
SINGULAR: Final = "jobqueue"
SHORT_NAME: Final = "jq"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# Who we are to the API server.
FIELD_MANAGER: Final = "jobqueue-operator"
FINALIZER: Final = f"{GROUP}/finalizer"
KOPF_STATUS_FIELD: Final = "kopf"  # status.kopf: kopf's own progress and diff-base

# Labels (app.kubernetes.io/* recommended labels) and annotations.
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
APP_NAME: Final = "jobqueue"
MANAGED_BY: Final = "jobqueue-operator"
PART_OF: Final = "jobqueue"
ANNOTATION_SECRET_CHECKSUM: Final = f"{GROUP}/secret-checksum"
ANNOTATION_APPLIED_HASH: Final = f"{GROUP}/applied-hash"
LABEL_POOL: Final = f"{GROUP}/pool"  # the worker pool of a Deployment and its pods
LABEL_VOLUME: Final = f"{GROUP}/volume"  # a worker volume's PersistentVolumeClaim

# Components (the value of app.kubernetes.io/component and the child-name suffix).
COMPONENT_API: Final = "api"
COMPONENT_WORKER: Final = "worker"
COMPONENT_REDIS: Final = "redis"
DEFAULT_POOL: Final = "default"  # the pool of spec.worker (Deployment <name>-worker)

# Environment variables the images read: the contract with the images (jobqueue.contract),
# re-exported here for the operator's other modules.
ENV_REDIS_URL: Final = contract.ENV_REDIS_URL
ENV_TASK_QUEUE_URL: Final = contract.ENV_TASK_QUEUE_URL
ENV_QUEUE_NAME: Final = contract.ENV_QUEUE_NAME
ENV_PORT: Final = contract.ENV_PORT
ENV_API_TOKEN: Final = contract.ENV_API_TOKEN
ENV_POD_NAME: Final = contract.ENV_POD_NAME
ENV_WORKER_CONCURRENCY: Final = contract.ENV_WORKER_CONCURRENCY
ENV_JOB_TIMEOUT: Final = contract.ENV_JOB_TIMEOUT
ENV_DRAIN_TIMEOUT: Final = contract.ENV_DRAIN_TIMEOUT
ENV_HEALTH_PORT: Final = contract.ENV_HEALTH_PORT
ENV_JOB_ROUTES: Final = contract.ENV_JOB_ROUTES
#: Env names the operator sets itself; a user's env list may not use them.
RESERVED_ENV: Final = contract.RESERVED_ENV

# Keys of the per-Deployment Secrets and of the managed Redis Secret.
SECRET_KEY_REDIS_URL: Final = contract.ENV_REDIS_URL
SECRET_KEY_API_TOKEN: Final = contract.ENV_API_TOKEN
SECRET_KEY_REDIS_PASSWORD: Final = "password"  # noqa: S105 - a key name
SECRET_KEY_REDIS_CONF: Final = "redis.conf"  # noqa: S105 - a key name

# Ports and paths of the images.
HTTP_PORT: Final = contract.HTTP_PORT
HTTP_PORT_NAME: Final = "http"
HEALTHZ_PATH: Final = "/healthz"
READYZ_PATH: Final = "/readyz"
REDIS_PORT: Final = 6379
REDIS_PORT_NAME: Final = "redis"
RUN_AS_USER: Final = 10001
TMP_VOLUME: Final = "tmp"
TMP_MOUNT: Final = "/tmp"  # noqa: S108 - an emptyDir in the pod, for a read-only root fs
TMP_SIZE_LIMIT: Final = "64Mi"
REDIS_DATA_VOLUME: Final = "data"
REDIS_DATA_MOUNT: Final = "/data"
REDIS_CONFIG_VOLUME: Final = "config"
REDIS_CONFIG_MOUNT: Final = "/etc/redis"

# Status conditions (metav1.Condition-shaped) and their reasons.
CONDITION_READY: Final = "Ready"
CONDITION_REDIS_REACHABLE: Final = "RedisReachable"
CONDITION_DEGRADED: Final = "Degraded"
CONDITION_SCALING: Final = "Scaling"  # written by the autoscaler (scaler.py), never here
REASON_READY: Final = "Ready"
REASON_NOT_READY: Final = "NotReady"
REASON_RECONCILED: Final = "Reconciled"
REASON_SOURCE_MISSING: Final = "SourceSecretMissing"
REASON_INVALID_SPEC: Final = "InvalidSpec"
REASON_APPLY_FAILED: Final = "ApplyFailed"
REASON_SCALE_FAILED: Final = "ScaleFailed"  # the autoscaler could not read or scale
REASON_QUEUE_FORMAT: Final = "QueueFormatMismatch"  # a key is not what spec.queue.format reads
CONDITION_EXPOSED: Final = "Exposed"  # the API's Ingress / HTTPRoute
REASON_EXPOSED: Final = "Exposed"
REASON_NOT_EXPOSED: Final = "NotRequested"
REASON_GATEWAY_API_MISSING: Final = "GatewayAPINotInstalled"
REASON_REDIS_OK: Final = "Connected"  # the same reasons as the autoscaler's
REASON_REDIS_FAILED: Final = "ConnectionFailed"
REASON_REDIS_UNKNOWN: Final = "NotChecked"
MESSAGE_REDIS_OK: Final = "the queue is readable"

# Autoscaling: how often the queue is read when nothing wakes the autoscaler earlier.
POLL_INTERVAL_JOBQUEUE: Final = 5  # our protocol publishes every enqueue: polls are a backstop
POLL_INTERVAL_FOREIGN: Final = 1  # other formats: polled, unless keyspace notifications are on

# Spec limits.
MAX_WORKER_REPLICAS: Final = 1000  # worker.replicas and autoscaling.min/maxReplicas

# Event reasons.
EVENT_APPLIED: Final = "Applied"
EVENT_PRUNED: Final = "Pruned"
EVENT_FINALIZED: Final = "Finalized"  # what a delete removed and what it kept
EVENT_MESSAGE_LIMIT: Final = 1024  # an Event message is cut to this many characters
EVENT_COMPONENT: Final = "jobqueue-operator"  # source / reportingComponent of our Events

# Timing (seconds).
REDIS_CHECK_TIMEOUT: Final = 3.0
REDIS_CHECK_TTL: Final = 10.0  # reuse a Redis check this long across reconciles
REDIS_CHECK_RETRY_DELAY: Final = 1.0  # a failed check is tried once more after this
REDIS_RECHECK_DELAY: Final = 15.0  # after a failed check, the JobQueue is reconciled again
REDIS_CHECKS_AT_ONCE: Final = 32  # the reconciles' Redis checks in flight together
#: For this long after a status write the reconcile trusts what the write returned over the
#: watch's copy, which may not show it yet (a JobQueue is reconciled several times as it is
#: created, a read each time otherwise).
STATUS_ECHO_SECONDS: Final = 10.0
KUBE_CONNECT_TIMEOUT: Final = 5.0
KUBE_READ_TIMEOUT: Final = 30.0
RETRY_DELAY: Final = 10.0  # a failed reconcile from create/update/resume is retried this soon
SCHEDULE_SPEC_CHECK_INTERVAL: Final = 1.0  # the schedule daemon notices a spec change this soon
SCHEDULE_RETRY_DELAY: Final = 5.0  # an enqueue that failed (Redis down) is tried again this soon
PURGE_ATTEMPTS: Final = 5  # a Purge that cannot reach Redis gives up after this many tries
