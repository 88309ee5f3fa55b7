"""The autoscaler's metrics source for queues written by other libraries (Celery, RQ, Dramatiq,
arq, BullMQ, plain lists, any keys): the I/O half of :mod:`jobqueue_operator.formats`.

:class:`ForeignMetricsSource` implements the scaler's ``MetricsSource`` port:

* ``snapshot()`` executes the format's :class:`~jobqueue_operator.formats.Plan` in one pipeline
  (one round trip, whatever the format): one tiny script per key answers ``(TYPE, size)`` so a
  key of the wrong type is a :class:`~jobqueue_operator.formats.QueueFormatError` instead of a
  zero, and the bounded scans (Celery's ``unacked`` hash, arq's in-progress markers, Dramatiq's
  ack sets) run server-side, each as one script. Scripts are sent by SHA (EVALSHA) and loaded
  once when the server does not know them.
* ``watch(wake)`` subscribes to Redis keyspace notifications of the format's wake keys when the
  server's ``notify-keyspace-events`` already delivers them (``CONFIG SET`` adds the missing
  event classes only when constructed with ``allow_config=True``; a refused CONFIG means "not
  available"); otherwise it reports polling and the scaler's poll interval does the work. It
  re-checks the server's setting every ``recheck_interval`` seconds in either mode, so a Redis
  that gains (or loses) notifications switches mode without a restart. ``wakeup`` says which
  is in use, for status.

Limits: the Celery, arq and Dramatiq scans build key names inside their scripts, as those
libraries' own scripts do, so (like the libraries) they need a standalone or Sentinel-managed
Redis; keyspace notifications on Redis Cluster are per node, so a cluster URL is polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from jobqueue import AnyRedis, connect_any
from jobqueue_operator.formats import (
    ARRIVAL_EVENTS,
    FormatSpec,
    Plan,
    QueueFormatError,
    Size,
    celery_unacked,
    check_type,
    event_classes,
    keyspace_channel,
    notifications_cover,
    plan,
    tally,
    wake_keys,
    with_notifications,
)
from jobqueue_operator.ports import (
    PUBSUB_HEALTH_CHECK_INTERVAL,
    PUBSUB_READ_TIMEOUT,
    REDIS_CONNECT_TIMEOUT,
    REDIS_TIMEOUT,
    QueueSnapshot,
    Wakeup,
)

log = logging.getLogger(__name__)

KEYSPACE_NOTIFICATIONS: Final = "keyspace-notifications"
POLLING: Final = "polling"
RECHECK_INTERVAL: Final = 60.0  # seconds between re-reads of notify-keyspace-events

# (TYPE, size) of one key; a sorted set counted over [ARGV[1], ARGV[2]] unless the full range.
_MEASURE: Final = """
local t = redis.call('TYPE', KEYS[1])['ok']
local n = 0
if t == 'list' then n = redis.call('LLEN', KEYS[1])
elseif t == 'zset' then
  if ARGV[1] == '-inf' and ARGV[2] == '+inf' then n = redis.call('ZCARD', KEYS[1])
  else n = redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[2]) end
elseif t == 'set' then n = redis.call('SCARD', KEYS[1])
elseif t == 'hash' then n = redis.call('HLEN', KEYS[1])
elseif t == 'stream' then n = redis.call('XLEN', KEYS[1])
end
return {t, n}
"""

# Celery: KEYS[1] the unacked hash; ARGV[1] scan bound, ARGV[2] binding key prefix.
# -> {TYPE, total, scanned, {exchange, routing_key, n, ...}, {exchange, binding member, ...}}
# Each value is kombu's JSON [message, exchange, routing_key]: only its last two strings are
# read (a pattern on the tail; cjson only for a value the pattern does not fit).
_UNACKED: Final = r"""
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'hash' then return {t, 0, 0, {}, {}} end
local total = redis.call('HLEN', KEYS[1])
local limit = tonumber(ARGV[1])
local routes, scanned, cursor = {}, 0, '0'
repeat
  local page = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', 500)
  cursor = page[1]
  local items = page[2]
  for i = 2, #items, 2 do
    local v = items[i]
    local ex, rk = string.match(v, ',%s*"([^"\\]*)"%s*,%s*"([^"\\]*)"%s*%]%s*$')
    if not ex then
      local ok, d = pcall(cjson.decode, v)
      if ok and type(d) == 'table' and type(d[2]) == 'string' and type(d[3]) == 'string' then
        ex, rk = d[2], d[3]
      end
    end
    if ex then
      local k = ex .. '\0' .. rk
      routes[k] = (routes[k] or 0) + 1
    end
    scanned = scanned + 1
  end
