"""JSON encoding of payloads and results (orjson when installed, else the stdlib), NaN refused."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from typing import Any

_loads: Callable[[bytes | str], Any]

_NOT_SERIALISABLE = "value is not JSON-serialisable: {}"
_NOT_FINITE = "{!r} is not a JSON number (JSON has no NaN or Infinity)"

# Leaves that hold no float, skipped without a call (most of a payload).
_NO_FLOAT = frozenset({str, int, bool, type(None)})
_isfinite = math.isfinite


def find_non_finite(value: Any) -> float | None:
    """The first NaN or +-Infinity in ``value``, walked the way orjson encodes it, else None.

    Plain dicts, lists, tuples and floats take the fast branches; subclasses, Enum members and
    dataclass instances (which orjson also encodes) go through ``_children``. No cycle check:
    it only runs on values orjson has already encoded (orjson refuses nesting beyond 255).
    """
    kind = type(value)
    if kind is float:
        return None if _isfinite(value) else value
    if kind is dict:
        items: Iterable[Any] = value.values()
    elif kind is list or kind is tuple:
        items = value
    elif kind in _NO_FLOAT:
        return None
    elif isinstance(value, float):  # a float Enum member
        return None if _isfinite(value) else float(value)
    else:
        items = _children(value)
    for item in items:
        if type(item) not in _NO_FLOAT and (bad := find_non_finite(item)) is not None:
            return bad
    return None


def _children(value: Any) -> Iterable[Any]:
    """What orjson encodes inside a container subclass, Enum member or dataclass instance."""
    if isinstance(value, dict):
        return value.values()
    if isinstance(value, list | tuple):
        return value
    if isinstance(value, Enum):
        return (value.value,)
    if is_dataclass(value) and not isinstance(value, type):
        # orjson writes __dict__ (or the slots' fields), leaving out names starting with "_"
        attrs = getattr(value, "__dict__", None)
        if attrs is not None:
            return [v for k, v in attrs.items() if not k.startswith("_")]
        return [getattr(value, f.name) for f in fields(value) if not f.name.startswith("_")]
    return ()


try:  # pragma: no cover - which branch runs depends on the installed extras
    import orjson

    _orjson_dumps = orjson.dumps
    _find_null = re.compile(b"null").search  # faster than `in` for a 4-byte needle

    def dumps(value: Any) -> bytes | str:
        """Encode ``value`` as compact JSON; raise ValueError if it is not JSON-serialisable,
        NaN and +-Infinity included (orjson would silently write them as null)."""
        try:
            out = _orjson_dumps(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(_NOT_SERIALISABLE.format(exc)) from None
        # Only output holding a null can hide a NaN: the common case costs one C scan.
        if _find_null(out) is not None and (bad := find_non_finite(value)) is not None:
            raise ValueError(_NOT_SERIALISABLE.format(_NOT_FINITE.format(bad)))
        return out

    _loads = orjson.loads
    JSON_BACKEND = "orjson"
except ImportError:  # pragma: no cover
    _std_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    _std_dumps = _std_encoder.encode

    def dumps(value: Any) -> bytes | str:
        """Encode ``value`` as compact JSON; raise ValueError if it is not JSON-serialisable,
        NaN and +-Infinity included."""
        try:
            return _std_dumps(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(_NOT_SERIALISABLE.format(exc)) from None

    _loads = json.loads
    JSON_BACKEND = "json"


loads: Callable[[bytes | str], Any] = _loads


@dataclass(frozen=True, slots=True)
class Encoded:
    """JSON text `dumps` already produced; `Queue.complete` stores it as is (encoded once)."""

    text: bytes | str
