"""The Queue: every protocol operation as one atomic Lua script call (EVALSHA).

Semantics, in short (keys.py documents the data layout):

* At-least-once delivery with leases. ``claim`` pops jobs and records each in the lease
  ZSET with a deadline and a fresh fencing token. ``complete``/``fail``/``renew``/
  ``release``/``set_progress`` act only while the job is leased with that token; a stale
  token changes nothing and reports False / STALE.
* ``claim`` also, in the same script but at most once per ``MAINTENANCE_INTERVAL_MS`` per
  queue (a gate key), recovers expired leases (a failed attempt each: retry after backoff,
  or dead once ``1 + max_retries`` attempts were used, so a job that keeps killing workers
  ends in the dead-letter queue), promotes due delayed jobs and reaps finished records whose
  result TTL ran out. A claim the ready lists cannot fill promotes due delayed jobs at once.
* Retries wait ``uniform(0, min(cap, base * 2**(attempt-1)))`` seconds (full jitter);
  the randomness comes from Python (a seed in ARGV), times from the Redis server clock.
* Priorities high > normal > low, FIFO within one; release puts jobs back at the front
  and does not count the attempt.
* Batches: enqueue_many/claim/complete/renew/release take up to ``MAX_BATCH`` jobs per
  script call; longer batches become several calls in one pipeline (one round trip).
  Input is validated and encoded before anything is sent, so bad input writes nothing.

Events on ``keys.events`` (JSON, one message per call, never per job of a batch; a claim
publishes nothing, as it leaves the depth, ready + in flight, unchanged):
``enqueued`` {n}, ``completed`` {ids}, ``failed`` {id, retry_in_ms,
error}, ``dead`` {id, error}, ``released`` {n, ids}, ``retried`` {n}, ``cancelled`` {id,
running?}, ``deleted`` {id} (one dead job), ``progress`` {id, progress}, ``lease_expired``
{ids}. A running job's cancel also goes to ``keys.control`` as {cancel: id}, for its worker.

A lease that ran out but was not recovered yet (no maintenance ran since) can still be renewed
or completed by its holder: nobody else has the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobqueue import browse, codec
from jobqueue.browse import JobPage, ListState
from jobqueue.connection import AnyRedis
from jobqueue.constants import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_CAP,
    DEFAULT_IDEMPOTENCY_TTL,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_RESULT_TTL,
    DLQ_CHUNK,
    LEASE_EXPIRED_ERROR,
    MAINTENANCE_INTERVAL_MS,
    MAINTENANCE_LIMIT,
    MAX_BATCH,
    MAX_ERROR_LENGTH,
    MAX_WORKER_ID_LENGTH,
    WAKE_EVENTS,
)
from jobqueue.errors import QueueError
from jobqueue.keys import QueueKeys
from jobqueue.models import (
    PRIORITIES,
    PRIORITY_INDEX,
    Claimed,
    EnqueueResult,
    FailOutcome,
    Job,
    JobSpec,
    JobStatus,
    QueueStats,
    WorkerInfo,
    new_job_ids,
    validate_job_id,
)
from jobqueue.scripts import SCRIPT_NAMES, script
from jobqueue.wire import Wire

log = logging.getLogger(__name__)


class _Bound:
    """A script bound to one queue's KEYS, its EVALSHA head also pre-encoded as RESP."""

    __slots__ = ("head", "name", "packed_head", "parts", "source")

    def __init__(self, name: str, keys: QueueKeys) -> None:
        s = script(name)
        key_args = s.keys_for(keys)
        self.name = name
        self.source = s.source
        # EVALSHA sha numkeys key... ; the call appends ARGV. Pre-encoded: saves work per call.
        # (The command name stays a str: the cluster client routes on it.)
        self.head: tuple[str | bytes | int, ...] = (
            "EVALSHA",
            s.sha,
            len(key_args),
            *(k.encode() for k in key_args),
        )
        # The same head as RESP bulk strings: a call only encodes its ARGV (see _pack).
        self.parts = len(self.head)
        self.packed_head = b"".join(_bulk(_encode(v)) for v in self.head)


