"""`ctx.redis`: an asyncio Redis client whose concurrent commands share one round trip."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import ConnectionPool

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
    go to Redis as one pipeline (one write, one read) instead of one round trip each.

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
        try:
            if len(batch) == 1:
                args, options, _ = batch[0]
                results: list[Any] = [
                    await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
                ]
            else:
                pipe = self.pipeline(transaction=False)
                for args, options, _ in batch:
                    pipe.execute_command(*args, **options)
                results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, _, fut), result in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(result, Exception):
                fut.set_exception(result)
            else:
                fut.set_result(result)


def task_client(redis: AnyRedis) -> AnyRedis:
    """The client tasks get as `ctx.redis`: pipelined on a standalone (or Sentinel) client,
    sharing its connection pool; a cluster client as it is (it routes every key itself)."""
    if isinstance(redis, Redis) and redis.connection is None:
        return PipelinedRedis(connection_pool=redis.connection_pool)
    return redis
