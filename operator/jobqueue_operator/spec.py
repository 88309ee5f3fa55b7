"""The JobQueue spec as a frozen pydantic model: parsed once at the handler boundary.

The CRD's openAPIV3Schema is generated from these models (``crd.py``), so the field names,
defaults, bounds and enums agree by construction; ``tests/unit/test_operator_crd.py`` checks
that the committed CRD is the generated one and compares both field by field. Cross-field rules
live twice on purpose: as CEL (``x-kubernetes-validations``, enforced by the API server at
admission, with the messages a person reads) and as model validators (so a spec that somehow
got past admission is still refused here, with the same words).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from jobqueue_operator import constants as c
from jobqueue_operator import schedules
from jobqueue_operator.autoscaling import AutoscalingSpec
from jobqueue_operator.formats import Format, FormatSpec

__all__ = [
    "ApiSpec",
    "AutoscalingSpec",
    "ConfigMapEnvSource",
    "EnvVar",
    "HttpRouteSpec",
    "IngressSpec",
    "JobQueueSpec",
    "ManagedRedis",
    "RedisNetworkPolicy",
    "RedisSpec",
    "Resources",
    "ScheduleSpec",
    "SecretKeySelector",
    "SecretRef",
    "SpecError",
    "WorkerPoolSpec",
    "WorkerSpec",
    "WorkerVolume",
    "parse_spec",
]

# Kubernetes' resource.Quantity syntax (e.g. 100m, 1.5, 256Mi, 1e3).
QUANTITY_PATTERN: Final = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DNS_SUBDOMAIN_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY_PATTERN: Final = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 - a pattern
ENV_NAME_PATTERN: Final = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
QUEUE_NAME_PATTERN: Final = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"
REDIS_MEMORY_PATTERN: Final = r"^[0-9]+([kKmMgG][bB]?)?$"
REDIS_SCHEMES: Final = tuple(  # one server, a Sentinel-managed primary, a Cluster; +TLS
    f"{s}://" for s in ("redis", "rediss", "redis+sentinel", "rediss+sentinel",
                        "redis+cluster", "rediss+cluster")
)  # fmt: skip
REDIS_SCHEME_PATTERN: Final = r"^rediss?(\\+(sentinel|cluster))?://"  # the same, for CEL
POOL_NAME_PATTERN: Final = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
JOB_TYPE_PATTERN: Final = r"^[A-Za-z0-9]([A-Za-z0-9._:/-]*[A-Za-z0-9])?$"
HTTP_PATH_PATTERN: Final = r"^/[^\s]*$"
MAX_POOLS: Final = 16
MAX_JOB_TYPES: Final = 32
MAX_SCHEDULES: Final = 32
MAX_VOLUMES: Final = 16
MAX_ALLOWED_NAMESPACES: Final = 16
DNS_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SCHEDULE_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
VOLUME_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
TIME_ZONE_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
#: A Redis key or another library's queue name: any printable text without white space.
QUEUE_KEY_PATTERN: Final = r"^\S+$"
PORT_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # IANA_SVC_NAME, as in a Pod
MAX_QUEUE_NAMES: Final = 32
#: The queue formats: our own protocol, plain keys, and the layouts of other job libraries.
QueueFormat = Literal["jobqueue", "list", "keys", "celery", "rq", "dramatiq", "arq", "bullmq"]
JOBQUEUE_FORMAT: Final = "jobqueue"
#: Formats where the user names the in-flight keys (the others record in-flight work themselves).
IN_FLIGHT_NAME_FORMATS: Final = ("list", "keys")

Quantity = int | Annotated[str, Field(pattern=QUANTITY_PATTERN)]


def _cel(rule: str, message: str, **extra: str) -> dict[str, str]:
    return {"rule": rule, "message": message, **extra}


def _rules(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


# The messages of the cross-field rules: the CEL rules and the model validators share them.
MSG_ONE_REDIS_SOURCE: Final = "exactly one of redis.url, redis.urlFrom or redis.managed must be set"
MSG_URL_SCHEME: Final = (
    "redis.url must start with " + ", ".join(REDIS_SCHEMES[:-1]) + " or " + REDIS_SCHEMES[-1]
)
MSG_URL_CREDENTIALS: Final = (
    "redis.url must not contain a password: put the URL in a Secret and use redis.urlFrom"
)
MSG_ENV_VALUE_XOR: Final = "an env entry sets value or valueFrom, not both"
MSG_ENV_SOURCE_ONE: Final = (
    "valueFrom must set exactly one of secretKeyRef, configMapKeyRef or fieldRef"
)
MSG_ENV_RESERVED: Final = "this env name is set by the operator: " + ", ".join(c.RESERVED_ENV)
MSG_DRAIN_BEFORE_GRACE: Final = (
    "worker.drainTimeoutSeconds must be less than worker.terminationGracePeriodSeconds, "
    "so in-flight jobs are handed back before the pod is killed"
)
MSG_MIN_MAX: Final = "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas"
MSG_QUEUE_NAME_IMMUTABLE: Final = (
    "queueName cannot be changed: the jobs already in Redis would be orphaned"
)
MSG_POOL_NAMES_UNIQUE: Final = "spec.workers: every pool needs a different name"
MSG_JOB_TYPE_ONE_POOL: Final = (
    "spec.workers: a job type may be taken by one pool only (jobTypes overlap between pools)"
)
MSG_SECRET_KEY_RESERVED: Final = (
    "secretRefs.keys must not name a variable the operator sets: " + ", ".join(c.RESERVED_ENV)
)
MSG_CRON: Final = (
    "cron must be a standard 5-field cron expression (minute hour day-of-month month "
    "day-of-week, e.g. '*/5 * * * *'; no seconds, no @-macros)"
)
MSG_TIME_ZONE: Final = "timeZone must be an IANA time zone name such as UTC or Europe/Berlin"
MSG_SCHEDULE_NAMES_UNIQUE: Final = "spec.schedules: every schedule needs a different name"
MSG_VOLUME_SOURCE_ONE: Final = (
    "a volume sets exactly one of emptyDir, configMap, secret or persistentVolumeClaim"
)
MSG_VOLUME_MOUNT_PATH: Final = (
    "volumes.mountPath must be an absolute path other than /tmp (the operator mounts /tmp)"
)
MSG_VOLUME_NAME_RESERVED: Final = f"volumes.name must not be {c.TMP_VOLUME!r} (the operator's own)"
MSG_VOLUME_NAMES_UNIQUE: Final = "volumes: every volume needs a different name"
MSG_VOLUME_PATHS_UNIQUE: Final = "volumes: every volume needs a different mountPath"
MSG_QUEUE_NAMES_JOBQUEUE: Final = (
    "queue.names is only for other formats: with format jobqueue the queue is the JobQueue's "
    "own (queueName)"
)
MSG_QUEUE_NAMES_REQUIRED: Final = (
    "queue.names is required with a format other than jobqueue: the Redis keys or the "
    "library's queue names the workers read"
)
MSG_IN_FLIGHT_NAMES: Final = (
    "queue.inFlightNames is only for formats list and keys (the libraries' formats record "
    "their in-flight jobs themselves)"
)
MSG_FOREIGN_API: Final = (
    "a queue format other than jobqueue needs your own API image (api.image) or "
    "api.enabled: false: the built-in API enqueues in the jobqueue format, where your "
    "workers never look"
)
MSG_FOREIGN_SCHEDULES: Final = (
    "schedules enqueue jobs in the jobqueue format: they need queue.format jobqueue"
)
MSG_POOL_JOB_TYPES: Final = (
    "spec.workers: a pool of format jobqueue needs jobTypes (the job types the API routes to "
    "it); a pool of another format takes none (its own producers choose its queue)"
)
MSG_SCALE_AUTOSCALED: Final = (
    "worker.replicas cannot change while autoscaling.enabled is true (the autoscaler owns the "
    "worker count, so `kubectl scale` would do nothing): change autoscaling.minReplicas or "
    "maxReplicas, or set autoscaling.enabled: false to scale by hand"
)
MSG_PROBE_ONE: Final = "a probe sets exactly one of httpGet, tcpSocket or exec, or disabled: true"
MSG_STORAGE_IMMUTABLE: Final = (
    "redis.managed.storage and storageClassName cannot be changed after creation"
)


class Model(BaseModel):
    """Base of every spec model: immutable, camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


