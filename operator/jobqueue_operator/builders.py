"""Pure builders: the desired child objects of one JobQueue, from its parsed spec.

Every function here is a pure function of frozen inputs (the spec, who the JobQueue is, the
secret material the reconcile gathered, the default images) and returns plain manifests ready
for server-side apply. Nothing here imports the Kubernetes client or does I/O, so every child is
tested without a cluster (tests/unit/test_operator_builders.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from jobqueue import contract
from jobqueue_operator import constants as c
from jobqueue_operator.formats import event_classes, wake_keys
from jobqueue_operator.kubetypes import JSON, ChildKind, JobQueueRef, Manifest, ObjectMeta
from jobqueue_operator.spec import (
    EnvFromSource,
    EnvVar,
    JobQueueSpec,
    ManagedRedis,
    ProbesSpec,
    QueueSpec,
    Resources,
    WorkerSpec,
    WorkerVolume,
)

INGRESS_API_VERSION = "networking.k8s.io/v1"
NETWORK_POLICY_API_VERSION = "networking.k8s.io/v1"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
GATEWAY_GROUP = "gateway.networking.k8s.io"
HTTPROUTE_API_VERSION = f"{GATEWAY_GROUP}/v1"


@dataclass(frozen=True, slots=True)
class Images:
    """Default images (operator settings) and their pull policy."""

    api: str
    worker: str
    redis: str
    pull_policy: str = "IfNotPresent"


@dataclass(frozen=True, slots=True)
class OperatorPeer:
    """Where the operator's own pods run, so a managed Redis' NetworkPolicy lets them in (the
    operator reads queue depth and purges keys). Unknown when it runs outside the cluster."""

    namespace: str
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SecretMaterial:
    """The secret values the reconcile gathered; never logged, only put into Secrets."""

    redis_url: str
    api_token: str | None = None
    redis_password: str | None = None  # the managed Redis' password (managed only)
    #: component -> {key: value} copied from the service's ``secretRefs`` into its own Secret
    extra: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def values(self) -> tuple[str, ...]:
        """Every secret string, for redaction of error messages."""
        own = (self.redis_url, self.api_token, self.redis_password)
        copied = tuple(v for values in self.extra.values() for v in values.values())
        return tuple(v for v in (*own, *copied) if v)

    def extra_of(self, component: str) -> Mapping[str, str]:
        return self.extra.get(component, {})


@dataclass(frozen=True, slots=True)
class Pool:
    """One worker pool as the builders and the autoscaler see it: the default one
    (``spec.worker``, Deployment ``<name>-worker``) or one of ``spec.workers``."""

    name: str
    component: str  # "worker" or "worker-<pool>": the child-name suffix and component label
    worker: WorkerSpec
    queue: str  # its QUEUE_NAME (another format's: the first of queue.names)
    replicas: int | None  # applied replicas; None while its autoscaler owns the field
    job_types: tuple[str, ...] = ()  # () for the default pool: every type not routed elsewhere
    min_replicas: int = 0  # its autoscaler's floor: the replicas a new Deployment starts with
    source: QueueSpec = field(default_factory=QueueSpec)  # the format its depth is read in


def pools(ref: JobQueueRef, spec: JobQueueSpec) -> tuple[Pool, ...]:
    """The default pool first, then ``spec.workers`` in order."""
    out = [
        Pool(
            c.DEFAULT_POOL,
            c.COMPONENT_WORKER,
            spec.worker,
            spec.queue.names[0] if spec.queue.foreign else spec.queue_identity(*ref.key),
            worker_replicas(spec),
            min_replicas=spec.autoscaling.min_replicas,
            source=spec.queue,
        )
    ]
    out += [
        Pool(
            p.name,
            pool_component(p.name),
            p,
            p.queue.names[0] if p.queue.foreign else spec.pool_queue(*ref.key, p.name),
            p.replicas_applied(),
            tuple(p.job_types),
            min_replicas=p.autoscaling.min_replicas,
            source=p.queue,
        )
        for p in spec.workers
    ]
    return tuple(out)


def initial_replicas(ref: JobQueueRef, spec: JobQueueSpec) -> dict[str, int]:
    """Worker Deployment name -> the replicas it is created with, for the autoscaled pools.

    Their manifests carry no ``spec.replicas`` (the autoscaler owns it), and Kubernetes would
    create them at 1: a worker started for nothing until the cooldown. So a new one starts at
    its ``minReplicas`` and the field is handed to the autoscaler at once.
    """
    return {
        child_name(ref.name, p.component): p.min_replicas
        for p in pools(ref, spec)
        if p.replicas is None
    }


def pool_component(pool: str) -> str:
    """``worker-<pool>``: so the pool's children are ``<name>-worker-<pool>``."""
    return f"{c.COMPONENT_WORKER}-{pool}"


