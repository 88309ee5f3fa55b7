"""Namespace discovery for glob watches: a namespace seen only in a watch-stream's listing."""

from __future__ import annotations

import asyncio
from typing import Any

from jobqueue_operator import discovery
from kopf._cogs.structs import references
from kopf._core.reactor import observation

PATTERNS = ["jqsec-*"]


def listed(name: str, **meta: Any) -> Any:
    """An event as kopf's watch-stream yields each object of its (re-)listing: type None."""
    return {"type": None, "object": {"metadata": {"name": name, **meta}}}


def run(processor: Any, *events: Any) -> set[Any]:
    insights = references.Insights()

    async def feed() -> None:
        for event in events:
            await processor(raw_event=event, namespaces=PATTERNS, insights=insights)

    asyncio.run(feed())
    return set(insights.namespaces)


def test_stock_kopf_drops_a_namespace_seen_only_in_the_watch_listing() -> None:
    # The race this module exists for; when kopf fixes it, this fails and the patch can go.
    assert run(observation.process_discovered_namespace_event, listed("jqsec-new")) == set()


def test_a_namespace_seen_only_in_the_watch_listing_is_watched() -> None:
    assert run(discovery.process_namespace_event, listed("jqsec-new")) == {"jqsec-new"}


def test_listings_add_only_matching_namespaces_terminating_ones_too() -> None:
    # A terminating namespace still holds JobQueues whose finalizers the operator must run.
    found = run(
        discovery.process_namespace_event,
        listed("other"),
        listed("jqsec-ending", deletionTimestamp="2026-12-07T00:00:00Z"),
        listed("jqsec-live"),
    )
    assert found == {"jqsec-ending", "jqsec-live"}


def test_watch_events_still_go_through_kopf() -> None:
    added = {"type": "ADDED", "object": {"metadata": {"name": "jqsec-a"}}}
    deleted = {
        "type": "DELETED",
        "object": {"metadata": {"name": "jqsec-a", "deletionTimestamp": "2026-12-07T00:00:00Z"}},
    }
    assert run(discovery.process_namespace_event, added) == {"jqsec-a"}
    assert run(discovery.process_namespace_event, added, deleted) == set()


def test_install_replaces_the_processor_kopf_uses() -> None:
    stock = observation.process_discovered_namespace_event
    try:
        discovery.install()
        assert observation.process_discovered_namespace_event is discovery.process_namespace_event
    finally:
        observation.process_discovered_namespace_event = stock