class SecretKeySelector(Model):
    """One key of a Secret in the JobQueue's namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN, description="Secret name."
    )
    key: str = Field(
        min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN, description="Key in the Secret."
    )


class RedisUrlFrom(Model):
    """Where the Redis URL comes from."""

    secret_key_ref: SecretKeySelector = Field(
        description="The Secret key holding the full Redis URL (any form redis.url takes)."
    )


class Resources(Model):
    """Container resources, as in a Pod (quantities such as 100m, 256Mi)."""

    limits: dict[str, Quantity] = Field(
        default_factory=dict, max_length=8, description="Resource limits, e.g. {memory: 256Mi}."
    )
    requests: dict[str, Quantity] = Field(
        default_factory=dict, max_length=8, description="Resource requests, e.g. {cpu: 100m}."
    )

    def manifest(self) -> dict[str, dict[str, str]]:
        """The Pod ``resources`` stanza (quantities as strings, empty maps left out)."""
        out: dict[str, dict[str, str]] = {}
        if self.limits:
            out["limits"] = {k: str(v) for k, v in sorted(self.limits.items())}
        if self.requests:
            out["requests"] = {k: str(v) for k, v in sorted(self.requests.items())}
        return out


class RedisNetworkPolicy(Model):
    """A NetworkPolicy in front of the managed Redis: only this JobQueue's API and worker pods
    (and the operator, for queue depth and clean-up) may connect to it."""

    enabled: bool = Field(
        default=False,
        description="Create the NetworkPolicy. Takes effect where the cluster's network "
        "plugin enforces NetworkPolicies.",
    )
    allow_namespaces: list[Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=63)]] = Field(
        default_factory=list,
        max_length=MAX_ALLOWED_NAMESPACES,
        description="Namespaces whose pods may also connect (e.g. a Redis exporter).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class ManagedRedis(Model):
    """A Redis the operator runs for this queue: a StatefulSet with a PVC, AOF on, noeviction."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                "self.storage == oldSelf.storage && has(self.storageClassName) == "
                "has(oldSelf.storageClassName) && (!has(self.storageClassName) || "
                "self.storageClassName == oldSelf.storageClassName)",
                MSG_STORAGE_IMMUTABLE,
            )
        )
    )

    image: str | None = Field(
        default=None, min_length=1, description="Redis image; default: the operator's setting."
    )
    storage: str = Field(
        default="1Gi", pattern=QUANTITY_PATTERN, description="Size of the data volume."
    )
    storage_class_name: str | None = Field(
        default=None, min_length=1, max_length=253, description="StorageClass of the volume."
    )
    max_memory: str | None = Field(
        default=None,
        pattern=REDIS_MEMORY_PATTERN,
        description="Redis maxmemory (e.g. 256mb); writes fail beyond it (noeviction).",
    )
    appendfsync: Literal["always", "everysec"] = Field(
        default="everysec",
        description="When Redis fsyncs its AOF: `always` before each write is acknowledged (no "
        "acknowledged job lost even to a power cut; slower writes), `everysec` once a second "
        "(a host crash can lose the last second; a Redis crash loses nothing).",
    )
    resources: Resources = Field(default_factory=Resources, description="Redis container.")
    network_policy: RedisNetworkPolicy = Field(
        default_factory=RedisNetworkPolicy,
        description="Limit who may connect to this Redis (a NetworkPolicy).",
    )


