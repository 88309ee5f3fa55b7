"""Typed shapes of the Kubernetes bodies the operator builds and reads, at its boundaries.

Only what the operator relies on is spelled out; the inner specs of Pods and Services stay
JSON (``dict[str, Any]``), built in one place (``builders.py``) and never dug into elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

from jobqueue_operator import constants as c

JSON = dict[str, Any]
ConditionStatus = Literal["True", "False", "Unknown"]
ChildKind = Literal[
    "Deployment",
    "StatefulSet",
    "Service",
    "Secret",
    "Ingress",
    "HTTPRoute",
    "NetworkPolicy",
    "PersistentVolumeClaim",
]


class OwnerReference(TypedDict):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


class ObjectMeta(TypedDict):
    name: str
    namespace: str
    labels: dict[str, str]
    annotations: NotRequired[dict[str, str]]
    ownerReferences: NotRequired[list[OwnerReference]]


class Manifest(TypedDict):
    """A child object as the operator applies it (server-side apply body)."""

    apiVersion: str
    kind: ChildKind
    metadata: ObjectMeta
    spec: NotRequired[JSON]
    type: NotRequired[str]
    data: NotRequired[dict[str, str]]


class Condition(TypedDict):
    """A ``metav1.Condition`` (observedGeneration kept at the status level)."""

    type: str
    status: ConditionStatus
    reason: str
    message: str
    lastTransitionTime: str


@dataclass(frozen=True, slots=True)
class JobQueueRef:
    """Who a JobQueue is: what the builders and the API calls need from its metadata."""

    namespace: str
    name: str
    uid: str
    generation: int = 0
    deleting: bool = False

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JobQueueRef:
        meta = body.get("metadata") or {}
        return cls(
            namespace=str(meta["namespace"]),
            name=str(meta["name"]),
            uid=str(meta["uid"]),
            generation=int(meta.get("generation") or 0),
            deleting=meta.get("deletionTimestamp") is not None,
        )

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def body_stub(self) -> JSON:
        """A minimal body of this JobQueue (what Event posting needs to name it)."""
        return {
            "apiVersion": c.API_VERSION,
            "kind": c.KIND,
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
        }

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class CondSpec:
    """A condition as decided, before times are attached (the reconcile's and the autoscaler's)."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


def rv_of(obj: Mapping[str, Any]) -> str | None:
    """An object's resourceVersion, if it has one."""
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return str(value) if value is not None else None


def uid_of(obj: Mapping[str, Any]) -> str | None:
    """An object's uid, if it has one."""
    value = (obj.get("metadata") or {}).get("uid")
    return str(value) if value is not None else None
