"""The Redis key layout of one queue: every key name is built here, and only here.

Layout (``<q>`` is the queue name, e.g. ``shop/emails``; every key carries the hash
tag ``{<q>}`` so all keys of a queue live in one Redis Cluster slot)::

    jq:{<q>}:ready:high | :ready:normal | :ready:low
        LIST of job ids waiting to run, one per priority. Enqueue RPUSHes to the
        back, claim LPOPs (with a count) from the front, release LPUSHes back to the
        front. FIFO within a priority; claim drains high before normal before low.
    jq:{<q>}:lease      ZSET job id -> lease deadline (ms). ZCARD = jobs in flight.
    jq:{<q>}:delayed    ZSET job id -> due time (ms): delayed jobs and retries waiting
                        out their backoff. Due members are promoted by claim.
    jq:{<q>}:dead       ZSET job id -> time of death (ms): the dead-letter queue.
    jq:{<q>}:expiry     ZSET "<id> <id> ..." -> time (ms) after which those finished
                        (completed or cancelled) jobs' records are deleted (result
                        TTL); one member per completed batch, so one ZADD per batch.
                        Also the index browse.lua lists finished jobs from, newest first
                        (score order): a change of its format must change browse.lua too.
    jq:{<q>}:idem       HASH idempotency key -> job id.
    jq:{<q>}:idem:exp   ZSET idempotency key -> expiry (ms).
    jq:{<q>}:counters   HASH enqueued/completed/failed/dead/retried/released/
                        cancelled/recovered -> monotonic totals.
    jq:{<q>}:workers    HASH worker id -> "busy|in_flight|last_seen_ms".
    jq:{<q>}:workers:exp ZSET worker id -> heartbeat expiry (ms).
    jq:{<q>}:maintenance STRING with a short expiry: the gate that lets one claim in every
                        ``MAINTENANCE_INTERVAL_MS`` run the queue's maintenance (lease
                        recovery, delayed-job promotion, reaping).
    jq:{<q>}:exporter   STRING with an expiry: the id of the API process that exports the
                        queue gauges of the JobQueue whose default queue this is (a lease
                        renewed on its scrapes), so they are exported once, not per replica.
    jq:{<q>}:events     pub/sub channel (not a key): JSON state-change messages.
    jq:{<q>}:control    pub/sub channel (not a key) the workers listen on: ids of running
                        jobs cancelled by a user. Apart from ``events``, so a worker is not
                        woken by every acknowledgement batch of the queue.
    jq:{<q>}:job:<attr> one HASH per job attribute ("column"), field = job id:
        spec      JSON [created_ms, priority index, max_retries, type, payload], written
                  once at enqueue (Lua prepends created_ms). Scripts read the priority
                  and max_retries from its fixed prefix without decoding the payload.
        status    only where it cannot be derived: "failed" (retry scheduled),
                  "dead|<ms>", "completed|<ms>", "cancelled|<ms>" (ms = finish time).
                  No field means queued, or processing while the id is in the lease
                  ZSET; so enqueue and claim write no status at all.
        run       "token|attempts|started_ms|worker": the fencing token (+1 on every
                  claim, never reset), attempts started (claim +1, release -1, DLQ retry
                  resets to 0), start of the current attempt and the worker holding it.
                  One field so a claim writes one value per job, not four.
        run_at    ms when a delayed job or retry is (or was) due
        progress  0-100 reported by the worker (cleared when an attempt ends unfinished)
        result    JSON result of a completed job
        error     last error (kept when a dead job is retried)

Why columns instead of one HASH per job (``jq:{q}:job:<id>``): a script only learns
a job id after popping it, so a per-job key would have to be built inside Lua. With
one hash per attribute every key a script touches is a fixed name declared in KEYS,
which is what Redis Cluster (and the Redis scripting contract) requires. It also
batches well: a claim of N jobs is one ``HMGET``/``HSET`` per column with N ids,
not N commands per job, so the number of Redis calls per script stays constant as
N grows; and the hot path writes one field per job per step (enqueue: spec, claim:
run, complete: status), plus the lease ZSET. The price is memory (each field carries
its own job id) and no native per-job EXPIRE: finished records are deleted by a
bounded reaper (``expiry`` ZSET) that runs inside claim (gated) and enqueue. Idempotency keys
use the same scheme (HASH + expiry ZSET), so a queue has a fixed, known set of keys
and ``purge`` is a single UNLINK of them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from jobqueue.constants import KEY_PREFIX, MAX_QUEUE_NAME_LENGTH

# Pub/sub channels: declared in scripts' KEYS like keys (Cluster routes on them), not keys.
CHANNELS: tuple[str, ...] = ("events", "control")

# Job attribute columns, in the order the read script returns them.
COLUMNS: tuple[str, ...] = (
    "spec",
    "status",
    "run",
    "run_at",
    "progress",
    "result",
    "error",
)


def validate_queue_name(name: str) -> str:
    """Return ``name`` if it can be a queue identity, else raise ValueError."""
    if not isinstance(name, str) or not name:
        raise ValueError("queue name must be a non-empty string")
    if len(name) > MAX_QUEUE_NAME_LENGTH:
        raise ValueError(f"queue name is longer than {MAX_QUEUE_NAME_LENGTH} characters")
    if "{" in name or "}" in name:
        raise ValueError("queue name must not contain '{' or '}' (they delimit the hash tag)")
    if any(ch.isspace() or not ch.isprintable() for ch in name):
        raise ValueError("queue name must not contain whitespace or control characters")
    return name


def hash_tag(name: str) -> str:
    """The Redis Cluster hash tag shared by every key of queue ``name``."""
    return "{" + name + "}"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """Every Redis key (and the pub/sub channel) of one queue."""

    name: str
    prefix: str
    events: str
    control: str
    ready_high: str
    ready_normal: str
    ready_low: str
    lease: str
    delayed: str
    dead: str
    expiry: str
    idem: str
    idem_exp: str
    counters: str
    workers: str
    workers_exp: str
    maintenance: str
    exporter: str
    job_spec: str
    job_status: str
    job_run: str
    job_run_at: str
    job_progress: str
    job_result: str
    job_error: str

    @classmethod
    def for_queue(cls, name: str) -> QueueKeys:
        """Build the key set of queue ``name`` (validated)."""
        validate_queue_name(name)
        p = f"{KEY_PREFIX}:{hash_tag(name)}:"
        cols = {f"job_{c}": f"{p}job:{c}" for c in COLUMNS}
        return cls(
            name=name,
            prefix=p,
            events=p + "events",
            control=p + "control",
            ready_high=p + "ready:high",
            ready_normal=p + "ready:normal",
            ready_low=p + "ready:low",
            lease=p + "lease",
            delayed=p + "delayed",
            dead=p + "dead",
            expiry=p + "expiry",
            idem=p + "idem",
            idem_exp=p + "idem:exp",
            counters=p + "counters",
            workers=p + "workers",
            workers_exp=p + "workers:exp",
            maintenance=p + "maintenance",
            exporter=p + "exporter",
            **cols,
        )

    @property
    def ready(self) -> tuple[str, str, str]:
        """Ready lists by priority index (0 high, 1 normal, 2 low)."""
        return (self.ready_high, self.ready_normal, self.ready_low)

    @property
    def columns(self) -> tuple[str, ...]:
        """The job attribute hashes, in ``COLUMNS`` order."""
        return tuple(getattr(self, f"job_{c}") for c in COLUMNS)

    @property
    def all_keys(self) -> tuple[str, ...]:
        """Every Redis key of the queue (the pub/sub channels are not keys)."""
        skip = {"name", "prefix", *CHANNELS}
        return tuple(getattr(self, f.name) for f in fields(self) if f.name not in skip)

    def key(self, attr: str) -> str:
        """The key stored under attribute ``attr`` (as named in Lua script headers)."""
        value = getattr(self, attr, None)
        if not isinstance(value, str) or attr in ("name", "prefix"):
            raise KeyError(f"no queue key named {attr!r}")
        return value
