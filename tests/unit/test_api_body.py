"""JSON bodies parsed in one pass: FastAPI's 422 shape, optional bodies, OpenAPI description."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from jobqueue_api.body import JsonBody
from jobqueue_api.models import EnqueueRequest, JobCreate, JsonValue
from starlette.types import Message


def request_with(body: bytes) -> Request:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)


async def errors_of(parser: JsonBody[Any], body: bytes) -> list[dict[str, Any]]:
    with pytest.raises(RequestValidationError) as info:
        await parser.parse(request_with(body))
    return list(info.value.errors())


async def test_a_valid_body_becomes_the_model() -> None:
    job = await JsonBody[JobCreate](JobCreate).parse(request_with(b'{"type":"t","payload":[1]}'))
    assert (job.type, job.payload) == ("t", [1])


async def test_a_missing_required_body_is_reported_at_body() -> None:
    [error] = await errors_of(JsonBody[JobCreate](JobCreate), b"")
    assert (error["type"], error["loc"]) == ("missing", ("body",))


async def test_a_missing_optional_body_is_the_default() -> None:
    default = EnqueueRequest()
    parser = JsonBody[EnqueueRequest](EnqueueRequest, required=False, default=default)
    assert await parser.parse(request_with(b"")) is default


async def test_field_errors_are_located_under_body() -> None:
    errors = await errors_of(JsonBody[JobCreate](JobCreate), b'{"type":"","max_retries":-1}')
    assert [e["loc"] for e in errors] == [("body", "type"), ("body", "max_retries")]


async def test_undecodable_bytes_are_not_echoed_back() -> None:
    [error] = await errors_of(JsonBody[JobCreate](JobCreate), b'{"type": "\xff"}')
    assert error["type"] == "json_invalid" and error["loc"] == ("body",)
    assert error["input"] == {}


async def test_any_json_payload_is_checked_like_a_job_payload() -> None:
    parser = JsonBody[Any](JsonValue, required=False)
    assert await parser.parse(request_with(b'{"a": [1, 2]}')) == {"a": [1, 2]}
    [error] = await errors_of(parser, b'{"n": 1180591620717411303424}')
    assert error["loc"] == ("body",) and "64-bit" in error["msg"]


def test_openapi_refers_to_models_and_inlines_other_types() -> None:
    model = JsonBody[JobCreate](JobCreate, description="one job").openapi()["requestBody"]
    assert model["required"] is True and model["description"] == "one job"
    assert model["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobCreate"
    }
    anything = JsonBody[Any](JsonValue, required=False).openapi()["requestBody"]
    assert anything["required"] is False
    assert anything["content"]["application/json"]["schema"] == {}
