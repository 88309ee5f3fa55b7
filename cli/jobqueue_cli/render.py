"""Plain-text output of the CLI: aligned tables and key/value blocks (pure functions)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

MAX_CELL = 100  # characters of one table cell; `get` shows the whole value


def cell(value: Any) -> str:
    """One table cell: '-' for nothing, JSON for structures, seconds rounded."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    text = str(value)
    if "\n" in text:  # a traceback: its last line says what failed
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        text = lines[-1] if lines else ""
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """Rows as an aligned table; `columns` are (header, key) pairs, a dotted key reads nested."""
    cells = [[cell(_dig(row, key)) for _header, key in columns] for row in rows]
    headers = [header for header, _key in columns]
    widths = [max(len(x) for x in col) for col in zip(headers, *cells, strict=True)]
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def fields(record: Mapping[str, Any], keys: Sequence[str]) -> str:
    """`key: value` lines, aligned; structured values as indented JSON."""
    width = max(len(k) for k in keys)
    out = []
    for key in keys:
        value = record.get(key)
        if isinstance(value, dict | list):
            text = json.dumps(value, indent=2).replace("\n", "\n" + " " * (width + 2))
        else:
            text = cell(value)
        out.append(f"{key + ':':<{width + 1}} {text}")
    return "\n".join(out)


def _dig(row: Mapping[str, Any], key: str) -> Any:
    value: Any = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value
