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
import schemathesis
from hypothesis import HealthCheck, settings
from jobqueue_api.app import create_app
from jobqueue_api.settings import Settings
from pydantic import SecretStr
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.cluster.redis_server import RedisServer
from tests.integration.test_api_process import ApiProcess

TOKEN = "schemathesis-token"
MAX_EXAMPLES = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    ignored_auth,
    unsupported_method,
]

_SCHEMA_SETTINGS = Settings(redis_url=SecretStr("redis://unused"), api_token=SecretStr(TOKEN))
OPENAPI = create_app(_SCHEMA_SETTINGS).openapi()
# Unknown query parameters are ignored by design (like most HTTP APIs), so schemathesis is not
# asked to send them as "invalid" data; every other negative case stays on.
CONFIG = schemathesis.Config.from_dict(
    {"generation": {"allow-extra-parameters": False, "max-examples": MAX_EXAMPLES}}
)
schema = schemathesis.openapi.from_dict(OPENAPI, config=CONFIG)


def _fits_64_bits(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_fits_64_bits(v) for v in value.values())
    if isinstance(value, list):
        return all(_fits_64_bits(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**64
    return True


@schema.hook
def filter_body(context: schemathesis.HookContext, body: Any) -> bool:
    """Payload integers beyond 64 bits are refused with a 422 by design (documented limit)."""
    return _fits_64_bits(body)


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
