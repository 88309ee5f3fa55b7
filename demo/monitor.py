"""What the demo watches: queue numbers (GET /stats), worker counts (the worker Deployment) and
the operator's Events, sampled a few times a second into a History the views read.

The History is pure bookkeeping (no I/O) so the numbers the summary prints are tested alone;
the Kubernetes reads go through the official client in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from demo import constants as c
from demo.burst import Target

STATS_FIELDS = ("ready", "in_flight", "delayed", "dead", "completed_total", "failed_total")


@dataclass(frozen=True, slots=True)
class Stats:
    """One GET /stats answer."""

    ready: int
    in_flight: int
    delayed: int
    dead: int
    completed_total: int
    failed_total: int
    enqueued_total: int

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Stats:
        return cls(*(int(body[k]) for k in (*STATS_FIELDS, "enqueued_total")))


@dataclass(frozen=True, slots=True)
class Workers:
    desired: int | None  # the worker Deployment's spec.replicas (what the operator set)
    ready: int | None  # pods (or local processes) that are ready


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # seconds since the History started
    stats: Stats | None  # None: the API did not answer
    workers: Workers


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    """One Event the operator posted on a JobQueue."""

    t: float  # seconds since the History started (negative: before it)
    clock: str  # HH:MM:SS local time
    queue: str
    type: str
    reason: str
    message: str
    seq: int = 0  # the Event's resourceVersion: orders Events stamped within the same second


@dataclass(frozen=True, slots=True)
class WorkerChange:
    t: float
    queue: str
    desired: int | None
    ready: int | None


@dataclass
class QueueHistory:
    """The samples of one queue and what is derived from them."""

    queue: str
    baseline: Stats | None = None
    last: Sample | None = None
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=4096))
    peak_ready: int = 0
    peak_desired: int = 0
    peak_ready_workers: int = 0
    peak_rate: float = 0.0

    def add(self, sample: Sample) -> None:
        if sample.stats is not None and self.baseline is None:
            self.baseline = sample.stats
        self.samples.append(sample)
        self.last = sample
        if sample.stats is not None:
            self.peak_ready = max(self.peak_ready, sample.stats.ready)
        self.peak_desired = max(self.peak_desired, sample.workers.desired or 0)
        self.peak_ready_workers = max(self.peak_ready_workers, sample.workers.ready or 0)
        self.peak_rate = max(self.peak_rate, self.rate())

    def _done_of(self, stats: Stats) -> int:
        base = self.baseline or stats
        return (stats.completed_total - base.completed_total) + (stats.dead - base.dead)

    @property
    def stats(self) -> Stats | None:
        return next((s.stats for s in reversed(self.samples) if s.stats is not None), None)

    def done(self) -> int:
        """Jobs finished since the start: completed, or dead (in the dead-letter queue)."""
        stats = self.stats
        return 0 if stats is None else self._done_of(stats)

    def completed(self) -> int:
        stats = self.stats
        if stats is None or self.baseline is None:
            return 0
        return stats.completed_total - self.baseline.completed_total

    def failed_attempts(self) -> int:
        stats = self.stats
        if stats is None or self.baseline is None:
            return 0
        return stats.failed_total - self.baseline.failed_total

    def dead(self) -> int:
        stats = self.stats
        if stats is None or self.baseline is None:
            return 0
        return stats.dead - self.baseline.dead

    def rate(self, window: float = c.RATE_WINDOW_SECONDS) -> float:
        """Jobs done per second over the last `window` seconds."""
        with_stats = [s for s in self.samples if s.stats is not None]
        if len(with_stats) < 2:
            return 0.0
        last = with_stats[-1]
        first = next((s for s in with_stats if s.t >= last.t - window), with_stats[0])
        if last.t - first.t <= 0 or first.stats is None or last.stats is None:
            return 0.0
        return max(
            0.0, (self._done_of(last.stats) - self._done_of(first.stats)) / (last.t - first.t)
        )

    def series(self, pick: Callable[[Sample], int | None], points: int) -> list[int]:
        """One value per sample (the last `points`), for a sparkline."""
        values = [pick(s) for s in self.samples]
        return [v or 0 for v in values][-points:]


@dataclass
class History:
    """Everything sampled during one run; `now()` is seconds since it started."""

    queues: Sequence[str]
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    per_queue: dict[str, QueueHistory] = field(default_factory=dict)
    events: list[ScaleEvent] = field(default_factory=list)
    changes: list[WorkerChange] = field(default_factory=list)
    _seen_events: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for q in self.queues:
            self.per_queue.setdefault(q, QueueHistory(q))

    def now(self) -> float:
        return time.monotonic() - self.started

    def add(self, queue: str, sample: Sample) -> None:
        history = self.per_queue[queue]
        before = history.last.workers if history.last is not None else None
        history.add(sample)
        if before is None or before != sample.workers:
            self.changes.append(
                WorkerChange(sample.t, queue, sample.workers.desired, sample.workers.ready)
            )

    def add_events(self, events: Iterable[tuple[str, ScaleEvent]]) -> list[ScaleEvent]:
        """Record events not seen before (keyed by their uid); returns the new ones."""
        new = []
        for uid, event in events:
            if uid in self._seen_events:
                continue
            self._seen_events.add(uid)
            new.append(event)
        self.events = sorted([*self.events, *new], key=lambda e: (e.t, e.seq))
        return new

    def done(self) -> int:
        return sum(h.done() for h in self.per_queue.values())

    def rate(self) -> float:
        return sum(h.rate() for h in self.per_queue.values())

    def desired_timeline(self) -> list[WorkerChange]:
        """The changes of the desired worker count only (what the operator decided)."""
        out: list[WorkerChange] = []
        last: dict[str, int | None] = {}
        for change in self.changes:
            if change.queue in last and last[change.queue] == change.desired:
                continue
            if change.queue not in last and change.desired is None:
                continue
            last[change.queue] = change.desired
            out.append(change)
        return out


# ---------------------------------------------------------------------------------------------
# Reading the cluster


def _parse_time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def event_of(raw: Mapping[str, Any], history_start_wall: float) -> ScaleEvent:
    """A core/v1 Event (as a dict, camelCase or snake_case) as the demo shows it."""
    involved = raw.get("involvedObject") or raw.get("involved_object") or {}
    when = (
        _parse_time(raw.get("lastTimestamp") or raw.get("last_timestamp"))
        or _parse_time(raw.get("eventTime") or raw.get("event_time"))
        or _parse_time((raw.get("metadata") or {}).get("creationTimestamp"))
        or history_start_wall
    )
    clock = datetime.fromtimestamp(when).strftime("%H:%M:%S")
    return ScaleEvent(
        # Event times have whole seconds: one stamped in the first second of the run is at 0.
        t=max(0.0, when - history_start_wall)
        if when > history_start_wall - 1
        else when - history_start_wall,
        clock=clock,
        queue=str(involved.get("name", "?")),
        type=str(raw.get("type", "")),
        reason=str(raw.get("reason", "")),
        message=str(raw.get("message", "")),
        seq=int(str((raw.get("metadata") or {}).get("resourceVersion") or 0)),
    )


class Kube:
    """The few reads (and writes) the demo makes, through the official client, off the loop."""

    def __init__(self, kubeconfig: Path) -> None:
        from kubernetes import client, config

        self._api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        self.apps = client.AppsV1Api(self._api)
        self.core = client.CoreV1Api(self._api)
        self.custom = client.CustomObjectsApi(self._api)
        self.kubeconfig = kubeconfig

    def _deployment_sync(self, namespace: str, name: str) -> Workers:
        from kubernetes.client.exceptions import ApiException

        try:
            dep = self.apps.read_namespaced_deployment(name, namespace, _request_timeout=5)
        except ApiException as exc:
            if exc.status == 404:
                return Workers(None, None)
            raise
        ready = dep.status.ready_replicas if dep.status is not None else 0
        return Workers(int(dep.spec.replicas or 0), int(ready or 0))

    async def workers(self, namespace: str, deployment: str) -> Workers:
        return await asyncio.to_thread(self._deployment_sync, namespace, deployment)

    def _events_sync(self, namespace: str) -> list[dict[str, Any]]:
        events = self.core.list_namespaced_event(
            namespace, field_selector="involvedObject.kind=JobQueue", _request_timeout=5
        )
        out = []
        for e in events.items:
            source = (e.source.component if e.source else None) or e.reporting_component
            if source != c.OPERATOR_COMPONENT:
                continue
            out.append(
                {
                    "uid": e.metadata.uid,
                    "involvedObject": {"name": e.involved_object.name},
                    "type": e.type,
                    "reason": e.reason,
                    "message": e.message,
                    "lastTimestamp": e.last_timestamp,
                    "eventTime": e.event_time,
                    "metadata": {
                        "creationTimestamp": e.metadata.creation_timestamp,
                        "resourceVersion": e.metadata.resource_version,
                    },
                }
            )
        return out

    async def events(self, namespace: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._events_sync, namespace)

    def close(self) -> None:
        self._api.close()


class Sampler:
    """Samples every target ~4 times a second and the operator's Events once a second."""

    def __init__(
        self,
        history: History,
        targets: Sequence[Target],
        clients: Mapping[str, httpx.AsyncClient],
        kube: Kube,
        *,
        ready_override: Callable[[Target], int | None] | None = None,
    ) -> None:
        self.history = history
        self.targets = targets
        self.clients = clients
        self.kube = kube
        self.ready_override = ready_override
        self.api_errors: dict[str, str] = {}
        self.kube_error: str | None = None

    async def _stats(self, target: Target) -> Stats | None:
        try:
            response = await self.clients[target.queue].get("/stats", timeout=2.0)
            response.raise_for_status()
            self.api_errors.pop(target.queue, None)
            return Stats.of(response.json())
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            self.api_errors[target.queue] = repr(exc)[:120]
            return None

    async def _workers(self, target: Target) -> Workers:
        try:
            workers = await self.kube.workers(target.namespace, f"{target.queue}-worker")
            self.kube_error = None
        except Exception as exc:  # any client error: show it, keep sampling
            self.kube_error = repr(exc)[:160]
            workers = Workers(None, None)
        if self.ready_override is not None:
            workers = Workers(workers.desired, self.ready_override(target))
        return workers

    async def sample_once(self) -> None:
        async def one(target: Target) -> None:
            stats, workers = await asyncio.gather(self._stats(target), self._workers(target))
            self.history.add(target.queue, Sample(self.history.now(), stats, workers))

        await asyncio.gather(*(one(t) for t in self.targets))

    async def events_once(self) -> None:
        namespaces = sorted({t.namespace for t in self.targets})
        queues = {t.queue for t in self.targets}
        for namespace in namespaces:
            try:
                raw = await self.kube.events(namespace)
            except Exception as exc:  # show, keep going
                self.kube_error = repr(exc)[:160]
                continue
            fresh = []
            for item in raw:
                event = event_of(item, self.history.started_wall)
                # Events from before this run (a kept cluster) are history, not news.
                if event.queue in queues and event.t >= -2.0:
                    fresh.append((str(item["uid"]), event))
            self.history.add_events(fresh)

    async def run(self, stop: asyncio.Event) -> None:
        last_events = 0.0
        while not stop.is_set():
            tick = time.monotonic()
            await self.sample_once()
            if tick - last_events >= c.EVENTS_INTERVAL:
                last_events = tick
                await self.events_once()
            delay = c.SAMPLE_INTERVAL - (time.monotonic() - tick)
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
