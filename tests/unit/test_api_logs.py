"""The JSON log formatter: one parseable object per record, extras included."""

from __future__ import annotations

import logging

import orjson
from jobqueue_api.logs import JsonFormatter


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("jobqueue_api", logging.WARNING, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_a_record_becomes_one_json_line_with_its_extras() -> None:
    line = JsonFormatter().format(_record("redis %s", "down", queue="q1", port=8080))
    assert "\n" not in line
    doc = orjson.loads(line)
    assert doc["msg"] == "redis down"
    assert doc["level"] == "warning"
    assert doc["logger"] == "jobqueue_api"
    assert (doc["queue"], doc["port"]) == ("q1", 8080)
    assert doc["ts"].endswith("+00:00")
    assert "args" not in doc and "pathname" not in doc


def test_exceptions_and_unserialisable_extras_are_rendered() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record("failed", thing=object())
        record.exc_info = sys.exc_info()
    doc = orjson.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in doc["exc"]
    assert doc["thing"].startswith("<object object")
