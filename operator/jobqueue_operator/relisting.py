"""kopf watch-streams that report the objects deleted while a stream was down: a re-list emits
DELETED for every object it no longer holds, as client-go's informers do (kopf 1.45 does not)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from kopf._cogs.clients import watching

# kopf re-lists a resource whenever its watch-stream restarts (an API server restart, a "410
# Gone"). An object deleted in between is simply absent from the new listing: no DELETED event
# reaches the handlers or the indexes, so the watch caches the reconcile reads keep it forever
# and a deleted child is never recreated. Each stream here remembers the identity of what it
# last saw, and after each listing emits DELETED for whatever the listing did not return.
_stock = watching.continuous_watch
_known: dict[tuple[Any, Any], dict[str, dict[str, Any]]] = {}


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


async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
    """kopf's ``continuous_watch``, plus DELETED events for objects gone from a re-listing."""
    known = _known.setdefault((kwargs.get("resource"), kwargs.get("namespace")), {})
    listed: set[str] | None = set()
    async for event in _stock(**kwargs):
        if event is watching.Bookmark.LISTED and listed is not None:
            for gone in [key for key in known if key not in listed]:
                yield {"type": "DELETED", "object": known.pop(gone)}
            listed = None
        elif isinstance(event, dict):
            obj = event.get("object") or {}
            uid = (obj.get("metadata") or {}).get("uid")
            if uid and event.get("type") == "DELETED":
                known.pop(uid, None)
            elif uid and event.get("type") in (None, "ADDED", "MODIFIED"):
                known[uid] = tombstone(obj)
                if event.get("type") is None and listed is not None:
                    listed.add(uid)
        yield event


def install() -> None:
    """Use the stream above for every kopf watch (before ``kopf.run``)."""
    setattr(watching, "continuous_watch", continuous_watch)  # noqa: B010
