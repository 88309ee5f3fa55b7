"""The edge middleware at the ASGI level: size limits that lying headers cannot bypass."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from jobqueue_api.metrics import Metrics
from jobqueue_api.middleware import EdgeMiddleware, is_json_content_type
from jobqueue_api.settings import Settings
from pydantic import SecretStr
from starlette.types import Message, Receive, Scope, Send

LIMIT = 100


class App:
    """Reads the whole body and echoes its length; records whether it ran."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})


async def run(
    chunks: list[bytes],
    headers: dict[str, str] | None = None,
    method: str = "POST",
    path: str = "/jobs",
) -> tuple[App, list[Message], Metrics]:
    app = App()
    metrics = Metrics()
    settings = Settings(
        redis_url=SecretStr("redis://h"), max_payload_bytes=LIMIT, max_batch_bytes=LIMIT * 10
    )
    mw = EdgeMiddleware(app, settings=settings, metrics=metrics)
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    messages.append({"type": "http.disconnect"})
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": raw_headers,
    }
    await mw(scope, receive, send)
    return app, sent, metrics


def status(sent: list[Message]) -> int:
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


async def test_a_body_within_the_limit_reaches_the_app_intact() -> None:
    app, sent, _ = await run([b"a" * 60, b"b" * 40], {"content-type": "application/json"})
    assert status(sent) == 200
    assert app.bodies == [b"a" * 60 + b"b" * 40]


async def test_an_announced_oversize_body_is_refused_unread() -> None:
    app, sent, _ = await run([b"x"], {"content-length": str(LIMIT + 1)})
    assert status(sent) == 413 and app.bodies == []
    assert b"larger than 100 bytes" in sent[1]["body"]
    assert (b"connection", b"close") in sent[0]["headers"]


async def test_a_lying_content_length_cannot_smuggle_a_big_body() -> None:
    app, sent, _ = await run([b"x" * 80, b"x" * 80], {"content-length": "10"})
    assert status(sent) == 413 and app.bodies == []


async def test_a_chunked_body_over_the_limit_is_refused() -> None:
    app, sent, _ = await run([b"x" * 30] * 5, {"transfer-encoding": "chunked"})
    assert status(sent) == 413 and app.bodies == []


async def test_the_batch_path_uses_its_own_limit() -> None:
    app, sent, _ = await run([b"x" * (LIMIT * 5)], path="/jobs:batch")
    assert status(sent) == 200 and len(app.bodies[0]) == LIMIT * 5


async def test_a_non_json_body_is_refused_with_415() -> None:
    app, sent, _ = await run([b"to=alice"], {"content-type": "application/x-www-form-urlencoded"})
    assert status(sent) == 415 and app.bodies == []
    assert orjson.loads(sent[1]["body"])["detail"].startswith("request body must be JSON")


async def test_an_empty_body_needs_no_content_type() -> None:
    _, sent, _ = await run([b""], {"content-type": "text/plain"})
    assert status(sent) == 200


async def test_get_requests_pass_straight_through() -> None:
    app, sent, _ = await run([b""], method="GET")
    assert status(sent) == 200 and app.bodies == [b""]


async def test_requests_are_timed_by_route_and_status() -> None:
    _, _, metrics = await run([b"x" * (LIMIT + 1)])
    text = metrics.render().decode()
    labels = 'method="POST",route="<unmatched>",status="413"'
    assert f"jobqueue_api_request_duration_seconds_count{{{labels}}} 1.0" in text


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        ("application/merge-patch+json", True),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("json", False),
    ],
)
def test_json_content_types(value: str, ok: bool) -> None:
    assert is_json_content_type(value) is ok