class RedisSpec(Model):
    """The queue's Redis: exactly one of url, urlFrom, managed."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                "[has(self.url), has(self.urlFrom), has(self.managed)].filter(x, x).size() == 1",
                MSG_ONE_REDIS_SOURCE,
            )
        )
    )

    url: str | None = Field(
        default=None,
        min_length=10,
        max_length=2048,
        description="A password-less Redis URL (for development); use urlFrom for credentials.",
        json_schema_extra=_rules(
            _cel(f"self.matches('{REDIS_SCHEME_PATTERN}')", MSG_URL_SCHEME),
            _cel(
                f"!self.matches('{REDIS_SCHEME_PATTERN}[^/@]*:[^/@]*@') "
                "&& !self.contains('password=')",
                MSG_URL_CREDENTIALS,
            ),
        ),
    )
    url_from: RedisUrlFrom | None = Field(
        default=None, description="Read the URL from a Secret; rotating it rolls the pods."
    )
    managed: ManagedRedis | None = Field(
        default=None, description="Let the operator run a Redis for this queue."
    )
    allow_config: bool = Field(
        default=False,
        description="May the operator turn on Redis keyspace notifications (CONFIG SET "
        "notify-keyspace-events) so a queue in another format wakes the autoscaler at once? "
        "Without it an external Redis is never reconfigured (its queue is polled unless they "
        "are already on); a managed Redis has them on whenever a pool's format needs them.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is None:
            return url
        if not url.startswith(REDIS_SCHEMES):
            raise ValueError(MSG_URL_SCHEME)
        head = url.split("//", 1)[1].split("/", 1)[0]
        if ("@" in head and ":" in head.rsplit("@", 1)[0]) or "password=" in url:
            raise ValueError(MSG_URL_CREDENTIALS)
        return url

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if sum(x is not None for x in (self.url, self.url_from, self.managed)) != 1:
            raise ValueError(MSG_ONE_REDIS_SOURCE)
        return self


class KeyRef(Model):
    """A key of a Secret or ConfigMap."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    key: str = Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)
    optional: bool | None = None


class FieldRef(Model):
    """A field of the pod (downward API)."""

    field_path: str = Field(min_length=1, max_length=256)
    api_version: str | None = None


