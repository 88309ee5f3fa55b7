"""What the operator's watches already know, kept for the reconcile, so it asks the API nothing.

kopf already watches every kind of child (to repair drift) and every Secret (to follow a rotated
source). Three views come from those watches:

* the children of each JobQueue, by owner: a kopf index (``handlers.children``) whose values are
  :func:`trim_child` copies packed as JSON text (:func:`pack_child`), so the reconcile compares
  against them instead of LISTing six kinds;
* the JobQueues themselves (``handlers.jobqueues``, packed the same way), so a child's event
  reconciles its owner without a GET;
* the values of source Secrets (:class:`SecretCache`), fed by the watch of the Secrets some
  JobQueue references, and by one GET the first time a Secret is asked for before the watch
  delivered it.

kopf fills every index before any handler runs, so a restarted operator's first reconciles see
the children as they are and write nothing for JobQueues that did not change. Only the fields
the reconcile reads are kept (no ``managedFields``, no status beyond the replica counts): a
Deployment's full body is several times its trimmed copy, and 1,000 JobQueues hold 7,000
children.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jobqueue_operator import constants as c
from jobqueue_operator.diffing import replicas_managers
from jobqueue_operator.kubetypes import JSON

Key = tuple[str, str]  # (namespace, name)
ChildIndex = Mapping[Key, Iterable[str]]  # kopf.Index of the packed children, by owner
BodyIndex = Mapping[Key, Iterable[str]]  # kopf.Index of the packed JobQueues, by key

#: The status fields the reconcile reads of a Deployment or a StatefulSet (status.py).
_STATUS_KEPT = ("replicas", "readyReplicas")


def trim_child(body: Mapping[str, Any], kind: str) -> JSON:
    """A child as the reconcile needs it: identity, what the operator sets (metadata, spec,
    data), the replica counts of its status, and who applies spec.replicas. A plain dict, so
    kopf's later events never change what an index holds."""
    meta = body.get("metadata") or {}
    kept_meta: JSON = {
        k: meta[k]
        for k in (
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "labels",
            "annotations",
            "ownerReferences",
            "deletionTimestamp",
        )
        if k in meta
    }
    managers = replicas_managers(meta)
    if managers:
        kept_meta["managedFields"] = managers
    out: JSON = {
        "apiVersion": body.get("apiVersion"),
        "kind": kind,
        "metadata": kept_meta,
    }
    for key in ("spec", "data", "type", "immutable"):
        if key in body:
            out[key] = body[key]
    status = body.get("status") or {}
    if kind in ("Deployment", "StatefulSet") and status:
        out["status"] = {k: status[k] for k in _STATUS_KEPT if k in status}
    return out


def pack_child(body: Mapping[str, Any], kind: str) -> str:
    """:func:`trim_child` as compact JSON, what the ``children`` index holds: a Deployment's
    dicts take several times its JSON text in memory, and the reconcile of one JobQueue
    unpacks only its own few children."""
    return json.dumps(trim_child(body, kind), separators=(",", ":"))


def trim_jobqueue(body: Mapping[str, Any]) -> JSON:
    """A JobQueue as a reconcile triggered by a watch reads it (no managedFields)."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind") or c.KIND,
        "metadata": meta,
        "spec": body.get("spec") or {},
        "status": body.get("status") or {},
    }


def pack_jobqueue(body: Mapping[str, Any]) -> str:
    """:func:`trim_jobqueue` as compact JSON, what the ``jobqueues`` index holds (as
    :func:`pack_child`: a few KiB of text instead of several times that in dicts, per
    JobQueue)."""
    return json.dumps(trim_jobqueue(body), separators=(",", ":"))


def owner_of(meta: Mapping[str, Any]) -> str | None:
    """The name of the JobQueue that controls an object, if one does."""
    for ref in meta.get("ownerReferences") or []:
        if (
            ref.get("controller")
            and ref.get("kind") == c.KIND
            and str(ref.get("apiVersion", "")).startswith(f"{c.GROUP}/")
        ):
            return str(ref.get("name"))
    return None


_MISSING: JSON = {}  # a Secret known to be absent (404): the watch says when it appears


class SecretCache:
    """The Secrets some JobQueue reads (``redis.urlFrom``, token, ``secretRefs``), by
    (namespace, name), as their watch last delivered them.

    :meth:`observe` is fed by the watch handler of source Secrets and of every Secret already
    in the cache (so an entry never goes stale, even once no JobQueue reads it); :meth:`get`
    answers from the cache and reads the API only for a Secret never seen (one GET however
    many reconciles ask at once; its answer does not replace a value the watch delivered
    meanwhile). Only touched from the event loop's thread.
    """

    def __init__(self) -> None:
        self._secrets: dict[Key, JSON] = {}
        self._reads: dict[Key, asyncio.Future[JSON | None]] = {}

    def observe(self, namespace: str, name: str, body: Mapping[str, Any] | None) -> None:
        """What a watch event says; ``body`` None: the Secret was deleted."""
        self._secrets[(namespace, name)] = _MISSING if body is None else _secret_copy(body)

    async def get(
        self,
        namespace: str,
        name: str,
        read: Callable[[str, str], Awaitable[JSON | None]],
    ) -> JSON | None:
        """The Secret (None if it does not exist); ``read`` fetches it when never seen."""
        key = (namespace, name)
        known = self._secrets.get(key)
        if known is None:
            pending = self._reads.get(key)
            if pending is None:  # the first asker reads; the others wait for its answer
                pending = self._reads[key] = asyncio.ensure_future(read(namespace, name))
                pending.add_done_callback(lambda _: self._reads.pop(key, None))
            fetched = await asyncio.shield(pending)
            known = self._secrets.setdefault(
                key, _MISSING if fetched is None else _secret_copy(fetched)
            )
        return None if known is _MISSING else known

    def __contains__(self, key: object) -> bool:
        return key in self._secrets

    def __len__(self) -> int:
        return len(self._secrets)


def _secret_copy(body: Mapping[str, Any]) -> JSON:
    meta = body.get("metadata") or {}
    return {
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "data": dict(body.get("data") or {}),
    }


@dataclass
class Views:
    """The watch caches one reconciler reads. ``children`` and ``jobqueues`` are kopf's live
    index objects, handed over by the first handler that receives them (kopf passes indices
    to handlers, not to start-up); until then (and in tests without kopf) they are None and
    the reconcile asks the API."""

    children: ChildIndex | None = None
    jobqueues: BodyIndex | None = None
    secrets: SecretCache = field(default_factory=SecretCache)

    def attach(self, indices: Mapping[str, Any]) -> None:
        """Take the indices from a handler's keyword arguments (the same objects every time)."""
        if self.children is None and "children" in indices:
            self.children = indices["children"]
        if self.jobqueues is None and "jobqueues" in indices:
            self.jobqueues = indices["jobqueues"]

    def children_of(self, key: Key) -> list[JSON] | None:
        """The children indexed under a JobQueue (fresh dicts); None when there is no index."""
        if self.children is None:
            return None
        return [json.loads(packed) for packed in self.children.get(key, ())]

    def jobqueue(self, key: Key) -> JSON | None:
        """The JobQueue as last watched (None when gone); only with ``jobqueues`` attached."""
        assert self.jobqueues is not None
        packed = next(iter(self.jobqueues.get(key, ())), None)
        return None if packed is None else dict(json.loads(packed))
