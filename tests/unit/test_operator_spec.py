"""The JobQueue spec model: defaults, camelCase, refusals with the same words as the CRD's CEL.

``INVALID`` (tests/support/spec_cases.py) is shared with tests/integration/
test_operator_admission.py, which sends the same specs to a real API server: each is refused
there (by the CRD's schema and CEL rules) and, when ``model`` is set, here too.
"""

from __future__ import annotations

import pytest
from jobqueue_operator.spec import (
    JobQueueSpec,
    SpecError,
    parse_spec,
)
from pydantic import ValidationError

from tests.support.spec_cases import BASE, INVALID, TOPOLOGY_URLS, URL, Invalid, spec_with


def test_a_minimal_spec_gets_every_default() -> None:
    spec = parse_spec(BASE)
    assert spec.redis.url == URL
    assert spec.queue_name is None
    assert spec.api.enabled and spec.api.replicas == 1 and spec.api.port == 80
    assert spec.api.service_type == "ClusterIP"
    assert spec.worker.concurrency == 8 and spec.worker.replicas == 1
    assert spec.worker.job_timeout_seconds == 300
    assert spec.worker.drain_timeout_seconds < spec.worker.termination_grace_period_seconds
    assert spec.autoscaling.enabled and spec.autoscaling.min_replicas == 0
    assert spec.autoscaling.max_replicas == 10
    assert spec.deletion_policy == "Retain"


def test_fields_are_camel_case_on_the_wire() -> None:
    raw = {
        "redis": {"urlFrom": {"secretKeyRef": {"name": "creds", "key": "url"}}},
        "queueName": "emails",
        "api": {"serviceType": "NodePort", "authTokenSecretRef": {"name": "tok", "key": "t"}},
        "worker": {"jobTimeoutSeconds": 0, "terminationGracePeriodSeconds": 90},
        "autoscaling": {"targetJobsPerWorker": 3, "scaleDownStabilizationSeconds": 0},
        "deletionPolicy": "Purge",
    }
    spec = parse_spec(raw)
    assert spec.redis.url_from is not None
    assert spec.redis.url_from.secret_key_ref.key == "url"
    assert spec.api.auth_token_secret_ref is not None
    assert spec.worker.termination_grace_period_seconds == 90
    assert spec.autoscaling.target_jobs_per_worker == 3
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["redis"] == {**raw["redis"], "allowConfig": False}
    assert dumped["deletionPolicy"] == "Purge"


def test_the_parsed_spec_is_frozen() -> None:
    spec = parse_spec(BASE)
    with pytest.raises(ValidationError):
        spec.worker.concurrency = 2  # type: ignore[misc]


def test_queue_identity_is_namespace_slash_queue_name_defaulting_to_the_object_name() -> None:
    assert parse_spec(BASE).queue_identity("shop", "emails") == "shop/emails"
    named = parse_spec(spec_with(queueName="mail"))
    assert named.queue_identity("shop", "emails") == "shop/mail"


def test_quantities_may_be_numbers_or_strings() -> None:
    spec = parse_spec(spec_with(worker={"resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}))
    assert spec.worker.resources.manifest() == {"limits": {"cpu": "1", "memory": "1Gi"}}


def test_a_username_without_password_in_the_url_is_fine() -> None:
    assert parse_spec({"redis": {"url": "redis://app@127.0.0.1:6379/0"}}).redis.url


@pytest.mark.parametrize("url", TOPOLOGY_URLS)
def test_every_redis_topology_url_is_a_valid_spec(url: str) -> None:
    assert parse_spec({"redis": {"url": url}}).redis.url == url


@pytest.mark.parametrize("case", [c for c in INVALID if c.model], ids=lambda c: c.id)
def test_the_model_refuses_what_admission_refuses(case: Invalid) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(case.spec)
    if case.model_message is not None:
        assert case.model_message in str(raised.value)


def test_a_spec_error_names_the_field_but_never_the_value() -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec({"redis": {"url": "redis://:s3cr3t-value@host:6379/0"}})
    assert "spec.redis.url" in str(raised.value)
    assert "s3cr3t-value" not in str(raised.value)


def test_every_example_jobqueue_parses() -> None:
    import pathlib

    import yaml

    root = pathlib.Path(__file__).resolve().parents[2] / "examples"
    found = 0
    for path in sorted(root.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "JobQueue":
                assert isinstance(parse_spec(doc["spec"]), JobQueueSpec), path
                found += 1
    assert found >= 6  # the three of examples/ and the four of examples/byo/


def test_managed_redis_appendfsync_defaults_to_everysec_and_takes_only_always_or_everysec() -> None:
    managed = {**BASE, "redis": {"managed": {}}}
    redis = parse_spec(managed).redis.managed
    assert redis is not None and redis.appendfsync == "everysec"
    always = parse_spec({**BASE, "redis": {"managed": {"appendfsync": "always"}}}).redis.managed
    assert always is not None and always.appendfsync == "always"
    with pytest.raises(SpecError):
        parse_spec({**BASE, "redis": {"managed": {"appendfsync": "no"}}})