class EnvVarSource(Model):
    """Where an env value comes from."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                "[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef)]"
                ".filter(x, x).size() == 1",
                MSG_ENV_SOURCE_ONE,
            )
        )
    )

    secret_key_ref: KeyRef | None = None
    config_map_key_ref: KeyRef | None = None
    field_ref: FieldRef | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        sources = (self.secret_key_ref, self.config_map_key_ref, self.field_ref)
        if sum(x is not None for x in sources) != 1:
            raise ValueError(MSG_ENV_SOURCE_ONE)
        return self


class EnvVar(Model):
    """One extra environment variable of a container."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel("!(has(self.value) && has(self.valueFrom))", MSG_ENV_VALUE_XOR),
            _cel(
                "!(self.name in [" + ", ".join(f"'{n}'" for n in c.RESERVED_ENV) + "])",
                MSG_ENV_RESERVED,
            ),
        )
    )

    name: str = Field(min_length=1, max_length=256, pattern=ENV_NAME_PATTERN)
    value: str | None = Field(default=None, max_length=32768)
    value_from: EnvVarSource | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.value is not None and self.value_from is not None:
            raise ValueError(MSG_ENV_VALUE_XOR)
        if self.name in c.RESERVED_ENV:
            raise ValueError(MSG_ENV_RESERVED)
        return self

    def manifest(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


EnvList = Annotated[
    list[EnvVar],
    Field(
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    ),
]


class ConfigMapEnvSource(Model):
    """Every key of a ConfigMap as env (as a Pod's ``envFrom.configMapRef``)."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN, description="ConfigMap name."
    )
    optional: bool | None = Field(default=None, description="Start even if it is missing.")


class EnvFromSource(Model):
    """A ConfigMap whose keys become env. Secrets go in ``secretRefs`` (they are copied into
    the service's own Secret, so a rotation rolls exactly that service)."""

    config_map_ref: ConfigMapEnvSource = Field(description="The ConfigMap.")
    prefix: str | None = Field(
        default=None, max_length=64, pattern=ENV_NAME_PATTERN, description="Prefix of each name."
    )


class SecretRef(Model):
    """A Secret whose keys are copied into the service's own Secret and exposed as env."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                "!has(self.keys) || self.keys.all(k, !(k in ["
                + ", ".join(f"'{n}'" for n in c.RESERVED_ENV)
                + "]))",
                MSG_SECRET_KEY_RESERVED,
            )
        )
    )

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN, description="Secret name."
    )
    keys: list[Annotated[str, Field(max_length=253, pattern=SECRET_KEY_PATTERN)]] = Field(
        default_factory=list,
        max_length=64,
        description="The keys to copy (each becomes an env var of that name); empty: all "
        "keys except the operator's own names.",
    )

    @field_validator("keys")
    @classmethod
    def _not_reserved(cls, keys: list[str]) -> list[str]:
        if any(k in c.RESERVED_ENV for k in keys):
            raise ValueError(MSG_SECRET_KEY_RESERVED)
        return keys


EnvFromList = Annotated[list[EnvFromSource], Field(max_length=16)]
SecretRefList = Annotated[list[SecretRef], Field(max_length=16)]


class IngressSpec(Model):
    """Expose the API through a networking.k8s.io/v1 Ingress."""

    host: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN, description="Host name."
    )
    path: str = Field(
        default="/", max_length=1024, pattern=HTTP_PATH_PATTERN, description="Path prefix."
    )
    class_name: str | None = Field(
        default=None, min_length=1, max_length=253, description="ingressClassName."
    )
    tls_secret_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="A TLS Secret for the host (https).",
    )
    annotations: dict[str, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict, max_length=32, description="Annotations of the Ingress."
    )

    def url(self) -> str:
        scheme = "https" if self.tls_secret_name else "http"
        return f"{scheme}://{self.host}{self.path}"


class ParentRef(Model):
    """A Gateway (or other parent) the HTTPRoute attaches to."""

    name: str = Field(min_length=1, max_length=253, description="Parent name.")
    namespace: str | None = Field(
        default=None, min_length=1, max_length=63, description="Its namespace (default: ours)."
    )
    section_name: str | None = Field(
        default=None, min_length=1, max_length=253, description="A listener of the Gateway."
    )
    group: str | None = Field(default=None, max_length=253, description="Parent API group.")
    kind: str | None = Field(default=None, min_length=1, max_length=63, description="Its kind.")
    port: int | None = Field(default=None, ge=1, le=65535, description="A port of the parent.")


class HttpRouteSpec(Model):
    """Expose the API through a Gateway API (gateway.networking.k8s.io/v1) HTTPRoute."""

    parent_refs: list[ParentRef] = Field(
        min_length=1, max_length=32, description="The Gateways to attach to."
    )
    hostnames: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=16, description="Host names the route serves."
    )
    path: str = Field(
        default="/", max_length=1024, pattern=HTTP_PATH_PATTERN, description="Path prefix."
    )

    def url(self) -> str | None:
        return f"http://{self.hostnames[0]}{self.path}" if self.hostnames else None


class EmptyDirVolume(Model):
    """A scratch directory that lives as long as the pod."""

    size_limit: Annotated[str, Field(pattern=QUANTITY_PATTERN)] | None = Field(
        default=None, description="Most space it may use, e.g. 1Gi."
    )


class ConfigMapVolume(Model):
    """The keys of a ConfigMap as files."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN, description="ConfigMap name."
    )
    optional: bool | None = Field(default=None, description="Start even if it is missing.")


class SecretVolume(Model):
    """The keys of a Secret as files."""

    secret_name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN, description="Secret name."
    )
    optional: bool | None = Field(default=None, description="Start even if it is missing.")


AccessMode = Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"]


class ClaimTemplate(Model):
    """A PersistentVolumeClaim the operator creates (``<name>-<worker or worker-pool>-<volume>``);
    deleted with the JobQueue only under ``deletionPolicy: Purge``. ReadWriteOnce volumes are
    shared only by pods on one node: use ReadWriteMany for more than one worker across nodes."""

    size: str = Field(pattern=QUANTITY_PATTERN, description="Requested storage, e.g. 10Gi.")
    storage_class_name: str | None = Field(
        default=None, min_length=1, max_length=253, description="StorageClass of the claim."
    )
    access_modes: list[AccessMode] = Field(
        default=["ReadWriteOnce"], min_length=1, max_length=4, description="Access modes."
    )


