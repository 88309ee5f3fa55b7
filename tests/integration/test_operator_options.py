"""Production options of a JobQueue on the real control plane and a real redis-server: worker
pools (own Deployment, Secret, queue and autoscaler), extra secrets per service (copied, rolled
by checksum, never in a pod spec), and API exposure (Ingress, Gateway API HTTPRoute).

The operator process, the namespaces and the helpers are test_operator_lifecycle's.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml
from jobqueue_operator import constants as c

from jobqueue import JobSpec, Queue
from tests.cluster.controlplane import Kube
from tests.cluster.redis_server import RedisServer
from tests.integration import gateway_api
from tests.support.jobqueues import (
    OPERATOR_NAMESPACE,
    admit,
    checksum,
    crd,
    env_value,
    get,
    jobqueue,
    must_get,
    ns,
    operator,
    secret,
    url_for,
    wait_for,
)
from tests.support.kube import apply, condition

__all__ = ["crd", "ns", "operator"]  # fixtures, re-used

pytestmark = pytest.mark.cluster

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jobqueue-full.yaml"


def pools_spec(url: str, *, autoscale: bool = False) -> dict[str, Any]:
    scaling = (
        {
            "minReplicas": 0,
            "maxReplicas": 5,
            "targetJobsPerWorker": 1,
            "cooldownSeconds": 0,
            "scaleDownStabilizationSeconds": 0,
            "pollIntervalSeconds": 1,
        }
        if autoscale
        else {"enabled": False}
    )
    return {
        "redis": {"url": url},
        "autoscaling": {"enabled": False},
        "api": {"secretRefs": [{"name": "api-extra"}]},
        "worker": {"secretRefs": [{"name": "db", "keys": ["DB_URL"]}]},
        "workers": [
            {
                "name": "email",
                "jobTypes": ["email", "newsletter"],
                "concurrency": 2,
                "secretRefs": [{"name": "smtp"}],
                "autoscaling": scaling,
                "replicas": 1,
            },
            {
                "name": "images",
                "jobTypes": ["resize"],
                "secretRefs": [{"name": "s3"}],
                "autoscaling": scaling,
                "replicas": 1,
            },
        ],
    }


def extra_secrets(ns: str) -> list[dict[str, Any]]:
    return [
        secret(ns, "api-extra", PARTNER_KEY="pk-hunter22"),
        secret(ns, "db", DB_URL="postgres://u:hunter22@db/app", OTHER="not-copied"),
        secret(ns, "smtp", SMTP_PASSWORD="smtp-hunter22"),
        secret(ns, "s3", S3_SECRET="s3-hunter22"),
    ]


def keys_of(kube: Kube, ns: str, name: str) -> set[str]:
    return set((must_get(kube, "secret", ns, name).get("data") or {}).keys())


def test_each_pool_gets_its_own_deployment_queue_and_a_secret_with_only_its_keys(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    apply(kube, *extra_secrets(ns), jobqueue(ns, "shop", pools_spec(url_for(redis_server))))
    email = must_get(kube, "deploy", ns, "shop-worker-email")
    images = must_get(kube, "deploy", ns, "shop-worker-images")
    default = must_get(kube, "deploy", ns, "shop-worker")
    assert env_value(email, c.ENV_QUEUE_NAME) == f"{ns}/shop/email"
    assert env_value(images, c.ENV_QUEUE_NAME) == f"{ns}/shop/images"
    assert env_value(default, c.ENV_QUEUE_NAME) == f"{ns}/shop"
    assert env_value(email, c.ENV_WORKER_CONCURRENCY) == "2"

    wait_for("copied keys", lambda: "SMTP_PASSWORD" in keys_of(kube, ns, "shop-worker-email"))
    assert keys_of(kube, ns, "shop-worker-email") == {"REDIS_URL", "SMTP_PASSWORD"}
    assert keys_of(kube, ns, "shop-worker-images") == {"REDIS_URL", "S3_SECRET"}
    assert keys_of(kube, ns, "shop-worker") == {"REDIS_URL", "DB_URL"}
    assert keys_of(kube, ns, "shop-api") == {"REDIS_URL", "PARTNER_KEY"}

    api = must_get(kube, "deploy", ns, "shop-api")
    routes = json.loads(env_value(api, c.ENV_JOB_ROUTES) or "{}")
    assert routes == {
        "email": f"{ns}/shop/email",
        "newsletter": f"{ns}/shop/email",
        "resize": f"{ns}/shop/images",
    }
    # the pods name the keys of their own Secret; no value is anywhere in a workload
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in email["spec"]["template"]["spec"]["containers"][0]["env"]
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    }
    assert refs == {
        "REDIS_URL": "shop-worker-email",
        "TASK_QUEUE_URL": "shop-worker-email",
        "SMTP_PASSWORD": "shop-worker-email",
    }
    workloads = kube.kubectl("get", "deploy", "-n", ns, "-o", "json").stdout
    jq_text = json.dumps(get(kube, "jq", ns, "shop"))
    assert "hunter22" not in workloads + jq_text

    def pools_reported() -> list[dict[str, Any]] | None:
        pools = ((get(kube, "jq", ns, "shop") or {}).get("status") or {}).get("pools")
        return pools if pools and len(pools) == 2 else None

    pools = wait_for("status.pools", pools_reported)
    assert [(p["name"], p["queueName"], p["jobTypes"]) for p in pools] == [
        ("email", f"{ns}/shop/email", ["email", "newsletter"]),
        ("images", f"{ns}/shop/images", ["resize"]),
    ]
    # a pool removed from the spec takes its Deployment and Secret with it
    spec = pools_spec(url_for(redis_server))
    spec["workers"] = spec["workers"][:1]
    apply(kube, jobqueue(ns, "shop", spec))
    wait_for(
        "the images pool pruned", lambda: get(kube, "deploy", ns, "shop-worker-images") is None
    )
    assert get(kube, "secret", ns, "shop-worker-images") is None
    assert get(kube, "deploy", ns, "shop-worker-email") is not None


def test_rotating_an_extra_secret_rolls_exactly_the_service_that_reads_it(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    apply(kube, *extra_secrets(ns), jobqueue(ns, "shop", pools_spec(url_for(redis_server))))
    names = ["shop-api", "shop-worker", "shop-worker-email", "shop-worker-images"]
    wait_for("copied keys", lambda: "S3_SECRET" in keys_of(kube, ns, "shop-worker-images"))
    before = {n: checksum(must_get(kube, "deploy", ns, n)) for n in names}

    apply(kube, secret(ns, "smtp", SMTP_PASSWORD="smtp-rotated-hunter22"))

    def rolled() -> dict[str, str] | None:
        now = {n: checksum(must_get(kube, "deploy", ns, n)) for n in names}
        return now if now["shop-worker-email"] != before["shop-worker-email"] else None

    after = wait_for("the email pool's checksum to change", rolled)
    assert {n for n in names if after[n] != before[n]} == {"shop-worker-email"}
    copy = must_get(kube, "secret", ns, "shop-worker-email")
    assert copy["data"]["SMTP_PASSWORD"] == "c210cC1yb3RhdGVkLWh1bnRlcjIy"  # base64 of the new


async def _enqueue(url: str, queue: str, n: int, job_type: str) -> None:
    redis = aioredis.Redis.from_url(url)
    try:
        await Queue(redis, queue).enqueue_many([JobSpec(type=job_type) for _ in range(n)])
    finally:
        await redis.aclose()


def test_two_pools_scale_independently_on_their_own_backlogs(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    url = url_for(redis_server)
    apply(kube, *extra_secrets(ns), jobqueue(ns, "shop", pools_spec(url, autoscale=True)))

    def replicas(name: str) -> int | None:
        deploy = get(kube, "deploy", ns, name)
        return None if deploy is None else int(deploy["spec"].get("replicas", -1))

    wait_for(
        "both pools at zero",
        lambda: replicas("shop-worker-email") == 0 == replicas("shop-worker-images") or None,
    )
    asyncio.run(_enqueue(url, f"{ns}/shop/email", 3, "email"))
    wait_for("email pool at 3", lambda: replicas("shop-worker-email") == 3 or None)
    assert replicas("shop-worker-images") == 0
    asyncio.run(_enqueue(url, f"{ns}/shop/images", 2, "resize"))
    wait_for("images pool at 2", lambda: replicas("shop-worker-images") == 2 or None)
    assert replicas("shop-worker-email") == 3

    def pool_scaling() -> dict[str, Any] | None:
        status = (get(kube, "jq", ns, "shop") or {}).get("status") or {}
        scaling = status.get("poolScaling") or {}
        done = scaling.get("images", {}).get("desiredWorkers") == 2
        return scaling if done and scaling.get("email", {}).get("desiredWorkers") == 3 else None

    scaling = wait_for("status.poolScaling", pool_scaling)
    assert scaling["email"]["queue"]["ready"] == 3
    assert scaling["images"]["queue"]["ready"] == 2


def test_a_managed_redis_network_policy_follows_the_spec_and_is_repaired(
    kube: Kube, ns: str
) -> None:
    guard: dict[str, Any] = {"enabled": True}
    spec: dict[str, Any] = {
        "redis": {"managed": {"networkPolicy": guard}},
        "autoscaling": {"enabled": False},
        "workers": [{"name": "bulk", "jobTypes": ["bulk"]}],
        "deletionPolicy": "Purge",
    }
    apply(kube, jobqueue(ns, "guarded", spec))
    policy = wait_for("the NetworkPolicy", lambda: get(kube, "networkpolicy", ns, "guarded-redis"))
    assert policy["metadata"]["ownerReferences"][0]["name"] == "guarded"
    body = policy["spec"]
    assert body["podSelector"]["matchLabels"][c.LABEL_COMPONENT] == c.COMPONENT_REDIS
    assert body["policyTypes"] == ["Ingress"]
    (rule,) = body["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    own, operator_peer = rule["from"]
    assert own["podSelector"]["matchLabels"][c.LABEL_INSTANCE] == "guarded"
    assert own["podSelector"]["matchExpressions"][0]["values"] == ["api", "worker", "worker-bulk"]
    assert operator_peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": OPERATOR_NAMESPACE
    }
    assert operator_peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == (
        "jobqueue-operator"
    )

    # a namespace allowed in: one more peer
    guard["allowNamespaces"] = ["monitoring"]
    apply(kube, jobqueue(ns, "guarded", spec))
    wait_for(
        "the allowed namespace",
        lambda: (
            len(must_get(kube, "networkpolicy", ns, "guarded-redis")["spec"]["ingress"][0]["from"])
            == 3
            or None
        ),
    )
    # deleted by hand: put back (watched, and on the next resync at the latest)
    kube.kubectl("delete", "networkpolicy", "guarded-redis", "-n", ns)
    wait_for("the NetworkPolicy repaired", lambda: get(kube, "networkpolicy", ns, "guarded-redis"))
    # switched off: removed, the rest of the managed Redis stays
    guard["enabled"] = False
    apply(kube, jobqueue(ns, "guarded", spec))
    wait_for(
        "the NetworkPolicy removed", lambda: get(kube, "networkpolicy", ns, "guarded-redis") is None
    )
    must_get(kube, "sts", ns, "guarded-redis")


def test_ingress_is_created_updated_and_removed_with_the_field(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    spec: dict[str, Any] = {
        "redis": {"url": url_for(redis_server)},
        "autoscaling": {"enabled": False},
        "api": {"ingress": {"host": "jobs.example.com", "className": "nginx"}},
    }
    apply(kube, jobqueue(ns, "web", spec))
    ing = must_get(kube, "ingress", ns, "web-api")
    assert ing["metadata"]["ownerReferences"][0]["name"] == "web"
    rule = ing["spec"]["rules"][0]
    assert rule["host"] == "jobs.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "web-api"

    spec["api"]["ingress"] |= {"path": "/jobs", "tlsSecretName": "web-tls"}
    apply(kube, jobqueue(ns, "web", spec))

    def updated() -> dict[str, Any] | None:
        ing = get(kube, "ingress", ns, "web-api")
        return ing if ing and ing["spec"].get("tls") else None

    ing = wait_for("the Ingress updated", updated)
    assert ing["spec"]["tls"] == [{"hosts": ["jobs.example.com"], "secretName": "web-tls"}]
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/jobs"
    url = wait_for(
        "status.url",
        lambda: (
            ((get(kube, "jq", ns, "web") or {}).get("status") or {}).get("url")
            == "https://jobs.example.com/jobs"
            or None
        ),
    )
    assert url

    del spec["api"]["ingress"]
    apply(kube, jobqueue(ns, "web", spec))
    wait_for("the Ingress removed", lambda: get(kube, "ingress", ns, "web-api") is None)


def test_httproute_waits_for_the_gateway_api_then_is_created_updated_and_removed(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    gateway_api.uninstall(kube)
    spec: dict[str, Any] = {
        "redis": {"url": url_for(redis_server)},
        "autoscaling": {"enabled": False},
        "api": {"httpRoute": {"parentRefs": [{"name": "gw"}], "hostnames": ["jobs.example"]}},
    }
    apply(kube, jobqueue(ns, "gw", spec))

    def exposed(reason: str) -> dict[str, Any] | None:
        cond = condition(get(kube, "jq", ns, "gw"), c.CONDITION_EXPOSED)
        return cond if cond and cond["reason"] == reason else None

    cond = wait_for("Exposed=False", lambda: exposed(c.REASON_GATEWAY_API_MISSING))
    assert cond["status"] == "False" and "Gateway API" in cond["message"]
    assert must_get(kube, "deploy", ns, "gw-api")  # everything else is there

    gateway_api.install(kube)
    route = must_get(kube, "httproute", ns, "gw-api")
    assert route["spec"]["parentRefs"][0]["name"] == "gw"
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == "gw-api"
    assert wait_for("Exposed=True", lambda: exposed(c.REASON_EXPOSED))["status"] == "True"

    spec["api"]["httpRoute"]["hostnames"] = ["other.example"]
    apply(kube, jobqueue(ns, "gw", spec))
    wait_for(
        "the HTTPRoute updated",
        lambda: (
            (get(kube, "httproute", ns, "gw-api") or {}).get("spec", {}).get("hostnames")
            == ["other.example"]
            or None
        ),
    )
    del spec["api"]["httpRoute"]
    apply(kube, jobqueue(ns, "gw", spec))
    wait_for("the HTTPRoute removed", lambda: get(kube, "httproute", ns, "gw-api") is None)


@pytest.mark.parametrize(
    ("workers", "extra", "message"),
    [
        (
            [{"name": "a", "jobTypes": ["x"]}, {"name": "a", "jobTypes": ["y"]}],
            {},
            "every pool needs a different name",
        ),
        (
            [{"name": "a", "jobTypes": ["x"]}, {"name": "b", "jobTypes": ["x"]}],
            {},
            "a job type may be taken by one pool only",
        ),
        ([{"name": "Bad_Name", "jobTypes": ["x"]}], {}, "spec.workers[0].name"),
        ([{"name": "a", "jobTypes": []}], {}, "spec.workers[0].jobTypes"),
        (
            [
                {
                    "name": "a",
                    "jobTypes": ["x"],
                    "secretRefs": [{"name": "s", "keys": ["REDIS_URL"]}],
                }
            ],
            {},
            "secretRefs.keys must not name a variable the operator sets",
        ),
        ([], {"api": {"httpRoute": {"parentRefs": []}}}, "spec.api.httpRoute.parentRefs"),
    ],
)
def test_bad_pools_and_exposure_are_refused_at_admission(
    kube: Kube, ns: str, workers: list[Any], extra: dict[str, Any], message: str
) -> None:
    spec = {"redis": {"url": "redis://r:6379"}, "workers": workers, **extra}
    result = admit(kube, ns, "bad", spec)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_the_full_example_is_admitted(kube: Kube, ns: str) -> None:
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    jq = next(d for d in docs if d["kind"] == c.KIND)
    result = admit(kube, ns, "full", jq["spec"], "--dry-run=server")
    assert result.returncode == 0, result.stderr
