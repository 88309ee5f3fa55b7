"""One pipelined connection per client for the protocol's script calls: a RESP write and a
future per call, no pool checkout, no per-call timers (the round trip ``Queue.enqueue`` pays).

Why: a script call through redis-py's asyncio client checks a connection out of the pool
(with a readiness probe), wraps the call in its retry policy and reads the reply through a
StreamReader and two parser layers: ~130 µs of client CPU per call here, against ~60 µs for
the same round trip on an ``asyncio.Protocol`` that writes the pre-packed command and
resolves a future from ``data_received``. Dramatiq's ``send`` is a blocking socket call; this
is the asyncio path with as little as possible between the event loop and the socket.

How: ``Wire.for_client(redis)`` gives the wire of a client's connection pool (one per pool,
shared by every ``Queue`` on it). It checks one connection out of that pool, so the
connection is made exactly as the client makes it (address, Sentinel lookup, TLS, AUTH,
HELLO, SELECT), and then takes its transport over with ``set_protocol``. The connection
stays checked out: ``client.aclose()`` (the pool's ``disconnect``) closes it like any other.
Calls are written in order and their replies resolve the futures in the same order, so
concurrent callers pipeline on the one connection. A lost connection fails the calls in
flight with ``ConnectionError``; the next call opens a new one. The caller (``Queue._run``)
retries a failed call on the pool with the client's own retry policy, as redis-py would.
The client's ``socket_timeout`` bounds each call (no timer at all when it is unset, as in
redis-py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import weakref
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

try:  # redis-py's own mapping of error replies to exception classes (NOSCRIPT, ...)
    from redis._parsers.base import BaseParser as _ErrorMap
except ImportError:  # pragma: no cover - redis-py < 5 is not supported by pyproject
    _ErrorMap = None  # type: ignore[assignment,misc]

_CRLF = b"\r\n"


class _Incomplete(Exception):
    """The buffer ends inside a reply; ``need`` is how long it must get before a retry."""

    def __init__(self, need: int) -> None:
        self.need = need


def _error(line: bytes) -> Exception:
    text = line.decode("utf-8", "replace")
    if _ErrorMap is not None:
        return cast(Exception, _ErrorMap.parse_error(text))  # type: ignore[no-untyped-call]
    return ResponseError(text)  # pragma: no cover


def parse(buf: bytes | bytearray, pos: int, encoding: str | None) -> tuple[Any, int]:
    """One RESP2/RESP3 reply at ``pos``: (value, position after it).

    Values as redis-py returns a script's reply: integers, bytes (str with ``encoding``), None,
    lists; an error nested in an array is returned as an exception instance, a top-level one
    is returned too and raised by the caller. Raises _Incomplete when the buffer ends inside
    the reply and ValueError on a reply type scripts never produce (maps, pushes, ...).
    """
    end = buf.find(_CRLF, pos)
    if end < 0:
        raise _Incomplete(len(buf) + 1)
    kind = buf[pos]
    nxt = end + 2
    if kind == 58:  # ':' integer
        return int(buf[pos + 1 : end]), nxt
    if kind == 36:  # '$' bulk string
        n = int(buf[pos + 1 : end])
        if n < 0:
            return None, nxt
        stop = nxt + n
        if len(buf) < stop + 2:
            raise _Incomplete(stop + 2)
        data = bytes(buf[nxt:stop])
        return (data.decode(encoding) if encoding else data), stop + 2
    if kind == 42:  # '*' array
        n = int(buf[pos + 1 : end])
        if n < 0:
            return None, nxt
        items = []
        for _ in range(n):
            value, nxt = parse(buf, nxt, encoding)
            items.append(value)
        return items, nxt
    if kind == 43:  # '+' simple string
        line = bytes(buf[pos + 1 : end])
        return (line.decode(encoding) if encoding else line), nxt
    if kind == 45:  # '-' error
        return _error(bytes(buf[pos + 1 : end])), nxt
    if kind == 95:  # '_' RESP3 null
        return None, nxt
    if kind == 35:  # '#' RESP3 boolean
        return buf[pos + 1 : end] == b"t", nxt
    if kind == 44:  # ',' RESP3 double
        return float(buf[pos + 1 : end]), nxt
    raise ValueError(f"unexpected RESP reply type {chr(kind)!r}")


class _Protocol(asyncio.Protocol):
    """The taken-over transport: writes commands, resolves one future per reply, in order."""

    def __init__(self, transport: asyncio.Transport, old: Any, encoding: str | None) -> None:
        self.transport = transport
        self.old = old  # the StreamReaderProtocol; told of the close so redis-py's close ends
        self.encoding = encoding
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.buf = bytearray()
        self.need = 0
        self.closed = False

    def send(self, packed: bytes, fut: asyncio.Future[Any]) -> None:
        self.waiters.append(fut)
        self.transport.write(packed)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if len(buf) < self.need:
            return
        pos = 0
        size = len(buf)
        waiters = self.waiters
        try:
            while pos < size:
                try:
                    value, pos = parse(buf, pos, self.encoding)
                except _Incomplete as more:
                    self.need = more.need - pos
                    break
                fut = waiters.popleft()  # IndexError: a reply nobody asked for
                if not fut.done():
                    if isinstance(value, Exception):  # an error reply (NOSCRIPT, OOM...)
                        fut.set_exception(value)
                    else:
                        fut.set_result(value)
            else:
                self.need = 0
        except (ValueError, IndexError) as exc:
            self._fail(RedisConnectionError(f"protocol error from Redis: {exc}"))
            self.transport.abort()
            return
        del buf[:pos]

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError("Connection closed by server."))
        self.old.connection_lost(exc)

    def _fail(self, error: Exception) -> None:
        self.closed = True
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(error)


class Wire:
    """The pipelined connection of one connection pool (see the module docstring)."""

    _by_pool: weakref.WeakKeyDictionary[ConnectionPool, Wire] = weakref.WeakKeyDictionary()

    def __init__(self, pool: ConnectionPool) -> None:
        # weak: the registry is keyed weakly by the pool, so a strong reference here would
        # keep every pool (and its wire) alive after its client is gone
        self._pool_ref = weakref.ref(pool)
        self._conn: AbstractConnection | None = None
        self._proto: _Protocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None
        self._timeout: float | None = None

    @classmethod
    def for_client(cls, redis: Redis) -> Wire:
        pool = redis.connection_pool
        wire = cls._by_pool.get(pool)
        if wire is None:
            wire = cls._by_pool[pool] = cls(pool)
        return wire

    async def call(self, packed: bytes) -> Any:
        """Send one pre-packed command, return its reply (raise its error reply).

        ConnectionError / TimeoutError when the connection is lost or the call times out;
        nothing tells whether Redis ran the command then (as with any client)."""
        proto = self._proto
        loop = asyncio.get_running_loop()
        if proto is None or proto.closed or self._loop is not loop:
            proto = await self._open(loop)
        fut = loop.create_future()
        proto.send(packed, fut)
        if self._timeout is None:
            return await fut
        try:
            async with asyncio.timeout(self._timeout):
                return await fut
        except TimeoutError:
            proto.transport.abort()  # a late reply must not answer the next call
            raise RedisTimeoutError("Timeout reading from Redis") from None

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        if self._loop is not loop:  # a client used from a new event loop: start afresh
            self._conn = self._proto = None
            self._opening = asyncio.Lock()
            self._loop = loop
        assert self._opening is not None
        async with self._opening:
            proto = self._proto
            if proto is not None and not proto.closed:
                return proto  # another caller opened it meanwhile
            await self._drop()
            pool = self._pool()
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                writer = cast(Any, conn)._writer
                reader = cast(Any, conn)._reader
                if writer is None or reader is None or reader._buffer:
                    raise RedisConnectionError("connection not ready")
                transport = writer.transport
                encoder = conn.encoder
                proto = _Protocol(
                    transport,
                    transport.get_protocol(),
                    encoder.encoding if encoder.decode_responses else None,
                )
                transport.set_protocol(proto)
            except BaseException:
                await pool.release(conn)
                raise
            self._conn = conn
            self._proto = proto
            self._timeout = cast(Any, conn).socket_timeout
            return proto

    def _pool(self) -> ConnectionPool:
        pool = self._pool_ref()
        if pool is None:  # pragma: no cover - a call needs the client, which holds the pool
            raise RedisConnectionError("the client of this connection is gone")
        return pool

    async def _drop(self) -> None:
        """Close the previous connection (if any) and give it back to its pool."""
        conn, self._conn, self._proto = self._conn, None, None
        if conn is None:
            return
        try:
            await conn.disconnect(nowait=True)
        finally:
            pool = self._pool_ref()
            if pool is not None:
                with contextlib.suppress(KeyError):  # the pool was reset meanwhile
                    await pool.release(conn)

    async def aclose(self) -> None:
        """Close the connection (the pool's own ``disconnect`` does it too)."""
        if self._loop is asyncio.get_running_loop():
            await self._drop()
