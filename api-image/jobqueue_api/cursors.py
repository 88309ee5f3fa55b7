"""The opaque cursor of GET /jobs: which queue, which state and where in it, base64url JSON.

A listing without ``queue=`` walks the JobQueue's queues in turn (the default one, then each
pool), so the cursor names the queue it stopped in next to the protocol's own position
(``jobqueue.browse``). Decoding checks everything a forged or stale cursor could get wrong
and says what, so the route answers 400 with the reason and reads nothing.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import orjson

from jobqueue.browse import ListState, check_cursor

MAX_CURSOR_LENGTH = 1024


class BadCursor(ValueError):
    """The cursor cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a listing goes on: ``position`` is the protocol's cursor, '' = the queue's start."""

    queue: str
    state: ListState
    position: str

    def encode(self) -> str:
        raw = orjson.dumps({"q": self.queue, "s": self.state.value, "p": self.position})
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, state: ListState) -> Cursor:
        if len(text) > MAX_CURSOR_LENGTH:
            raise BadCursor("cursor is too long")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            data = orjson.loads(raw)
        except (binascii.Error, ValueError):
            raise BadCursor("cursor is not one this API returned") from None
        if not isinstance(data, dict) or set(data) != {"q", "s", "p"}:
            raise BadCursor("cursor is not one this API returned")
        queue, cursor_state, position = data["q"], data["s"], data["p"]
        if not all(isinstance(v, str) for v in (queue, cursor_state, position)):
            raise BadCursor("cursor is not one this API returned")
        if cursor_state != state.value:
            raise BadCursor(f"cursor belongs to a {cursor_state} listing, not {state.value}")
        if position:  # empty: from the start of that queue
            try:
                check_cursor(state, position)
            except ValueError as exc:
                raise BadCursor(f"cursor position is invalid: {exc}") from None
        return cls(queue, state, position)
