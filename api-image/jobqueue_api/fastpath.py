"""The hot enqueue routes answered below the framework: a valid request is served here, any
other one goes on to FastAPI, which answers it as it always does.

A single-job enqueue spends most of its CPU in the framework's layers (routing, the exception
and exit-stack middlewares, the request and response objects), not in its own work. The edge
middleware has already read and checked the body; for `POST /jobs` and `POST /enqueue` it
calls :meth:`FastEnqueue.answer`, which checks the token, validates the body with the route's
own :class:`~jobqueue_api.body.JsonBody`, enqueues and sends the same answer the route would.
Whatever is not the plain success case (no or a wrong token, a body that does not validate)
is left to the app, replaying the body, so every error keeps one implementation. An enqueue
that fails is answered by the app's own exception handler for that error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from jobqueue import EnqueueResult, JobSpec
from jobqueue_api.deps import token_matches
from jobqueue_api.enqueuer import Enqueuer
from jobqueue_api.models import EnqueueAccepted, JobAccepted
from jobqueue_api.routers import enqueue as enqueue_route
from jobqueue_api.routers import jobs as jobs_route


class _Route:
    """One fast route: how its body becomes a job, and the answer to a success."""

    def __init__(
        self,
        parse: Callable[[bytes], Any],
        answer: Callable[[EnqueueResult], tuple[BaseModel, list[tuple[bytes, bytes]]]],
    ) -> None:
        self.parse = parse
        self.answer = answer
        self.template: Any = None  # the app's route object, for the request metrics' label


def _job(result: EnqueueResult) -> tuple[BaseModel, list[tuple[bytes, bytes]]]:
    return JobAccepted.of(result), [(b"location", f"/jobs/{result.job_id}".encode())]


def _seed(result: EnqueueResult) -> tuple[BaseModel, list[tuple[bytes, bytes]]]:
    return EnqueueAccepted(job_id=result.job_id), []


def _parse_enqueue(raw: bytes) -> JobSpec:
    body = enqueue_route.BODY.adapter.validate_json(raw) if raw else enqueue_route.BODY.default
    return body.to_spec()  # type: ignore[union-attr]  # the optional body has a default


def _parse_job(raw: bytes) -> JobSpec | None:
    """None for a missing body, which the route answers with its 422."""
    return jobs_route.JOB_BODY.adapter.validate_json(raw).to_spec() if raw else None


class FastEnqueue:
    """`POST /jobs` and `POST /enqueue` without the framework, for requests that succeed."""

    def __init__(self, app: FastAPI, api_token: str | None) -> None:
        self.app = app
        self.token = api_token
        self.routes = {
            "/jobs": _Route(_parse_job, _job),
            "/enqueue": _Route(_parse_enqueue, _seed),
        }
        # the route objects, so the request metrics label a fast answer as the app's
        for route in (*jobs_route.router.routes, *enqueue_route.router.routes):
            path = getattr(route, "path", None)
            if path in self.routes and "POST" in (getattr(route, "methods", None) or ()):
                self.routes[path].template = route

    def route(self, scope: Scope) -> _Route | None:
        if scope["method"] != "POST":
            return None
        return self.routes.get(scope["path"])

    async def answer(
        self, route: _Route, scope: Scope, receive: Receive, send: Send, raw: bytes
    ) -> bool:
        """Serve the request; False (nothing sent) when the app must answer it instead."""
        if self.token is not None and not token_matches(_bearer(scope), self.token):
            return False
        try:
            spec = route.parse(raw)
        except ValidationError:
            return False
        if spec is None:  # a required body is missing: the app's 422
            return False
        enqueuer: Enqueuer = self.app.state.enqueuer
        scope["route"] = route.template
        try:
            result = await enqueuer.enqueue(spec)
        except Exception as exc:
            handler = _handler_for(self.app, exc)
            if handler is None:
                raise
            response = handler(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
            await response(scope, receive, send)
            return True
        model, headers = route.answer(result)
        body = model.model_dump_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return True


def _bearer(scope: Scope) -> str | None:
    """The bearer token, parsed as the routes' HTTPBearer dependency parses it."""
    for key, value in scope["headers"]:
        if key.lower() == b"authorization":
            scheme, credentials = get_authorization_scheme_param(bytes(value).decode("latin-1"))
            return credentials if scheme.lower() == "bearer" and credentials else None
    return None


def _handler_for(app: FastAPI, exc: Exception) -> Callable[[Request, Exception], Any] | None:
    """The app's exception handler for ``exc`` (most specific class first), as Starlette
    would pick it."""
    for cls in type(exc).__mro__:
        handler = app.exception_handlers.get(cls)
        if handler is not None:
            return handler
    return None
