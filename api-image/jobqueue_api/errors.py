"""Error mapping: capacity problems become 503 + Retry-After, never a 500; OpenAPI error docs."""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from redis import exceptions as redis_errors

from jobqueue_api import constants as c
from jobqueue_api.enqueuer import QueueFull
from jobqueue_api.models import ErrorDetail, ValidationErrors

log = logging.getLogger("jobqueue_api")

# Redis replies that mean "not now" rather than "your command is wrong".
_TRANSIENT_REPLIES = (
    "OOM",
    "READONLY",
    "LOADING",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "BUSY",
    "NOREPLICAS",
)


def is_transient(exc: redis_errors.RedisError) -> bool:
    """True when Redis is unreachable, overloaded or failing over: worth a retry later."""
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
        return True
    return isinstance(exc, redis_errors.ResponseError) and str(exc).startswith(_TRANSIENT_REPLIES)


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps({"detail": detail}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


class _RateLimitedLog:
    """Log an outage once per interval, not once per request."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self._last = float("-inf")
        self.suppressed = 0

    def warning(self, msg: str, **extra: Any) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            log.warning(msg, extra={**extra, "suppressed": self.suppressed})
            self._last = now
            self.suppressed = 0
        else:
            self.suppressed += 1


_redis_down_log = _RateLimitedLog()


async def _on_queue_full(request: Request, exc: Exception) -> Response:
    request.app.state.metrics.rejected.labels("backpressure").inc()
    return error_response(503, str(exc), {"Retry-After": c.RETRY_AFTER_BACKPRESSURE})


async def _on_redis_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, redis_errors.RedisError)
    if not is_transient(exc):
        log.error("redis command failed", exc_info=exc, extra={"path": request.url.path})
        return error_response(500, "internal error")
    request.app.state.metrics.rejected.labels("redis_unavailable").inc()
    _redis_down_log.warning(
        "redis unavailable", error=f"{type(exc).__name__}: {exc}", path=request.url.path
    )
    retry = {"Retry-After": c.RETRY_AFTER_REDIS_DOWN}
    return error_response(503, "the queue backend is unavailable, retry later", retry)


def _finite(value: Any) -> Any:
    """``value`` with NaN and +-Infinity replaced by None (recursively)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422, with NaN/Infinity in the echoed input written as null. The body parser
    reads NaN, Infinity and 1e400 as floats, and FastAPI's own handler then failed to encode
    its answer (json.dumps with allow_nan=False): the client got a 500 instead of a 422."""
    assert isinstance(exc, RequestValidationError)
    detail = _finite(jsonable_encoder(exc.errors()))
    body = json.dumps({"detail": detail}, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status_code=422, media_type="application/json")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(QueueFull, _on_queue_full)
    app.add_exception_handler(redis_errors.RedisError, _on_redis_error)


# ---- OpenAPI: which errors each kind of route can answer with ------------------------------

OpenAPIResponses = dict[int | str, dict[str, Any]]


def error_doc(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {"model": ErrorDetail, "description": description}
    if retry_after:
        doc["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}
        }
    return doc


UNAVAILABLE: OpenAPIResponses = {
    503: error_doc("Over the backpressure limit, or Redis unreachable.", retry_after=True)
}
WITH_BODY: OpenAPIResponses = {
    413: error_doc("The body is over the size limit; nothing was enqueued."),
    415: error_doc("The body is not JSON."),
    422: {
        "model": ValidationErrors,
        "description": "The body is not valid JSON or breaks the schema; `loc` names the field.",
    },
}
UNAUTHORIZED: OpenAPIResponses = {
    401: error_doc("Missing or wrong bearer token (API_TOKEN is set)."),
}
NOT_FOUND: OpenAPIResponses = {404: error_doc("No such job.")}
