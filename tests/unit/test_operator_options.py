"""Pure units of the JobQueue options: worker pools, extra secrets, API exposure."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from jobqueue_operator import builders
from jobqueue_operator import constants as c
from jobqueue_operator.builders import Images, SecretMaterial
from jobqueue_operator.kubetypes import JobQueueRef, Manifest
from jobqueue_operator.spec import SpecError, parse_spec
from jobqueue_operator.status import exposed_condition

REF = JobQueueRef("shop", "q", "uid-1", 1)
IMAGES = Images("api:1", "worker:1", "redis:1")
URL = "redis://r:6379/0"


def spec(**extra: Any) -> Any:
    return parse_spec({"redis": {"url": URL}, **extra})


def children(
    spec_: Any, extra: dict[str, dict[str, str]] | None = None, **kw: Any
) -> dict[tuple[str, str], Manifest]:
    material = SecretMaterial(redis_url=URL, extra=extra or {})
    return {
        (m["kind"], m["metadata"]["name"]): m
        for m in builders.desired_children(REF, spec_, material, IMAGES, **kw)
    }


def env(deploy: Manifest) -> dict[str, Any]:
    container = deploy["spec"]["template"]["spec"]["containers"][0]  # type: ignore[typeddict-item]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


POOLS = [
    {"name": "email", "jobTypes": ["email"], "concurrency": 3},
    {"name": "img", "jobTypes": ["resize", "crop"], "autoscaling": {"enabled": False}},
]


def test_each_pool_has_its_deployment_secret_and_queue_and_the_api_its_routes() -> None:
    got = children(spec(workers=POOLS), {"worker-email": {"SMTP": "pw"}})
    email = got[("Deployment", "q-worker-email")]
    assert env(email)["QUEUE_NAME"] == "shop/q/email"
    assert env(email)["WORKER_CONCURRENCY"] == "3"
    assert env(email)["SMTP"] == {"secretKeyRef": {"name": "q-worker-email", "key": "SMTP"}}
    assert "replicas" not in email["spec"]  # type: ignore[typeddict-item]  # autoscaled
    assert got[("Deployment", "q-worker-img")]["spec"]["replicas"] == 1  # type: ignore[typeddict-item]
    assert set(got[("Secret", "q-worker-email")]["data"]) == {"REDIS_URL", "SMTP"}  # type: ignore[typeddict-item]
    assert set(got[("Secret", "q-worker-img")]["data"]) == {"REDIS_URL"}  # type: ignore[typeddict-item]
    assert set(got[("Secret", "q-worker")]["data"]) == {"REDIS_URL"}  # type: ignore[typeddict-item]
    assert env(got[("Deployment", "q-api")])[c.ENV_JOB_ROUTES] == (
        '{"crop": "shop/q/img", "email": "shop/q/email", "resize": "shop/q/img"}'
    )
    selectors = {
        m["spec"]["selector"]["matchLabels"][c.LABEL_COMPONENT]  # type: ignore[typeddict-item]
        for (kind, _), m in got.items()
        if kind == "Deployment"
    }
    assert selectors == {"api", "worker", "worker-email", "worker-img"}  # never overlapping


def test_without_pools_the_children_are_unchanged() -> None:
    got = children(spec())
    assert c.ENV_JOB_ROUTES not in env(got[("Deployment", "q-api")])
    assert sorted(got) == [
        ("Deployment", "q-api"),
        ("Deployment", "q-worker"),
        ("Secret", "q-api"),
        ("Secret", "q-worker"),
        ("Service", "q-api"),
    ]


def test_a_rotated_extra_secret_changes_only_its_services_checksum() -> None:
    s = spec(workers=POOLS)
    before = children(s, {"worker-email": {"SMTP": "old-pw"}, "api": {"K": "api-pw"}})
    after = children(s, {"worker-email": {"SMTP": "rotated-pw"}, "api": {"K": "api-pw"}})
    changed = {
        name
        for (kind, name), m in before.items()
        if kind == "Deployment" and m["spec"]["template"] != after[(kind, name)]["spec"]["template"]  # type: ignore[typeddict-item]
    }
    assert changed == {"q-worker-email"}
    value = after[("Secret", "q-worker-email")]["data"]["SMTP"]  # type: ignore[typeddict-item]
    assert base64.b64decode(value) == b"rotated-pw"
    workloads = str([m for (kind, _), m in after.items() if kind == "Deployment"])
    assert "rotated-pw" not in workloads and "api-pw" not in workloads


def test_ingress_and_httproute_point_at_the_api_service() -> None:
    s = spec(
        api={
            "ingress": {"host": "j.example", "tlsSecretName": "tls", "annotations": {"a": "b"}},
            "httpRoute": {"parentRefs": [{"name": "gw"}], "hostnames": ["j.example"]},
        }
    )
    got = children(s, gateway_api=True)
    ing = got[("Ingress", "q-api")]
    assert ing["metadata"]["annotations"] == {"a": "b"}
    assert ing["spec"]["tls"] == [{"hosts": ["j.example"], "secretName": "tls"}]  # type: ignore[typeddict-item]
    route = got[("HTTPRoute", "q-api")]
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "q-api", "port": 80}]  # type: ignore[typeddict-item]
    assert ("HTTPRoute", "q-api") not in children(s, gateway_api=False)
    assert builders.exposure_url(s) == "https://j.example/"
    assert exposed_condition(s, gateway_api=False).reason == c.REASON_GATEWAY_API_MISSING
    assert exposed_condition(s, gateway_api=True).status == "True"
    assert exposed_condition(spec(), gateway_api=False).reason == c.REASON_NOT_EXPOSED


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"workers": [{"name": "a", "jobTypes": ["x"]}, {"name": "a", "jobTypes": ["y"]}]},
            "every pool needs a different name",
        ),
        (
            {"workers": [{"name": "a", "jobTypes": ["x"]}, {"name": "b", "jobTypes": ["x"]}]},
            "one pool only",
        ),
        (
            {"worker": {"secretRefs": [{"name": "s", "keys": ["QUEUE_NAME"]}]}},
            "secretRefs.keys must not name",
        ),
        ({"workers": [{"name": "a", "jobTypes": []}]}, "spec.workers.0.jobTypes"),
    ],
)
def test_bad_pools_are_refused_by_the_model_with_the_admission_words(
    extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        spec(**extra)
