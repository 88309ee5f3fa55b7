"""The API's edge as one pure ASGI middleware: body size limit, JSON-only bodies, metrics,
and the hot enqueue routes' fast path (:mod:`jobqueue_api.fastpath`).

Pure ASGI (not BaseHTTPMiddleware) keeps the hot path to one extra coroutine per request.
The body of a POST/PUT/PATCH/DELETE is read here, up to the route's limit, before the app
sees it: a Content-Length over the limit is refused unread, and a body that turns out to be
larger than announced (or chunked, with no length) is refused as soon as it crosses the
limit. Either way the app never runs, so nothing is enqueued.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobqueue_api import constants as c
from jobqueue_api.metrics import Metrics
from jobqueue_api.settings import Settings

if TYPE_CHECKING:  # fastpath imports the routers, which import this module
    from jobqueue_api.fastpath import FastEnqueue

BODY_BYTES_SCOPE_KEY = "jobqueue_api.body_bytes"
NOT_JSON = "request body must be JSON (Content-Type: application/json)"


class _TooLarge(Exception):
    pass


def is_json_content_type(value: str) -> bool:
    """application/json or application/<anything>+json, parameters ignored."""
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it grows past `limit` (or the client went away)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_error(send: Send, status: int, detail: str, *, close: bool = False) -> None:
    body = orjson.dumps({"detail": detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:  # the rest of an oversized body is never read: do not reuse the connection
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class EdgeMiddleware:
    """Size limit, content type and latency metrics for every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        metrics: Metrics,
        fast: FastEnqueue | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client sees if the app dies before answering

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if scope["method"] in c.BODY_METHODS:
                body = await self._buffer_body(scope, receive, send_and_record)
                if body is None:
                    return
                fast = self.fast.route(scope) if self.fast is not None else None
                if fast is not None and await self.fast.answer(  # type: ignore[union-attr]
                    fast, scope, receive, send_and_record, body
                ):
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", c.UNMATCHED_ROUTE)
            self.metrics.observe_request(
                scope["method"], template, status, time.perf_counter() - start
            )

    async def _buffer_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The checked body, or None when an error was sent instead."""
        limit = self.settings.max_body_bytes(scope["path"])
        too_large = f"request body is larger than {limit} bytes"
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _send_error(send, 413, too_large, close=True)
            return None
        try:
            body = await _read_body(receive, limit)
        except _TooLarge:
            await _send_error(send, 413, too_large, close=True)
            return None
        if body is None:  # disconnected mid-body: nobody to answer
            return None
        content_type = _header(scope, b"content-type")
        if body and content_type is not None and not is_json_content_type(content_type):
            await _send_error(send, 415, NOT_JSON)
            return None
        scope[BODY_BYTES_SCOPE_KEY] = len(body)
        return body


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the buffered body first, then whatever the client sends."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