# ---------------------------------------------------------------------------------------------
# Names, labels, ownership


def child_name(owner: str, component: str) -> str:
    """``<name>-api``, ``<name>-worker``, ``<name>-redis``."""
    return f"{owner}-{component}"


def selector_labels(owner: str, component: str) -> dict[str, str]:
    """The immutable selector of a component's pods (a subset of :func:`labels`)."""
    return {
        c.LABEL_NAME: c.APP_NAME,
        c.LABEL_INSTANCE: owner,
        c.LABEL_COMPONENT: component,
    }


def labels(owner: str, component: str) -> dict[str, str]:
    """The ``app.kubernetes.io/*`` labels every child and pod carries."""
    return {
        **selector_labels(owner, component),
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
        c.LABEL_PART_OF: c.PART_OF,
    }


def instance_selector(owner: str) -> str:
    """Label selector matching every child of one JobQueue."""
    return f"{c.LABEL_INSTANCE}={owner},{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"


def label_selector(labels_: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels_.items()))


def metadata(ref: JobQueueRef, name: str, component: str) -> ObjectMeta:
    """Name, namespace, labels and the controller ownerReference of one child."""
    return {
        "name": name,
        "namespace": ref.namespace,
        "labels": labels(ref.name, component),
        "ownerReferences": [
            {
                "apiVersion": c.API_VERSION,
                "kind": c.KIND,
                "name": ref.name,
                "uid": ref.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def _manifest(api_version: str, kind: ChildKind, meta: ObjectMeta, **fields: object) -> Manifest:
    body: JSON = {"apiVersion": api_version, "kind": kind, "metadata": meta, **fields}
    return body  # type: ignore[return-value]  # the fields are the kind's own


# ---------------------------------------------------------------------------------------------
# Secrets


def encode_data(values: Mapping[str, str]) -> dict[str, str]:
    """A Secret's ``data``: base64 of each value, keys sorted."""
    return {k: base64.b64encode(v.encode()).decode() for k, v in sorted(values.items())}


def checksum(data: Mapping[str, str]) -> str:
    """sha256 of a Secret's data; changes exactly when any key or value changes."""
    canonical = json.dumps(dict(sorted(data.items())), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _secret(ref: JobQueueRef, component: str, values: Mapping[str, str]) -> Manifest:
    return _manifest(
        "v1",
        "Secret",
        metadata(ref, child_name(ref.name, component), component),
        type="Opaque",
        data=encode_data(values),
    )


def api_secret(ref: JobQueueRef, material: SecretMaterial) -> Manifest:
    """``<name>-api``: the API's own copy of the Redis URL (and its bearer token), plus the
    keys of the API's ``secretRefs``."""
    values = dict(material.extra_of(c.COMPONENT_API))
    values[c.SECRET_KEY_REDIS_URL] = material.redis_url
    if material.api_token is not None:
        values[c.SECRET_KEY_API_TOKEN] = material.api_token
    return _secret(ref, c.COMPONENT_API, values)


def worker_secret(
    ref: JobQueueRef, material: SecretMaterial, component: str = c.COMPONENT_WORKER
) -> Manifest:
    """``<name>-worker[-<pool>]``: one pool's own copy of the Redis URL and of the keys of its
    own ``secretRefs`` (and nothing another pool or the API needs)."""
    values = dict(material.extra_of(component))
    values[c.SECRET_KEY_REDIS_URL] = material.redis_url
    return _secret(ref, component, values)


def secret_checksum(secret: Manifest) -> str:
    return checksum(secret.get("data", {}))


# ---------------------------------------------------------------------------------------------
# Pods


def pod_security_context() -> JSON:
    """Pod Security Standards "restricted", with a fixed non-root uid/gid."""
    return {
        "runAsNonRoot": True,
        "runAsUser": c.RUN_AS_USER,
        "runAsGroup": c.RUN_AS_USER,
        "fsGroup": c.RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> JSON:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": c.RUN_AS_USER,
        "runAsGroup": c.RUN_AS_USER,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _probes(probes: ProbesSpec) -> JSON:
    """The container's probes: our images' /healthz and /readyz on port http, each replaced by
    the spec's own probe (an image that is not ours) or left out when that one is disabled."""

    def ours(path: str, period: int, failures: int) -> JSON:
        return {
            "httpGet": {"path": path, "port": c.HTTP_PORT_NAME},
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": failures,
        }

    defaults = {
        "livenessProbe": (
            probes.liveness,
            {**ours(c.HEALTHZ_PATH, 10, 3), "initialDelaySeconds": 5},
        ),
        "readinessProbe": (probes.readiness, ours(c.READYZ_PATH, 5, 2)),
    }
    out: JSON = {}
    for key, (given, default) in defaults.items():
        probe = default if given is None else given.manifest()
        if probe is not None:
            out[key] = probe
    return out


def _env_value(name: str, value: str | int) -> JSON:
    return {"name": name, "value": str(value)}


def _env_secret(name: str, secret: str, key: str) -> JSON:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _command(command: list[str], args: list[str]) -> JSON:
    """The container's command and args, each only when given (else the image's own)."""
    return {k: list(v) for k, v in (("command", command), ("args", args)) if v}


def _redis_env(secret: str) -> list[JSON]:
    """REDIS_URL and its alias TASK_QUEUE_URL (the name seed 001's apps read), both from the
    Deployment's own Secret."""
    return [
        _env_secret(contract.ENV_REDIS_URL, secret, c.SECRET_KEY_REDIS_URL),
        _env_secret(contract.ENV_TASK_QUEUE_URL, secret, c.SECRET_KEY_REDIS_URL),
    ]


def _env_pod_name() -> JSON:
    return {
        "name": contract.ENV_POD_NAME,
        "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
    }


def _user_env(env: tuple[EnvVar, ...] | list[EnvVar]) -> list[JSON]:
    return [e.manifest() for e in env]


def _copied_env(secret: str, keys: Mapping[str, str]) -> list[JSON]:
    """One env var per key copied from ``secretRefs`` into the service's own Secret: the pod
    spec names the key, never the value."""
    return [_env_secret(key, secret, key) for key in sorted(keys)]


def _env_from(sources: list[EnvFromSource]) -> JSON:
    if not sources:
        return {}
    return {"envFrom": [s.model_dump(by_alias=True, exclude_none=True) for s in sources]}


def _resources(resources: Resources) -> JSON:
    out = resources.manifest()
    return {"resources": out} if out else {}


def _tmp_volume() -> JSON:
    return {"name": c.TMP_VOLUME, "emptyDir": {"sizeLimit": c.TMP_SIZE_LIMIT}}


def _tmp_mount() -> JSON:
    return {"name": c.TMP_VOLUME, "mountPath": c.TMP_MOUNT}


def claim_name(owner: str, component: str, volume: str) -> str:
    """``<name>-<worker or worker-pool>-<volume>``: a worker volume's PersistentVolumeClaim."""
    return child_name(owner, f"{component}-{volume}")


def _worker_volume(owner: str, component: str, volume: WorkerVolume) -> JSON:
    """The pod ``volumes`` entry of one worker volume."""
    out: JSON = {"name": volume.name}
    if volume.persistent_volume_claim is not None:
        out["persistentVolumeClaim"] = {"claimName": claim_name(owner, component, volume.name)}
        return out
    source = volume.empty_dir or volume.config_map or volume.secret
    assert source is not None  # exactly one source (the model checks)
    key = "emptyDir" if volume.empty_dir else "configMap" if volume.config_map else "secret"
    out[key] = source.model_dump(by_alias=True, exclude_none=True)
    return out


def _worker_mount(volume: WorkerVolume) -> JSON:
    out: JSON = {"name": volume.name, "mountPath": volume.mount_path}
    if volume.read_only:
        out["readOnly"] = True
    return out


def worker_claims(ref: JobQueueRef, spec: JobQueueSpec) -> tuple[Manifest, ...]:
    """The PersistentVolumeClaims of every pool's ``persistentVolumeClaim`` volumes.

    With ``deletionPolicy: Purge`` a claim is owned (controller ownerReference: the garbage
    collector removes it with the JobQueue, as the finalizer does); with ``Retain`` it carries
    no ownerReference at all, so no deletion of the JobQueue (foreground or background) can
    take it: it is found by its labels, and a JobQueue of the same name adopts it again."""
    out: list[Manifest] = []
    for pool in pools(ref, spec):
        for volume in pool.worker.volumes:
            template = volume.persistent_volume_claim
            if template is None:
                continue
            meta = metadata(ref, claim_name(ref.name, pool.component, volume.name), pool.component)
            meta["labels"] = {**meta["labels"], c.LABEL_VOLUME: volume.name}
            if spec.deletion_policy != "Purge":
                del meta["ownerReferences"]
            body: JSON = {
                "accessModes": list(template.access_modes),
                "resources": {"requests": {"storage": template.size}},
            }
            if template.storage_class_name:
                body["storageClassName"] = template.storage_class_name
            out.append(_manifest("v1", "PersistentVolumeClaim", meta, spec=body))
    return tuple(out)


def claim_selector(owner: str) -> str:
    """Label selector of the worker volumes' claims of one JobQueue (by name: a kept claim
    outlives the JobQueue's uid)."""
    return f"{instance_selector(owner)},{c.LABEL_VOLUME}"


def _pod_template(
    owner: str, component: str, secret_sum: str, containers: list[JSON], **spec: object
) -> JSON:
    return {
        "metadata": {
            "labels": labels(owner, component),
            "annotations": {c.ANNOTATION_SECRET_CHECKSUM: secret_sum},
        },
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": pod_security_context(),
            "containers": containers,
            **spec,
        },
    }


def _deployment(
    ref: JobQueueRef, component: str, replicas: int | None, template: JSON, strategy: JSON
) -> Manifest:
    spec: JSON = {}
    if replicas is not None:
        spec["replicas"] = replicas
    spec |= {
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": selector_labels(ref.name, component)},
        "strategy": strategy,
        "template": template,
    }
    return _manifest(
        "apps/v1",
        "Deployment",
        metadata(ref, child_name(ref.name, component), component),
        spec=spec,
    )


# ---------------------------------------------------------------------------------------------
# API


def api_deployment(
    ref: JobQueueRef,
    spec: JobQueueSpec,
    images: Images,
    secret_sum: str,
    *,
    has_token: bool,
    copied: Mapping[str, str] | None = None,
) -> Manifest:
    """``<name>-api``: the HTTP job API, reading REDIS_URL (and API_TOKEN, and the keys copied
    from its ``secretRefs``) from ``<name>-api``; JOB_ROUTES sends the worker pools' job types
    to their queues."""
    secret = child_name(ref.name, c.COMPONENT_API)
    env = [
        *_redis_env(secret),
        _env_value(contract.ENV_QUEUE_NAME, pools(ref, spec)[0].queue),
        _env_value(contract.ENV_PORT, contract.HTTP_PORT),
    ]
    if has_token:
        env.append(_env_secret(contract.ENV_API_TOKEN, secret, c.SECRET_KEY_API_TOKEN))
    routes = spec.job_routes(ref.namespace, ref.name)
    if routes:
        env.append(_env_value(contract.ENV_JOB_ROUTES, json.dumps(routes, sort_keys=True)))
    container: JSON = {
        "name": c.COMPONENT_API,
        "image": spec.api.image or images.api,
        "imagePullPolicy": images.pull_policy,
        **_command(spec.api.command, spec.api.args),
        "ports": [{"name": c.HTTP_PORT_NAME, "containerPort": c.HTTP_PORT, "protocol": "TCP"}],
        "env": env + _copied_env(secret, copied or {}) + _user_env(spec.api.env),
        **_env_from(spec.api.env_from),
        **_probes(spec.api.probes),
        **_resources(spec.api.resources),
        "securityContext": container_security_context(),
        "volumeMounts": [_tmp_mount()],
    }
    template = _pod_template(
        ref.name, c.COMPONENT_API, secret_sum, [container], volumes=[_tmp_volume()]
    )
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    return _deployment(ref, c.COMPONENT_API, spec.api.replicas, template, strategy)


def api_service(ref: JobQueueRef, spec: JobQueueSpec) -> Manifest:
    """``<name>-api``: the API's Service (port ``spec.api.port`` -> container port http)."""
    return _manifest(
        "v1",
        "Service",
        metadata(ref, child_name(ref.name, c.COMPONENT_API), c.COMPONENT_API),
        spec={
            "type": spec.api.service_type,
            "selector": selector_labels(ref.name, c.COMPONENT_API),
            "ports": [
                {
                    "name": c.HTTP_PORT_NAME,
                    "port": spec.api.port,
                    "targetPort": c.HTTP_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    )


# ---------------------------------------------------------------------------------------------
# Workers


def worker_replicas(spec: JobQueueSpec) -> int | None:
    """The replicas the operator applies: none while the autoscaler owns the field.

    With autoscaling enabled the manifest carries no ``spec.replicas``, so this field manager
    does not own it and never fights the autoscaler's writes; disabled, ``worker.replicas``
    (the JobQueue's scale subresource) is applied.
    """
    return None if spec.autoscaling.enabled else spec.worker.replicas


def worker_deployment(
    ref: JobQueueRef,
    spec: JobQueueSpec,
    images: Images,
    secret_sum: str,
    pool: Pool | None = None,
    copied: Mapping[str, str] | None = None,
) -> Manifest:
    """``<name>-worker`` (the default pool) or ``<name>-worker-<pool>``: the workers of one
    pool, on that pool's queue, reading REDIS_URL and the pool's copied keys from the pool's
    own Secret."""
    pool = pool or pools(ref, spec)[0]
    worker = pool.worker
    secret = child_name(ref.name, pool.component)
    env = [
        *_redis_env(secret),
        _env_value(contract.ENV_QUEUE_NAME, pool.queue),
        _env_value(contract.ENV_WORKER_CONCURRENCY, worker.concurrency),
        _env_value(contract.ENV_JOB_TIMEOUT, worker.job_timeout_seconds),
        _env_value(contract.ENV_DRAIN_TIMEOUT, worker.drain_timeout_seconds),
        _env_value(contract.ENV_HEALTH_PORT, contract.HTTP_PORT),
        _env_pod_name(),
    ]
    container: JSON = {
        "name": c.COMPONENT_WORKER,
        "image": worker.image or images.worker,
        "imagePullPolicy": images.pull_policy,
        **_command(worker.command, worker.args),
        "ports": [{"name": c.HTTP_PORT_NAME, "containerPort": c.HTTP_PORT, "protocol": "TCP"}],
        "env": env + _copied_env(secret, copied or {}) + _user_env(worker.env),
        **_env_from(worker.env_from),
        **_probes(worker.probes),
        **_resources(worker.resources),
        "securityContext": container_security_context(),
        "volumeMounts": [_tmp_mount(), *(_worker_mount(v) for v in worker.volumes)],
    }
    own = [_worker_volume(ref.name, pool.component, v) for v in worker.volumes]
    volumes = [_tmp_volume(), *own]
    template = _pod_template(
        ref.name,
        pool.component,
        secret_sum,
        [container],
        volumes=volumes,
        terminationGracePeriodSeconds=worker.termination_grace_period_seconds,
    )
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}
    return _deployment(ref, pool.component, pool.replicas, template, strategy)


# ---------------------------------------------------------------------------------------------
# Exposure of the API


def api_ingress(ref: JobQueueRef, spec: JobQueueSpec) -> Manifest:
    """``<name>-api``: a networking.k8s.io/v1 Ingress to the API Service."""
    ingress = spec.api.ingress
    assert ingress is not None
    meta = metadata(ref, child_name(ref.name, c.COMPONENT_API), c.COMPONENT_API)
    if ingress.annotations:
        meta["annotations"] = dict(sorted(ingress.annotations.items()))
    backend = {
        "service": {
            "name": child_name(ref.name, c.COMPONENT_API),
            "port": {"name": c.HTTP_PORT_NAME},
        }
    }
    body: JSON = {}
    if ingress.class_name:
        body["ingressClassName"] = ingress.class_name
    if ingress.tls_secret_name:
        body["tls"] = [{"hosts": [ingress.host], "secretName": ingress.tls_secret_name}]
    body["rules"] = [
        {
            "host": ingress.host,
            "http": {"paths": [{"path": ingress.path, "pathType": "Prefix", "backend": backend}]},
        }
    ]
    return _manifest(INGRESS_API_VERSION, "Ingress", meta, spec=body)


def api_http_route(ref: JobQueueRef, spec: JobQueueSpec) -> Manifest:
    """``<name>-api``: a Gateway API HTTPRoute to the API Service."""
    route = spec.api.http_route
    assert route is not None
    body: JSON = {
        "parentRefs": [p.model_dump(by_alias=True, exclude_none=True) for p in route.parent_refs]
    }
    if route.hostnames:
        body["hostnames"] = list(route.hostnames)
    body["rules"] = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": route.path}}],
            "backendRefs": [{"name": child_name(ref.name, c.COMPONENT_API), "port": spec.api.port}],
        }
    ]
    return _manifest(
        HTTPROUTE_API_VERSION,
        "HTTPRoute",
        metadata(ref, child_name(ref.name, c.COMPONENT_API), c.COMPONENT_API),
        spec=body,
    )


def exposure_url(spec: JobQueueSpec) -> str | None:
    """Where clients reach the API from outside, if it is exposed (Ingress first)."""
    if not spec.api.enabled:
        return None
    if spec.api.ingress is not None:
        return spec.api.ingress.url()
    if spec.api.http_route is not None:
        return spec.api.http_route.url()
    return None


# ---------------------------------------------------------------------------------------------
# Managed Redis


def managed_redis_host(ref: JobQueueRef) -> str:
    return f"{child_name(ref.name, c.COMPONENT_REDIS)}.{ref.namespace}.svc"


def managed_redis_url(ref: JobQueueRef, password: str) -> str:
    """The URL of the managed Redis, through its Service, with the generated password."""
    return f"redis://:{quote(password, safe='')}@{managed_redis_host(ref)}:{c.REDIS_PORT}/0"


def keyspace_events(spec: JobQueueSpec) -> str:
    """The ``notify-keyspace-events`` a managed Redis needs so every pool's queue in another
    format wakes its autoscaler at once ("" when every queue is ours: our protocol publishes
    its own events, and notifications cost Redis CPU on every write)."""
    queues = [spec.queue, *(p.queue for p in spec.workers)]
    types = {t for q in queues if q.foreign for w in wake_keys(q.layout()) for t in w.types}
    return event_classes(types) if types else ""


def redis_conf(managed: ManagedRedis, password: str, notify: str = "") -> str:
    """redis.conf of the managed Redis: AOF fsynced as ``managed.appendfsync`` says, never
    evict a job (seed 002), and the keyspace notifications ``notify`` (see
    :func:`keyspace_events`)."""
    lines = [
        "bind * -::*",
        f"port {c.REDIS_PORT}",
        f"dir {c.REDIS_DATA_MOUNT}",
        "appendonly yes",
        f"appendfsync {managed.appendfsync}",
        "maxmemory-policy noeviction",
        "tcp-keepalive 300",
        f"requirepass {password}",
    ]
    if managed.max_memory:
        lines.append(f"maxmemory {managed.max_memory}")
    if notify:
        lines.append(f"notify-keyspace-events {notify}")
    return "\n".join(lines) + "\n"


def redis_secret(
    ref: JobQueueRef, managed: ManagedRedis, password: str, notify: str = ""
) -> Manifest:
    """``<name>-redis``: the generated password and the redis.conf that carries it."""
    return _secret(
        ref,
        c.COMPONENT_REDIS,
        {
            c.SECRET_KEY_REDIS_PASSWORD: password,
            c.SECRET_KEY_REDIS_CONF: redis_conf(managed, password, notify),
        },
    )


def redis_service(ref: JobQueueRef) -> Manifest:
    """``<name>-redis``: a ClusterIP Service, a stable address across Redis pod restarts."""
    return _manifest(
        "v1",
        "Service",
        metadata(ref, child_name(ref.name, c.COMPONENT_REDIS), c.COMPONENT_REDIS),
        spec={
            "type": "ClusterIP",
            "selector": selector_labels(ref.name, c.COMPONENT_REDIS),
            "ports": [
                {
                    "name": c.REDIS_PORT_NAME,
                    "port": c.REDIS_PORT,
                    "targetPort": c.REDIS_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    )


def redis_statefulset(
    ref: JobQueueRef, spec: JobQueueSpec, images: Images, secret_sum: str
) -> Manifest:
    """``<name>-redis``: one Redis pod with a persistent volume.

    The volume follows ``deletionPolicy``: Purge deletes it with the StatefulSet, Retain
    keeps it, so re-creating the JobQueue under the same name finds its jobs again.
    """
    managed = spec.redis.managed
    assert managed is not None
    name = child_name(ref.name, c.COMPONENT_REDIS)
    tcp_probe = {"tcpSocket": {"port": c.REDIS_PORT_NAME}, "timeoutSeconds": 2}
    container: JSON = {
        "name": c.COMPONENT_REDIS,
        "image": managed.image or images.redis,
        "imagePullPolicy": images.pull_policy,
        "command": ["redis-server", f"{c.REDIS_CONFIG_MOUNT}/{c.SECRET_KEY_REDIS_CONF}"],
        "ports": [{"name": c.REDIS_PORT_NAME, "containerPort": c.REDIS_PORT, "protocol": "TCP"}],
        "livenessProbe": {**tcp_probe, "periodSeconds": 10, "initialDelaySeconds": 10},
        "readinessProbe": {**tcp_probe, "periodSeconds": 5},
        **_resources(managed.resources),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": c.REDIS_DATA_VOLUME, "mountPath": c.REDIS_DATA_MOUNT},
            {"name": c.REDIS_CONFIG_VOLUME, "mountPath": c.REDIS_CONFIG_MOUNT, "readOnly": True},
        ],
    }
    config_volume = {
        "name": c.REDIS_CONFIG_VOLUME,
        "secret": {
            "secretName": name,
            "defaultMode": 0o440,
            "items": [{"key": c.SECRET_KEY_REDIS_CONF, "path": c.SECRET_KEY_REDIS_CONF}],
        },
    }
    template = _pod_template(
        ref.name,
        c.COMPONENT_REDIS,
        secret_sum,
        [container],
        volumes=[config_volume],
        terminationGracePeriodSeconds=30,
    )
    claim_spec: JSON = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": managed.storage}},
    }
    if managed.storage_class_name:
        claim_spec["storageClassName"] = managed.storage_class_name
    retention = "Delete" if spec.deletion_policy == "Purge" else "Retain"
    return _manifest(
        "apps/v1",
        "StatefulSet",
        metadata(ref, name, c.COMPONENT_REDIS),
        spec={
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": selector_labels(ref.name, c.COMPONENT_REDIS)},
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": retention,
                "whenScaled": "Retain",
            },
            "template": template,
            "volumeClaimTemplates": [
                {
                    "metadata": {
                        "name": c.REDIS_DATA_VOLUME,
                        "labels": labels(ref.name, c.COMPONENT_REDIS),
                    },
                    "spec": claim_spec,
                }
            ],
        },
    )


def _namespace_peer(namespace: str) -> JSON:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}


def redis_network_policy(
    ref: JobQueueRef, spec: JobQueueSpec, operator: OperatorPeer | None
) -> Manifest:
    """``<name>-redis``: only this JobQueue's API and worker pods, the operator and the
    namespaces in ``allowNamespaces`` may open a connection to the managed Redis."""
    managed = spec.redis.managed
    assert managed is not None
    components = [c.COMPONENT_API] if spec.api.enabled else []
    components += [pool.component for pool in pools(ref, spec)]
    peers: list[JSON] = [
        {
            "podSelector": {
                "matchLabels": {c.LABEL_NAME: c.APP_NAME, c.LABEL_INSTANCE: ref.name},
                "matchExpressions": [
                    {"key": c.LABEL_COMPONENT, "operator": "In", "values": components}
                ],
            }
        }
    ]
    if operator is not None:
        peers.append(
            {
                **_namespace_peer(operator.namespace),
                "podSelector": {"matchLabels": dict(operator.labels)},
            }
        )
    peers += [_namespace_peer(ns) for ns in managed.network_policy.allow_namespaces]
    return _manifest(
        NETWORK_POLICY_API_VERSION,
        "NetworkPolicy",
        metadata(ref, child_name(ref.name, c.COMPONENT_REDIS), c.COMPONENT_REDIS),
        spec={
            "podSelector": {"matchLabels": selector_labels(ref.name, c.COMPONENT_REDIS)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": c.REDIS_PORT}]}],
        },
    )


# ---------------------------------------------------------------------------------------------
# Everything


def desired_children(
    ref: JobQueueRef,
    spec: JobQueueSpec,
    material: SecretMaterial,
    images: Images,
    *,
    gateway_api: bool = False,
    operator: OperatorPeer | None = None,
) -> tuple[Manifest, ...]:
    """All children one JobQueue should have, in apply order (Secrets before their users).

    ``gateway_api``: the cluster serves gateway.networking.k8s.io/v1 (else no HTTPRoute);
    ``operator``: where the operator's pods run (for the managed Redis' NetworkPolicy)."""
    children: list[Manifest] = []
    managed = spec.redis.managed
    if managed is not None:
        assert material.redis_password is not None
        secret = redis_secret(ref, managed, material.redis_password, keyspace_events(spec))
        if managed.network_policy.enabled:  # before the pod it guards
            children.append(redis_network_policy(ref, spec, operator))
        children += [
            secret,
            redis_service(ref),
            redis_statefulset(ref, spec, images, secret_checksum(secret)),
        ]
    if spec.api.enabled:
        secret = api_secret(ref, material)
        children += [
            secret,
            api_deployment(
                ref,
                spec,
                images,
                secret_checksum(secret),
                has_token=material.api_token is not None,
                copied=material.extra_of(c.COMPONENT_API),
            ),
            api_service(ref, spec),
        ]
        if spec.api.ingress is not None:
            children.append(api_ingress(ref, spec))
        if spec.api.http_route is not None and gateway_api:
            children.append(api_http_route(ref, spec))
    for pool in pools(ref, spec):
        secret = worker_secret(ref, material, pool.component)
        copied = material.extra_of(pool.component)
        children += [
            secret,
            worker_deployment(ref, spec, images, secret_checksum(secret), pool, copied),
        ]
    return tuple(children)