until cursor == '0' or scanned >= limit
local flat, exchanges, binds = {}, {}, {}
for k, n in pairs(routes) do
  local at = string.find(k, '\0', 1, true)
  local ex = string.sub(k, 1, at - 1)
  table.insert(flat, ex)
  table.insert(flat, string.sub(k, at + 1))
  table.insert(flat, n)
  if ex ~= '' then exchanges[ex] = true end
end
for ex in pairs(exchanges) do
  for _, m in ipairs(redis.call('SMEMBERS', ARGV[2] .. ex)) do
    table.insert(binds, ex)
    table.insert(binds, m)
  end
end
return {t, total, scanned, flat, binds}
"""

# arq: KEYS[1] the queue ZSET; ARGV[1] due score, ARGV[2] bound, ARGV[3] marker key prefix.
# -> {TYPE, due members (among the first ARGV[2]) that have a marker key}
_IN_PROGRESS: Final = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'zset' then return {t, 0} end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local n = 0
for _, id in ipairs(ids) do n = n + redis.call('EXISTS', ARGV[3] .. id) end
return {t, n}
"""

# Dramatiq: KEYS[1] the heartbeat ZSET; ARGV[1] bound, ARGV[2] key prefix, ARGV[3..] suffixes.
# -> {TYPE, {sum of SCARD(prefix .. worker .. suffix) over the workers, per suffix}}
_WORKER_SETS: Final = """
local t = redis.call('TYPE', KEYS[1])['ok']
local sums = {}
for i = 3, #ARGV do sums[i - 2] = 0 end
if t ~= 'zset' then return {t, sums} end
for _, w in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do
  for i = 3, #ARGV do
    local k = ARGV[2] .. w .. ARGV[i]
    if redis.call('TYPE', k)['ok'] == 'set' then
      sums[i - 2] = sums[i - 2] + redis.call('SCARD', k)
    end
  end
end
return {t, sums}
"""

