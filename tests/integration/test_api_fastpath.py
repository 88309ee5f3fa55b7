"""The enqueue fast path answers exactly as the framework's routes do: the real app against a
real redis-server, each request sent once through the fast path and once with it turned off."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from jobqueue_api.app import create_app
from jobqueue_api.fastpath import FastEnqueue
from jobqueue_api.settings import Settings
from pydantic import SecretStr

import jobqueue
from jobqueue import Queue

TOKEN = "t0ken-for-tests"
JSON = {"content-type": "application/json"}
JOB_ID = re.compile(r"[0-9a-f]{32}")


class Served:
    """The app in-process, and what its fast path did with each request."""

    def __init__(self, client: httpx.AsyncClient, answered: list[bool]) -> None:
        self.client = client
        self.answered = answered

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        self.answered.clear()
        return await self.client.post(path, content=body, headers=headers)


@asynccontextmanager
async def serve(settings: Settings, *, fast: bool) -> AsyncIterator[Served]:
    app = create_app(settings)
    answered: list[bool] = []
    for middleware in app.user_middleware:
        edge: FastEnqueue | None = middleware.kwargs.get("fast")  # type: ignore[assignment]
        if edge is None:
            continue
        real = edge.answer

        async def answer(*args: Any, real: Any = real) -> bool:
            served: bool = await real(*args) if fast else False
            answered.append(served)
            return served

        edge.answer = answer  # type: ignore[method-assign,assignment]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield Served(client, answered)


def settings(redis_url: str, queue_name: str, **overrides: Any) -> Settings:
    return Settings(redis_url=SecretStr(redis_url), queue_name=queue_name, **overrides)


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    """Status, headers but the date, the JSON body with job ids masked."""
    headers = {k: v for k, v in response.headers.items() if k != "date"}
    if "location" in headers:
        headers["location"] = JOB_ID.sub("<id>", headers["location"])
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("job_id"), str):
        assert JOB_ID.fullmatch(body["job_id"]), body
        body = {**body, "job_id": "<id>"}
    return response.status_code, headers, body


REQUESTS = [
    # (path, body, headers, served by the fast path)
    ("/jobs", b'{"type": "email", "payload": {"to": "a@example.com"}}', JSON, True),
    ("/jobs", b'{"type": "email", "priority": "high", "delay_seconds": 5}', JSON, True),
    ("/jobs", b'{"type": "email", "idempotency_key": "k-1"}', JSON, True),
    ("/jobs", b'{"type": "email", "idempotency_key": "k-1"}', JSON, True),  # created: false
    ("/jobs", b'{"type": "email"}', {}, True),  # no Content-Type: read as JSON
    ("/jobs", b"", JSON, False),  # the body is required: 422
    ("/jobs", b'{"type": "email", "extra": 1}', JSON, False),  # 422 naming the field
    ("/jobs", b'{"type": ', JSON, False),  # not JSON: 422
    ("/enqueue", b"", {}, True),  # seed 000: the body is optional
    ("/enqueue", b'{"type": "report", "payload": [1, 2]}', JSON, True),
    ("/enqueue", b'{"payload": 1, "nope": true}', JSON, False),
]


async def exchange(
    redis_url: str, queue_name: str, fast: bool, requests: list[Any], **overrides: Any
) -> list[tuple[tuple[int, dict[str, str], Any], list[bool]]]:
    client = jobqueue.connect(redis_url)
    await Queue(client, queue_name).purge()
    await client.aclose()
    out = []
    async with serve(settings(redis_url, queue_name, **overrides), fast=fast) as served:
        for path, body, headers, *_ in requests:
            response = await served.post(path, body, headers)
            out.append((comparable(response), list(served.answered)))
    return out


async def test_every_enqueue_answer_is_the_frameworks_own(redis_url: str, queue_name: str) -> None:
    fast = await exchange(redis_url, queue_name, True, REQUESTS)
    slow = await exchange(redis_url, queue_name, False, REQUESTS)
    for (path, body, _, expected), (got, answered), (want, _) in zip(
        REQUESTS, fast, slow, strict=True
    ):
        assert got == want, (path, body)
        assert answered == [expected], (path, body, answered)
    assert [status for (status, _, _), _ in fast] == [
        202, 202, 202, 202, 202, 422, 422, 422, 202, 202, 422,
    ]  # fmt: skip
    assert fast[3][0][2] == {"job_id": "<id>", "created": False}  # the idempotency key hit


async def test_the_token_is_checked_before_anything_is_enqueued(
    redis_url: str, queue_name: str
) -> None:
    body = b'{"type": "email"}'
    requests = [
        ("/jobs", body, JSON, False),
        ("/jobs", body, {**JSON, "authorization": "Bearer wrong"}, False),
        ("/jobs", body, {**JSON, "authorization": f"Basic {TOKEN}"}, False),
        ("/enqueue", b"", {}, False),
        ("/jobs", body, {**JSON, "authorization": f"Bearer {TOKEN}"}, True),
        ("/enqueue", b"", {"authorization": f"bearer {TOKEN}"}, True),
        ("/enqueue", b"", {"authorization": f"Bearer  {TOKEN} "}, True),  # as HTTPBearer strips
    ]
    token = SecretStr(TOKEN)
    fast = await exchange(redis_url, queue_name, True, requests, api_token=token)
    slow = await exchange(redis_url, queue_name, False, requests, api_token=token)
    assert [got for got, _ in fast] == [want for want, _ in slow]
    assert [status for (status, _, _), _ in fast] == [401, 401, 401, 401, 202, 202, 202]
    assert [answered for _, answered in fast] == [[False]] * 4 + [[True]] * 3
    client = jobqueue.connect(redis_url)
    try:
        assert (await Queue(client, queue_name).stats()).enqueued_total == 3
    finally:
        await client.aclose()


@pytest.mark.parametrize("coalesce", [True, False])
async def test_a_full_queue_is_answered_by_the_apps_handler(
    redis_url: str, queue_name: str, coalesce: bool
) -> None:
    requests = [("/jobs", b'{"type": "email"}', JSON, True)] * 4
    overrides = {"max_queue_depth": 2, "coalesce_enqueues": coalesce}
    fast = await exchange(redis_url, queue_name, True, requests, **overrides)
    slow = await exchange(redis_url, queue_name, False, requests, **overrides)
    assert [got for got, _ in fast] == [want for want, _ in slow]
    statuses = [status for (status, _, _), _ in fast]
    assert statuses == [202, 202, 503, 503]
    assert "retry-after" in fast[2][0][1]


async def test_a_fast_answer_is_counted_under_its_route(redis_url: str, queue_name: str) -> None:
    async with serve(settings(redis_url, queue_name), fast=True) as served:
        assert (await served.post("/jobs", b'{"type": "email"}', JSON)).status_code == 202
        assert served.answered == [True]
        metrics = (await served.client.get("/metrics")).text
    counted = (
        'jobqueue_api_request_duration_seconds_count{method="POST",route="/jobs",status="202"}'
    )
    assert f"{counted} 1.0" in metrics.splitlines(), metrics
