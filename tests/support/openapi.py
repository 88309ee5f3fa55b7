"""The API's own OpenAPI document as schemathesis sees it, shared by the schema tests of the
integration suite and the bad-input tests of the reliability suite: the checks every generated
case must pass, and the documented limits generation keeps to. No tests here."""

from __future__ import annotations

from typing import Any

import schemathesis
from jobqueue_api.app import create_app
from jobqueue_api.settings import Settings
from pydantic import SecretStr
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
from schemathesis.specs.openapi.schemas import OpenApiSchema

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


def openapi_document(token: str) -> dict[str, Any]:
    """The document the API serves when `API_TOKEN` is set, built in-process from the same
    code and settings the server runs with."""
    settings = Settings(redis_url=SecretStr("redis://unused"), api_token=SecretStr(token))
    return create_app(settings).openapi()


def fits_64_bits(value: Any) -> bool:
    if isinstance(value, dict):
        return all(fits_64_bits(v) for v in value.values())
    if isinstance(value, list):
        return all(fits_64_bits(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**64
    return True


def filter_body(context: schemathesis.HookContext, body: Any) -> bool:
    """Payload integers beyond 64 bits are refused with a 422 by design (documented limit)."""
    return fits_64_bits(body)


def api_schema(openapi: dict[str, Any], *, max_examples: int | None = None) -> OpenApiSchema:
    """schemathesis' schema of `openapi`, payloads kept to 64-bit integers (`filter_body`).

    Unknown query parameters are ignored by design (like most HTTP APIs), so schemathesis is
    not asked to send them as "invalid" data; every other negative case stays on."""
    generation: dict[str, Any] = {"allow-extra-parameters": False}
    if max_examples is not None:
        generation["max-examples"] = max_examples
    # GET /jobs: any string is a schema-valid `cursor`, but only one the API returned can be
    # used (it is opaque); any other is a 400 with the reason, by design.
    opaque_cursor = {
        "include-path": "/jobs",
        "include-method": "GET",
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2XX", "3XX", 400, 401, 403, 404, 409, 429, "5XX"]
            }
        },
    }
    config = {"generation": generation, "operations": [opaque_cursor]}
    schema = schemathesis.openapi.from_dict(openapi, config=schemathesis.Config.from_dict(config))
    schema.hook(filter_body)
    return schema
