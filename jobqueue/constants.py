"""Constants of the queue protocol: limits, defaults and event names, in one place."""

from __future__ import annotations

KEY_PREFIX = "jq"

# Defaults of a Queue.
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_RESULT_TTL = 86400.0
DEFAULT_IDEMPOTENCY_TTL = 86400.0
DEFAULT_BACKOFF_BASE = 1.0
DEFAULT_BACKOFF_CAP = 300.0
DEFAULT_MAX_RETRIES = 3

# Validation limits.
MAX_QUEUE_NAME_LENGTH = 200
MAX_TYPE_LENGTH = 200
MAX_JOB_ID_LENGTH = 200
MAX_IDEMPOTENCY_KEY_LENGTH = 200
MAX_RETRIES_LIMIT = 100
MAX_ERROR_LENGTH = 8192
MAX_WORKER_ID_LENGTH = 200

# Jobs per script call: bounds the time one script blocks Redis and keeps Lua's
# unpack() well below its ~8000-value limit. Larger batches are split into several
# calls sent in one pipeline (one network round trip).
MAX_BATCH = 1000
# Expired leases recovered, due jobs promoted and finished records reaped per script call.
MAINTENANCE_LIMIT = 200
# Claims run that maintenance at most once per this many ms per queue (a gate key in Redis);
# short of jobs in the ready lists, a claim also promotes due delayed jobs at once.
MAINTENANCE_INTERVAL_MS = 100
# DLQ retry/purge work per script call (the Python side loops).
DLQ_CHUNK = 500

# Events published on the queue's channel (JSON {"event": <name>, ...}).
EVENT_ENQUEUED = "enqueued"
EVENT_RELEASED = "released"
EVENT_RETRIED = "retried"
# Events after which an idle worker should try to claim.
WAKE_EVENTS = frozenset({EVENT_ENQUEUED, EVENT_RELEASED, EVENT_RETRIED})

# Status strings stored in Redis.
STATUS_QUEUED = "queued"
STATUS_PROCESSING = "processing"
STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_DEAD = "dead"
STATUS_CANCELLED = "cancelled"

# Error recorded when a lease ran out (the worker died or stalled).
LEASE_EXPIRED_ERROR = "lease expired: worker lost"
