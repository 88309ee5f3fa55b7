"""Schemathesis against the API's own OpenAPI document: no 5xx, every response as documented.

The document is built in-process from the same code and settings the server runs with (so
the tests are generated at collection time, one per operation), and the cases are sent to a
real API process (uvicorn, httptools) on real Redis with a bearer token set, so the auth
checks run too. Bounded: MAX_EXAMPLES generated cases per operation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from schemathesis import Case

from tests.cluster.redis_server import RedisServer
from tests.support.openapi import CHECKS, api_schema, openapi_document
from tests.support.services import ApiProcess

TOKEN = "schemathesis-token"
MAX_EXAMPLES = 30
OPENAPI = openapi_document(TOKEN)
schema = api_schema(OPENAPI, max_examples=MAX_EXAMPLES)


@pytest.fixture(scope="module")
def api_url(redis_server: RedisServer) -> Iterator[str]:
    env = {
        "REDIS_URL": redis_server.url,
        "QUEUE_NAME": f"schemathesis/{uuid.uuid4().hex[:8]}",
        "API_TOKEN": TOKEN,
    }
    api = ApiProcess(env).start()
    try:
        yield api.url
        assert api.stop() == 0, api.logs()
        assert "Traceback" not in api.logs(), api.logs()
    finally:
        api.cleanup()


def test_the_server_serves_the_schema_under_test(api_url: str) -> None:
    assert httpx.get(f"{api_url}/openapi.json").json() == OPENAPI


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_the_schema(case: Case[Any], api_url: str) -> None:
    case.call_and_validate(
        base_url=api_url, headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS
    )
