"""GET /events: server-sent events of job state changes in every queue (see events.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from jobqueue_api import constants as c
from jobqueue_api.events import EventHub

router = APIRouter(tags=["events"])


async def _stream(hub: EventHub, request: Request) -> AsyncIterator[bytes]:
    sub = hub.subscribe()
    try:
        yield b"retry: 2000\n: connected\n\n"
        while True:
            try:
                frame = await asyncio.wait_for(sub.get(), c.EVENTS_KEEPALIVE_SECONDS)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield b": keepalive\n\n"
                continue
            if frame is None:
                return
            yield frame
    finally:
        hub.unsubscribe(sub)


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    summary="Job state changes of every queue, as server-sent events",
    # An endless stream: kept out of the schema that clients and fuzzers generate calls from.
    include_in_schema=False,
)
async def events(request: Request) -> StreamingResponse:
    """`event: <name>` and `data: <JSON with "queue">` per change; see the README for the
    event names. A comment line every 15 s keeps idle proxies from closing the stream."""
    hub: EventHub = request.app.state.events
    return StreamingResponse(
        _stream(hub, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
