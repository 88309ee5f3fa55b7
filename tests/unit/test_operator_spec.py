"""The JobQueue spec model: defaults, camelCase, refusals with the same words as the CRD's CEL.

``INVALID`` is shared with tests/integration/test_operator_admission.py, which sends the same
specs to a real API server: each is refused there (by the CRD's schema and CEL rules) and, when
``model`` is set, here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from jobqueue_operator.spec import (
    MSG_DRAIN_BEFORE_GRACE,
    MSG_ENV_RESERVED,
    MSG_ENV_SOURCE_ONE,
    MSG_ENV_VALUE_XOR,
    MSG_FOREIGN_API,
    MSG_FOREIGN_SCHEDULES,
    MSG_IN_FLIGHT_NAMES,
    MSG_ONE_REDIS_SOURCE,
    MSG_POOL_JOB_TYPES,
    MSG_PROBE_ONE,
    MSG_QUEUE_NAMES_JOBQUEUE,
    MSG_QUEUE_NAMES_REQUIRED,
    MSG_URL_CREDENTIALS,
    MSG_URL_SCHEME,
    JobQueueSpec,
    SpecError,
    parse_spec,
)
from pydantic import ValidationError

URL = "redis://127.0.0.1:6379/0"
BASE: dict[str, Any] = {"redis": {"url": URL}}


def spec_with(**blocks: Any) -> dict[str, Any]:
    return {**BASE, **blocks}


@dataclass(frozen=True)
class Invalid:
    """A JobQueue the API server must refuse, and the words it must use."""

    id: str
    spec: dict[str, Any]
    message: str  # a fragment of the API server's error
    name: str = "q"
    model: bool = True  # the spec model refuses it as well (not: metadata-only rules)
    model_message: str | None = field(default=None)  # a fragment of the model's error


INVALID: tuple[Invalid, ...] = (
    Invalid(
        "no-redis-source", {"redis": {}}, MSG_ONE_REDIS_SOURCE, model_message=MSG_ONE_REDIS_SOURCE
    ),
    Invalid(
        "two-redis-sources",
        {"redis": {"url": URL, "managed": {}}},
        MSG_ONE_REDIS_SOURCE,
        model_message=MSG_ONE_REDIS_SOURCE,
    ),
    Invalid(
        "url-scheme",
        {"redis": {"url": "http://127.0.0.1:6379/0"}},
        MSG_URL_SCHEME,
        model_message=MSG_URL_SCHEME,
    ),
    Invalid(
        "url-with-password",
        {"redis": {"url": "redis://:hunter22@127.0.0.1:6379/0"}},
        MSG_URL_CREDENTIALS,
        model_message=MSG_URL_CREDENTIALS,
    ),
    Invalid(
        "url-sentinel-with-password",
        {"redis": {"url": "redis+sentinel://:hunter22@s1:26379,s2:26379/mymaster/0"}},
        MSG_URL_CREDENTIALS,
        model_message=MSG_URL_CREDENTIALS,
    ),
    Invalid(
        "url-unix-socket",  # a path on the operator's machine means nothing to the pods
        {"redis": {"url": "unix:///run/redis.sock"}},
        MSG_URL_SCHEME,
        model_message=MSG_URL_SCHEME,
    ),
    Invalid(
        "url-with-password-query",
        {"redis": {"url": "redis://127.0.0.1:6379/0?password=hunter22"}},
        MSG_URL_CREDENTIALS,
        model_message=MSG_URL_CREDENTIALS,
    ),
    Invalid(
        "url-from-without-key",
        {"redis": {"urlFrom": {"secretKeyRef": {"name": "creds"}}}},
        "spec.redis.urlFrom.secretKeyRef.key: Required value",
    ),
    Invalid(
        "min-above-max",
        spec_with(autoscaling={"minReplicas": 5, "maxReplicas": 2}),
        "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas",
        model_message="must not be greater than autoscaling.maxReplicas",
    ),
    Invalid(
        "max-replicas-zero",
        spec_with(autoscaling={"maxReplicas": 0}),
        "spec.autoscaling.maxReplicas: Invalid value: 0: spec.autoscaling.maxReplicas in body "
        "should be greater than or equal to 1",
    ),
    Invalid(
        "poll-interval-too-long",
        spec_with(autoscaling={"pollIntervalSeconds": 301}),
        "should be less than or equal to 300",
    ),
    Invalid(
        "drain-not-below-grace",
        spec_with(worker={"drainTimeoutSeconds": 30, "terminationGracePeriodSeconds": 30}),
        MSG_DRAIN_BEFORE_GRACE,
        model_message=MSG_DRAIN_BEFORE_GRACE,
    ),
    Invalid(
        "drain-above-default-grace",
        spec_with(worker={"drainTimeoutSeconds": 40}),
        MSG_DRAIN_BEFORE_GRACE,
        model_message=MSG_DRAIN_BEFORE_GRACE,
    ),
    Invalid(
        "concurrency-zero",
        spec_with(worker={"concurrency": 0}),
        "spec.worker.concurrency in body should be greater than or equal to 1",
    ),
    Invalid(
        "negative-replicas",
        spec_with(api={"replicas": -1}),
        "spec.api.replicas in body should be greater than or equal to 0",
    ),
    Invalid(
        "service-type",
        spec_with(api={"serviceType": "External"}),
        'spec.api.serviceType: Unsupported value: "External"',
    ),
    Invalid(
        "deletion-policy",
        spec_with(deletionPolicy="Delete"),
        'spec.deletionPolicy: Unsupported value: "Delete"',
    ),
    Invalid(
        "reserved-env",
        spec_with(worker={"env": [{"name": "REDIS_URL", "value": "redis://elsewhere:6379"}]}),
        MSG_ENV_RESERVED,
        model_message=MSG_ENV_RESERVED,
    ),
    Invalid(
        "env-value-and-value-from",
        spec_with(
            api={
                "env": [
                    {
                        "name": "X",
                        "value": "1",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                    }
                ]
            }
        ),
        MSG_ENV_VALUE_XOR,
        model_message=MSG_ENV_VALUE_XOR,
    ),
    Invalid(
        "env-value-from-empty",
        spec_with(worker={"env": [{"name": "X", "valueFrom": {}}]}),
        MSG_ENV_SOURCE_ONE,
        model_message=MSG_ENV_SOURCE_ONE,
    ),
    Invalid(
        "quantity",
        spec_with(worker={"resources": {"limits": {"memory": "lots"}}}),
        "spec.worker.resources.limits.memory",
    ),
    Invalid(
        "queue-name",
        spec_with(queueName="a{b}"),
        "spec.queueName in body should match",
    ),
    Invalid(
        "unknown-field",
        spec_with(worker={"replica": 2}),
        'unknown field "spec.worker.replica"',
    ),
    Invalid(
        "managed-storage",
        {"redis": {"managed": {"storage": "big"}}},
        "spec.redis.managed.storage in body should match",
    ),
    # Bring your own images (issue 19): queue formats and probes.
    Invalid(
        "queue-unknown-format",
        spec_with(queue={"format": "sidekiq", "names": ["q"]}, api={"enabled": False}),
        'spec.queue.format: Unsupported value: "sidekiq"',
    ),
    Invalid(
        "queue-names-missing",
        spec_with(queue={"format": "list"}, api={"enabled": False}),
        MSG_QUEUE_NAMES_REQUIRED,
        model_message=MSG_QUEUE_NAMES_REQUIRED,
    ),
    Invalid(
        "queue-names-with-jobqueue",
        spec_with(queue={"format": "jobqueue", "names": ["jobs"]}),
        MSG_QUEUE_NAMES_JOBQUEUE,
        model_message=MSG_QUEUE_NAMES_JOBQUEUE,
    ),
    Invalid(
        "queue-in-flight-names-with-celery",
        spec_with(
            queue={"format": "celery", "names": ["celery"], "inFlightNames": ["x"]},
            api={"enabled": False},
        ),
        MSG_IN_FLIGHT_NAMES,
        model_message=MSG_IN_FLIGHT_NAMES,
    ),
    Invalid(
        "foreign-format-with-our-api",
        spec_with(queue={"format": "list", "names": ["jobs"]}),
        MSG_FOREIGN_API,
        model_message=MSG_FOREIGN_API,
    ),
    Invalid(
        "foreign-format-with-schedules",
        spec_with(
            queue={"format": "rq", "names": ["default"]},
            api={"enabled": False},
            schedules=[{"name": "n", "cron": "0 3 * * *", "type": "t"}],
        ),
        MSG_FOREIGN_SCHEDULES,
        model_message=MSG_FOREIGN_SCHEDULES,
    ),
    Invalid(
        "foreign-pool-with-job-types",
        spec_with(
            workers=[
                {"name": "c", "jobTypes": ["x"], "queue": {"format": "celery", "names": ["c"]}}
            ]
        ),
        MSG_POOL_JOB_TYPES,
        model_message="spec.workers.0.jobTypes",
    ),
    Invalid(
        "jobqueue-pool-without-job-types",
        spec_with(workers=[{"name": "p"}]),
        MSG_POOL_JOB_TYPES,
        model_message="spec.workers.0.jobTypes",
    ),
    Invalid(
        "probe-without-port",
        spec_with(worker={"probes": {"readiness": {"httpGet": {"path": "/healthz"}}}}),
        "spec.worker.probes.readiness.httpGet.port: Required value",
        model_message="spec.worker.probes.readiness.httpGet.port",
    ),
    Invalid(
        "probe-two-actions",
        spec_with(
            api={"probes": {"liveness": {"tcpSocket": {"port": 8080}, "exec": {"command": ["x"]}}}}
        ),
        MSG_PROBE_ONE,
        model_message=MSG_PROBE_ONE,
    ),
    Invalid(
        "probe-no-action",
        spec_with(api={"probes": {"liveness": {"periodSeconds": 5}}}),
        MSG_PROBE_ONE,
        model_message=MSG_PROBE_ONE,
    ),
    Invalid(
        "name-not-a-dns-label",
        BASE,
        "metadata.name must be a DNS-1035 label",
        name="queue.v2",
        model=False,
    ),
    Invalid(
        "name-too-long",
        BASE,
        "metadata.name must be at most 40 characters",
        name="q" * 41,
        model=False,
    ),
)


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


#: One password-less URL of each Redis topology: admission and the model take them all.
TOPOLOGY_URLS = (
    "redis://127.0.0.1:6379/0",
    "rediss://redis.example:6380/1",
    "redis+sentinel://s1:26379,s2,s3:26380/mymaster/0",
    "rediss+sentinel://app@s1/mymaster?ssl_cert_reqs=required",
    "redis+cluster://node-0.redis:6379",
    "rediss+cluster://node-0.redis:6379",
)


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
