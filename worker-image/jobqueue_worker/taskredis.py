"""`ctx.redis`: an asyncio Redis client whose concurrent commands share one round trip."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.connection import Connection, ConnectionPool
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobqueue import AnyRedis

# Commands that may block or change the connection's state: sent on their own, as redis-py does.
_ALONE = frozenset(
    {
        "BLPOP",
        "BRPOP",
        "BLMOVE",
        "BRPOPLPUSH",
        "BLMPOP",
        "BZPOPMIN",
        "BZPOPMAX",
        "BZMPOP",
        "XREAD",
        "XREADGROUP",
        "WAIT",
        "WAITAOF",
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "SSUBSCRIBE",
        "MONITOR",
        "WATCH",
        "UNWATCH",
        "MULTI",
        "EXEC",
        "DISCARD",
        "SELECT",
        "AUTH",
        "HELLO",
        "CLIENT",
        "QUIT",
        "RESET",
    }
)


class PipelinedRedis(Redis):
    """A `redis.asyncio.Redis` whose commands, issued by any tasks in the same event-loop turn,
    go to Redis as one pipeline (one write, one read) instead of one round trip each, on a
    connection of its own (commands sent while a batch is on the wire form the next one).

    Every command method works as on `Redis` (same replies, same errors, raised in the task
    that sent the command); blocking and connection-state commands go on their own. With the
    worker's concurrency at 8, eight tasks that each `await ctx.redis.incr(key)` cost one round
    trip, not eight. Transactions and explicit pipelines (`ctx.redis.pipeline()`) work as usual.
    """

    def __init__(self, *, connection_pool: ConnectionPool) -> None:
        super().__init__(connection_pool=connection_pool)
        self._pending: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._flushes: set[asyncio.Task[None]] = set()
        # The batches' own connection (the pool's settings, no per-reply timer: one timeout
        # covers a whole batch); one batch on the wire at a time, so replies stay in order.
        kwargs = dict(connection_pool.connection_kwargs)
        self._batch_timeout: float | None = kwargs.get("socket_timeout")
        kwargs["socket_timeout"] = None
        self._conn = cast(Connection, connection_pool.connection_class(**kwargs))
        self._wire = asyncio.Lock()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        name = args[0]
        if isinstance(name, bytes):
            name = name.decode()
        if str(name).split(" ", 1)[0].upper() in _ALONE:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((args, options, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._send_batch)
        return await fut

    def _send_batch(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._flush(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _flush(
        self, batch: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]
    ) -> None:
        conn = self._conn
        async with self._wire:
            done = 0
            try:
                async with asyncio.timeout(self._batch_timeout):
                    await conn.connect()  # type: ignore[no-untyped-call]
                    await conn.send_packed_command(
                        conn.pack_commands([args for args, _, _ in batch]), check_health=False
                    )
                    for args, options, fut in batch:
                        try:
                            result = await self.parse_response(conn, args[0], **options)
                        except ResponseError as exc:  # that command's error; the rest follow
                            if not fut.done():
                                fut.set_exception(exc)
                        else:
                            if not fut.done():
                                fut.set_result(result)
                        done += 1
            except BaseException as exc:
                # The connection's state is unknown: drop it (the next batch reconnects), and
                # fail the commands without a reply (sent or not: as redis-py would).
                await conn.disconnect(nowait=True)
                error = exc
                if isinstance(exc, TimeoutError):
                    error = RedisTimeoutError("Timeout reading from Redis")
                for _, _, fut in batch[done:]:
                    if not fut.done():
                        fut.set_exception(error)
                if isinstance(exc, asyncio.CancelledError):
                    raise

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await self._conn.disconnect()
        await super().aclose(close_connection_pool)


def task_client(redis: AnyRedis) -> AnyRedis:
    """The client tasks get as `ctx.redis`: pipelined on a standalone (or Sentinel) client,
    sharing its connection pool; a cluster client as it is (it routes every key itself)."""
    if isinstance(redis, Redis) and redis.connection is None:
        return PipelinedRedis(connection_pool=redis.connection_pool)
    return redis
