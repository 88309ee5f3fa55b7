"""GET /events: the queues' state changes as server-sent events, one Redis subscription per process.

The protocol publishes a JSON message on ``jq:{<q>}:events`` for each state change (one per
script call, never one per job of a batch). What a client sees, as ``event: <name>`` with
the message plus ``"queue"`` as ``data``:

* ``enqueued`` {n}: jobs created (counts only: the enqueue scripts publish no ids).
* ``completed`` {ids}: an acknowledged batch.
* ``failed`` {id, retry_in_ms, error}: an attempt failed, a retry is scheduled.
* ``dead`` {id, error}: a job went to the dead-letter queue.
* ``lease_expired`` {ids}: jobs whose worker died were recovered (retry or dead).
* ``released`` {n, ids}: jobs handed back by a stopping worker.
* ``retried`` {n}: dead jobs re-enqueued. ``deleted`` {id}: one dead job deleted.
* ``cancelled`` {id, running?}: a job cancelled (``running`` when it was running).
* ``progress`` {id, progress}: a running job reported progress.

Not emitted: a claim (a job starting to run), which the protocol stopped publishing for
speed (it leaves the depth, ready + in flight, unchanged); list ``state=running`` or read
``/queues`` for that. Delayed jobs falling due are not published either.

Every /events client of one API process shares one pub/sub connection (the hub below),
started with the first client and closed with the last, so dashboards cost Redis one
connection per API replica, not one per browser tab. A client too slow to keep up with
EVENTS_BUFFER messages is disconnected (EventSource reconnects by itself); a Redis outage
ends nothing: the hub resubscribes and clients keep their stream. When the server starts
shutting down (SIGTERM), every stream ends at once (``close_soon``), so the drain does not wait
out its timeout for responses that never finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from redis.exceptions import RedisError

from jobqueue_api.routing import RoutedQueues

log = logging.getLogger("jobqueue_api")

EVENTS_BUFFER = 1000  # messages waiting for one slow client before it is disconnected
RESUBSCRIBE_DELAY = 1.0

Subscriber = asyncio.Queue[bytes | None]


def sse_frame(queue: str, data: bytes) -> bytes | None:
    """One protocol message as an SSE frame naming its event, with ``queue`` added."""
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        return None
    message["queue"] = queue
    name: str = message["event"]
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(message) + b"\n\n"


class EventHub:
    """Fans the queues' event channels out to every connected /events client."""

    def __init__(self, queues: RoutedQueues) -> None:
        self._queues = queues
        self._channels = {q.keys.events: q.name for q in queues.all}
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # started, not finished: awaited at close
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self.subscribed = asyncio.Event()  # set while Redis delivers to us

    def subscribe(self) -> Subscriber:
        sub: Subscriber = asyncio.Queue(maxsize=EVENTS_BUFFER)
        if self._closing:  # the server is shutting down: the stream ends at once
            sub.put_nowait(None)
            return sub
        self._loop = asyncio.get_running_loop()
        self._subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = task = asyncio.get_running_loop().create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)
        if not self._subscribers and self._task is not None:
            self._task.cancel()
            self._task = None
            self.subscribed.clear()

    def close_soon(self) -> None:
        """End every stream, from a signal handler (thread-safe): a shutdown must not wait for
        endless responses to finish. Clients reconnect to another replica."""
        self._closing = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._end_streams)

    def _end_streams(self) -> None:
        for sub in list(self._subscribers):  # each stream unsubscribes as it ends
            with contextlib.suppress(asyncio.QueueEmpty):
                if sub.full():
                    sub.get_nowait()
            sub.put_nowait(None)

    async def aclose(self) -> None:
        self._task = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sub in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                sub.put_nowait(None)

    async def _run(self) -> None:
        me = asyncio.current_task()
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                if me is not None and me.cancelling():  # a cancel the client turned into this
                    raise asyncio.CancelledError from exc
                log.warning("event stream lost its Redis connection", extra={"error": repr(exc)})
            await asyncio.sleep(RESUBSCRIBE_DELAY)

    async def _listen(self) -> None:
        default = self._queues.default
        client = await default.channel_client()
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(*self._channels)
            async for msg in pubsub.listen():
                kind = msg.get("type")
                if kind == "subscribe":
                    if msg.get("data") == len(self._channels):
                        self.subscribed.set()
                    continue
                if kind != "message":
                    continue
                channel = msg["channel"]
                name = self._channels.get(
                    channel.decode() if isinstance(channel, bytes) else channel
                )
                frame = None if name is None else sse_frame(name, msg["data"])
                if frame is not None:
                    self._publish(frame)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                if client is not default.redis:
                    await client.aclose()

    def _publish(self, frame: bytes) -> None:
        for sub in list(self._subscribers):
            try:
                sub.put_nowait(frame)
            except asyncio.QueueFull:  # too slow: end its stream (it reconnects)
                self._subscribers.discard(sub)
                with contextlib.suppress(asyncio.QueueEmpty):
                    sub.get_nowait()
                sub.put_nowait(None)