# Redis names a script by the SHA-1 of its text (EVALSHA).
_SHA: Final = {
    s: hashlib.sha1(s.encode()).hexdigest()  # noqa: S324
    for s in (_MEASURE, _UNACKED, _IN_PROGRESS, _WORKER_SETS)
}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ForeignMetricsSource:
    """Reads a foreign-format queue (see the module docstring); one per JobQueue or pool.

    ``url``: any URL ``jobqueue.connect_any`` takes. ``allow_config``: may ``CONFIG SET
    notify-keyspace-events`` to add the event classes the wake-up needs (``spec.redis.
    allowConfig``). ``clock``: wall-clock seconds (due times are compared with it).
    """

    def __init__(
        self,
        url: str,
        spec: FormatSpec,
        *,
        allow_config: bool = False,
        clock: Callable[[], float] = time.time,
        recheck_interval: float = RECHECK_INTERVAL,
    ) -> None:
        self._url = url
        self.spec = spec
        self._allow_config = allow_config
        self._clock = clock
        self._recheck = recheck_interval
        self._redis: AnyRedis | None = None
        self._wakeup: Wakeup = POLLING

    @property
    def format(self) -> str:
        return self.spec.format.value

    @property
    def wakeup(self) -> Wakeup:
        """How a new job is noticed: ``keyspace-notifications`` while subscribed, else
        ``polling`` (also before ``watch()`` has looked)."""
        return self._wakeup

    def _open(self) -> AnyRedis:
        if self._redis is None:
            self._redis = connect_any(
                self._url,
                socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
                socket_timeout=REDIS_TIMEOUT,
                health_check_interval=PUBSUB_HEALTH_CHECK_INTERVAL,
            )
        return self._redis

    # -- snapshot -----------------------------------------------------------------------------

    async def snapshot(self) -> QueueSnapshot:
        """One read of every number (one round trip; two the first time a server lacks the
        scripts). Raises :class:`QueueFormatError` for a key of the wrong type."""
        redis = self._open()
        p = plan(self.spec, self._clock())
        calls = _calls(p)
        answers = await self._run(redis, calls)
        for answer, (script, keys, _) in zip(answers, calls, strict=True):
            if isinstance(answer, ResponseError):
                if "WRONGTYPE" in str(answer):
                    raise QueueFormatError(f"{keys[0]}: {answer}")
                raise answer
            if script is not _MEASURE and not isinstance(answer, list):
                raise QueueFormatError(f"unexpected answer for {keys[0]}: {answer!r}")
        return _snapshot(p, answers)

    async def _run(
        self, redis: AnyRedis, calls: Sequence[tuple[str, tuple[str, ...], tuple[object, ...]]]
    ) -> list[Any]:
        for attempt in (1, 2):
            pipe = redis.pipeline(transaction=False)
            for script, keys, args in calls:
                pipe.evalsha(_SHA[script], len(keys), *keys, *args)  # type: ignore[arg-type]
            answers: list[Any] = await pipe.execute(raise_on_error=False)
            if attempt == 2 or not any(isinstance(a, NoScriptError) for a in answers):
                return answers
            for script in {s for s, _, _ in calls}:
                await redis.script_load(script)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- wake-up ------------------------------------------------------------------------------

    async def watch(self, wake: Callable[[], None]) -> None:
        """Wake on every arrival while keyspace notifications are available, else poll (and
        look again every ``recheck_interval``); call ``wake()`` at every change of mode.
        Returns only by raising (a lost connection: the scaler reconnects)."""
        redis = self._open()
        while True:
            if not isinstance(redis, RedisCluster) and await self._notifications_ready(redis):
                await self._subscribed(redis, wake)
                continue
            self._set_wakeup(POLLING)
            wake()
            await asyncio.sleep(self._recheck)

    def _set_wakeup(self, mode: Wakeup) -> None:
        if mode != self._wakeup:
            log.info("queue wake-up: %s", mode, extra={"format": self.spec.format.value})
        self._wakeup = mode

    async def _needed_classes(self, redis: Redis) -> str:
        """The event classes the wake keys need: each existing key's own type, every type the
        format allows for a key that does not exist yet."""
        keys = wake_keys(self.spec)
        pipe = redis.pipeline(transaction=False)
        for k in keys:
            pipe.type(k.key)
        found = [_text(t) for t in await pipe.execute()]
        types: set[str] = set()
        for k, t in zip(keys, found, strict=True):
            types |= set(k.types) if t == "none" else {t}
        return event_classes(types)

    async def _notifications_ready(self, redis: Redis) -> bool:
        """True when the server delivers the keyspace events the wake keys need (after adding
        them with CONFIG SET when allowed). A refused CONFIG (managed services, ACLs) means
        not available."""
        needed = await self._needed_classes(redis)
        try:
            answer = await redis.config_get("notify-keyspace-events")
        except ResponseError as exc:
            log.debug("CONFIG GET refused, polling: %s", exc)
            return False
        current = _text(next(iter(answer.values()), "")) if answer else ""
        if notifications_cover(current, needed):
            return True
        if not self._allow_config:
            return False
        try:
            await redis.config_set("notify-keyspace-events", with_notifications(current, needed))
        except ResponseError as exc:
            log.info("CONFIG SET notify-keyspace-events refused, polling: %s", exc)
            return False
        log.info("enabled keyspace notifications (%s) on the queue's Redis", needed)
        return True

    async def _subscribed(self, redis: Redis, wake: Callable[[], None]) -> None:
        """Listen to the wake keys' keyspace channels until the server stops delivering the
        events (checked every ``recheck_interval``); raise when the connection is lost."""
        db = int(redis.connection_pool.connection_kwargs.get("db", 0) or 0)
        channels = {keyspace_channel(db, k.key) for k in wake_keys(self.spec)}
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(*channels)
            confirmed = 0
            next_check = time.monotonic() + self._recheck
            while True:
                message = await pubsub.get_message(timeout=PUBSUB_READ_TIMEOUT)
                if message is not None:
                    kind = message.get("type")
                    if kind == "subscribe":
                        confirmed += 1
                        if confirmed == len(channels):
                            # from here on every arrival is delivered: evaluate once now
                            self._set_wakeup(KEYSPACE_NOTIFICATIONS)
                            wake()
                    elif kind == "message" and _text(message.get("data")) in ARRIVAL_EVENTS:
                        wake()
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self._recheck
                    if not await self._notifications_ready(redis):
                        return
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        redis, self._redis = self._redis, None
        if redis is not None:
            await redis.aclose()