class _Scripts(dict[str, _Bound]):
    """A queue's scripts bound to its keys, each on first use: a Queue is cheap to hold (the
    operator keeps one per JobQueue and calls two of the scripts; all of them bound up front
    were ~25 KB a queue)."""

    def __init__(self, keys: QueueKeys) -> None:
        super().__init__()
        self._keys = keys

    def __missing__(self, name: str) -> _Bound:
        if name not in SCRIPT_NAMES:
            raise KeyError(name)
        bound = self[name] = _Bound(name, self._keys)
        return bound


def _encode(value: Any) -> bytes:
    """An argument as redis-py encodes it (ints and floats as their repr, text as UTF-8)."""
    kind = type(value)
    if kind is bytes:
        return cast(bytes, value)
    if kind is str:
        return cast(str, value).encode()
    if kind is int or kind is float:
        return repr(value).encode()
    if isinstance(value, bytes | memoryview | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return str(value).encode()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value).encode()
    raise TypeError(f"cannot send {type(value).__name__} to Redis")


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


def _pack(s: _Bound, args: Sequence[Any]) -> bytes:
    """The whole EVALSHA command as RESP: the pre-encoded head plus this call's ARGV."""
    out = [b"*%d\r\n" % (s.parts + len(args)), s.packed_head]
    for a in args:
        data = _encode(a)
        out.append(b"$%d\r\n" % len(data))
        out.append(data)
        out.append(b"\r\n")
    return b"".join(out)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _opt_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _opt_seconds(value: Any) -> float | None:
    return None if value is None else int(value) / 1000.0


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, not {value!r}")
    return float(value)


def _validate_worker_id(worker_id: str) -> None:
    if not isinstance(worker_id, str) or not worker_id:
        raise ValueError("worker_id must be a non-empty string")
    if len(worker_id) > MAX_WORKER_ID_LENGTH:
        raise ValueError(f"worker_id is longer than {MAX_WORKER_ID_LENGTH} characters")


_T = TypeVar("_T")

# A space-separated list of job ids (scripts split ARGV on whitespace).
_IDS_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*(?: [A-Za-z0-9][A-Za-z0-9._:-]*)*")


def _batches(items: Sequence[_T]) -> list[Sequence[_T]]:
    return [items[i : i + MAX_BATCH] for i in range(0, len(items), MAX_BATCH)]


def _join_ids(ids: list[str]) -> str:
    """Job ids as one ARGV value; rejects ids that could not have come from this queue."""
    joined = " ".join(ids)
    if _IDS_RE.fullmatch(joined) is None or joined.count(" ") != len(ids) - 1:
        for job_id in ids:
            validate_job_id(job_id)  # raises ValueError naming the bad id
    return joined


def _ids_tokens(leases: Sequence[tuple[str, int]]) -> tuple[str, str]:
    ids: list[str] = []
    tokens: list[str] = []
    for job_id, token in leases:
        ids.append(job_id)
        tokens.append(str(int(token)))
    return _join_ids(ids), " ".join(tokens)


