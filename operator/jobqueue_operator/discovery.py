"""Namespace discovery for glob watches that never loses a namespace created while the
operator starts or while its namespace watch reconnects (a kopf 1.45 race, patched here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

from kopf._core.reactor import observation

# kopf's namespace observer lists the namespaces once, then starts a watch-stream that lists
# them again and ignores that second listing (events of type None). A namespace created between
# the two listings, or while the stream reconnects and re-lists, is never watched until the
# operator restarts. Folding every listing into the known namespaces closes both gaps; adding a
# namespace already known changes nothing.
_stock: Callable[..., Awaitable[None]] = observation.process_discovered_namespace_event


async def process_namespace_event(
    *, raw_event: Any, namespaces: Collection[Any], insights: Any, **kwargs: Any
) -> None:
    """kopf's namespace event processor, plus the listings it drops."""
    if raw_event["type"] is not None:
        await _stock(raw_event=raw_event, namespaces=namespaces, insights=insights, **kwargs)
        return
    async with insights.revised:
        observation.revise_namespaces(
            raw_events=[raw_event], insights=insights, namespaces=namespaces
        )
        insights.revised.notify_all()


def install() -> None:
    """Use the processor above for the namespace watch-stream (before ``kopf.run``)."""
    setattr(observation, "process_discovered_namespace_event", process_namespace_event)  # noqa: B010
