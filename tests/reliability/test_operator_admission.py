"""Invalid JobQueues: refused at admission by the real kube-apiserver (CRD schema + CEL) with
a message a person can act on; or, where only the cluster can tell (a Secret that does not
exist), reported by the running operator in a Degraded condition and recovered once fixed.

Each manifest goes to the API server as a dry-run create with strict field validation (what
`kubectl apply` does); the assertion is on the words of the answer. The table is this suite's
own (the unit tests of the spec model have a smaller one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jobqueue_operator import constants as c

from tests.cluster.controlplane import Kube
from tests.cluster.redis_server import RedisServer
from tests.reliability.kube_support import (
    RESTRICTED,
    KubeHttp,
    OperatorProc,
    condition,
    labelled_children,
    wait_settled,
)
from tests.reliability.support import Figures
from tests.support.kube import install_jobqueue_crd

pytestmark = pytest.mark.cluster
SECTION = "Bad input: JobQueue manifests"
URL = "redis://127.0.0.1:6379/0"
BASE: dict[str, Any] = {"redis": {"url": URL}}


def spec(**blocks: Any) -> dict[str, Any]:
    return {**BASE, **blocks}


@dataclass(frozen=True)
class Refused:
    id: str
    spec: dict[str, Any] | None
    message: str  # a fragment of the API server's answer
    name: str = "q"


GE = "in body should be greater than or equal to"
LE = "in body should be less than or equal to"
PATTERN = "in body should match"
CRON = "cron must be a standard 5-field cron expression"
SCHEDULE = {"name": "nightly", "cron": "0 3 * * *", "type": "report"}

TABLE: tuple[Refused, ...] = (
    # -- bounds
    Refused("concurrency-zero", spec(worker={"concurrency": 0}), f"spec.worker.concurrency {GE} 1"),
    Refused(
        "concurrency-huge",
        spec(worker={"concurrency": 2**40}),
        f"spec.worker.concurrency {LE} 4096",
    ),
    Refused("api-replicas-negative", spec(api={"replicas": -1}), f"spec.api.replicas {GE} 0"),
    Refused("api-replicas-huge", spec(api={"replicas": 10**12}), f"spec.api.replicas {LE} 100"),
    Refused(
        "worker-replicas-huge", spec(worker={"replicas": 1001}), f"spec.worker.replicas {LE} 1000"
    ),
    Refused(
        "job-timeout-negative",
        spec(worker={"jobTimeoutSeconds": -1}),
        f"spec.worker.jobTimeoutSeconds {GE} 0",
    ),
    Refused(
        "job-timeout-huge",
        spec(worker={"jobTimeoutSeconds": 86401}),
        f"spec.worker.jobTimeoutSeconds {LE} 86400",
    ),
    Refused(
        "grace-zero",
        spec(worker={"terminationGracePeriodSeconds": 0}),
        f"spec.worker.terminationGracePeriodSeconds {GE} 1",
    ),
    Refused("api-port-zero", spec(api={"port": 0}), f"spec.api.port {GE} 1"),
    Refused("api-port-huge", spec(api={"port": 65536}), f"spec.api.port {LE} 65535"),
    Refused(
        "max-replicas-zero",
        spec(autoscaling={"maxReplicas": 0}),
        f"spec.autoscaling.maxReplicas {GE} 1",
    ),
    Refused(
        "min-replicas-negative",
        spec(autoscaling={"minReplicas": -1}),
        f"spec.autoscaling.minReplicas {GE} 0",
    ),
    Refused(
        "target-zero",
        spec(autoscaling={"targetJobsPerWorker": 0}),
        f"spec.autoscaling.targetJobsPerWorker {GE} 1",
    ),
    Refused(
        "poll-zero",
        spec(autoscaling={"pollIntervalSeconds": 0}),
        f"spec.autoscaling.pollIntervalSeconds {GE} 1",
    ),
    Refused(
        "cooldown-huge",
        spec(autoscaling={"cooldownSeconds": 86401}),
        f"spec.autoscaling.cooldownSeconds {LE} 86400",
    ),
    Refused(
        "stabilization-huge",
        spec(autoscaling={"scaleDownStabilizationSeconds": 3601}),
        f"spec.autoscaling.scaleDownStabilizationSeconds {LE} 3600",
    ),
    Refused(
        "max-replicas-huge",
        spec(autoscaling={"maxReplicas": 1001}),
        f"spec.autoscaling.maxReplicas {LE} 1000",
    ),
    Refused(
        "min-replicas-huge",
        spec(autoscaling={"minReplicas": 1001, "maxReplicas": 1000}),
        f"spec.autoscaling.minReplicas {LE} 1000",
    ),
    Refused(
        "max-replicas-beyond-int64",
        spec(autoscaling={"maxReplicas": 2**70}),
        "spec.autoscaling.maxReplicas",
    ),
    # -- min > max and other relations
    Refused(
        "min-above-max",
        spec(autoscaling={"minReplicas": 5, "maxReplicas": 2}),
        "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas",
    ),
    Refused(
        "drain-not-below-grace",
        spec(worker={"drainTimeoutSeconds": 60, "terminationGracePeriodSeconds": 60}),
        "worker.drainTimeoutSeconds must be less than worker.terminationGracePeriodSeconds",
    ),
    # -- wrong types
    Refused(
        "concurrency-string",
        spec(worker={"concurrency": "8"}),
        "spec.worker.concurrency in body must be of type integer",
    ),
    Refused(
        "enabled-string",
        spec(api={"enabled": "yes"}),
        "spec.api.enabled in body must be of type boolean",
    ),
    Refused(
        "env-not-a-list",
        spec(worker={"env": "A=1"}),
        "spec.worker.env in body must be of type array",
    ),
    Refused("spec-missing", None, "spec: Required value"),
    # -- names
    Refused("name-uppercase", BASE, "a lowercase RFC 1123 subdomain", name="Emails"),
    Refused("name-with-dot", BASE, "metadata.name must be a DNS-1035 label", name="queue.v2"),
    Refused("name-leading-digit", BASE, "metadata.name must be a DNS-1035 label", name="1queue"),
    Refused("name-too-long", BASE, "metadata.name must be at most 40 characters", name="q" * 41),
    Refused("queue-name-braces", spec(queueName="a{b}"), f"spec.queueName {PATTERN}"),
    Refused(
        "queue-name-too-long",
        spec(queueName="q" * 64),
        "spec.queueName: Too long: may not be more than 63",
    ),
    Refused(
        "env-name-leading-digit",
        spec(worker={"env": [{"name": "1X", "value": "1"}]}),
        f"spec.worker.env[0].name {PATTERN}",
    ),
    Refused(
        "secret-ref-name-uppercase",
        {"redis": {"urlFrom": {"secretKeyRef": {"name": "Creds", "key": "url"}}}},
        f"spec.redis.urlFrom.secretKeyRef.name {PATTERN}",
    ),
    Refused(
        "schedule-name-uppercase",
        spec(schedules=[{**SCHEDULE, "name": "Nightly"}]),
        f"spec.schedules[0].name {PATTERN}",
    ),
    # -- unknown fields
    Refused("typo-in-worker", spec(worker={"replica": 2}), 'unknown field "spec.worker.replica"'),
    Refused("typo-at-top", spec(autoscale={"maxReplicas": 3}), 'unknown field "spec.autoscale"'),
    Refused(
        "unknown-in-redis", {"redis": {"url": URL, "host": "x"}}, 'unknown field "spec.redis.host"'
    ),
    Refused(  # it belongs to the managed Redis: spec.redis.managed.networkPolicy
        "network-policy-misplaced",
        spec(networkPolicy={"enabled": True}),
        'unknown field "spec.networkPolicy"',
    ),
    Refused(
        "network-policy-typo",
        {"redis": {"managed": {"networkPolicy": {"enable": True}}}},
        'unknown field "spec.redis.managed.networkPolicy.enable"',
    ),
    Refused(
        "network-policy-bad-namespace",
        {"redis": {"managed": {"networkPolicy": {"allowNamespaces": ["Monitoring"]}}}},
        f"spec.redis.managed.networkPolicy.allowNamespaces[0] {PATTERN}",
    ),
    Refused(
        "network-policy-namespace-twice",
        {"redis": {"managed": {"networkPolicy": {"allowNamespaces": ["a", "a"]}}}},
        'spec.redis.managed.networkPolicy.allowNamespaces[1]: Duplicate value: "a"',
    ),
    # -- bad cron
    Refused("cron-six-fields", spec(schedules=[{**SCHEDULE, "cron": "0 0 3 * * *"}]), CRON),
    Refused("cron-macro", spec(schedules=[{**SCHEDULE, "cron": "@daily   "}]), CRON),
    Refused("cron-minute-60", spec(schedules=[{**SCHEDULE, "cron": "60 3 * * *"}]), CRON),
    Refused("cron-words", spec(schedules=[{**SCHEDULE, "cron": "every day at 3"}]), CRON),
    Refused(
        "cron-bad-zone",
        spec(schedules=[{**SCHEDULE, "timeZone": "Mars Base"}]),
        "timeZone must be an IANA time zone name",
    ),
    Refused(
        "schedules-same-name",
        spec(schedules=[SCHEDULE, SCHEDULE]),
        "spec.schedules: every schedule needs a different name",
    ),
    # -- bad URLs
    Refused(
        "url-http",
        {"redis": {"url": "http://127.0.0.1:6379/0"}},
        "redis.url must start with redis://, rediss://, redis+sentinel://",
    ),
    Refused(
        "url-password",
        {"redis": {"url": "redis://:hunter22@127.0.0.1:6379/0"}},
        "redis.url must not contain a password",
    ),
    Refused(
        "url-user-password",
        {"redis": {"url": "rediss://app:hunter22@redis.example:6380"}},
        "redis.url must not contain a password",
    ),
    Refused(
        "url-password-query",
        {"redis": {"url": URL + "?password=hunter22"}},
        "redis.url must not contain a password",
    ),
    Refused("url-too-short", {"redis": {"url": "redis://"}}, "spec.redis.url: Invalid value"),
    Refused(
        "url-too-long",
        {"redis": {"url": "redis://" + "h" * 3000}},
        "spec.redis.url: Too long: may not be more than 2048",
    ),
    # -- missing references and sources
    Refused(
        "no-redis-source",
        {"redis": {}},
        "exactly one of redis.url, redis.urlFrom or redis.managed must be set",
    ),
    Refused(
        "two-redis-sources",
        {"redis": {"url": URL, "managed": {}}},
        "exactly one of redis.url, redis.urlFrom or redis.managed must be set",
    ),
    Refused(
        "url-from-without-key",
        {"redis": {"urlFrom": {"secretKeyRef": {"name": "creds"}}}},
        "spec.redis.urlFrom.secretKeyRef.key: Required value",
    ),
    Refused(
        "url-from-without-name",
        {"redis": {"urlFrom": {"secretKeyRef": {"key": "url"}}}},
        "spec.redis.urlFrom.secretKeyRef.name: Required value",
    ),
    Refused(
        "token-ref-without-key",
        spec(api={"authTokenSecretRef": {"name": "tok"}}),
        "spec.api.authTokenSecretRef.key: Required value",
    ),
    Refused(
        "env-value-from-empty",
        spec(worker={"env": [{"name": "X", "valueFrom": {}}]}),
        "valueFrom must set exactly one of secretKeyRef, configMapKeyRef or fieldRef",
    ),
    Refused(
        "volume-two-sources",
        spec(
            worker={
                "volumes": [
                    {"name": "v", "mountPath": "/v", "emptyDir": {}, "secret": {"secretName": "s"}}
                ]
            }
        ),
        "a volume sets exactly one of emptyDir, configMap, secret or persistentVolumeClaim",
    ),
    # -- values the operator owns or cannot use
    Refused(
        "reserved-env",
        spec(worker={"env": [{"name": "REDIS_URL", "value": URL}]}),
        "this env name is set by the operator",
    ),
    Refused(
        "reserved-secret-key",
        spec(api={"secretRefs": [{"name": "s", "keys": ["API_TOKEN"]}]}),
        "secretRefs.keys must not name a variable the operator sets",
    ),
    Refused(
        "volume-over-tmp",
        spec(worker={"volumes": [{"name": "v", "mountPath": "/tmp", "emptyDir": {}}]}),
        "volumes.mountPath must be an absolute path other than /tmp",
    ),
    Refused(
        "quantity",
        spec(worker={"resources": {"limits": {"memory": "lots"}}}),
        "spec.worker.resources.limits.memory",
    ),
    Refused(
        "max-memory",
        {"redis": {"managed": {"maxMemory": "lots"}}},
        f"spec.redis.managed.maxMemory {PATTERN}",
    ),
    Refused(
        "deletion-policy",
        spec(deletionPolicy="Delete"),
        'spec.deletionPolicy: Unsupported value: "Delete"',
    ),
    Refused(
        "service-type",
        spec(api={"serviceType": "External"}),
        'spec.api.serviceType: Unsupported value: "External"',
    ),
    Refused(
        "too-many-env",
        spec(worker={"env": [{"name": f"E{i}", "value": "1"} for i in range(65)]}),
        "spec.worker.env: Too many: 65: must have at most 64 items",
    ),
)


@pytest.fixture(scope="module")
def api(kube: Kube) -> Iterator[KubeHttp]:
    install_jobqueue_crd(kube)
    client = KubeHttp(kube)
    yield client
    client.close()


def test_every_invalid_jobqueue_is_refused_at_admission_with_a_readable_message(
    api: KubeHttp, figures: Figures
) -> None:
    ns = api.namespace("jqadm-")  # not watched by any operator
    answers: dict[str, tuple[int, str]] = {}
    try:
        for case in TABLE:
            status, body = api.create_jq(ns, case.name, case.spec or {}, dry_run=True)
            if case.spec is None:  # no spec at all: send the object without the field
                body_obj = {
                    "apiVersion": c.API_VERSION,
                    "kind": c.KIND,
                    "metadata": {"name": case.name, "namespace": ns},
                }
                status, body = api.request(
                    "POST", api.jq_path(ns) + "?dryRun=All&fieldValidation=Strict", body_obj
                )
            message = body.get("message", "") if isinstance(body, dict) else str(body)
            answers[case.id] = (status, message)
        valid_status, valid = api.create_jq(ns, "ok", BASE, dry_run=True)
    finally:
        api.delete(f"/api/v1/namespaces/{ns}")
    accepted = {k: v for k, v in answers.items() if v[0] < 400}
    unreadable = {
        case.id: answers[case.id][1]
        for case in TABLE
        if answers[case.id][0] >= 400 and case.message not in answers[case.id][1]
    }
    figures.set(
        manifests_tried=len(TABLE),
        refused_at_admission=sum(1 for s, _ in answers.values() if s in (400, 422)),
        accepted_wrongly=len(accepted),
        message_mismatches=len(unreadable),
        statuses=sorted({s for s, _ in answers.values()}),
    )
    assert len(TABLE) >= 30
    assert not accepted, accepted
    assert not unreadable, json.dumps(unreadable, indent=1)
    assert all(s in (400, 422) for s, _ in answers.values()), answers
    assert valid_status == 201, valid  # the same path accepts a valid JobQueue
    leaked = [k for k, (_, m) in answers.items() if "hunter22" in m]
    assert not leaked, f"the refusal echoes the password: {leaked}"


# ---------------------------------------------------------------------------------------------
# Only the cluster can tell: missing Secrets


def test_missing_secrets_are_degraded_with_a_clear_message_then_recover(
    kube: Kube, api: KubeHttp, redis_server: RedisServer, tmp_path: Path, figures: Figures
) -> None:
    op = OperatorProc(kube, tmp_path, watch="jqdeg-*").start()
    ns = api.namespace("jqdeg-", RESTRICTED)
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    cases = {
        "url": (
            {"redis": {"urlFrom": {"secretKeyRef": {"name": "creds", "key": "url"}}}},
            f"Secret {ns}/creds (spec.redis.urlFrom.secretKeyRef) not found",
            lambda: api.secret(ns, "creds", {"url": url}),
        ),
        "token": (
            {"redis": {"url": url}, "api": {"authTokenSecretRef": {"name": "tok", "key": "token"}}},
            f"Secret {ns}/tok (spec.api.authTokenSecretRef) not found",
            lambda: api.secret(ns, "tok", {"token": "t0ken-value"}),
        ),
    }
    seen: dict[str, str] = {}
    try:
        for name, (jq_spec, _, _) in cases.items():
            status, body = api.create_jq(ns, name, {**jq_spec, "autoscaling": {"enabled": False}})
            assert status == 201, body

        def degraded(name: str) -> dict[str, Any] | None:
            cond = condition(api.get(api.jq_path(ns, name)), "Degraded")
            return cond if cond and cond["status"] == "True" else None

        for name, (_, message, fix) in cases.items():
            cond = wait_settled(
                f"{name}: Degraded=True", lambda n=name: degraded(n), on_fail=op.tail
            )
            seen[name] = cond["message"]
            assert cond["reason"] == c.REASON_SOURCE_MISSING, cond
            assert message in cond["message"], cond
            fix()
        for name in cases:

            def healed(n: str = name) -> bool:
                jq = api.get(api.jq_path(ns, n))
                cond = condition(jq, "Degraded")
                names = {x["metadata"]["name"] for x in labelled_children(api, ns)}
                return bool(cond and cond["status"] == "False" and f"{n}-worker" in names)

            wait_settled(f"{name}: recovered", healed, on_fail=op.tail)
        warnings = [e for e in api.events(ns) if e.get("reason") == c.REASON_SOURCE_MISSING]
    finally:
        for name in cases:
            api.delete(api.jq_path(ns, name))
        wait_settled("the JobQueues gone", lambda: not api.items(api.jq_path(ns)), on_fail=op.tail)
        api.delete(f"/api/v1/namespaces/{ns}")
        op.stop()
    figures.set(
        cluster_side_cases=len(cases),
        degraded_reported=len(seen),
        recovered=len(cases),
        warning_events=len(warnings),
    )
    assert warnings
    assert "t0ken-value" not in op.logs() and url not in json.dumps(warnings)