class Queue:
    """One job queue in Redis (standalone or Cluster); cheap to create, safe to share.

    On a standalone or Sentinel client, the script calls of every Queue on that client share
    one pipelined connection taken from the client's pool and held until the client closes
    (jobqueue.wire): a pool capped at N connections leaves N - 1 to other commands.
    """

    def __init__(
        self,
        redis: AnyRedis,
        name: str,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        result_ttl: float = DEFAULT_RESULT_TTL,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL,
    ) -> None:
        self.name = name
        self.keys = QueueKeys.for_queue(name)
        self.redis = redis
        self.lease_seconds = _positive("lease_seconds", lease_seconds)
        self.result_ttl = _positive("result_ttl", result_ttl)
        self.backoff_base = _positive("backoff_base", backoff_base)
        self.backoff_cap = _positive("backoff_cap", backoff_cap)
        self.idempotency_ttl = _positive("idempotency_ttl", idempotency_ttl)
        self._lease_ms = max(1, round(self.lease_seconds * 1000))
        self._ttl_ms = max(1, round(self.result_ttl * 1000))
        self._idem_ttl_ms = max(1, round(self.idempotency_ttl * 1000))
        self._base_ms = self.backoff_base * 1000.0
        self._cap_ms = self.backoff_cap * 1000.0
        self._s = _Scripts(self.keys)
        self._claim = self._s["claim"]
        self._complete = self._s["complete"]
        self._enqueue_one = self._s["enqueue_one"]
        self._pubsub: PubSub | None = None
        self._pubsub_client: Redis | None = None
        self._pubsub_lock = asyncio.Lock()
        # Standalone (and Sentinel) clients with a connection pool take the pre-packed path;
        # a cluster client routes by key and a single-connection client has its own lock.
        self._direct = isinstance(redis, Redis) and redis.connection is None
        # ... on the pool's pipelined connection (jobqueue.wire), unless that connection would
        # be the pool's only one: other commands (pipelines, pub/sub, SCRIPT LOAD) need theirs
        self._wire = (
            Wire.for_client(cast(Redis, redis))
            if self._direct
            and getattr(cast(Redis, redis).connection_pool, "max_connections", 2) > 1
            else None
        )

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    # ----------------------------------------------------------------- plumbing

    async def _run(self, s: _Bound, args: Sequence[Any]) -> Any:
        """One script call; loads the script on the server if it is missing there.

        On a standalone/Sentinel client it goes over the pool's pipelined connection
        (jobqueue.wire); a call that lost its connection there is retried on the pool with
        the client's own retry policy, as redis-py retries any command."""
        try:
            if self._wire is not None:
                packed = _pack(s, args)
                try:
                    return await self._wire.call(packed)
                except (RedisConnectionError, RedisTimeoutError):
                    return await self._send_packed(packed)
            if self._direct:
                return await self._send_packed(_pack(s, args))
            return await self.redis.execute_command(*s.head, *args)
        except NoScriptError:
            await self.redis.execute_command("SCRIPT LOAD", s.source)
            return await self.redis.execute_command(*s.head, *args)

    async def _send_packed(self, packed: bytes) -> Any:
        """One round trip of a pre-packed command on a pooled connection, with the client's
        own retry policy, as ``execute_command`` would do it (EVALSHA has no reply callback)
        without re-encoding the script head on every call."""
        pool = cast(Redis, self.redis).connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            return await conn.retry.call_with_retry(
                lambda: _round_trip(conn, packed), lambda _: conn.disconnect()
            )
        finally:
            await pool.release(conn)

    async def _run_many(self, s: _Bound, calls: list[list[Any]]) -> list[Any]:
        """Several calls of one script in one pipeline (one round trip); results in order."""
        if len(calls) == 1:
            return [await self._run(s, calls[0])]
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for _ in range(2):
            pipe = self.redis.pipeline(transaction=False)
            for i in todo:
                pipe.execute_command(*s.head, *calls[i])
            replies = await pipe.execute(raise_on_error=False)
            missing: list[int] = []
            for i, reply in zip(todo, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    missing.append(i)
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    results[i] = reply
            if not missing:
                return results
            await self.redis.execute_command("SCRIPT LOAD", s.source)
            todo = missing
        raise NoScriptError(f"script {s.name} could not be loaded")

    # ----------------------------------------------------------------- producers

    async def enqueue(self, spec: JobSpec) -> EnqueueResult:
        """Enqueue one job (see enqueue_many); one round trip of a small script."""
        if type(spec) is not JobSpec or spec.idempotency_key is not None:
            return (await self.enqueue_many((spec,)))[0]
        try:
            # sent without its '[': the script prepends '[created_ms,' (see enqueue_one.lua)
            blob = codec.dumps(
                [PRIORITY_INDEX[spec.priority], spec.max_retries, spec.type, spec.payload]
            )[1:]
        except ValueError as exc:
            raise ValueError(f"payload of job type {spec.type!r}: {exc}") from None
        job_id = spec.job_id or new_job_ids(1)[0]
        created = await self._run(self._enqueue_one, (job_id, round(spec.delay * 1000), blob))
        return EnqueueResult(job_id, created == 1)

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        """Enqueue jobs in one round trip; results in input order.

        A job whose idempotency key (within ``idempotency_ttl``) or explicit ``job_id``
        already exists is not created again: its result has the existing id and
        ``created=False``. Every spec is validated and encoded before anything is sent.
        """
        if not specs:
            return []
        calls: list[list[Any]] = []
        all_ids: list[str] = []
        for start in range(0, len(specs), MAX_BATCH):
            ids, args = self._enqueue_args(specs[start : start + MAX_BATCH])
            all_ids += ids
            calls.append(args)
        out: list[EnqueueResult] = []
        pos = 0
        for reply in await self._run_many(self._s["enqueue"], calls):
            hits = iter(reply[1:])
            flags = _text(reply[0])
            for flag in flags:
                jid = all_ids[pos]
                pos += 1
                if flag == "1":
                    out.append(EnqueueResult(jid, True))
                else:
                    out.append(EnqueueResult(_text(next(hits)), False))
        return out

    def _enqueue_args(self, specs: Sequence[JobSpec]) -> tuple[list[str], list[Any]]:
        """ids and ARGV of one enqueue script call (see lua/enqueue.lua)."""
        ids: list[str] = []
        delays: list[int] = []
        idem: list[Any] = []
        blobs: list[Any] = []
        dumps = codec.dumps
        fresh = new_job_ids(len(specs))
        any_delay = False
        for i, spec in enumerate(specs, start=1):
            if not isinstance(spec, JobSpec):
                raise TypeError(f"enqueue takes JobSpec objects, not {type(spec).__name__}")
            try:
                blobs.append(  # without its '[' (see enqueue.lua)
                    dumps(
                        [PRIORITY_INDEX[spec.priority], spec.max_retries, spec.type, spec.payload]
                    )[1:]
                )
            except ValueError as exc:
                raise ValueError(f"payload of job type {spec.type!r}: {exc}") from None
            ids.append(spec.job_id or fresh[i - 1])
            delay = round(spec.delay * 1000)
            delays.append(delay)
            if delay:
                any_delay = True
            if spec.idempotency_key is not None:
                idem += (i, spec.idempotency_key)
        args: list[Any] = [
            self._idem_ttl_ms,
            MAINTENANCE_LIMIT,
            " ".join(ids),
            " ".join(map(str, delays)) if any_delay else "",
            len(idem) // 2,
            *idem,
            *blobs,
        ]
        return ids, args

    async def get(self, job_id: str) -> Job | None:
        """The full record of a job, or None if unknown (or expired)."""
        if not isinstance(job_id, str) or not job_id:
            return None
        reply = await self._run(self._s["read"], ("ids", job_id))
        jobs = _parse_jobs(reply)
        return jobs[0] if jobs else None

    async def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        """Records of several jobs in one round trip, None where unknown; input order."""
        wanted = [j for j in job_ids if isinstance(j, str) and j]
        found: dict[str, Job] = {}
        for chunk in _batches(wanted):
            for job in _parse_jobs(await self._run(self._s["read"], ("ids", *chunk))):
                found[job.id] = job
        return [found.get(j) if isinstance(j, str) else None for j in job_ids]

    async def cancel(self, job_id: str, *, running: bool = False) -> bool:
        """Cancel a waiting job (queued, delayed or awaiting a retry) or, with ``running``,
        a running one too: its lease is dropped and its worker told on the control channel
        (``cancelled_jobs``). False when nothing changed (finished or unknown job)."""
        reply = await self._run(self._s["cancel"], (job_id, self._ttl_ms, 1 if running else 0))
        return bool(reply in (1, 2))

    async def list_jobs(
        self,
        state: ListState,
        *,
        job_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        budget: int = browse.DEFAULT_BUDGET,
    ) -> JobPage:
        """One page of the jobs in ``state`` (see ``jobqueue.browse``: order, bounded work).

        ValueError for a bad limit or a cursor that no listing of ``state`` produced."""
        args = browse.script_args(
            state, job_type=job_type, limit=limit, cursor=cursor, budget=budget
        )
        reply = await self._run(self._s["browse"], args)
        return JobPage(_parse_jobs(reply[1:]), _text(reply[0]) or None)

    # ----------------------------------------------------------------- workers

    async def claim(self, worker_id: str, count: int = 1) -> list[Claimed]:
        """Lease up to ``count`` jobs (highest priority first) for ``worker_id``."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_BATCH:
            raise ValueError(f"count must be an integer between 1 and {MAX_BATCH}")
        _validate_worker_id(worker_id)
        reply = await self._run(
            self._claim,
            (
                count,
                self._lease_ms,
                worker_id,
                random.getrandbits(31),
                self._base_ms,
                self._cap_ms,
                MAINTENANCE_LIMIT,
                LEASE_EXPIRED_ERROR,
                MAINTENANCE_INTERVAL_MS,
            ),
        )
        if not reply:
            return []
        prios = PRIORITIES
        loads = codec.loads
        claimed: list[Claimed] = []
        # reply: [[id, token, attempt]...] as JSON, then each job's stored spec
        for (jid, token, attempt), spec in zip(loads(reply[0]), reply[1:], strict=True):
            _created, pri, max_retries, type_, payload = loads(spec)
            claimed.append(Claimed(jid, token, type_, payload, attempt, max_retries, prios[pri]))
        return claimed

    async def renew(self, leases: Sequence[tuple[str, int]]) -> list[bool]:
        """Extend leases by ``lease_seconds`` from now; False where the lease was lost."""
        calls = [[self._lease_ms, *_ids_tokens(chunk)] for chunk in _batches(leases)]
        return await self._flag_calls(self._s["renew"], calls)

    async def complete(self, items: Sequence[tuple[str, int, Any]]) -> list[bool]:
        """Acknowledge jobs with their results; False where the lease was lost (stale).

        A result is any JSON-serialisable value (ValueError if not), or a `codec.Encoded`."""
        calls: list[list[Any]] = []
        dumps = codec.dumps
        encoded = codec.Encoded
        for chunk in _batches(items):
            ids: list[str] = []
            tokens: list[str] = []
            results: list[Any] = []
            any_result = False
            for job_id, token, result in chunk:
                ids.append(job_id)
                tokens.append(str(int(token)))
                if result is None:
                    results.append("")
                else:
                    results.append(result.text if type(result) is encoded else dumps(result))
                    any_result = True
            call = [self._ttl_ms, _join_ids(ids), " ".join(tokens)]
            if any_result:
                call += results
            calls.append(call)
        return await self._flag_calls(self._complete, calls)

    async def _flag_calls(self, s: _Bound, calls: list[list[Any]]) -> list[bool]:
        if not calls:
            return []
        if len(calls) == 1:
            replies = [await self._run(s, calls[0])]
        else:
            replies = await self._run_many(s, calls)
        out: list[bool] = []
        for reply in replies:
            out += [c == "1" for c in _text(reply)]
        return out

    async def fail(self, job_id: str, token: int, error: str, *, retry: bool = True) -> FailOutcome:
        """Record a failed attempt: RETRYING (after backoff), DEAD, or STALE (lease lost)."""
        error = str(error)[:MAX_ERROR_LENGTH]
        reply = await self._run(
            self._s["fail"],
            (
                job_id,
                int(token),
                error,
                1 if retry else 0,
                random.getrandbits(31),
                self._base_ms,
                self._cap_ms,
            ),
        )
        return FailOutcome(_text(reply[0]))

    async def release(self, leases: Sequence[tuple[str, int]]) -> list[bool]:
        """Hand leased jobs back to the front of their queue; the attempt is not counted."""
        calls = [list(_ids_tokens(chunk)) for chunk in _batches(leases)]
        return await self._flag_calls(self._s["release"], calls)

    async def set_progress(self, job_id: str, token: int, progress: int) -> bool:
        """Record progress 0-100 of a leased job and publish it; False if the lease was lost."""
        if isinstance(progress, bool) or not isinstance(progress, int) or not 0 <= progress <= 100:
            raise ValueError("progress must be an integer between 0 and 100")
        reply = await self._run(self._s["progress"], (job_id, int(token), progress))
        return bool(reply == 1)

    async def heartbeat(self, worker_id: str, *, busy: bool, in_flight: int, ttl: float) -> None:
        """Record that ``worker_id`` is alive for ``ttl`` seconds."""
        _validate_worker_id(worker_id)
        ttl_ms = max(1, round(_positive("ttl", ttl) * 1000))
        await self._run(self._s["heartbeat"], (worker_id, 1 if busy else 0, int(in_flight), ttl_ms))

    async def workers(self) -> list[WorkerInfo]:
        """Workers whose heartbeat has not expired, sorted by id."""
        reply = await self._run(self._s["workers"], ())
        out: list[WorkerInfo] = []
        for i in range(0, len(reply), 2):
            busy, in_flight, seen = _text(reply[i + 1]).split("|")
            out.append(WorkerInfo(_text(reply[i]), busy == "1", int(in_flight), int(seen) / 1000))
        out.sort(key=lambda w: w.id)
        return out

    async def wait_for_jobs(self, timeout: float) -> bool:  # noqa: ASYNC109 (contract)
        """Wait up to ``timeout`` seconds for work; True when there may be jobs to claim.

        True at once if jobs are ready; otherwise True when an ``enqueued``/``released``/
        ``retried`` event arrives or a delayed job falls due within the timeout, False
        when the timeout passes. One pub/sub connection per Queue, subscribed only while
        waiting (so a busy worker never accumulates messages); subscription happens before
        the ready check, so no notification can slip between the two.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        # Concurrent callers on one Queue take turns on its pub/sub connection, each
        # within its own timeout.
        try:
            async with asyncio.timeout_at(deadline):
                await self._pubsub_lock.acquire()
        except TimeoutError:
            return False
        try:
            return await self._wait_locked(deadline)
        finally:
            self._pubsub_lock.release()

    async def _wait_locked(self, deadline: float) -> bool:
        loop = asyncio.get_running_loop()
        pubsub = await self._pubsub_connection()
        channel = self.keys.events
        try:
            await pubsub.subscribe(channel)
            while True:  # the confirmation means the server now delivers to us
                msg = await pubsub.get_message(timeout=max(0.0, deadline - loop.time()))
                if msg is not None and msg["type"] == "subscribe":
                    break
                if msg is None and loop.time() >= deadline:
                    break
            ready, due_ms = await self._run(self._s["peek"], ())
            if ready > 0:
                return True
            due_first = False
            if due_ms >= 0 and loop.time() + due_ms / 1000 < deadline:
                deadline = loop.time() + due_ms / 1000
                due_first = True
            while (left := deadline - loop.time()) > 0:
                msg = await pubsub.get_message(timeout=left)
                if msg is not None and msg["type"] == "message" and _is_wake(msg["data"]):
                    return True
            return due_first
        except BaseException:
            await self._reset_pubsub()
            raise
        finally:
            if self._pubsub is not None:
                await self._unsubscribe(self._pubsub, channel)

    async def _pubsub_connection(self) -> PubSub:
        if self._pubsub is None:
            client = await self.channel_client()
            if client is not self.redis:
                self._pubsub_client = client
            self._pubsub = client.pubsub()
        return self._pubsub

    async def channel_client(self) -> Redis:
        """A client to subscribe to this queue's channels with: the queue's own client, or on
        Redis Cluster a new one on the node owning the queue's slot (the caller closes it
        when it is not ``self.redis``). Cluster pub/sub reaches every node."""
        if not isinstance(self.redis, RedisCluster):
            return self.redis
        await self.redis.initialize()
        node = self.redis.get_node_from_key(self.keys.events)
        if node is None:
            raise QueueError(f"no cluster node serves the slot of queue {self.name!r}")
        pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
        return Redis(connection_pool=pool)

    async def cancelled_jobs(self) -> AsyncIterator[str]:
        """Ids of running jobs a user cancelled (``cancel(running=True)``), as they come, for
        the workers holding them. Its own pub/sub connection on the queue's control channel,
        subscribed while the iteration runs; a connection error ends it (the caller retries)."""
        client = await self.channel_client()
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self.keys.control)
            async for msg in pubsub.listen():
                if msg.get("type") != "message":
                    continue
                try:
                    job_id = codec.loads(msg["data"]).get("cancel")
                except (ValueError, AttributeError, TypeError):
                    continue
                if isinstance(job_id, str):
                    yield job_id
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                if client is not self.redis:
                    await client.aclose()

    async def _unsubscribe(self, pubsub: PubSub, channel: str) -> None:
        try:
            await pubsub.unsubscribe(channel)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 2.0
            while (left := deadline - loop.time()) > 0:
                msg = await pubsub.get_message(timeout=left)
                if msg is not None and msg["type"] == "unsubscribe":
                    return
            await self._reset_pubsub()
        except Exception:  # a broken connection: start afresh next time
            log.debug("pub/sub unsubscribe failed; reconnecting next time", exc_info=True)
            await self._reset_pubsub()

    async def _reset_pubsub(self) -> None:
        pubsub, client = self._pubsub, self._pubsub_client
        self._pubsub = self._pubsub_client = None
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            if client is not None:
                await client.aclose()

    async def aclose(self) -> None:
        """Close the pub/sub connection of this Queue (the Redis client is the caller's)."""
        await self._reset_pubsub()

    # ----------------------------------------------------------------- operators

    async def stats(self) -> QueueStats:
        """Depth and totals in one round trip (O(1)/O(log n) in Redis)."""
        r = await self._run(self._s["stats"], ())
        in_lists, due, delayed_total, in_flight, dead, oldest, now = r[:7]
        age = (now - oldest) / 1000.0 if oldest >= 0 else 0.0
        return QueueStats(
            ready=in_lists + due,
            in_flight=in_flight,
            delayed=delayed_total - due,
            dead=dead,
            oldest_ready_age=max(0.0, age),
            completed_total=r[8],
            failed_total=r[9],
            enqueued_total=r[7],
            ready_by_priority=(r[10], r[11], r[12]),
        )

    async def dead_jobs(self, offset: int = 0, limit: int = 100) -> list[Job]:
        """A page of the dead-letter queue, oldest death first; each keeps its last error."""
        if offset < 0:
            raise ValueError("offset must be >= 0")
        if not 1 <= limit <= MAX_BATCH:
            raise ValueError(f"limit must be between 1 and {MAX_BATCH}")
        return _parse_jobs(await self._run(self._s["read"], ("dead", offset, limit)))

    async def retry_dead(self, job_id: str | None = None) -> int:
        """Requeue one dead job (or all, oldest first) with a fresh attempt budget."""
        s = self._s["retry_dead"]
        if job_id is not None:
            return int(await self._run(s, (job_id, 1)))
        budget = int(await self.redis.zcard(self.keys.dead))
        total = 0
        while total < budget:
            n = int(await self._run(s, ("", min(DLQ_CHUNK, budget - total))))
            if n == 0:
                break
            total += n
        return total

    async def delete_dead(self, job_id: str) -> bool:
        """Delete one dead job with its record; False (nothing changed) if it is not dead."""
        return bool(await self._run(self._s["delete_dead"], (job_id,)) == 1)

    async def purge_dead(self) -> int:
        """Delete every dead job with its record; returns how many."""
        total = 0
        while True:
            n = int(await self._run(self._s["purge_dead"], (DLQ_CHUNK,)))
            total += n
            if n < DLQ_CHUNK:
                return total

    async def purge(self) -> int:
        """Delete every key of the queue; returns how many job records existed."""
        return int(await self._run(self._s["purge"], ()))


