"""kopf watch-streams that report the objects deleted while a stream was down (a re-list emits
DELETED for every object it no longer holds, as client-go's informers do; kopf 1.45 does not),
and that hand kopf every object without its managedFields.

managedFields are most of an object's metadata (a JobQueue written by kopf, the reconcile and
the autoscaler carries one entry per writer, each a tree of every field it set), and kopf keeps
the last body of every object with a daemon or a timer (each JobQueue): at 1,000 JobQueues they
were tens of MiB nobody reads. Only what the replica hand-over reads is kept: which managers
apply a Deployment's spec.replicas (:func:`diffing.replicas_managers`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from kopf._cogs.clients import watching

from jobqueue_operator.diffing import replicas_managers

# kopf re-lists a resource whenever its watch-stream restarts (an API server restart, a "410
# Gone"). An object deleted in between is simply absent from the new listing: no DELETED event
# reaches the handlers or the indexes, so the watch caches the reconcile reads keep it forever
# and a deleted child is never recreated. Each stream here remembers the identity of what it
# last saw, and after each listing emits DELETED for whatever the listing did not return.
_stock = watching.continuous_watch
# per stream, the tombstone of each object (packed JSON: 7,000 children and every Secret)
_known: dict[tuple[Any, Any], dict[str, str]] = {}


def tombstone(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What a DELETED event needs of an object: its identity, labels and owners (for the
    handlers' filters and the owner lookup), not its spec or status."""
    meta = obj.get("metadata") or {}
    kept = ("name", "namespace", "uid", "labels", "ownerReferences", "resourceVersion")
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in kept if k in meta},
    }


def slim(obj: Mapping[str, Any]) -> None:
    """Drop an object's managedFields (in place), but for the entries that apply spec.replicas,
    reduced to that."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return
    kept = replicas_managers(meta)
    if kept:
        meta["managedFields"] = kept
    else:
        del meta["managedFields"]


async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
    """kopf's ``continuous_watch``: objects without managedFields (:func:`slim`), plus DELETED
    events for objects gone from a re-listing."""
    known = _known.setdefault((kwargs.get("resource"), kwargs.get("namespace")), {})
    listed: set[str] | None = set()
    async for event in _stock(**kwargs):
        if event is watching.Bookmark.LISTED and listed is not None:
            for gone in [key for key in known if key not in listed]:
                yield {"type": "DELETED", "object": json.loads(known.pop(gone))}
            listed = None
        elif isinstance(event, dict):
            obj = event.get("object") or {}
            slim(obj)
            uid = (obj.get("metadata") or {}).get("uid")
            if uid and event.get("type") == "DELETED":
                known.pop(uid, None)
            elif uid and event.get("type") in (None, "ADDED", "MODIFIED"):
                known[uid] = json.dumps(tombstone(obj), separators=(",", ":"))
                if event.get("type") is None and listed is not None:
                    listed.add(uid)
        yield event


def install() -> None:
    """Use the stream above for every kopf watch (before ``kopf.run``)."""
    setattr(watching, "continuous_watch", continuous_watch)  # noqa: B010
