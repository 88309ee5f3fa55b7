"""Pure decisions about children: does one need applying, which ones to prune.

Server-side apply of an unchanged object is a no-op for the API server, but still a request;
"idle = no API writes" asks for none at all. So a child is applied only when

* it does not exist, or
* the hash of the manifest last applied (an annotation on the child) differs from the hash of
  the desired one (the spec changed; this also catches fields that were *removed*), or
* some field the operator sets has a different value live (someone edited it by hand).

The third check compares only the fields in the desired manifest (the server adds defaults and
other managers' fields, which are not ours to judge); lists must match in length and order.
A value the server normalises (a quantity ``0.5`` stored as ``500m``) looks changed and costs a
no-op apply per reconcile, never a wrong result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, cast

from jobqueue_operator import constants as c
from jobqueue_operator.kubetypes import JSON, Manifest


def _with_annotations(manifest: Manifest, annotations: Mapping[str, str]) -> JSON:
    """A shallow copy of ``manifest`` whose metadata has ``annotations`` (none: no key)."""
    meta: JSON = {k: v for k, v in manifest["metadata"].items() if k != "annotations"}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {**manifest, "metadata": meta}


def manifest_hash(manifest: Manifest) -> str:
    """sha256 of a manifest (without the hash annotation itself)."""
    annotations = manifest["metadata"].get("annotations") or {}
    own = {k: v for k, v in annotations.items() if k != c.ANNOTATION_APPLIED_HASH}
    text = json.dumps(_with_annotations(manifest, own), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def with_applied_hash(manifest: Manifest) -> Manifest:
    """The manifest carrying the hash annotation that :func:`needs_apply` compares (a new
    top level and metadata; the rest is shared with ``manifest``, which is not changed)."""
    annotations = {
        **(manifest["metadata"].get("annotations") or {}),
        c.ANNOTATION_APPLIED_HASH: manifest_hash(manifest),
    }
    return cast(Manifest, _with_annotations(manifest, annotations))


def contains(desired: Any, live: Any) -> bool:
    """True when every field of ``desired`` has the same value in ``live``."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(k in live and contains(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(contains(d, x) for d, x in zip(desired, live, strict=True))
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live
    if isinstance(desired, int | float) and isinstance(live, int | float):
        return desired == live
    return bool(desired == live)


def needs_apply(desired: Manifest, live: Mapping[str, Any] | None) -> bool:
    """Whether ``desired`` (as :func:`with_applied_hash` returns it) must be applied."""
    if live is None:
        return True
    want = desired["metadata"].get("annotations", {}).get(c.ANNOTATION_APPLIED_HASH)
    have = (live.get("metadata") or {}).get("annotations", {}).get(c.ANNOTATION_APPLIED_HASH)
    if want is None or want != have:
        return True
    return not contains(desired, live)


def child_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, name): how children are matched between desired and live."""
    return (str(obj.get("kind")), str((obj.get("metadata") or {}).get("name")))


def controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    """True when ``obj``'s controller ownerReference is the JobQueue with ``uid``."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("controller") for r in refs)


def to_prune(
    desired: Iterable[Manifest], live: Iterable[Mapping[str, Any]], uid: str
) -> list[JSON]:
    """Live children of ours (controller = this JobQueue) that are no longer desired."""
    wanted = {child_key(m) for m in desired}
    return [
        dict(obj)
        for obj in live
        if controlled_by(obj, uid)
        and child_key(obj) not in wanted
        and (obj.get("metadata") or {}).get("deletionTimestamp") is None
    ]


def replicas_managers(meta: Mapping[str, Any]) -> list[JSON]:
    """The managedFields entries that own spec.replicas by server-side apply, reduced to that:
    what the replica hand-over (adapters.replicas_handover_needed) reads."""
    out: list[JSON] = []
    for entry in meta.get("managedFields") or []:
        spec = ((entry.get("fieldsV1") or {}).get("f:spec")) or {}
        if entry.get("operation") == "Apply" and "f:replicas" in spec:
            out.append(
                {
                    "manager": entry.get("manager"),
                    "operation": "Apply",
                    "fieldsV1": {"f:spec": {"f:replicas": {}}},
                }
            )
    return out
