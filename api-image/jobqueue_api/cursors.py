"""The opaque cursors of GET /jobs: which state, which queue(s) and where, base64url JSON.

A listing of one queue, or of several in turn (the waiting states: the default queue, then
each pool), carries the queue it stopped in and the protocol's own position there
(``jobqueue.browse``). A listing of finished jobs over several queues merges them newest
first, so its cursor carries a position per queue (null once that queue is exhausted) and a
fingerprint of the queue names, so a cursor is not used against another set of queues.
Decoding checks everything a forged or stale cursor could get wrong and says what, so the
route answers 400 with the reason and reads nothing.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from jobqueue.browse import ListState, check_cursor

MAX_CURSOR_LENGTH = 4096
_NOT_OURS = "cursor is not one this API returned"


class BadCursor(ValueError):
    """The cursor cannot be used; the message says why."""


def _dump(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def _load(text: str, state: ListState, keys: set[str]) -> dict[str, Any]:
    if len(text) > MAX_CURSOR_LENGTH:
        raise BadCursor("cursor is too long")
    try:
        data = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        raise BadCursor(_NOT_OURS) from None
    if not isinstance(data, dict) or not isinstance(data.get("s"), str):
        raise BadCursor(_NOT_OURS)
    if data["s"] != state.value:
        raise BadCursor(f"cursor belongs to a {data['s']} listing, not {state.value}")
    if set(data) != keys:
        raise BadCursor("cursor belongs to a listing of other queues than this one")
    return data


def _check_position(state: ListState, position: Any) -> str:
    if not isinstance(position, str):
        raise BadCursor(_NOT_OURS)
    if position:  # empty: from the start of that queue
        try:
            check_cursor(state, position)
        except ValueError as exc:
            raise BadCursor(f"cursor position is invalid: {exc}") from None
    return position


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a listing goes on: ``position`` is the protocol's cursor, '' = the queue's start."""

    queue: str
    state: ListState
    position: str

    def encode(self) -> str:
        return _dump({"q": self.queue, "s": self.state.value, "p": self.position})

    @classmethod
    def decode(cls, text: str, state: ListState) -> Cursor:
        data = _load(text, state, {"q", "s", "p"})
        if not isinstance(data["q"], str):
            raise BadCursor(_NOT_OURS)
        return cls(data["q"], state, _check_position(state, data["p"]))


def fingerprint(names: Sequence[str]) -> str:
    return format(zlib.crc32("\n".join(names).encode()), "08x")


@dataclass(frozen=True, slots=True)
class MergedCursor:
    """A merged listing's position in each queue (in the listed order); None: exhausted."""

    state: ListState
    positions: tuple[str | None, ...]

    def encode(self, names: Sequence[str]) -> str:
        return _dump({"s": self.state.value, "h": fingerprint(names), "m": list(self.positions)})

    @classmethod
    def decode(cls, text: str, state: ListState, names: Sequence[str]) -> MergedCursor:
        data = _load(text, state, {"s", "h", "m"})
        if data["h"] != fingerprint(names):
            raise BadCursor("cursor is for another set of queues than listed here")
        if not isinstance(data["m"], list) or len(data["m"]) != len(names):
            raise BadCursor(_NOT_OURS)
        return cls(
            state, tuple(None if p is None else _check_position(state, p) for p in data["m"])
        )
