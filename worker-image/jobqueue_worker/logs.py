"""Structured logging: one JSON object per line on stderr, never a payload or a secret (the line
format of every image: jobqueue.contract.JsonFormatter; JobLines writes the same lines faster)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

from jobqueue.contract import JsonFormatter, log_timestamp

__all__ = ["JobLines", "JsonFormatter", "configure_logging"]


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure_logging` installs (recognised by `JobLines`' direct path)."""


def configure_logging(level: str) -> None:
    """Send every logger (ours, aiohttp's, the user's tasks') through one JSON handler."""
    handler = _JsonHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _direct_handler(logger: logging.Logger) -> _JsonHandler | None:
    """The handler a record of `logger` would reach, when it is only ours and nothing could
    filter or reshape the record on the way (else None: the caller logs the ordinary way)."""
    node: logging.Logger | None = logger
    while node is not None:
        if node.filters:
            return None
        if node.handlers:
            break
        node = node.parent if node.propagate else None
    if node is None or node is not logging.getLogger() or len(node.handlers) != 1:
        return None
    handler = node.handlers[0]
    if type(handler) is not _JsonHandler or handler.filters:
        return None
    if type(handler.formatter) is not JsonFormatter:
        return None
    return handler


class JobLines:
    """The per-job "job finished" lines of one acknowledged batch, written in one go.

    The same JSON as `JsonFormatter` produces for ``log.log(level, "job finished", extra=...)``,
    with the batch's acknowledgement time as ``ts``, rendered without a LogRecord per job and
    written with one call per batch: a few µs per job instead of ~30. When the logging set-up is
    not the one `configure_logging` installs (tests, embedding), it logs record by record.
    """

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self._logger = logger
        self._level = level
        self._types: dict[str, str] = {}  # job type -> its JSON string literal

    def batch(self) -> _Batch:
        handler = _direct_handler(self._logger)
        if handler is not None and handler.level <= self._level:
            return _Batch(self, handler)
        return _Batch(self, None)

    def quoted(self, job_type: str) -> str:
        q = self._types.get(job_type)
        if q is None:
            if len(self._types) > 10_000:
                self._types.clear()
            q = self._types[job_type] = json.dumps(job_type, ensure_ascii=False)
        return q


class _Batch:
    __slots__ = ("_handler", "_head", "_lines", "_owner")

    def __init__(self, owner: JobLines, handler: _JsonHandler | None) -> None:
        self._owner = owner
        self._handler = handler
        self._lines: list[str] = []
        self._head = ""
        if handler is not None:
            level = logging.getLevelName(owner._level).lower()
            self._head = (
                f'{{"ts":"{log_timestamp(time.time())}","level":"{level}",'
                f'"logger":{json.dumps(owner._logger.name)},"msg":"job finished",'
            )

    def add(self, job_id: str, job_type: str, attempt: int, duration: float, outcome: str) -> None:
        if self._handler is None:
            self._owner._logger.log(
                self._owner._level,
                "job finished",
                extra={
                    "job_id": job_id,
                    "type": job_type,
                    "attempt": attempt,
                    "duration_ms": round(duration * 1000, 3),
                    "outcome": outcome,
                },
            )
            return
        # job ids are validated to a quote-free alphabet; the type is JSON-quoted once
        self._lines.append(
            f'{self._head}"job_id":"{job_id}","type":{self._owner.quoted(job_type)},'
            f'"attempt":{attempt},"duration_ms":{round(duration * 1000, 3)!r},'
            f'"outcome":"{outcome}"}}\n'
        )

    def flush(self) -> None:
        handler = self._handler
        if handler is None or not self._lines:
            return
        text = "".join(self._lines)
        self._lines.clear()
        stream: TextIO = handler.stream
        handler.acquire()
        try:
            stream.write(text)
            stream.flush()
        except Exception:  # a closed stream: drop the lines, as logging would report and go on
            handler.handleError(
                logging.LogRecord(self._owner._logger.name, 0, "", 0, "job lines", None, None)
            )
        finally:
            handler.release()