class WorkerVolume(Model):
    """A volume mounted into the worker container: exactly one source."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                "[has(self.emptyDir), has(self.configMap), has(self.secret), "
                "has(self.persistentVolumeClaim)].filter(x, x).size() == 1",
                MSG_VOLUME_SOURCE_ONE,
            ),
            _cel(
                "self.mountPath.startsWith('/') && self.mountPath != '/tmp' && "
                "!self.mountPath.startsWith('/tmp/')",
                MSG_VOLUME_MOUNT_PATH,
            ),
            _cel(f"self.name != '{c.TMP_VOLUME}'", MSG_VOLUME_NAME_RESERVED),
        )
    )

    name: str = Field(
        min_length=1, max_length=32, pattern=VOLUME_NAME_PATTERN, description="Volume name."
    )
    mount_path: str = Field(
        min_length=2, max_length=1024, description="Where it is mounted (absolute, not /tmp)."
    )
    read_only: bool = Field(default=False, description="Mount read-only.")
    empty_dir: EmptyDirVolume | None = Field(default=None, description="A scratch directory.")
    config_map: ConfigMapVolume | None = Field(default=None, description="A ConfigMap's keys.")
    secret: SecretVolume | None = Field(default=None, description="A Secret's keys.")
    persistent_volume_claim: ClaimTemplate | None = Field(
        default=None, description="A claim the operator creates for this pool."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        sources = (self.empty_dir, self.config_map, self.secret, self.persistent_volume_claim)
        if sum(x is not None for x in sources) != 1:
            raise ValueError(MSG_VOLUME_SOURCE_ONE)
        path = self.mount_path
        if not path.startswith("/") or path == c.TMP_MOUNT or path.startswith(c.TMP_MOUNT + "/"):
            raise ValueError(MSG_VOLUME_MOUNT_PATH)
        if self.name == c.TMP_VOLUME:
            raise ValueError(MSG_VOLUME_NAME_RESERVED)
        return self


QueueKey = Annotated[str, Field(min_length=1, max_length=512, pattern=QUEUE_KEY_PATTERN)]


class QueueSpec(Model):
    """Where the workers' jobs wait: the jobqueue protocol (our images), or the keys of the
    workers a user already has (a plain list, any keys, or a job library's own layout). The
    operator reads the depth there for status and autoscaling; it never writes those keys."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                f"self.format != '{JOBQUEUE_FORMAT}' || !has(self.names) || self.names.size() == 0",
                MSG_QUEUE_NAMES_JOBQUEUE,
            ),
            _cel(
                f"self.format == '{JOBQUEUE_FORMAT}' || (has(self.names) && self.names.size() > 0)",
                MSG_QUEUE_NAMES_REQUIRED,
            ),
            _cel(
                "self.format in ["
                + ", ".join(f"'{f}'" for f in IN_FLIGHT_NAME_FORMATS)
                + "] || !has(self.inFlightNames) || self.inFlightNames.size() == 0",
                MSG_IN_FLIGHT_NAMES,
            ),
        )
    )

    format: QueueFormat = Field(
        default=JOBQUEUE_FORMAT,
        description="jobqueue (our images' protocol); list (plain Redis lists); keys (any "
        "keys, each sized by its type); celery, rq, dramatiq, arq, bullmq (that library's "
        "own Redis layout).",
    )
    names: list[QueueKey] = Field(
        default_factory=list,
        max_length=MAX_QUEUE_NAMES,
        description="list and keys: the Redis keys holding waiting jobs; the libraries' "
        "formats: their queue names (arq: the queue key, e.g. arq:queue). The first one is "
        "the pods' QUEUE_NAME.",
    )
    in_flight_names: list[QueueKey] = Field(
        default_factory=list,
        max_length=MAX_QUEUE_NAMES,
        description="list and keys: the keys holding jobs being worked on (the processing "
        "lists of the BLMOVE/BRPOPLPUSH reliable-queue pattern), counted as in flight.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.format == JOBQUEUE_FORMAT and self.names:
            raise ValueError(MSG_QUEUE_NAMES_JOBQUEUE)
        if self.format != JOBQUEUE_FORMAT and not self.names:
            raise ValueError(MSG_QUEUE_NAMES_REQUIRED)
        if self.in_flight_names and self.format not in IN_FLIGHT_NAME_FORMATS:
            raise ValueError(MSG_IN_FLIGHT_NAMES)
        return self

    @property
    def foreign(self) -> bool:
        """True for every format but our own protocol."""
        return self.format != JOBQUEUE_FORMAT

    def layout(self) -> FormatSpec:
        """The key layout to read (``formats.py``); for the formats other than jobqueue."""
        return FormatSpec(Format(self.format), tuple(self.names), tuple(self.in_flight_names))


PortValue = int | Annotated[str, Field(max_length=15, pattern=PORT_NAME_PATTERN)]


class HttpGetProbe(Model):
    """An HTTP GET the kubelet sends; 200-399 passes."""

    path: str = Field(
        default="/", max_length=1024, pattern=HTTP_PATH_PATTERN, description="The path."
    )
    port: PortValue = Field(description="Container port number or name.")


class TcpSocketProbe(Model):
    """A TCP connect the kubelet tries."""

    port: PortValue = Field(description="Container port number or name.")


class ExecProbe(Model):
    """A command run in the container; exit 0 passes."""

    command: list[Annotated[str, Field(max_length=4096)]] = Field(
        min_length=1, max_length=32, description="The command and its arguments."
    )


class ProbeSpec(Model):
    """A Kubernetes probe (a subset of its shape): exactly one of httpGet, tcpSocket or exec,
    or ``disabled: true`` for no probe of this kind."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                "[has(self.httpGet), has(self.tcpSocket), has(self.exec), "
                "has(self.disabled) && self.disabled].filter(x, x).size() == 1",
                MSG_PROBE_ONE,
            )
        )
    )

    http_get: HttpGetProbe | None = Field(default=None, description="An HTTP GET.")
    tcp_socket: TcpSocketProbe | None = Field(default=None, description="A TCP connect.")
    exec_: ExecProbe | None = Field(default=None, alias="exec", description="A command.")
    disabled: bool | None = Field(default=None, description="No probe of this kind.")
    initial_delay_seconds: int | None = Field(
        default=None, ge=0, le=3600, description="Wait this long after start."
    )
    period_seconds: int | None = Field(default=None, ge=1, le=3600, description="How often.")
    timeout_seconds: int | None = Field(default=None, ge=1, le=3600, description="Time limit.")
    failure_threshold: int | None = Field(
        default=None, ge=1, le=100, description="Failures in a row that count."
    )

    @model_validator(mode="after")
    def _one(self) -> Self:
        actions = (self.http_get, self.tcp_socket, self.exec_)
        if sum(x is not None for x in actions) + bool(self.disabled) != 1:
            raise ValueError(MSG_PROBE_ONE)
        return self

    def manifest(self) -> dict[str, Any] | None:
        """The container's probe stanza; None when disabled."""
        if self.disabled:
            return None
        return self.model_dump(by_alias=True, exclude_none=True, exclude={"disabled"})


class ProbesSpec(Model):
    """The container's readiness and liveness probes. Unset: the images' own endpoints
    (/readyz and /healthz on port http), which images other than ours may not serve."""

    readiness: ProbeSpec | None = Field(default=None, description="The readiness probe.")
    liveness: ProbeSpec | None = Field(default=None, description="The liveness probe.")


def _unique(items: list[str], message: str) -> None:
    if len(set(items)) != len(items):
        raise ValueError(message)


class ScheduleSpec(Model):
    """Enqueue a job at each fire time of a cron expression (exactly once per fire time)."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(f"self.cron.matches(r'{schedules.CRON_PATTERN}')", MSG_CRON),
            _cel(
                f"!has(self.timeZone) || self.timeZone.matches('{TIME_ZONE_PATTERN}')",
                MSG_TIME_ZONE,
            ),
        )
    )

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=SCHEDULE_NAME_PATTERN,
        description="Schedule name (part of each job's idempotency key).",
    )
    cron: str = Field(
        min_length=1, max_length=256, description="Standard 5-field cron, e.g. '0 3 * * *'."
    )
    time_zone: str = Field(
        default="UTC", min_length=1, max_length=64, description="IANA time zone of the cron."
    )
    type: str = Field(
        min_length=1, max_length=63, pattern=JOB_TYPE_PATTERN, description="The job type."
    )
    payload: dict[str, Any] | None = Field(
        default=None,
        description="The job's payload (a JSON object).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    priority: Literal["high", "normal", "low"] = Field(
        default="normal", description="The job's priority."
    )
    starting_deadline_seconds: int = Field(
        default=300,
        ge=0,
        le=3600,
        description="A fire time missed (operator down) by less than this is caught up, once; "
        "older ones are skipped.",
    )
    suspend: bool = Field(default=False, description="Enqueue nothing while true.")

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, cron: str) -> str:
        try:
            schedules.check_cron(cron)
        except schedules.CronError as exc:
            raise ValueError(f"{MSG_CRON}: {exc}") from None
        return cron

    @field_validator("time_zone")
    @classmethod
    def _check_zone(cls, name: str) -> str:
        try:
            schedules.zone(name)
        except schedules.CronError:
            raise ValueError(f"{MSG_TIME_ZONE}: {name!r} is not one") from None
        return name


class ApiSpec(Model):
    """The HTTP job API: a Deployment and a Service."""

    enabled: bool = Field(default=True, description="Run the API (false: workers only).")
    replicas: int = Field(default=1, ge=0, le=100, description="API pods.")
    image: str | None = Field(
        default=None, min_length=1, description="API image; default: the operator's setting."
    )
    command: list[Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=list, max_length=32, description="Overrides the image's entrypoint."
    )
    args: list[Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=list, max_length=64, description="Arguments to the entrypoint."
    )
    resources: Resources = Field(default_factory=Resources, description="API container.")
    port: int = Field(default=80, ge=1, le=65535, description="The Service port.")
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        default="ClusterIP", description="The Service type."
    )
    auth_token_secret_ref: SecretKeySelector | None = Field(
        default=None, description="A Secret key with the bearer token clients must send."
    )
    env: EnvList = Field(default_factory=list, description="Extra env of the API container.")
    env_from: EnvFromList = Field(
        default_factory=list, description="ConfigMaps whose keys become env of the API."
    )
    secret_refs: SecretRefList = Field(
        default_factory=list,
        description="Secrets copied into the API's own Secret (<name>-api) and exposed as env.",
    )
    ingress: IngressSpec | None = Field(default=None, description="An Ingress for the API.")
    http_route: HttpRouteSpec | None = Field(
        default=None, description="A Gateway API HTTPRoute for the API."
    )
    probes: ProbesSpec = Field(
        default_factory=ProbesSpec,
        description="Readiness and liveness probes, for an API image that is not ours.",
    )


WORKER_RULES: Final = (
    _cel("self.drainTimeoutSeconds < self.terminationGracePeriodSeconds", MSG_DRAIN_BEFORE_GRACE),
    _cel(
        "!has(self.volumes) || "
        "self.volumes.all(v, self.volumes.filter(w, w.name == v.name).size() == 1)",
        MSG_VOLUME_NAMES_UNIQUE,
    ),
    _cel(
        "!has(self.volumes) || self.volumes.all(v, "
        "self.volumes.filter(w, w.mountPath == v.mountPath).size() == 1)",
        MSG_VOLUME_PATHS_UNIQUE,
    ),
)


class WorkerSpec(Model):
    """The workers: a Deployment running the user's task image."""

    model_config = ConfigDict(json_schema_extra=_rules(*WORKER_RULES))

    image: str | None = Field(
        default=None, min_length=1, description="Worker image; default: the operator's setting."
    )
    command: list[Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=list, max_length=32, description="Overrides the image's entrypoint."
    )
    args: list[Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=list, max_length=64, description="Arguments to the entrypoint."
    )
    concurrency: int = Field(default=8, ge=1, le=4096, description="Jobs at once per pod.")
    replicas: int = Field(
        default=1,
        ge=0,
        le=c.MAX_WORKER_REPLICAS,
        description="Worker pods when autoscaling is disabled (the scale subresource).",
    )
    resources: Resources = Field(default_factory=Resources, description="Worker container.")
    env: EnvList = Field(
        default_factory=list, description="Extra env of the worker (e.g. TASKS_MODULE)."
    )
    env_from: EnvFromList = Field(
        default_factory=list, description="ConfigMaps whose keys become env of the workers."
    )
    secret_refs: SecretRefList = Field(
        default_factory=list,
        description="Secrets copied into this pool's own Secret and exposed as env.",
    )
    job_timeout_seconds: int = Field(
        default=300, ge=0, le=86400, description="Per-job time limit; 0 = none."
    )
    drain_timeout_seconds: int = Field(
        default=25, ge=0, le=3600, description="On SIGTERM, wait this long for in-flight jobs."
    )
    termination_grace_period_seconds: int = Field(
        default=30, ge=1, le=7200, description="The pod's grace period."
    )
    volumes: list[WorkerVolume] = Field(
        default_factory=list,
        max_length=MAX_VOLUMES,
        description="Volumes mounted into the worker container (a persistentVolumeClaim is "
        "created per pool; ReadWriteOnce shares it only among pods on one node).",
    )
    probes: ProbesSpec = Field(
        default_factory=ProbesSpec,
        description="Readiness and liveness probes, for a worker image that is not ours.",
    )

    @model_validator(mode="after")
    def _drain_before_grace(self) -> Self:
        if self.drain_timeout_seconds >= self.termination_grace_period_seconds:
            raise ValueError(MSG_DRAIN_BEFORE_GRACE)
        _unique([v.name for v in self.volumes], MSG_VOLUME_NAMES_UNIQUE)
        _unique([v.mount_path for v in self.volumes], MSG_VOLUME_PATHS_UNIQUE)
        return self


class WorkerPoolSpec(WorkerSpec):
    """One more pool of workers beside ``spec.worker``: its own Deployment and Secret
    (``<name>-worker-<pool>``), its own queue (``<QUEUE_NAME>/<pool>``, to which the API routes
    the pool's job types, or another format's queue) and its own autoscaling on its backlog."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            *WORKER_RULES,
            _cel(
                f"(has(self.queue) && self.queue.format != '{JOBQUEUE_FORMAT}') == "
                "(!has(self.jobTypes) || self.jobTypes.size() == 0)",
                MSG_POOL_JOB_TYPES,
                fieldPath=".jobTypes",
            ),
        )
    )

    name: str = Field(
        min_length=1,
        max_length=20,
        pattern=POOL_NAME_PATTERN,
        description="Pool name: Deployment and Secret <name>-worker-<pool>.",
    )
    queue: QueueSpec = Field(
        default_factory=QueueSpec,
        description="Where this pool's jobs wait (default: its own jobqueue-format queue).",
    )
    job_types: list[
        Annotated[str, Field(min_length=1, max_length=63, pattern=JOB_TYPE_PATTERN)]
    ] = Field(
        default_factory=list,
        max_length=MAX_JOB_TYPES,
        validate_default=True,  # a jobqueue-format pool without any is refused
        description="The job types this pool takes; the API enqueues them on its queue "
        "(format jobqueue only, and required there).",
    )
    autoscaling: AutoscalingSpec = Field(
        default_factory=AutoscalingSpec,
        description="Scale this pool on its own queue's depth.",
        json_schema_extra=_rules(_cel("self.minReplicas <= self.maxReplicas", MSG_MIN_MAX)),
    )

    @field_validator("job_types")
    @classmethod
    def _job_types_by_format(cls, job_types: list[str], info: ValidationInfo) -> list[str]:
        queue = info.data.get("queue")  # absent: it failed to parse (that error is reported)
        if queue is not None and bool(job_types) == queue.foreign:
            raise ValueError(MSG_POOL_JOB_TYPES)
        return job_types

    def replicas_applied(self) -> int | None:
        return None if self.autoscaling.enabled else self.replicas


class JobQueueSpec(Model):
    """The desired state of a JobQueue."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                "has(self.queueName) == has(oldSelf.queueName) && "
                "(!has(self.queueName) || self.queueName == oldSelf.queueName)",
                MSG_QUEUE_NAME_IMMUTABLE,
            ),
            _cel(
                "!has(self.workers) || "
                "self.workers.all(p, self.workers.filter(q, q.name == p.name).size() == 1)",
                MSG_POOL_NAMES_UNIQUE,
            ),
            _cel(
                "!has(self.workers) || self.workers.all(p, !has(p.jobTypes) || "
                "p.jobTypes.all(t, self.workers.filter(q, has(q.jobTypes) && t in q.jobTypes)"
                ".size() == 1))",
                MSG_JOB_TYPE_ONE_POOL,
            ),
            _cel(
                f"!has(self.queue) || self.queue.format == '{JOBQUEUE_FORMAT}' || "
                "(has(self.api) && ((has(self.api.enabled) && !self.api.enabled) || "
                "has(self.api.image)))",
                MSG_FOREIGN_API,
            ),
            _cel(
                f"!has(self.queue) || self.queue.format == '{JOBQUEUE_FORMAT}' || "
                "!has(self.schedules) || self.schedules.size() == 0",
                MSG_FOREIGN_SCHEDULES,
            ),
            _cel(  # a transition rule: only on updates (the scale subresource's included)
                "!has(self.autoscaling) || !has(self.autoscaling.enabled) || "
                "!self.autoscaling.enabled || !has(self.worker) || !has(oldSelf.worker) || "
                "!has(self.worker.replicas) || !has(oldSelf.worker.replicas) || "
                "self.worker.replicas == oldSelf.worker.replicas",
                MSG_SCALE_AUTOSCALED,
            ),
            _cel(
                "!has(self.schedules) || "
                "self.schedules.all(s, self.schedules.filter(t, t.name == s.name).size() == 1)",
                MSG_SCHEDULE_NAMES_UNIQUE,
            ),
        )
    )

    redis: RedisSpec = Field(description="The Redis holding the queue.")
    queue_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=QUEUE_NAME_PATTERN,
        description="The queue's name in Redis (QUEUE_NAME = <namespace>/<queueName>); "
        "default: the JobQueue's name. Immutable.",
    )
    queue: QueueSpec = Field(
        default_factory=QueueSpec,
        description="Where the default pool's jobs wait: the jobqueue protocol (default) or "
        "the keys of workers you already have (list, keys, celery, rq, dramatiq, arq, bullmq).",
    )
    api: ApiSpec = Field(default_factory=ApiSpec, description="The HTTP job API.")
    worker: WorkerSpec = Field(
        default_factory=WorkerSpec, description="The default worker pool (<name>-worker)."
    )
    workers: list[WorkerPoolSpec] = Field(
        default_factory=list,
        max_length=MAX_POOLS,
        description="More worker pools, each taking its own job types from its own queue.",
    )
    autoscaling: AutoscalingSpec = Field(
        default_factory=AutoscalingSpec,
        description="Scale the workers on queue depth (ready + in-flight jobs).",
        json_schema_extra=_rules(_cel("self.minReplicas <= self.maxReplicas", MSG_MIN_MAX)),
    )
    schedules: list[ScheduleSpec] = Field(
        default_factory=list,
        max_length=MAX_SCHEDULES,
        description="Jobs enqueued on a cron schedule, exactly once per fire time.",
    )
    deletion_policy: Literal["Retain", "Purge"] = Field(
        default="Retain",
        description="On delete: Retain keeps the queue's Redis keys (and a managed Redis "
        "volume, and the workers' persistentVolumeClaims); Purge deletes them.",
    )

    @model_validator(mode="after")
    def _pools(self) -> Self:
        names = [p.name for p in self.workers]
        if len(set(names)) != len(names):
            raise ValueError(MSG_POOL_NAMES_UNIQUE)
        types = [t for p in self.workers for t in p.job_types]
        if len(set(types)) != len(types):
            raise ValueError(MSG_JOB_TYPE_ONE_POOL)
        _unique([s.name for s in self.schedules], MSG_SCHEDULE_NAMES_UNIQUE)
        if self.queue.foreign:
            if self.api.enabled and self.api.image is None:
                raise ValueError(MSG_FOREIGN_API)
            if self.schedules:
                raise ValueError(MSG_FOREIGN_SCHEDULES)
        return self

    def queue_identity(self, namespace: str, name: str) -> str:
        """QUEUE_NAME: ``<namespace>/<queueName or the JobQueue's name>``."""
        return f"{namespace}/{self.queue_name or name}"

    def pool_queue(self, namespace: str, name: str, pool: str) -> str:
        """QUEUE_NAME of a jobqueue-format pool: ``<namespace>/<queueName>/<pool>``."""
        return f"{self.queue_identity(namespace, name)}/{pool}"

    def queue_of(self, namespace: str, name: str, job_type: str) -> str:
        """The queue a job of ``job_type`` goes to (its pool's, else QUEUE_NAME)."""
        routes = self.job_routes(namespace, name)
        return routes.get(job_type, self.queue_identity(namespace, name))

    def job_routes(self, namespace: str, name: str) -> dict[str, str]:
        """Job type -> queue, for the API (JOB_ROUTES); types not listed go to QUEUE_NAME."""
        return {
            t: self.pool_queue(namespace, name, p.name) for p in self.workers for t in p.job_types
        }

    def jobqueue_queues(self, namespace: str, name: str) -> tuple[str, ...]:
        """Every jobqueue-format queue of this JobQueue (the default pool's and each pool's):
        the queues whose keys are the operator's own (a Purge deletes them)."""
        own = [] if self.queue.foreign else [self.queue_identity(namespace, name)]
        own += [
            self.pool_queue(namespace, name, p.name) for p in self.workers if not p.queue.foreign
        ]
        return tuple(own)


def _wire(part: str | int) -> str:
    """A location part as the manifest spells it (``job_types`` -> ``jobTypes``)."""
    text = str(part)
    return to_camel(text) if "_" in text.strip("_") else text


class SpecError(ValueError):
    """The spec does not parse; the message lists the fields at fault (never their values)."""


def parse_spec(raw: Mapping[str, Any]) -> JobQueueSpec:
    """Parse a JobQueue's ``spec`` once; raise :class:`SpecError` with a readable message."""
    try:
        return JobQueueSpec.model_validate(dict(raw))
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            # the wire's names (a defaulted field is reported by its Python name)
            where = ".".join(_wire(p) for p in err["loc"]) or "spec"
            problems.append(f"spec.{where}: {err['msg']}")
        raise SpecError("; ".join(problems)) from None