# ---------------------------------------------------------------------------------------------
# Plan -> script calls -> snapshot (pure)

_Call = tuple[str, tuple[str, ...], tuple[object, ...]]


def _calls(p: Plan) -> list[_Call]:
    """The script calls of a plan, in the order :func:`_snapshot` reads their answers."""
    calls: list[_Call] = [(_MEASURE, (s.key,), (s.low, s.high)) for s in p.sizes]
    if p.unacked is not None:
        u = p.unacked
        calls.append((_UNACKED, (u.key,), (u.limit, u.binding_prefix)))
    calls += [(_IN_PROGRESS, (s.key,), (s.high, s.limit, s.marker_prefix)) for s in p.in_progress]
    if p.worker_sets is not None:
        w = p.worker_sets
        calls.append(
            (_WORKER_SETS, (w.registry,), (w.limit, w.prefix, *(s for s, _ in w.suffixes)))
        )
    return calls


def _snapshot(p: Plan, answers: Sequence[Any]) -> QueueSnapshot:
    sizes = [(_text(a[0]), int(a[1])) for a in answers[: len(p.sizes)]]
    rest = list(answers[len(p.sizes) :])
    unacked = 0
    if p.unacked is not None:
        found, total, scanned, flat, binds = rest.pop(0)
        _check_scan(p, p.unacked.key, found, "hash")
        routes = {
            (_text(flat[i]), _text(flat[i + 1])): int(flat[i + 2]) for i in range(0, len(flat), 3)
        }
        bindings: dict[str, list[str]] = {}
        for i in range(0, len(binds), 2):
            bindings.setdefault(_text(binds[i]), []).append(_text(binds[i + 1]))
        unacked = celery_unacked(
            p.unacked.queues, routes, bindings, scanned=int(scanned), total=int(total)
        )
    in_progress = 0
    for scan in p.in_progress:
        found, n = rest.pop(0)
        _check_scan(p, scan.key, found, "zset")
        in_progress += int(n)
    worker_sets: list[int] = []
    if p.worker_sets is not None:
        found, sums = rest.pop(0)
        _check_scan(p, p.worker_sets.registry, found, "zset")
        worker_sets = [int(x) for x in sums]
    counts = tally(p, sizes, unacked=unacked, in_progress=in_progress, worker_sets=worker_sets)
    return QueueSnapshot(
        ready=counts.ready, in_flight=counts.in_flight, delayed=counts.delayed, dead=counts.dead
    )


def _check_scan(p: Plan, key: str, found: object, want: Literal["hash", "zset"]) -> None:
    check_type(p.format, Size(key, "in_flight", frozenset((want,))), _text(found))


__all__ = ["KEYSPACE_NOTIFICATIONS", "POLLING", "ForeignMetricsSource", "Wakeup"]
