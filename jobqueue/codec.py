"""JSON encoding of payloads and results (orjson when installed, else the stdlib)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_dumps: Callable[[Any], bytes | str]
_loads: Callable[[bytes | str], Any]

try:  # pragma: no cover - which branch runs depends on the installed extras
    import orjson

    _dumps = orjson.dumps
    _loads = orjson.loads
    JSON_BACKEND = "orjson"
except ImportError:  # pragma: no cover
    _std_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    _dumps = _std_encoder.encode
    _loads = json.loads
    JSON_BACKEND = "json"


def dumps(value: Any) -> bytes | str:
    """Encode ``value`` as compact JSON; raise ValueError if it is not JSON-serialisable."""
    try:
        return _dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"value is not JSON-serialisable: {exc}") from None


loads: Callable[[bytes | str], Any] = _loads
