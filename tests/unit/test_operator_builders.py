"""The pure builders: every child a JobQueue gets, checked without a cluster."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from jobqueue_operator import builders
from jobqueue_operator import constants as c
from jobqueue_operator.builders import Images, SecretMaterial, desired_children
from jobqueue_operator.kubetypes import JobQueueRef, Manifest
from jobqueue_operator.spec import parse_spec

REF = JobQueueRef(namespace="shop", name="emails", uid="uid-1234", generation=3)
IMAGES = Images(api="img/api:1", worker="img/worker:1", redis="img/redis:7")
URL = "redis://:pw@redis.shop.svc:6379/0"
MATERIAL = SecretMaterial(redis_url=URL)


def build(
    spec: dict[str, Any], material: SecretMaterial = MATERIAL
) -> dict[tuple[str, str], Manifest]:
    children = desired_children(REF, parse_spec(spec), material, IMAGES)
    return {(m["kind"], m["metadata"]["name"]): m for m in children}


def external(**blocks: Any) -> dict[str, Any]:
    return {"redis": {"urlFrom": {"secretKeyRef": {"name": "creds", "key": "url"}}}, **blocks}


def decoded(secret: Manifest) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def pod_spec(workload: Manifest) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def env_of(workload: Manifest) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in pod_spec(workload)["containers"][0]["env"]}


def workloads(children: dict[tuple[str, str], Manifest]) -> list[Manifest]:
    return [m for m in children.values() if m["kind"] in ("Deployment", "StatefulSet")]


def test_an_external_redis_gives_api_and_worker_deployments_a_service_and_two_secrets() -> None:
    children = build(external())
    assert set(children) == {
        ("Secret", "emails-api"),
        ("Deployment", "emails-api"),
        ("Service", "emails-api"),
        ("Secret", "emails-worker"),
        ("Deployment", "emails-worker"),
    }


def test_secrets_come_before_the_deployments_that_read_them() -> None:
    kinds = [m["kind"] for m in desired_children(REF, parse_spec(external()), MATERIAL, IMAGES)]
    assert kinds.index("Secret") < kinds.index("Deployment")
    assert kinds[-2:] == ["Secret", "Deployment"]


def test_every_child_is_owned_by_the_jobqueue_as_controller_and_labelled() -> None:
    for manifest in build({"redis": {"managed": {}}}, SecretMaterial(URL, None, "pw")).values():
        meta = manifest["metadata"]
        assert meta["namespace"] == "shop"
        assert meta.get("ownerReferences") == [
            {
                "apiVersion": "jobqueue.io/v1alpha1",
                "kind": "JobQueue",
                "name": "emails",
                "uid": "uid-1234",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        labels = meta["labels"]
        assert labels[c.LABEL_NAME] == "jobqueue"
        assert labels[c.LABEL_INSTANCE] == "emails"
        assert labels[c.LABEL_MANAGED_BY] == "jobqueue-operator"
        assert labels[c.LABEL_PART_OF] == "jobqueue"
        assert labels[c.LABEL_COMPONENT] in ("api", "worker", "redis")


def test_each_deployment_has_its_own_secret_copy_of_the_url() -> None:
    children = build(external())
    assert decoded(children[("Secret", "emails-api")]) == {"REDIS_URL": URL}
    assert decoded(children[("Secret", "emails-worker")]) == {"REDIS_URL": URL}
    for kind_name, secret in (("emails-api", "emails-api"), ("emails-worker", "emails-worker")):
        env = env_of(children[("Deployment", kind_name)])
        assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "REDIS_URL"}
        assert "value" not in env["REDIS_URL"]


def test_the_api_token_goes_only_into_the_api_secret() -> None:
    spec = external(api={"authTokenSecretRef": {"name": "tok", "key": "t"}})
    children = build(spec, SecretMaterial(URL, api_token="tkn-123"))
    assert decoded(children[("Secret", "emails-api")]) == {"REDIS_URL": URL, "API_TOKEN": "tkn-123"}
    assert decoded(children[("Secret", "emails-worker")]) == {"REDIS_URL": URL}
    env = env_of(children[("Deployment", "emails-api")])
    assert env["API_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "emails-api",
        "key": "API_TOKEN",
    }
    assert "API_TOKEN" not in env_of(children[("Deployment", "emails-worker")])


def test_no_secret_value_appears_outside_the_secrets() -> None:
    spec = external(api={"authTokenSecretRef": {"name": "tok", "key": "t"}})
    for manifest in build(spec, SecretMaterial(URL, api_token="tkn-123")).values():
        if manifest["kind"] != "Secret":
            text = repr(manifest)
            assert ":pw@" not in text and "tkn-123" not in text


def test_both_deployments_get_the_same_queue_name_and_the_contract_env() -> None:
    children = build(external(queueName="mail", worker={"concurrency": 3}))
    api, worker = children[("Deployment", "emails-api")], children[("Deployment", "emails-worker")]
    assert env_of(api)["QUEUE_NAME"]["value"] == "shop/mail"
    assert env_of(worker)["QUEUE_NAME"]["value"] == "shop/mail"
    assert env_of(api)["PORT"]["value"] == "8080"
    w = env_of(worker)
    assert w["WORKER_CONCURRENCY"]["value"] == "3"
    assert w["JOB_TIMEOUT_SECONDS"]["value"] == "300"
    assert w["DRAIN_TIMEOUT_SECONDS"]["value"] == "25"
    assert w["HEALTH_PORT"]["value"] == "8080"
    assert w["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "POD_NAME" not in env_of(api)  # the API has no use for it (tests/unit/test_contract.py)


def test_pods_are_restricted_with_a_tmp_emptydir_and_health_probes() -> None:
    spec = external()
    material = SecretMaterial(URL, None, "pw")
    all_workloads = workloads(build(spec)) + workloads(build({"redis": {"managed": {}}}, material))
    assert len(all_workloads) == 5
    for workload in all_workloads:
        pod = pod_spec(workload)
        sec = pod["securityContext"]
        assert sec["runAsNonRoot"] is True and sec["runAsUser"] == 10001
        assert sec["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            csec = container["securityContext"]
            assert csec["allowPrivilegeEscalation"] is False
            assert csec["readOnlyRootFilesystem"] is True
            assert csec["capabilities"] == {"drop": ["ALL"]}
            assert csec["runAsNonRoot"] is True
            assert "livenessProbe" in container and "readinessProbe" in container
    for workload in workloads(build(spec)):
        pod = pod_spec(workload)
        container = pod["containers"][0]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["ports"][0]["containerPort"] == 8080
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])


def test_pod_templates_carry_the_checksum_of_their_own_secret() -> None:
    children = build(external())
    for component in ("api", "worker"):
        secret = children[("Secret", f"emails-{component}")]
        template = children[("Deployment", f"emails-{component}")]["spec"]["template"]
        annotation = template["metadata"]["annotations"][c.ANNOTATION_SECRET_CHECKSUM]
        assert annotation == builders.checksum(secret["data"])


def test_a_new_url_changes_both_checksums_and_a_new_token_only_the_apis() -> None:
    spec = external(api={"authTokenSecretRef": {"name": "tok", "key": "t"}})

    def sums(material: SecretMaterial) -> dict[str, str]:
        children = build(spec, material)
        return {
            n: children[("Deployment", n)]["spec"]["template"]["metadata"]["annotations"][
                c.ANNOTATION_SECRET_CHECKSUM
            ]
            for n in ("emails-api", "emails-worker")
        }

    before = sums(SecretMaterial(URL, "t1"))
    assert before == sums(SecretMaterial(URL, "t1"))  # deterministic
    rotated = sums(SecretMaterial(URL.replace("/0", "/1"), "t1"))
    assert rotated["emails-api"] != before["emails-api"]
    assert rotated["emails-worker"] != before["emails-worker"]
    new_token = sums(SecretMaterial(URL, "t2"))
    assert new_token["emails-api"] != before["emails-api"]
    assert new_token["emails-worker"] == before["emails-worker"]


def test_worker_replicas_are_left_to_the_autoscaler_while_it_is_enabled() -> None:
    enabled = build(external(worker={"replicas": 4}))[("Deployment", "emails-worker")]
    assert "replicas" not in enabled["spec"]
    disabled = build(external(worker={"replicas": 4}, autoscaling={"enabled": False}))
    assert disabled[("Deployment", "emails-worker")]["spec"]["replicas"] == 4
    assert (
        build(external(api={"replicas": 3}))[("Deployment", "emails-api")]["spec"]["replicas"] == 3
    )


def test_spec_settings_reach_the_worker_container() -> None:
    spec = external(
        worker={
            "image": "reg/shop-worker:1.4",
            "command": ["python", "-m", "jobqueue_worker"],
            "args": ["--x"],
            "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m"}},
            "env": [{"name": "TASKS_MODULE", "value": "shop.tasks"}],
            "terminationGracePeriodSeconds": 90,
        }
    )
    worker = build(spec)[("Deployment", "emails-worker")]
    container = pod_spec(worker)["containers"][0]
    assert container["image"] == "reg/shop-worker:1.4"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["python", "-m", "jobqueue_worker"]
    assert container["args"] == ["--x"]
    assert container["resources"] == {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m"}}
    assert container["env"][-1] == {"name": "TASKS_MODULE", "value": "shop.tasks"}
    assert pod_spec(worker)["terminationGracePeriodSeconds"] == 90


def test_default_images_come_from_the_operator_settings() -> None:
    children = build(external())
    assert pod_spec(children[("Deployment", "emails-api")])["containers"][0]["image"] == "img/api:1"
    worker = pod_spec(children[("Deployment", "emails-worker")])["containers"][0]
    assert worker["image"] == "img/worker:1"
    assert "command" not in worker and "resources" not in worker


def test_the_api_service_maps_the_spec_port_to_the_http_container_port() -> None:
    service = build(external(api={"port": 8000, "serviceType": "NodePort"}))[
        ("Service", "emails-api")
    ]
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == builders.selector_labels("emails", "api")


def test_a_disabled_api_has_no_children() -> None:
    assert set(build(external(api={"enabled": False}))) == {
        ("Secret", "emails-worker"),
        ("Deployment", "emails-worker"),
    }


def test_selectors_are_a_stable_subset_of_the_pod_labels() -> None:
    for workload in workloads(build(external())):
        selector = workload["spec"]["selector"]["matchLabels"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
        assert set(selector) == {c.LABEL_NAME, c.LABEL_INSTANCE, c.LABEL_COMPONENT}


MANAGED = {"redis": {"managed": {"storage": "2Gi", "maxMemory": "256mb"}}}
MANAGED_MATERIAL = SecretMaterial(builders.managed_redis_url(REF, "s3cret"), None, "s3cret")


def test_a_managed_redis_adds_a_statefulset_a_service_and_a_password_secret() -> None:
    children = build(MANAGED, MANAGED_MATERIAL)
    for kind in ("StatefulSet", "Service", "Secret"):
        assert (kind, "emails-redis") in children
    assert MANAGED_MATERIAL.redis_url == "redis://:s3cret@emails-redis.shop.svc:6379/0"
    assert decoded(children[("Secret", "emails-worker")])["REDIS_URL"] == MANAGED_MATERIAL.redis_url


def test_the_managed_redis_config_is_aof_everysec_noeviction_with_the_password() -> None:
    secret = build(MANAGED, MANAGED_MATERIAL)[("Secret", "emails-redis")]
    data = decoded(secret)
    assert data["password"] == "s3cret"
    conf = data["redis.conf"].splitlines()
    for line in (
        "appendonly yes",
        "appendfsync everysec",
        "maxmemory-policy noeviction",
        "requirepass s3cret",
        "maxmemory 256mb",
        "dir /data",
    ):
        assert line in conf


def test_the_managed_redis_fsyncs_its_aof_on_every_write_with_appendfsync_always() -> None:
    spec = {"redis": {"managed": {**MANAGED["redis"]["managed"], "appendfsync": "always"}}}
    conf = decoded(build(spec, MANAGED_MATERIAL)[("Secret", "emails-redis")])["redis.conf"]
    assert "appendfsync always" in conf.splitlines()
    assert "appendfsync everysec" not in conf


def test_the_managed_redis_statefulset_has_a_volume_and_reads_its_config_from_the_secret() -> None:
    sts = build(MANAGED, MANAGED_MATERIAL)[("StatefulSet", "emails-redis")]
    spec = sts["spec"]
    assert spec["replicas"] == 1 and spec["serviceName"] == "emails-redis"
    claim = spec["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    container = spec["template"]["spec"]["containers"][0]
    assert container["command"] == ["redis-server", "/etc/redis/redis.conf"]
    assert container["image"] == "img/redis:7"
    assert "requirepass" not in repr(container) and "s3cret" not in repr(sts)
    config = next(v for v in spec["template"]["spec"]["volumes"] if v["name"] == "config")
    assert config["secret"]["secretName"] == "emails-redis"


def test_purge_deletes_the_managed_volume_with_the_statefulset() -> None:
    sts = build({**MANAGED, "deletionPolicy": "Purge"}, MANAGED_MATERIAL)[
        ("StatefulSet", "emails-redis")
    ]
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"


GUARDED = {
    "redis": {"managed": {"networkPolicy": {"enabled": True, "allowNamespaces": ["monitoring"]}}},
    "workers": [{"name": "video", "jobTypes": ["video.encode"]}],
}
OPERATOR = builders.OperatorPeer("jq-system", {"app.kubernetes.io/name": "jobqueue-operator"})


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels, In/NotIn) evaluated the way the API server does."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        present = labels.get(expr["key"]) in expr["values"]
        if present != (expr["operator"] == "In"):
            return False
    return True


def admitted(policy: Manifest, namespace: str, pod_labels: dict[str, str]) -> bool:
    """Whether one ingress rule of ``policy`` lets a pod (namespace, labels) in."""
    ns_labels = {builders.NAMESPACE_NAME_LABEL: namespace}
    for rule in policy["spec"]["ingress"]:
        for peer in rule["from"]:
            if "namespaceSelector" in peer:
                if not selects(peer["namespaceSelector"], ns_labels):
                    continue
            elif namespace != policy["metadata"]["namespace"]:
                continue  # a podSelector alone means the policy's own namespace
            if selects(peer.get("podSelector", {}), pod_labels):
                return True
    return False


def guarded(spec: dict[str, Any] = GUARDED) -> dict[tuple[str, str], Manifest]:
    children = desired_children(REF, parse_spec(spec), MANAGED_MATERIAL, IMAGES, operator=OPERATOR)
    return {(m["kind"], m["metadata"]["name"]): m for m in children}


def test_no_network_policy_unless_asked() -> None:
    assert not [k for k in build(MANAGED, MANAGED_MATERIAL) if k[0] == "NetworkPolicy"]


def test_the_network_policy_guards_the_redis_pods_on_the_redis_port_only() -> None:
    children = guarded()
    policy = children[("NetworkPolicy", "emails-redis")]
    redis_pods = children[("StatefulSet", "emails-redis")]["spec"]["template"]["metadata"]
    assert selects(policy["spec"]["podSelector"], redis_pods["labels"])
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert [r["ports"] for r in policy["spec"]["ingress"]] == [[{"protocol": "TCP", "port": 6379}]]
    order = [k for k in children]
    assert order.index(("NetworkPolicy", "emails-redis")) < order.index(
        ("StatefulSet", "emails-redis")
    )


def test_the_network_policy_lets_in_this_jobqueues_api_and_every_worker_pool_only() -> None:
    children = guarded()
    policy = children[("NetworkPolicy", "emails-redis")]
    pods = {
        name: m["spec"]["template"]["metadata"]["labels"]
        for (kind, name), m in children.items()
        if kind == "Deployment"
    }
    assert set(pods) == {"emails-api", "emails-worker", "emails-worker-video"}
    for labels in pods.values():
        assert admitted(policy, "shop", labels)
        assert not admitted(policy, "elsewhere", labels)  # same labels, other namespace
        other = {**labels, c.LABEL_INSTANCE: "other-queue"}
        assert not admitted(policy, "shop", other)  # another JobQueue's pods
    assert not admitted(policy, "shop", {"app": "curious"})
    no_api = guarded({**GUARDED, "api": {"enabled": False}})[("NetworkPolicy", "emails-redis")]
    assert not admitted(no_api, "shop", pods["emails-api"])


def test_the_network_policy_lets_in_the_operator_and_the_allowed_namespaces() -> None:
    policy = guarded()[("NetworkPolicy", "emails-redis")]
    assert admitted(policy, "jq-system", {"app.kubernetes.io/name": "jobqueue-operator"})
    assert not admitted(policy, "jq-system", {"app.kubernetes.io/name": "something-else"})
    assert admitted(policy, "monitoring", {"any": "pod"})
    outside = desired_children(REF, parse_spec(GUARDED), MANAGED_MATERIAL, IMAGES)
    alone = next(m for m in outside if m["kind"] == "NetworkPolicy")
    assert not admitted(alone, "jq-system", {"app.kubernetes.io/name": "jobqueue-operator"})


@pytest.mark.parametrize("values", [{"a": "1"}, {"a": "1", "b": "2"}])
def test_checksum_depends_on_content_not_order(values: dict[str, str]) -> None:
    data = builders.encode_data(values)
    assert builders.checksum(data) == builders.checksum(dict(reversed(list(data.items()))))
    assert builders.checksum(data) != builders.checksum(builders.encode_data({**values, "a": "x"}))
