"""The operator as a real process (`python -m jobqueue_operator`) against the real control plane
(kube-apiserver + kube-controller-manager) and a real redis-server.

There is no node, so pods stay Pending; but Deployments get ReplicaSets and the ReplicaSet and
StatefulSet controllers create Pods, which is where Pod Security admission runs. Every test has
its own namespace labelled ``pod-security.kubernetes.io/enforce: restricted``; the operator only
watches ``jqop-*`` namespaces, so other tests' objects are none of its business.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from jobqueue_operator import constants as c

from jobqueue import JobSpec, Queue
from tests.cluster.controlplane import Kube
from tests.cluster.redis_server import RedisServer
from tests.support.jobqueues import (
    CHILD_KINDS,
    RESYNC,
    checksum,
    children_ready,
    container,
    crd,
    decode,
    env_value,
    events_json,
    get,
    jobqueue,
    labelled,
    must_get,
    ns,
    observed,
    operator,
    pods_of,
    secret,
    url_for,
    wait_for,
)
from tests.support.kube import apply, condition
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.cluster

__all__ = ["crd", "ns", "operator"]  # fixtures, re-used


# -- tests -------------------------------------------------------------------------------------


def test_apply_creates_every_child_owned_by_the_jobqueue_with_its_own_secret_copy(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    url = url_for(redis_server)
    apply(
        kube,
        secret(ns, "creds", url=url),
        secret(ns, "token", token="tok-s3cret"),
        jobqueue(
            ns,
            "emails",
            {
                "redis": {"urlFrom": {"secretKeyRef": {"name": "creds", "key": "url"}}},
                "api": {"authTokenSecretRef": {"name": "token", "key": "token"}},
                "autoscaling": {"enabled": False},
            },
        ),
    )
    wait_for("the children", lambda: children_ready(kube, ns, "emails"))
    jq = must_get(kube, "jq", ns, "emails")
    uid = jq["metadata"]["uid"]
    for kind, name in [
        ("deploy", "emails-api"),
        ("deploy", "emails-worker"),
        ("svc", "emails-api"),
        ("secret", "emails-api"),
        ("secret", "emails-worker"),
    ]:
        obj = must_get(kube, kind, ns, name)
        refs = obj["metadata"]["ownerReferences"]
        assert refs == [
            {
                "apiVersion": "jobqueue.io/v1alpha1",
                "kind": "JobQueue",
                "name": "emails",
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ], (kind, name)
    api_secret = must_get(kube, "secret", ns, "emails-api")
    worker_secret = must_get(kube, "secret", ns, "emails-worker")
    assert decode(api_secret, "REDIS_URL") == url and decode(worker_secret, "REDIS_URL") == url
    assert decode(api_secret, "API_TOKEN") == "tok-s3cret"
    assert "API_TOKEN" not in worker_secret["data"]
    worker = must_get(kube, "deploy", ns, "emails-worker")
    api = must_get(kube, "deploy", ns, "emails-api")
    assert env_value(worker, "QUEUE_NAME") == env_value(api, "QUEUE_NAME") == f"{ns}/emails"
    # the source Secrets are untouched: not owned, not labelled
    source = must_get(kube, "secret", ns, "creds")
    assert "ownerReferences" not in source["metadata"]
    jq = wait_for("a current status", lambda: observed(kube, ns, "emails"))
    assert jq["status"]["queueName"] == f"{ns}/emails"
    degraded = wait_for(
        "Degraded=False", lambda: condition(observed(kube, ns, "emails"), "Degraded")
    )
    assert degraded["status"] == "False"
    reachable = wait_for(
        "RedisReachable", lambda: condition(get(kube, "jq", ns, "emails"), "RedisReachable")
    )
    assert reachable["status"] == "True"
    assert "tok-s3cret" not in json.dumps(jq["status"]) and url not in json.dumps(jq["status"])
    # On creation the conditions' Events say what became of it (no "Applied" Event: a write
    # per new JobQueue); none carries a secret.
    events = wait_for(
        "the RedisReachable event",
        lambda: (e := events_json(kube, ns)) and "RedisReachable=True" in e and e,
    )
    assert "tok-s3cret" not in events and url not in events


def test_spec_changes_reach_the_children(kube: Kube, ns: str, redis_server: RedisServer) -> None:
    apply(
        kube,
        jobqueue(
            ns, "q", {"redis": {"url": url_for(redis_server)}, "autoscaling": {"enabled": False}}
        ),
    )
    wait_for("the children", lambda: children_ready(kube, ns, "q"))
    kube.kubectl(
        "patch",
        "jq",
        "q",
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        json.dumps(
            {
                "spec": {
                    "api": {"replicas": 2, "image": "reg/api:2"},
                    "worker": {
                        "image": "reg/worker:2",
                        "concurrency": 3,
                        "replicas": 4,
                        "resources": {"limits": {"memory": "300Mi"}, "requests": {"cpu": "50m"}},
                    },
                }
            }
        ),
    )

    def worker_updated() -> dict[str, Any] | None:
        worker = get(kube, "deploy", ns, "q-worker")
        if worker and container(worker)["image"] == "reg/worker:2":
            return worker
        return None

    worker = wait_for("the new worker spec", worker_updated)
    assert worker["spec"]["replicas"] == 4
    assert env_value(worker, "WORKER_CONCURRENCY") == "3"
    assert container(worker)["resources"] == {
        "limits": {"memory": "300Mi"},
        "requests": {"cpu": "50m"},
    }
    api = wait_for(
        "the new API spec",
        lambda: (d := get(kube, "deploy", ns, "q-api")) and d["spec"]["replicas"] == 2 and d,
    )
    assert container(api)["image"] == "reg/api:2"
    # the scale subresource of the JobQueue drives the worker replicas
    kube.kubectl("scale", "jq", "q", "-n", ns, "--replicas", "1")
    wait_for(
        "worker replicas from `kubectl scale jq`",
        lambda: (d := get(kube, "deploy", ns, "q-worker")) and d["spec"]["replicas"] == 1,
    )
    # disabling the API prunes its Deployment, Service and Secret
    kube.kubectl(
        "patch", "jq", "q", "-n", ns, "--type", "merge", "-p", '{"spec":{"api":{"enabled":false}}}'
    )
    wait_for(
        "the API children pruned",
        lambda: (
            set(labelled(kube, ns, "q", "deploy,svc,secret"))
            == {"deployment.apps/q-worker", "secret/q-worker"}
        ),
    )


def test_a_deleted_or_hand_edited_child_comes_back(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    apply(
        kube,
        jobqueue(
            ns, "q", {"redis": {"url": url_for(redis_server)}, "autoscaling": {"enabled": False}}
        ),
    )
    wait_for("the children", lambda: children_ready(kube, ns, "q"))
    for kind, name in [("deploy", "q-worker"), ("secret", "q-api"), ("svc", "q-api")]:
        old = must_get(kube, kind, ns, name)["metadata"]["uid"]
        kube.kubectl("delete", kind, name, "-n", ns, "--wait=true")
        wait_for(
            f"{kind} {name} back",
            lambda kind=kind, name=name, old=old: (
                (o := get(kube, kind, ns, name)) and o["metadata"]["uid"] != old
            ),
        )
    image = container(must_get(kube, "deploy", ns, "q-worker"))["image"]
    kube.kubectl(
        "patch",
        "deploy",
        "q-worker",
        "-n",
        ns,
        "--type",
        "json",
        "-p",
        '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"evil:1"}]',
    )
    wait_for(
        "the hand-edited image reverted",
        lambda: container(must_get(kube, "deploy", ns, "q-worker"))["image"] == image,
    )
    kube.kubectl(
        "patch",
        "secret",
        "q-worker",
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        '{"stringData":{"REDIS_URL":"redis://evil:6379/0"}}',
    )
    wait_for(
        "the hand-edited Secret copy restored",
        lambda: (
            decode(must_get(kube, "secret", ns, "q-worker"), "REDIS_URL") == url_for(redis_server)
        ),
    )


def test_rotating_the_source_secret_updates_both_copies_and_both_checksums(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    apply(
        kube,
        secret(ns, "creds", url=url_for(redis_server, 0)),
        jobqueue(
            ns, "q", {"redis": {"urlFrom": {"secretKeyRef": {"name": "creds", "key": "url"}}}}
        ),
    )
    wait_for("the children", lambda: children_ready(kube, ns, "q"))
    before = {n: checksum(must_get(kube, "deploy", ns, n)) for n in ("q-api", "q-worker")}
    apply(kube, secret(ns, "creds", url=url_for(redis_server, 1)))
    new_url = url_for(redis_server, 1)
    for name in ("q-api", "q-worker"):
        wait_for(
            f"Secret {name} rotated",
            lambda name=name: decode(must_get(kube, "secret", ns, name), "REDIS_URL") == new_url,
        )
        wait_for(
            f"Deployment {name} checksum changed",
            lambda name=name: checksum(must_get(kube, "deploy", ns, name)) != before[name],
        )
        # the rollout: a second ReplicaSet for the new pod template
        wait_for(
            f"a new ReplicaSet for {name}",
            lambda name=name: (
                len(
                    [
                        rs
                        for rs in kube.kubectl_json("get", "rs", "-n", ns)["items"]
                        if rs["metadata"]["ownerReferences"][0]["name"] == name
                    ]
                )
                == 2
            ),
        )


def test_a_missing_source_secret_is_degraded_with_a_clear_message_then_recovers(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    apply(
        kube,
        jobqueue(
            ns, "q", {"redis": {"urlFrom": {"secretKeyRef": {"name": "creds", "key": "url"}}}}
        ),
    )

    def degraded(reason: str) -> dict[str, Any] | None:
        cond = condition(get(kube, "jq", ns, "q"), "Degraded")
        return cond if cond and cond["status"] == "True" and cond["reason"] == reason else None

    cond = wait_for("Degraded=True", lambda: degraded("SourceSecretMissing"))
    assert cond["message"] == f"Secret {ns}/creds (spec.redis.urlFrom.secretKeyRef) not found"
    ready = condition(get(kube, "jq", ns, "q"), "Ready")
    assert ready is not None and ready["status"] == "False"
    assert labelled(kube, ns, "q") == []  # nothing is built without the URL

    apply(kube, secret(ns, "creds", other="x"))  # the Secret appears, but without the key
    wait_for(
        "a message naming the missing key",
        lambda: (
            (d := degraded("SourceSecretMissing")) and "has no non-empty key 'url'" in d["message"]
        ),
    )
    apply(kube, secret(ns, "creds", url=url_for(redis_server)))
    wait_for("the children", lambda: children_ready(kube, ns, "q"))
    wait_for(
        "Degraded=False",
        lambda: (d := condition(get(kube, "jq", ns, "q"), "Degraded")) and d["status"] == "False",
    )
    events = kube.kubectl_json("get", "events", "-n", ns)["items"]
    warnings = [
        e for e in events if e["type"] == "Warning" and e["reason"] == "SourceSecretMissing"
    ]
    assert warnings and url_for(redis_server) not in json.dumps(events)


def test_an_idle_operator_writes_nothing(
    kube: Kube, ns: str, operator: OperatorProcess, redis_server: RedisServer
) -> None:
    apply(
        kube,
        jobqueue(
            ns, "q", {"redis": {"url": url_for(redis_server)}, "autoscaling": {"enabled": False}}
        ),
    )
    wait_for("the children", lambda: children_ready(kube, ns, "q"))
    wait_for("Ready reported", lambda: condition(observed(kube, ns, "q"), "Ready"))

    def versions() -> dict[str, str]:
        items = kube.kubectl_json("get", f"jq,{CHILD_KINDS}", "-n", ns)["items"]
        return {
            f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"] for i in items
        }

    def settled() -> dict[str, str] | None:
        # two reads a resync apart agree (Deployment controllers finish their status writes)
        first = versions()
        time.sleep(RESYNC)
        return first if versions() == first else None

    before = wait_for("a settled state", settled)
    timer_runs = operator.reconciles("timer")
    # three more resyncs: each reconciles every JobQueue and must change nothing
    wait_for(
        "three more resync reconciles",
        lambda: operator.reconciles("timer") >= timer_runs + 3,
        timeout=RESYNC * 10,
    )
    assert versions() == before


def test_delete_removes_every_child_and_keeps_the_redis_keys(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    apply(
        kube,
        secret(ns, "creds", url=url_for(redis_server)),
        jobqueue(
            ns, "q", {"redis": {"urlFrom": {"secretKeyRef": {"name": "creds", "key": "url"}}}}
        ),
    )
    wait_for("the children", lambda: children_ready(kube, ns, "q"))
    keys = asyncio.run(enqueue_and_count(redis_server, f"{ns}/q"))
    assert keys > 0
    kube.kubectl("delete", "jq", "q", "-n", ns, "--wait=true", "--timeout=60s")
    wait_for("nothing labelled left", lambda: labelled(kube, ns, "q") == [])
    assert get(kube, "secret", ns, "creds") is not None  # the source Secret stays
    assert asyncio.run(count_keys(redis_server, f"{ns}/q")) == keys


def test_delete_with_purge_deletes_the_redis_keys(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    apply(
        kube,
        jobqueue(ns, "q", {"redis": {"url": url_for(redis_server)}, "deletionPolicy": "Purge"}),
    )
    wait_for("the children", lambda: children_ready(kube, ns, "q"))
    assert asyncio.run(enqueue_and_count(redis_server, f"{ns}/q")) > 0
    other = asyncio.run(enqueue_and_count(redis_server, f"{ns}/other"))
    kube.kubectl("delete", "jq", "q", "-n", ns, "--wait=true", "--timeout=60s")
    wait_for("nothing labelled left", lambda: labelled(kube, ns, "q") == [])
    assert asyncio.run(count_keys(redis_server, f"{ns}/q")) == 0
    assert asyncio.run(count_keys(redis_server, f"{ns}/other")) == other  # only its own queue


def test_purge_deletes_every_pool_queue_and_an_event_says_what_went_and_what_stayed(
    kube: Kube, ns: str, redis_server: RedisServer
) -> None:
    """Issue 23: a Purge used to delete only the default queue's keys, and say so only in a
    log line; a pool of another format keeps its (the user's library's) keys."""
    spec = {
        "redis": {"url": url_for(redis_server)},
        "deletionPolicy": "Purge",
        "autoscaling": {"enabled": False},
        "workers": [
            {"name": "mail", "jobTypes": ["email"], "autoscaling": {"enabled": False}},
            {"name": "bulk", "jobTypes": ["bulk"], "autoscaling": {"enabled": False}},
            {
                "name": "legacy",
                "queue": {"format": "list", "names": [f"{ns}-legacy"]},
                "autoscaling": {"enabled": False},
            },
        ],
    }
    apply(kube, jobqueue(ns, "pools", spec))
    wait_for("the children", lambda: children_ready(kube, ns, "pools"))
    queues = [f"{ns}/pools", f"{ns}/pools/mail", f"{ns}/pools/bulk"]
    for queue in queues:
        assert asyncio.run(enqueue_and_count(redis_server, queue)) > 0
    legacy = redis.Redis.from_url(redis_server.url)
    legacy.lpush(f"{ns}-legacy", "job-1")
    kube.kubectl("delete", "jq", "pools", "-n", ns, "--wait=true", "--timeout=60s")
    for queue in queues:
        assert asyncio.run(count_keys(redis_server, queue)) == 0, queue
    assert legacy.llen(f"{ns}-legacy") == 1  # the list app's own key
    legacy.close()

    def finalized() -> str | None:
        items = kube.kubectl_json(
            "get", "events", "-n", ns,
            "--field-selector", "involvedObject.name=pools,reason=Finalized",
        )["items"]  # fmt: skip
        return str(items[0]["message"]) if items else None

    message = wait_for("the Finalized Event", finalized)
    assert "Deployment/pools-worker-mail" in message and "Secret/pools-api" in message, message
    assert f"queues {', '.join(queues)}" in message, message
    assert "other formats are kept" in message, message


async def enqueue_and_count(redis_server: RedisServer, queue: str) -> int:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await Queue(client, queue).enqueue(JobSpec(type="t", payload={"n": 1}))
        return len(await client.keys(f"jq:{{{queue}}}:*"))
    finally:
        await client.aclose()


async def count_keys(redis_server: RedisServer, queue: str) -> int:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        return len(await client.keys(f"jq:{{{queue}}}:*"))
    finally:
        await client.aclose()


def test_a_restricted_namespace_admits_every_pod_the_operator_creates(kube: Kube, ns: str) -> None:
    labels = kube.kubectl_json("get", "namespace", ns)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    apply(kube, jobqueue(ns, "q", {"redis": {"managed": {}}, "autoscaling": {"enabled": False}}))
    wait_for(
        "a pod for the API, the workers and Redis",
        lambda: pods_of(kube, ns, "q") == {"api": 1, "worker": 1, "redis": 1},
    )
    events = kube.kubectl_json("get", "events", "-n", ns)["items"]
    refused = [e["message"] for e in events if "violates PodSecurity" in e.get("message", "")]
    assert refused == []


def test_a_managed_redis_gets_a_statefulset_and_a_password_every_copy_agrees_on(
    kube: Kube, ns: str
) -> None:
    apply(
        kube,
        jobqueue(ns, "q", {"redis": {"managed": {"storage": "1Gi"}}, "deletionPolicy": "Purge"}),
    )
    wait_for("the children", lambda: children_ready(kube, ns, "q"))
    sts = must_get(kube, "sts", ns, "q-redis")
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
    must_get(kube, "svc", ns, "q-redis")
    password = decode(must_get(kube, "secret", ns, "q-redis"), "password")
    expected = f"redis://:{password}@q-redis.{ns}.svc:6379/0"
    assert decode(must_get(kube, "secret", ns, "q-worker"), "REDIS_URL") == expected
    assert decode(must_get(kube, "secret", ns, "q-api"), "REDIS_URL") == expected
    conf = decode(must_get(kube, "secret", ns, "q-redis"), "redis.conf")
    assert "appendonly yes" in conf and "maxmemory-policy noeviction" in conf
    wait_for("the PVC", lambda: [p for p in labelled(kube, ns, "q", "pvc")])
    # the password is generated once: a later reconcile keeps it
    kube.kubectl("annotate", "jq", "q", "-n", ns, "touch=1")
    kube.kubectl(
        "patch",
        "jq",
        "q",
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        '{"spec":{"worker":{"concurrency":2}}}',
    )
    wait_for(
        "the spec change applied",
        lambda: env_value(must_get(kube, "deploy", ns, "q-worker"), "WORKER_CONCURRENCY") == "2",
    )
    assert decode(must_get(kube, "secret", ns, "q-redis"), "password") == password
    kube.kubectl("delete", "jq", "q", "-n", ns, "--wait=true", "--timeout=60s")
    wait_for("nothing labelled left, volume included", lambda: labelled(kube, ns, "q") == [])


def test_a_managed_redis_volume_is_kept_on_delete_with_retain(kube: Kube, ns: str) -> None:
    apply(kube, jobqueue(ns, "q", {"redis": {"managed": {}}}))
    wait_for("the PVC", lambda: labelled(kube, ns, "q", "pvc"))
    kube.kubectl("delete", "jq", "q", "-n", ns, "--wait=true", "--timeout=60s")
    wait_for(
        "only the volume left", lambda: labelled(kube, ns, "q") == labelled(kube, ns, "q", "pvc")
    )
    assert labelled(kube, ns, "q", "pvc")


def test_with_autoscaling_the_worker_replicas_belong_to_the_autoscaler(
    kube: Kube, ns: str, redis_server: RedisServer, operator: OperatorProcess
) -> None:
    apply(
        kube,
        jobqueue(
            ns, "q", {"redis": {"url": url_for(redis_server)}, "autoscaling": {"minReplicas": 2}}
        ),
    )
    wait_for("the children", lambda: children_ready(kube, ns, "q"))
    wait_for(
        "the autoscaler's minReplicas",
        lambda: (d := get(kube, "deploy", ns, "q-worker")) and d["spec"]["replicas"] == 2 and d,
    )
    runs = operator.reconciles("timer")
    wait_for(
        "two resyncs",
        lambda: operator.reconciles("timer") >= runs + 2,
        timeout=RESYNC * 10,
    )
    assert must_get(kube, "deploy", ns, "q-worker")["spec"]["replicas"] == 2  # not fought over

    def replicas_appliers() -> set[str]:
        live = kube.kubectl_json("get", "deploy", "q-worker", "-n", ns, "--show-managed-fields")
        return {
            m["manager"]
            for m in live["metadata"]["managedFields"]
            if m["operation"] == "Apply" and "f:replicas" in m["fieldsV1"].get("f:spec", {})
        }

    # Created in one write, the field still the reconcile's; the apply of the next spec change
    # no longer sends it, and hands it over first: the count stays.
    assert replicas_appliers() == {c.FIELD_MANAGER}
    kube.kubectl(
        "patch", "jq", "q", "-n", ns, "--type", "merge",
        "-p", '{"spec":{"worker":{"resources":{"requests":{"cpu":"50m"}}}}}',
    )  # fmt: skip
    worker = wait_for(
        "the new worker spec",
        lambda: (d := get(kube, "deploy", ns, "q-worker")) and container(d)["resources"] and d,
    )
    assert worker["spec"]["replicas"] == 2
    assert replicas_appliers() == {"jobqueue-autoscaler"}
