"""The operator's own configuration: one frozen pydantic-settings object, from the environment."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobqueue_operator.builders import OperatorPeer

PullPolicy = Literal["Always", "IfNotPresent", "Never"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class OperatorSettings(BaseSettings):
    """Read once at start-up; every field is an environment variable of the same name."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    default_api_image: str = Field(default="localhost/jobqueue-api:dev", min_length=1)
    default_worker_image: str = Field(default="localhost/jobqueue-worker:dev", min_length=1)
    default_redis_image: str = Field(default="docker.io/library/redis:7.2", min_length=1)
    image_pull_policy: PullPolicy = "IfNotPresent"

    watch_namespaces: str = Field(
        default="", description="Comma-separated namespaces (globs allowed); empty = all."
    )
    resync_interval_seconds: float = Field(
        default=300.0,
        gt=0,
        description=(
            "How often every JobQueue is reconciled anyway: a safety net, since the watches on "
            "the children and Secrets already trigger a reconcile within a second."
        ),
    )
    kube_threads: int = Field(
        default=16,
        ge=1,
        le=64,
        description="Threads for the synchronous Kubernetes client (reconciles; as many again "
        "for the autoscalers).",
    )
    peering: bool = Field(
        default=False,
        description="Leader election between replicas (kopf peering; needs the "
        "ClusterKopfPeering CRD, the chart installs it with replicaCount > 1).",
    )
    peering_name: str = Field(
        default="jobqueue-operator", description="The ClusterKopfPeering object the replicas share."
    )
    peering_priority: int = Field(
        default=0,
        ge=0,
        description="This replica's priority (the highest works); 0: a random one per process, "
        "so replicas never tie (a tie would pause them all).",
    )
    peering_lifetime: int = Field(
        default=8,
        ge=3,
        le=300,
        description="Seconds a replica's heartbeat counts: a standby takes over this long after "
        "the active replica's last one.",
    )
    health_port: int = Field(default=8080, ge=0, le=65535, description="/healthz; 0 disables it.")
    metrics_port: int = Field(default=9090, ge=0, le=65535, description="/metrics; 0 disables it.")
    operator_namespace: str = Field(
        default="",
        description="The operator pod's namespace (the chart sets it); with operator_pod_labels "
        "it lets the operator through a managed Redis' NetworkPolicy.",
    )
    operator_pod_labels: str = Field(
        default="",
        pattern=r"^([^=,\s]+=[^=,\s]*(,[^=,\s]+=[^=,\s]*)*)?$",
        description="The operator pods' labels, as k=v,k=v (the chart sets them).",
    )
    log_level: LogLevel = "INFO"
    event_level: LogLevel = Field(default="INFO", description="Lowest level posted as a k8s Event.")

    def namespaces(self) -> tuple[str, ...]:
        return tuple(ns.strip() for ns in self.watch_namespaces.split(",") if ns.strip())

    def operator_peer(self) -> OperatorPeer | None:
        """Where this operator's pods run; None outside a cluster (nothing to let in)."""
        if not (self.operator_namespace and self.operator_pod_labels):
            return None
        pairs = (item.split("=", 1) for item in self.operator_pod_labels.split(","))
        return OperatorPeer(self.operator_namespace, {k: v for k, v in pairs})


@lru_cache(maxsize=1)
def get_settings() -> OperatorSettings:
    """The settings of this process (read from the environment on first use)."""
    return OperatorSettings()