async def _round_trip(conn: Any, packed: bytes) -> Any:
    await conn.send_packed_command(packed)
    return await conn.read_response()


def _is_wake(data: Any) -> bool:
    try:
        event = codec.loads(data).get("event")
    except (ValueError, AttributeError, TypeError):
        return False
    return event in WAKE_EVENTS


def _parse_jobs(reply: list[Any]) -> list[Job]:
    """Jobs from the read script: [ids, lease deadlines, one value list per column]."""
    ids = reply[0]
    if not ids:
        return []
    leased = reply[1]
    spec, status, run, run_at, progress, result, error = reply[2:]
    jobs: list[Job] = []
    for i, jid in enumerate(ids):
        if spec[i] is None:
            continue
        created, pri, max_retries, type_, payload = codec.loads(spec[i])
        finished: float | None = None
        if status[i] is not None:
            name, _, finished_ms = _text(status[i]).partition("|")
            st = JobStatus(name)
            finished = int(finished_ms) / 1000.0 if finished_ms else None
        else:
            st = JobStatus.PROCESSING if leased[i] is not None else JobStatus.QUEUED
        attempts, started = 0, None
        if run[i] is not None:
            _token, att, started_ms, _worker = _text(run[i]).split("|", 3)
            attempts = int(att)
            started = int(started_ms) / 1000.0 if started_ms else None
        jobs.append(
            Job(
                id=_text(jid),
                type=type_,
                payload=payload,
                priority=PRIORITIES[pri],
                status=st,
                attempts=attempts,
                max_retries=max_retries,
                progress=100 if st is JobStatus.COMPLETED else int(progress[i] or 0),
                result=None if result[i] is None else codec.loads(result[i]),
                error=_opt_text(error[i]),
                created_at=created / 1000.0,
                started_at=started,
                finished_at=finished,
                run_at=_opt_seconds(run_at[i]),
            )
        )
    return jobs


__all__ = ["AnyRedis", "Queue"]
