"""Users' own images under a JobQueue (issue 19): queue formats, probes and the env they read."""

from __future__ import annotations

from typing import Any

import pytest
from jobqueue_operator import builders
from jobqueue_operator import constants as c
from jobqueue_operator.autoscaling import AutoscalingSpec
from jobqueue_operator.builders import Images, SecretMaterial
from jobqueue_operator.kubetypes import JobQueueRef, Manifest
from jobqueue_operator.spec import parse_spec

REF = JobQueueRef("shop", "q", "uid-1", 1)
IMAGES = Images("api:1", "worker:1", "redis:1")
URL = "redis://r:6379/0"
#: Seed 000's images: only /healthz on 8080.
SEED_PROBES = {
    "readiness": {"httpGet": {"path": "/healthz", "port": 8080}},
    "liveness": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 20},
}


def children(**spec: Any) -> dict[tuple[str, str], Manifest]:
    parsed = parse_spec({"redis": {"url": URL}, **spec})
    material = SecretMaterial(redis_url=URL)
    return {
        (m["kind"], m["metadata"]["name"]): m
        for m in builders.desired_children(REF, parsed, material, IMAGES)
    }


def container(deploy: Manifest) -> dict[str, Any]:
    return deploy["spec"]["template"]["spec"]["containers"][0]  # type: ignore[typeddict-item, no-any-return]


def env(deploy: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deploy)["env"]}


LIST_APP: dict[str, Any] = {
    "queue": {"format": "list", "names": ["jobs", "jobs:urgent"]},
    "api": {"image": "job-api:1", "probes": SEED_PROBES},
    "worker": {"image": "job-worker:1", "probes": SEED_PROBES},
}


def test_every_pod_gets_task_queue_url_from_its_own_secret_beside_redis_url() -> None:
    got = children(**LIST_APP)
    for name in ("q-api", "q-worker"):
        values = env(got[("Deployment", name)])
        ref = {"secretKeyRef": {"name": name, "key": c.SECRET_KEY_REDIS_URL}}
        assert values[c.ENV_REDIS_URL] == ref
        assert values[c.ENV_TASK_QUEUE_URL] == ref


def test_a_list_queue_names_its_first_key_as_queue_name() -> None:
    got = children(**LIST_APP)
    assert env(got[("Deployment", "q-worker")])[c.ENV_QUEUE_NAME] == "jobs"
    assert env(got[("Deployment", "q-api")])[c.ENV_QUEUE_NAME] == "jobs"


def test_our_own_queue_keeps_its_identity() -> None:
    got = children()
    assert env(got[("Deployment", "q-worker")])[c.ENV_QUEUE_NAME] == "shop/q"


def test_the_seed_images_get_their_own_healthz_probes() -> None:
    got = children(**LIST_APP)
    for name in ("q-api", "q-worker"):
        box = container(got[("Deployment", name)])
        assert box["readinessProbe"] == {"httpGet": {"path": "/healthz", "port": 8080}}
        assert box["livenessProbe"] == {
            "httpGet": {"path": "/healthz", "port": 8080},
            "periodSeconds": 20,
        }


def test_our_images_keep_their_default_probes() -> None:
    box = container(children()[("Deployment", "q-worker")])
    assert box["readinessProbe"]["httpGet"] == {"path": c.READYZ_PATH, "port": c.HTTP_PORT_NAME}
    assert box["livenessProbe"]["httpGet"] == {"path": c.HEALTHZ_PATH, "port": c.HTTP_PORT_NAME}


@pytest.mark.parametrize(
    ("probe", "want"),
    [
        ({"disabled": True}, None),
        ({"tcpSocket": {"port": "http"}}, {"tcpSocket": {"port": "http"}}),
        (
            {"exec": {"command": ["celery", "inspect", "ping"]}, "timeoutSeconds": 10},
            {"exec": {"command": ["celery", "inspect", "ping"]}, "timeoutSeconds": 10},
        ),
    ],
)
def test_a_probe_can_be_any_of_the_kubernetes_actions_or_none(
    probe: dict[str, Any], want: dict[str, Any] | None
) -> None:
    box = container(children(worker={"probes": {"readiness": probe}})[("Deployment", "q-worker")])
    assert box.get("readinessProbe") == want
    assert box["livenessProbe"]["httpGet"]["path"] == c.HEALTHZ_PATH  # the other one: ours


def test_a_pool_of_another_format_reads_its_own_queue_and_has_no_routes() -> None:
    got = children(
        workers=[
            {"name": "mail", "queue": {"format": "celery", "names": ["emails"]}},
            {"name": "rep", "jobTypes": ["report"]},
        ]
    )
    assert env(got[("Deployment", "q-worker-mail")])[c.ENV_QUEUE_NAME] == "emails"
    assert env(got[("Deployment", "q-worker-rep")])[c.ENV_QUEUE_NAME] == "shop/q/rep"
    routes = env(got[("Deployment", "q-api")])[c.ENV_JOB_ROUTES]
    assert routes == '{"report": "shop/q/rep"}'


def test_only_jobqueue_format_queues_are_the_operators_own() -> None:
    spec = parse_spec(
        {
            "redis": {"url": URL},
            "workers": [
                {"name": "mail", "queue": {"format": "rq", "names": ["emails"]}},
                {"name": "rep", "jobTypes": ["report"]},
            ],
        }
    )
    assert spec.jobqueue_queues("shop", "q") == ("shop/q", "shop/q/rep")
    foreign = parse_spec({**LIST_APP, "redis": {"url": URL}})
    assert foreign.jobqueue_queues("shop", "q") == ()


def test_other_formats_are_polled_every_second_unless_told_otherwise() -> None:
    default = AutoscalingSpec()
    assert default.poll_interval(foreign=False) == c.POLL_INTERVAL_JOBQUEUE == 5
    assert default.poll_interval(foreign=True) == c.POLL_INTERVAL_FOREIGN == 1
    assert AutoscalingSpec(poll_interval_seconds=3).poll_interval(foreign=True) == 3


@pytest.mark.parametrize("api", [{"enabled": False}, {"image": "mine:1"}])
def test_a_foreign_format_runs_with_the_users_api_or_none(api: dict[str, Any]) -> None:
    got = children(queue={"format": "bullmq", "names": ["mail"]}, api=api)
    assert (("Deployment", "q-api") in got) is api.get("enabled", True)
