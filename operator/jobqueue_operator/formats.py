"""The Redis key layouts of queues written by other libraries: which keys hold a queue's waiting,
in-flight, delayed and dead jobs, and which writes mean "work arrived". Pure: no I/O.

A :class:`FormatSpec` (format + the library's queue names) turns into a :class:`Plan`: the
numbers to read, each from one key, plus at most one bounded server-side scan per format that
needs one (Celery's shared ``unacked`` hash, arq's in-progress marker keys, Dramatiq's per-worker
ack sets). ``foreign.py`` executes a plan in one pipeline (one round trip) and :func:`tally`
adds the answers up. Every layout below was read from the library's own source at the version
pinned in ``tests/cluster/peers.py`` and is proven against the real library by
``tests/integration/test_formats_*.py``:

=========  ======================================  ==========================  ===============
format     ready                                   in flight                   delayed / dead
=========  ======================================  ==========================  ===============
list       LLEN of each name                       LLEN of each in_flight_name  - / -
keys       size of each name by its type           size of each in_flight_name  - / -
celery     LLEN of the queue and its priority      the queue's entries in the  - / -
           lists ``<q>\\x06\\x16{3,6,9}``          ``unacked`` hash
rq         LLEN ``rq:queue:<q>`` + due members of  live members of             future scheduled
           ``rq:scheduled:<q>``                    ``rq:wip:<q>``              / ``rq:failed:<q>``
dramatiq   LLEN ``dramatiq:<q>``                   SCARD of every worker's     ``<q>.DQ`` list +
                                                   ``__acks__.<w>.<q>``        its acks / ``.XQ``
arq        due members of the ZSET ``arq:queue``   due members with an         future members / -
           that are not in progress                ``arq:in-progress:<id>``
bullmq     wait + paused + prioritized + due       LLEN ``bull:<q>:active``    future delayed /
           delayed                                                             failed
=========  ======================================  ==========================  ===============

Due delayed work counts as ready where no process but a worker would move it (RQ's scheduler
runs in its workers, BullMQ promotes delayed jobs in its workers): at zero replicas nothing
else ever would, so the autoscaler must see it as work.

Errors: a key of a type the format does not read raises :class:`QueueFormatError` (``jobs is a
hash, format list reads lists``), never a zero.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

Bucket = Literal["ready", "in_flight", "delayed", "dead"]
RedisType = Literal["list", "zset", "set", "hash", "stream"]

#: The letter of each type's class in ``notify-keyspace-events`` (redis.conf).
TYPE_EVENT_CLASS: Final[Mapping[str, str]] = {
    "list": "l",
    "zset": "z",
    "set": "s",
    "hash": "h",
    "stream": "t",
}
#: Keyspace events of a key that mean something was added to it (Redis' event names, see
#: https://redis.io/docs/latest/develop/use/keyspace-notifications/#events-generated-by-different-commands):
#: LMOVE/RPOPLPUSH/BLMOVE emit lpush/rpush on their destination, SMOVE sadd, RENAME rename_to.
ARRIVAL_EVENTS: Final = frozenset(
    {
        "lpush",
        "rpush",
        "linsert",
        "lset",
        "zadd",
        "zincr",
        "zunionstore",
        "zinterstore",
        "zdiffstore",
        "sadd",
        "sunionstore",
        "sinterstore",
        "sdiffstore",
        "hset",
        "hincrby",
        "xadd",
        "rename_to",
        "copy_to",
        "restore",
    }
)
# Bounds of the server-side scans (see each scan's docstring for why the bound is safe).
UNACKED_SCAN_LIMIT: Final = 10_000
IN_PROGRESS_SCAN_LIMIT: Final = 5_000
WORKER_SCAN_LIMIT: Final = 1_000


class QueueFormatError(Exception):
    """The queue's keys do not have the layout of its format (e.g. a hash where a list should
    be): a configuration error, never an empty queue."""


class Format(enum.StrEnum):
    LIST = "list"
    KEYS = "keys"
    CELERY = "celery"
    RQ = "rq"
    DRAMATIQ = "dramatiq"
    ARQ = "arq"
    BULLMQ = "bullmq"


#: The key prefix each library uses unless configured otherwise (``FormatSpec.prefix``).
DEFAULT_PREFIX: Final[Mapping[Format, str]] = {
    Format.LIST: "",
    Format.KEYS: "",
    Format.CELERY: "",  # kombu's transport option global_keyprefix
    Format.RQ: "rq",  # RQ_KEY_PREFIX
    Format.DRAMATIQ: "dramatiq",  # RedisBroker(namespace=...)
    Format.ARQ: "",  # arq's key prefixes are constants; names are full queue keys
    Format.BULLMQ: "bull",  # new Queue(name, {prefix})
}
#: The queue names each library uses when the user configured none (for documentation and
#: defaults; a FormatSpec always names its queues).
DEFAULT_NAMES: Final[Mapping[Format, tuple[str, ...]]] = {
    Format.CELERY: ("celery",),
    Format.RQ: ("default",),
    Format.DRAMATIQ: ("default",),
    Format.ARQ: ("arq:queue",),
}
_HAS_IN_FLIGHT_NAMES: Final = frozenset({Format.LIST, Format.KEYS})
_ANY_TYPE: Final[frozenset[RedisType]] = frozenset(("list", "zset", "set", "hash", "stream"))
_LIST: Final[frozenset[RedisType]] = frozenset(("list",))
_ZSET: Final[frozenset[RedisType]] = frozenset(("zset",))


@dataclass(frozen=True, slots=True)
class FormatSpec:
    """Which queues of which library to read (the ``spec.queue`` block of a JobQueue).

    ``names``: list keys (``list``), any keys (``keys``), or the library's queue names (arq: the
    queue key, e.g. ``arq:queue``). ``in_flight_names``: ``list``/``keys`` only. ``prefix``: the
    library's key prefix when not its default (:data:`DEFAULT_PREFIX`).
    """

    format: Format
    names: tuple[str, ...]
    in_flight_names: tuple[str, ...] = ()
    prefix: str | None = None

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError(f"format {self.format.value} needs at least one queue name")
        if any(not n for n in (*self.names, *self.in_flight_names)):
            raise ValueError("a queue name must not be empty")
        if self.in_flight_names and self.format not in _HAS_IN_FLIGHT_NAMES:
            raise ValueError(
                f"in-flight names are for formats list and keys; format {self.format.value} "
                "knows where its in-flight jobs are"
            )

    @property
    def key_prefix(self) -> str:
        return DEFAULT_PREFIX[self.format] if self.prefix is None else self.prefix


# ---------------------------------------------------------------------------------------------
# What to read


@dataclass(frozen=True, slots=True)
class Size:
    """One number from one key: its length by type (LLEN, ZCARD, SCARD, HLEN, XLEN), or for
    a sorted set with a score range the members scored in ``[low, high]`` (ZCOUNT syntax).
    A missing key is 0; a key of a type not in ``types`` is a :class:`QueueFormatError`."""

    key: str
    bucket: Bucket
    types: frozenset[RedisType]
    low: str = "-inf"
    high: str = "+inf"


@dataclass(frozen=True, slots=True)
class UnackedScan:
    """Celery (kombu's Redis transport): the messages of ``queues`` in the shared ``unacked``
    hash (delivery tag -> JSON ``[message, exchange, routing_key]``), attributed to queues by
    the exchange's binding set ``_kombu.binding.<exchange>`` (members ``rk\\x06\\x16pattern
    \\x06\\x16queue``) the way kombu's restore does (``Channel._lookup``; the anonymous exchange
    routes to the queue named by the routing key).

    Bounded: the hash holds only messages delivered to consumers and not yet acked, i.e. at most
    the sum of every consumer's prefetch window, not the backlog. The scan reads at most
    ``limit`` entries (HSCAN inside one script, parsing only the JSON's last two strings); past
    the bound the count is extrapolated from the sample (``total * matched / scanned``).
    """

    key: str
    binding_prefix: str
    queues: tuple[str, ...]
    limit: int = UNACKED_SCAN_LIMIT


@dataclass(frozen=True, slots=True)
class InProgressScan:
    """arq: how many of the due members (score <= ``high``) of the queue ZSET have an
    ``<marker_prefix><job id>`` key, i.e. are being run (arq leaves a running job in the queue
    ZSET until it finishes, ``Worker.finish_job``).

    Bounded: only the first ``limit`` due members are checked. arq workers claim from the head
    of the due range (``zrangebyscore(queue, -inf, now, start=offset, num=count)`` in
    ``Worker._poll_iteration``), so jobs in progress sit at the front; ``limit`` covers
    ``limit / max_jobs`` workers at arq's default ``max_jobs=10``. Preferred over SCAN of
    ``arq:in-progress:*``: it is O(limit), not O(keyspace), and counts only this queue's jobs
    (the marker prefix is shared by every arq queue, and cron jobs keep their marker after
    they finish).
    """

    key: str
    high: str
    marker_prefix: str
    limit: int = IN_PROGRESS_SCAN_LIMIT


@dataclass(frozen=True, slots=True)
class WorkerSetsScan:
    """Dramatiq: for each worker id in the heartbeat ZSET ``registry``, SCARD of
    ``<prefix><worker id><suffix>`` for each suffix, summed per bucket. Bounded by the number of
    workers (``limit``): a worker's ack set holds its prefetched and running messages."""

    registry: str
    prefix: str
    suffixes: tuple[tuple[str, Bucket], ...]
    limit: int = WORKER_SCAN_LIMIT


@dataclass(frozen=True, slots=True)
class WakeKey:
    """A key whose writes mean work arrived, and the types it may have."""

    key: str
    types: frozenset[RedisType]


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything one snapshot reads (all in one pipeline)."""

    format: Format
    sizes: tuple[Size, ...]
    unacked: UnackedScan | None = None
    in_progress: tuple[InProgressScan, ...] = ()
    worker_sets: WorkerSetsScan | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    ready: int = 0
    in_flight: int = 0
    delayed: int = 0
    dead: int = 0


# ---------------------------------------------------------------------------------------------
# The layouts


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def celery_queue_keys(queue: str, prefix: str = "") -> tuple[str, ...]:
    """kombu 5.7.0 ``kombu/transport/redis.py``: ``Channel._q_for_pri`` puts priority ``p``
    (rounded down to a step of ``PRIORITY_STEPS = [0, 3, 6, 9]``) on ``<q><sep><p>`` with
    ``sep = '\\x06\\x16'`` and priority 0 on ``<q>`` itself; ``_size`` (what a passive
    ``queue_declare`` reports) is the sum of their LLENs. ``_put`` LPUSHes."""
    return tuple(f"{prefix}{queue}" + (f"\x06\x16{p}" if p else "") for p in (0, 3, 6, 9))


def rq_keys(queue: str, prefix: str = "rq") -> dict[str, str]:
    """rq 3.0.0: ``rq/queue.py`` ``Queue.redis_queue_namespace_prefix = RQ_KEY_PREFIX +
    ':queue:'`` (a LIST of job ids; ``Queue.count`` is its LLEN); ``rq/registry.py``
    ``StartedJobRegistry`` ``<prefix>:wip:<q>``, ``ScheduledJobRegistry``
    ``<prefix>:scheduled:<q>`` and ``FailedJobRegistry`` ``<prefix>:failed:<q>`` (ZSETs)."""
    return {
        "queue": f"{prefix}:queue:{queue}",
        "wip": f"{prefix}:wip:{queue}",
        "scheduled": f"{prefix}:scheduled:{queue}",
        "failed": f"{prefix}:failed:{queue}",
    }


def dramatiq_keys(queue: str, prefix: str = "dramatiq") -> dict[str, str]:
    """dramatiq 2.2.1 ``dramatiq/brokers/redis/dispatch.lua`` (its header lists the layout):
    ``<ns>:<q>`` LIST of message ids (enqueue RPUSHes, fetch LPOPs into the worker's ack set
    ``<ns>:__acks__.<worker>.<q>``), ``<ns>:<q>.msgs`` HASH of bodies, ``<ns>:<q>.XQ`` ZSET of
    dead letters, ``<ns>:__heartbeats__`` ZSET of worker ids; ``dramatiq/common.py``
    ``dq_name``: delayed messages go to the queue ``<q>.DQ`` (same layout), which workers
    fetch into their ack sets and hold until due."""
    return {
        "queue": f"{prefix}:{queue}",
        "delay": f"{prefix}:{queue}.DQ",
        "dead": f"{prefix}:{queue}.XQ",
        "heartbeats": f"{prefix}:__heartbeats__",
        "acks": f"{prefix}:__acks__.",
    }


#: arq 0.28.0 ``arq/constants.py``: ``in_progress_key_prefix = 'arq:in-progress:'``.
ARQ_IN_PROGRESS_PREFIX: Final = "arq:in-progress:"


def bullmq_keys(queue: str, prefix: str = "bull") -> dict[str, str]:
    """bullmq 6.7.6 ``dist/cjs/classes/queue-getters.js`` ``commandByType`` and
    ``commands/getCounts-1.lua``: ``<prefix>:<q>:wait`` and ``:active`` (and the legacy
    ``:paused``) are LISTs, ``:prioritized``, ``:delayed`` and ``:failed`` ZSETs; a delayed
    job's score is ``timestamp_ms * 0x1000 + counter`` (``getDelayedCount(timestamp)``)."""
    return {t: f"{prefix}:{queue}:{t}" for t in ("wait", "paused", "prioritized", "active",
                                                 "delayed", "failed")}  # fmt: skip


def plan(spec: FormatSpec, now: float) -> Plan:
    """What a snapshot of ``spec`` reads at wall-clock time ``now`` (seconds since the epoch;
    it splits sorted sets scored by due time into due and future)."""
    fmt, prefix = spec.format, spec.key_prefix
    sizes: list[Size] = []
    if fmt is Format.LIST:
        sizes += [Size(prefix + n, "ready", _LIST) for n in spec.names]
        sizes += [Size(prefix + n, "in_flight", _LIST) for n in spec.in_flight_names]
        return Plan(fmt, tuple(sizes))
    if fmt is Format.KEYS:
        sizes += [Size(prefix + n, "ready", _ANY_TYPE) for n in spec.names]
        sizes += [Size(prefix + n, "in_flight", _ANY_TYPE) for n in spec.in_flight_names]
        return Plan(fmt, tuple(sizes))
    if fmt is Format.CELERY:
        for q in spec.names:
            sizes += [Size(k, "ready", _LIST) for k in celery_queue_keys(q, prefix)]
        unacked = UnackedScan(f"{prefix}unacked", f"{prefix}_kombu.binding.", spec.names)
        return Plan(fmt, tuple(sizes), unacked=unacked)
    if fmt is Format.RQ:
        # RQ scores the scheduled registry by due time and the wip/failed registries by
        # expiry, in whole seconds (rq/utils.py current_timestamp).
        t = str(int(now))
        for q in spec.names:
            k = rq_keys(q, prefix)
            sizes += [
                Size(k["queue"], "ready", _LIST),
                Size(k["scheduled"], "ready", _ZSET, high=t),
                Size(k["scheduled"], "delayed", _ZSET, low=f"({t}"),
                Size(k["wip"], "in_flight", _ZSET, low=t),
                Size(k["failed"], "dead", _ZSET, low=t),
            ]
        return Plan(fmt, tuple(sizes))
    if fmt is Format.DRAMATIQ:
        suffixes: list[tuple[str, Bucket]] = []
        for q in spec.names:
            k = dramatiq_keys(q, prefix)
            sizes += [
                Size(k["queue"], "ready", _LIST),
                Size(k["delay"], "delayed", _LIST),
                Size(k["dead"], "dead", _ZSET),
            ]
            suffixes += [(f".{q}", "in_flight"), (f".{q}.DQ", "delayed")]
        keys = dramatiq_keys(spec.names[0], prefix)
        acks = WorkerSetsScan(keys["heartbeats"], keys["acks"], tuple(suffixes))
        return Plan(fmt, tuple(sizes), worker_sets=acks)
    if fmt is Format.ARQ:
        # arq scores by due time in ms (arq/connections.py ArqRedis.enqueue_job).
        due = str(_ms(now))
        for q in spec.names:
            sizes += [
                Size(q, "ready", _ZSET, high=due),
                Size(q, "delayed", _ZSET, low=f"({due}"),
            ]
        scans = tuple(InProgressScan(q, due, ARQ_IN_PROGRESS_PREFIX) for q in spec.names)
        return Plan(fmt, tuple(sizes), in_progress=scans)
    if fmt is Format.BULLMQ:
        # getDelayedCount(timestamp) counts scores < timestamp * 0x1000: due at `now` means
        # scored below (now_ms + 1) * 0x1000.
        cut = (_ms(now) + 1) * 0x1000
        for q in spec.names:
            k = bullmq_keys(q, prefix)
            sizes += [
                Size(k["wait"], "ready", _LIST),
                Size(k["paused"], "ready", _LIST),
                Size(k["prioritized"], "ready", _ZSET),
                Size(k["delayed"], "ready", _ZSET, high=f"({cut}"),
                Size(k["delayed"], "delayed", _ZSET, low=str(cut)),
                Size(k["active"], "in_flight", _LIST),
                Size(k["failed"], "dead", _ZSET),
            ]
        return Plan(fmt, tuple(sizes))
    raise ValueError(f"unknown queue format {fmt!r}")  # pragma: no cover - exhaustive


def wake_keys(spec: FormatSpec) -> tuple[WakeKey, ...]:
    """The keys whose writes mean work arrived (what a keyspace-notification subscription
    listens to). Work that becomes due by time alone (a delayed job) writes nothing: the
    poll finds it."""
    fmt, prefix = spec.format, spec.key_prefix
    if fmt is Format.LIST:
        return tuple(WakeKey(prefix + n, _LIST) for n in spec.names)
    if fmt is Format.KEYS:
        return tuple(WakeKey(prefix + n, _ANY_TYPE) for n in spec.names)
    if fmt is Format.CELERY:
        return tuple(WakeKey(k, _LIST) for q in spec.names for k in celery_queue_keys(q, prefix))
    if fmt is Format.RQ:
        return tuple(WakeKey(rq_keys(q, prefix)["queue"], _LIST) for q in spec.names)
    if fmt is Format.DRAMATIQ:
        return tuple(WakeKey(dramatiq_keys(q, prefix)["queue"], _LIST) for q in spec.names)
    if fmt is Format.ARQ:
        return tuple(WakeKey(q, _ZSET) for q in spec.names)
    if fmt is Format.BULLMQ:
        out: list[WakeKey] = []
        for q in spec.names:
            k = bullmq_keys(q, prefix)
            out += [WakeKey(k["wait"], _LIST), WakeKey(k["paused"], _LIST)]
            out += [WakeKey(k["prioritized"], _ZSET)]
        return tuple(out)
    raise ValueError(f"unknown queue format {fmt!r}")  # pragma: no cover - exhaustive


# ---------------------------------------------------------------------------------------------
# Reading the answers


def _plural(types: Iterable[str]) -> str:
    names = sorted(f"{t}s" if t != "hash" else "hashes" for t in types)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def check_type(fmt: Format, size: Size, found: str) -> None:
    """Raise :class:`QueueFormatError` unless ``found`` (TYPE's answer) is readable for
    ``size``; ``none`` (no such key) is an empty queue."""
    if found == "none" or found in size.types:
        return
    article = "an" if found[:1] in "aeiou" else "a"
    raise QueueFormatError(
        f"{size.key} is {article} {found}, format {fmt.value} reads {_plural(size.types)} there"
    )


def celery_unacked(
    queues: Sequence[str],
    routes: Mapping[tuple[str, str], int],
    bindings: Mapping[str, Iterable[str]],
    *,
    scanned: int,
    total: int,
) -> int:
    """How many of the unacked messages belong to ``queues``.

    ``routes``: (exchange, routing key) -> messages seen among ``scanned`` of ``total``
    entries; ``bindings``: exchange -> members of its binding set
    (``routing_key\\x06\\x16pattern\\x06\\x16queue``). A message counts for a queue the way
    kombu restores it: the anonymous exchange routes to the queue named by the routing key; a
    named exchange to its bound queues whose binding routing key equals the message's (direct
    exchanges, Celery's default) or is empty (fanout). A sample of a larger hash is scaled up.
    """
    wanted = set(queues)
    matched = 0
    for (exchange, routing_key), n in routes.items():
        if not exchange:
            matched += n if routing_key in wanted else 0
            continue
        for member in bindings.get(exchange, ()):
            rk, _, queue = [*member.split("\x06\x16"), "", ""][:3]
            if queue in wanted and rk in (routing_key, ""):
                matched += n
                break
    if scanned and total > scanned:
        return round(matched * total / scanned)
    return matched


def tally(
    plan_: Plan,
    sizes: Sequence[tuple[str, int]],
    *,
    unacked: int = 0,
    in_progress: int = 0,
    worker_sets: Sequence[int] = (),
) -> Counts:
    """Add up one snapshot's answers: ``sizes[i]`` is ``(TYPE, count)`` of ``plan_.sizes[i]``;
    ``worker_sets[i]`` the sum for ``plan_.worker_sets.suffixes[i]``. Raises
    :class:`QueueFormatError` for a key of the wrong type."""
    if len(sizes) != len(plan_.sizes):
        raise ValueError(f"{len(sizes)} answers for {len(plan_.sizes)} sizes")
    totals: dict[Bucket, int] = {"ready": 0, "in_flight": 0, "delayed": 0, "dead": 0}
    for size, (found, count) in zip(plan_.sizes, sizes, strict=True):
        check_type(plan_.format, size, found)
        totals[size.bucket] += count
    totals["in_flight"] += unacked + in_progress
    totals["ready"] = max(0, totals["ready"] - in_progress)  # arq: running jobs stay queued
    if plan_.worker_sets is not None:
        for (_, bucket), n in zip(plan_.worker_sets.suffixes, worker_sets, strict=True):
            totals[bucket] += n
    return Counts(**totals)


# ---------------------------------------------------------------------------------------------
# Keyspace notifications


def event_classes(types: Iterable[str]) -> str:
    """The ``notify-keyspace-events`` letters a subscription to keys of ``types`` needs:
    ``K`` (keyspace channels), ``g`` (generic: rename_to, copy_to, restore) and each type's."""
    letters = {TYPE_EVENT_CLASS[t] for t in types if t in TYPE_EVENT_CLASS}
    return "Kg" + "".join(sorted(letters))


def _expand(flags: str) -> set[str]:
    """The letters of a ``notify-keyspace-events`` value, ``A`` expanded (``g$lshzxetd``)."""
    out = set(flags)
    if "A" in out:
        out |= set("g$lshzxetd")
    return out


def notifications_cover(config: str, needed: str) -> bool:
    """True when the server's ``notify-keyspace-events`` value ``config`` delivers every event
    class in ``needed`` (``g`` is optional: without it a RENAME into a queue is seen by the
    poll instead)."""
    have = _expand(config)
    return all(c in have for c in needed if c != "g")


def with_notifications(config: str, needed: str) -> str:
    """``config`` with the letters of ``needed`` added (nothing the operator of the Redis
    enabled is taken away)."""
    have = set(config)
    return config + "".join(c for c in needed if c not in _expand(config) and c not in have)


def keyspace_channel(db: int, key: str) -> str:
    return f"__keyspace@{db}__:{key}"


__all__ = [
    "ARRIVAL_EVENTS",
    "DEFAULT_NAMES",
    "DEFAULT_PREFIX",
    "Counts",
    "Format",
    "FormatSpec",
    "InProgressScan",
    "Plan",
    "QueueFormatError",
    "Size",
    "UnackedScan",
    "WakeKey",
    "WorkerSetsScan",
    "celery_unacked",
    "check_type",
    "event_classes",
    "keyspace_channel",
    "notifications_cover",
    "plan",
    "tally",
    "wake_keys",
    "with_notifications",
]
