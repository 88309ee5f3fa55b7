"""JobQueue specs shared by the spec model's unit tests and the admission tests on a real API
server: ``INVALID``, the specs both must refuse (with the same words), and ``TOPOLOGY_URLS``, one
URL of each Redis topology both must take. No tests here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
)

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


#: One password-less URL of each Redis topology: admission and the model take them all.
TOPOLOGY_URLS = (
    "redis://127.0.0.1:6379/0",
    "rediss://redis.example:6380/1",
    "redis+sentinel://s1:26379,s2,s3:26380/mymaster/0",
    "rediss+sentinel://app@s1/mymaster?ssl_cert_reqs=required",
    "redis+cluster://node-0.redis:6379",
    "rediss+cluster://node-0.redis:6379",
)
