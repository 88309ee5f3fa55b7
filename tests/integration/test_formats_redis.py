"""The foreign-format metrics source on a real redis-server: plain lists, any keys (seed 002's
layout), wrong key types, and the wake-up (keyspace notifications, polling, CONFIG refused)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from jobqueue_operator.foreign import ForeignMetricsSource
from jobqueue_operator.formats import Format, FormatSpec, QueueFormatError

from tests.cluster.redis_server import RedisServer


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own (its CONFIG is changed)."""
    server = RedisServer().start()
    yield server
    server.stop()
    server.cleanup()


@pytest.fixture
async def source_factory() -> AsyncIterator[list[ForeignMetricsSource]]:
    made: list[ForeignMetricsSource] = []
    yield made
    for s in made:
        await s.close()


def _source(
    made: list[ForeignMetricsSource], url: str, spec: FormatSpec, **kw: object
) -> ForeignMetricsSource:
    s = ForeignMetricsSource(url, spec, **kw)  # type: ignore[arg-type]
    made.append(s)
    return s


async def test_list_format_counts_lists_and_processing_lists(
    redis_url: str,
    redis_client: aioredis.Redis,
    prefix: str,
    source_factory: list[ForeignMetricsSource],
) -> None:
    await redis_client.lpush(f"{prefix}jobs", *range(7))
    await redis_client.lpush(f"{prefix}more", *range(3))
    await redis_client.lmove(f"{prefix}jobs", f"{prefix}jobs:processing", "RIGHT", "LEFT")
    spec = FormatSpec(
        Format.LIST,
        names=(f"{prefix}jobs", f"{prefix}more", f"{prefix}absent"),
        in_flight_names=(f"{prefix}jobs:processing",),
    )
    snap = await _source(source_factory, redis_url, spec).snapshot()
    assert (snap.ready, snap.in_flight, snap.delayed, snap.dead) == (9, 1, 0, 0)


async def test_keys_format_reads_seed_002_layout(
    redis_url: str,
    redis_client: aioredis.Redis,
    prefix: str,
    source_factory: list[ForeignMetricsSource],
) -> None:
    """Seed 002: jobs:pending:{high,normal,low} ZSETs scored by time, jobs:processing HASH
    job id -> worker id; plus a set and a stream, each sized by its type."""
    p = prefix
    await redis_client.zadd(f"{p}jobs:pending:high", {f"h{i}": time.time() for i in range(2)})
    await redis_client.zadd(f"{p}jobs:pending:normal", {f"n{i}": time.time() for i in range(5)})
    await redis_client.zadd(f"{p}jobs:pending:low", {f"l{i}": time.time() for i in range(1)})
    await redis_client.hset(f"{p}jobs:processing", mapping={"a": "w1", "b": "w2", "c": "w1"})
    await redis_client.sadd(f"{p}set", "x", "y")
    await redis_client.xadd(f"{p}stream", {"k": "v"})
    await redis_client.rpush(f"{p}list", "z")
    spec = FormatSpec(
        Format.KEYS,
        names=tuple(
            f"{p}{k}" for k in ("jobs:pending:high", "jobs:pending:normal", "jobs:pending:low")
        ),
        in_flight_names=(f"{p}jobs:processing",),
    )
    snap = await _source(source_factory, redis_url, spec).snapshot()
    assert (snap.ready, snap.in_flight) == (8, 3)
    every_type = FormatSpec(Format.KEYS, names=(f"{p}set", f"{p}stream", f"{p}list", f"{p}none"))
    assert (await _source(source_factory, redis_url, every_type).snapshot()).ready == 4


@pytest.mark.parametrize(
    ("fmt", "make", "message"),
    [
        (Format.LIST, "hash", "is a hash, format list reads lists"),
        (Format.KEYS, "string", "is a string, format keys reads"),
        (Format.RQ, "hash", "rq:queue:{name} is a hash, format rq reads lists"),
        (Format.ARQ, "list", "is a list, format arq reads zsets"),
        (Format.CELERY, "unacked", "unacked is a list, format celery reads hashes"),
    ],
)
async def test_a_key_of_the_wrong_type_is_an_error_not_zero(
    redis_url: str,
    redis_client: aioredis.Redis,
    prefix: str,
    source_factory: list[ForeignMetricsSource],
    fmt: Format,
    make: str,
    message: str,
) -> None:
    name = f"{prefix}jobs"
    key = {Format.RQ: f"rq:queue:{name}"}.get(fmt, name)
    if make == "hash":
        await redis_client.hset(key, "a", "1")
    elif make == "string":
        await redis_client.set(key, "1")
    elif make == "list":
        await redis_client.rpush(key, "1")
    spec = FormatSpec(fmt, names=(name,))
    if make == "unacked":  # the celery transport's shared hash, under a private key prefix
        await redis_client.rpush(f"{prefix}unacked", "1")
        spec = FormatSpec(fmt, names=("celery",), prefix=prefix)
    source = _source(source_factory, redis_url, spec)
    with pytest.raises(QueueFormatError, match=message.replace("{name}", name)):
        await source.snapshot()
    await redis_client.delete(key, f"{prefix}unacked")


async def _wakes(source: ForeignMetricsSource) -> tuple[asyncio.Task[None], list[float]]:
    woken: list[float] = []
    task = asyncio.create_task(source.watch(lambda: woken.append(time.monotonic())))
    return task, woken


async def _until(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_keyspace_notifications_wake_on_arrival_only(
    private_redis: RedisServer, source_factory: list[ForeignMetricsSource]
) -> None:
    client = aioredis.Redis.from_url(private_redis.url)
    try:
        await client.config_set("notify-keyspace-events", "Kl")
        spec = FormatSpec(Format.LIST, names=("jobs",))
        source = _source(source_factory, private_redis.url, spec)
        task, woken = await _wakes(source)
        await _until(lambda: source.wakeup == "keyspace-notifications" and woken)
        subscribed = len(woken)
        t0 = time.monotonic()
        await client.lpush("jobs", "1")
        await _until(lambda: len(woken) > subscribed)
        assert woken[-1] - t0 < 0.3
        await client.lpush("other", "1")  # another key: no wake-up
        n = len(woken)
        await client.rpop("jobs")  # a worker taking a job is not an arrival
        await asyncio.sleep(0.3)
        assert len(woken) == n
        await _stop(task)
    finally:
        await client.aclose()


async def test_without_notifications_the_source_polls(
    private_redis: RedisServer, source_factory: list[ForeignMetricsSource]
) -> None:
    spec = FormatSpec(Format.BULLMQ, names=("q",))
    source = _source(source_factory, private_redis.url, spec, recheck_interval=0.2)
    task, woken = await _wakes(source)
    await _until(lambda: bool(woken))
    assert source.wakeup == "polling"
    # enabled later by someone else: the re-check switches to notifications, never CONFIG SET
    client = aioredis.Redis.from_url(private_redis.url)
    try:
        assert (await client.config_get("notify-keyspace-events"))["notify-keyspace-events"] == ""
        await client.config_set("notify-keyspace-events", "KEA")
        await _until(lambda: source.wakeup == "keyspace-notifications")
        await _stop(task)
    finally:
        await client.aclose()


async def test_allow_config_enables_the_missing_event_classes(
    private_redis: RedisServer, source_factory: list[ForeignMetricsSource]
) -> None:
    client = aioredis.Redis.from_url(private_redis.url)
    try:
        await client.config_set("notify-keyspace-events", "Ex")  # the operator of Redis' own
        await client.zadd("arq:queue", {"j": 1})
        spec = FormatSpec(Format.ARQ, names=("arq:queue",))
        source = _source(source_factory, private_redis.url, spec, allow_config=True)
        task, woken = await _wakes(source)
        await _until(lambda: source.wakeup == "keyspace-notifications")
        flags = (await client.config_get("notify-keyspace-events"))["notify-keyspace-events"]
        assert set("Exz") <= set(flags.decode() if isinstance(flags, bytes) else flags)
        n = len(woken)
        await client.zadd("arq:queue", {"k": 2})
        await _until(lambda: len(woken) > n)
        await _stop(task)
    finally:
        await client.aclose()


async def test_a_refused_config_means_polling(source_factory: list[ForeignMetricsSource]) -> None:
    server = RedisServer(extra_args=("--rename-command", "CONFIG", "")).start()
    try:
        spec = FormatSpec(Format.LIST, names=("jobs",))
        source = _source(source_factory, server.url, spec, allow_config=True)
        task, woken = await _wakes(source)
        await _until(lambda: bool(woken))
        assert source.wakeup == "polling"
        await _stop(task)
    finally:
        server.stop()
        server.cleanup()


async def test_celery_unacked_hash_read_the_way_kombu_writes_it(
    redis_url: str,
    redis_client: aioredis.Redis,
    prefix: str,
    source_factory: list[ForeignMetricsSource],
) -> None:
    """kombu's layout written by hand under a global_keyprefix: values ``[message, exchange,
    routing_key]`` as kombu's json.dumps writes them, including names the tail pattern cannot
    read (escaped quotes: parsed with cjson instead)."""
    sep = "\x06\x16"
    odd = 'we"ird'

    def entry(exchange: str, routing_key: str) -> str:
        return json.dumps([{"body": "x", "properties": {"priority": 0}}, exchange, routing_key])

    await redis_client.hset(
        f"{prefix}unacked",
        mapping={
            "t1": entry("tasks", "tasks"),
            "t2": entry("tasks", "tasks"),
            "t3": entry("", "tasks"),  # anonymous exchange
            "t4": entry("mail", "mail"),  # another queue
            "t5": entry(odd, odd),
        },
    )
    await redis_client.sadd(f"{prefix}_kombu.binding.tasks", f"tasks{sep}{sep}tasks")
    await redis_client.sadd(f"{prefix}_kombu.binding.mail", f"mail{sep}{sep}mail")
    await redis_client.sadd(f"{prefix}_kombu.binding.{odd}", f"{odd}{sep}{sep}tasks")
    await redis_client.lpush(f"{prefix}tasks", "m1", "m2")
    await redis_client.lpush(f"{prefix}tasks{sep}9", "m3")
    spec = FormatSpec(Format.CELERY, names=("tasks",), prefix=prefix)
    snap = await _source(source_factory, redis_url, spec).snapshot()
    assert (snap.ready, snap.in_flight) == (3, 4)
