"""Pure status decisions: the JobQueue status the reconcile wants, and the patch to get there.

Two writers share ``status``: the reconcile (this module's fields) and the autoscaler
(``scaler.py``: ``queue``, ``desiredWorkers``, ``lastScaleTime``, the ``Scaling`` condition and,
while it runs, ``RedisReachable``). The reconcile writes JSON merge patches guarded by
resourceVersion; the autoscaler server-side applies its own condition types and fields (the
conditions are a list map keyed by type). Each touches only its own condition types, so neither
erases the other's. While autoscaling is
enabled the autoscaler owns ``RedisReachable`` and ``queue`` (it reads Redis every few seconds);
when it is disabled the reconcile writes them. The schedule daemon (``handlers.scheduler``)
writes ``status.schedules`` (built by :func:`schedule_status`); the reconcile only clears it
once the spec has no schedules.

Nothing here changes between two reconciles of an unchanged world: no timestamps except a
condition's ``lastTransitionTime``, which is kept unless the condition's status changes. So an
idle operator writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobqueue_operator import constants as c
from jobqueue_operator import schedules
from jobqueue_operator.builders import (
    child_name,
    exposure_url,
    label_selector,
    pool_component,
    selector_labels,
)
from jobqueue_operator.kubetypes import JSON, Condition, CondSpec, JobQueueRef
from jobqueue_operator.redisops import RedisCheck
from jobqueue_operator.spec import JobQueueSpec


@dataclass(frozen=True, slots=True)
class Problem:
    """Why the operator cannot bring the children to the spec (the Degraded condition)."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class DesiredStatus:
    """The reconcile's status fields. ``fields`` maps a key to its value, None = remove it;
    keys not in ``fields`` are not this writer's to touch."""

    fields: Mapping[str, Any]
    conditions: tuple[CondSpec, ...] = field(default_factory=tuple)


def replica_counts(deployment: Mapping[str, Any] | None) -> dict[str, int] | None:
    """desired / replicas / ready of a live Deployment (or StatefulSet); None if absent."""
    if deployment is None:
        return None
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    return {
        "desired": int(spec.get("replicas", 1)),
        "replicas": int(status.get("replicas") or 0),
        "ready": int(status.get("readyReplicas") or 0),
    }


def exposed_condition(spec: JobQueueSpec, *, gateway_api: bool) -> CondSpec:
    """Exposed: the API's Ingress / HTTPRoute, or why there is none (never a crash when the
    Gateway API is not installed: the HTTPRoute is left out and this says so)."""
    ctype = c.CONDITION_EXPOSED
    api = spec.api
    if not api.enabled or (api.ingress is None and api.http_route is None):
        return CondSpec(ctype, "False", c.REASON_NOT_EXPOSED, "no ingress or httpRoute requested")
    if api.http_route is not None and not gateway_api:
        return CondSpec(
            ctype,
            "False",
            c.REASON_GATEWAY_API_MISSING,
            "spec.api.httpRoute needs the Gateway API (gateway.networking.k8s.io/v1 "
            "HTTPRoute), which this cluster does not serve; install its CRDs",
        )
    kinds = [k for k, v in (("Ingress", api.ingress), ("HTTPRoute", api.http_route)) if v]
    return CondSpec(
        ctype, "True", c.REASON_EXPOSED, f"{' and '.join(kinds)} at {exposure_url(spec)}"
    )


def pool_status(
    ref: JobQueueRef, spec: JobQueueSpec, children: Mapping[tuple[str, str], Any]
) -> list[dict[str, Any]]:
    """One entry per pool of ``spec.workers``: queue, job types and pod counts."""
    out = []
    for pool in spec.workers:
        counts = replica_counts(
            children.get(("Deployment", child_name(ref.name, pool_component(pool.name))))
        )
        out.append(
            {
                "name": pool.name,
                "queueName": spec.pool_queue(ref.namespace, ref.name, pool.name),
                "jobTypes": list(pool.job_types),
                **(counts or {"desired": 0, "replicas": 0, "ready": 0}),
            }
        )
    return out


@dataclass(frozen=True, slots=True)
class Fired:
    """The last fire time a schedule enqueued, and that job's id."""

    at: datetime
    job_id: str


def schedule_status(
    spec: JobQueueSpec, fired: Mapping[str, Fired], now: datetime
) -> list[dict[str, Any]]:
    """``status.schedules`` (written by the schedule daemon): per schedule of the spec, the
    last fire time and job id, and the next fire time after ``now`` (none while suspended)."""
    out = []
    for sched in spec.schedules:
        entry: dict[str, Any] = {"name": sched.name}
        last = fired.get(sched.name)
        if last is not None:
            entry["lastFireTime"] = schedules.isoformat(last.at)
            entry["lastJobId"] = last.job_id
        if not sched.suspend:
            tz = schedules.zone(sched.time_zone)
            entry["nextFireTime"] = schedules.isoformat(schedules.next_fire(sched.cron, tz, now))
        out.append(entry)
    return out


def _ready_condition(
    spec: JobQueueSpec,
    problem: Problem | None,
    redis: RedisCheck,
    api: Mapping[str, int] | None,
    workers: Mapping[str, int] | None,
    pools: Sequence[Mapping[str, Any]] = (),
) -> CondSpec:
    ready = c.CONDITION_READY
    if problem is not None:
        return CondSpec(ready, "False", problem.reason, problem.message)
    if redis.ok is False:
        return CondSpec(ready, "False", "RedisUnreachable", redis.message)
    if spec.api.enabled and (api is None or api["ready"] < api["desired"]):
        have = f"{api['ready']}/{api['desired']}" if api else "0/?"
        return CondSpec(ready, "False", "ApiNotReady", f"API pods ready: {have}")
    if workers is None or workers["ready"] < workers["desired"]:
        have = f"{workers['ready']}/{workers['desired']}" if workers else "0/?"
        return CondSpec(ready, "False", "WorkersNotReady", f"worker pods ready: {have}")
    for pool in pools:
        if pool["ready"] < pool["desired"]:
            have = f"{pool['ready']}/{pool['desired']}"
            return CondSpec(
                ready, "False", "WorkersNotReady", f"pool {pool['name']} pods ready: {have}"
            )
    if redis.ok is None:
        return CondSpec(ready, "Unknown", c.REASON_REDIS_UNKNOWN, redis.message)
    parts = []
    if api is not None and spec.api.enabled:
        parts.append(f"API {api['ready']}/{api['desired']}")
    parts.append(f"workers {workers['ready']}/{workers['desired']}")
    parts += [f"pool {p['name']} {p['ready']}/{p['desired']}" for p in pools]
    return CondSpec(ready, "True", c.REASON_READY, ", ".join(parts) + " ready; Redis reachable")


def _redis_condition(redis: RedisCheck) -> CondSpec:
    if redis.ok is True:
        return CondSpec(c.CONDITION_REDIS_REACHABLE, "True", c.REASON_REDIS_OK, redis.message)
    if redis.ok is False:
        return CondSpec(c.CONDITION_REDIS_REACHABLE, "False", c.REASON_REDIS_FAILED, redis.message)
    return CondSpec(c.CONDITION_REDIS_REACHABLE, "Unknown", c.REASON_REDIS_UNKNOWN, redis.message)


def desired_status(
    ref: JobQueueRef,
    spec: JobQueueSpec | None,
    *,
    problem: Problem | None,
    redis: RedisCheck,
    api: Mapping[str, Any] | None,
    workers: Mapping[str, Any] | None,
    children: Mapping[tuple[str, str], Any] | None = None,
    gateway_api: bool = False,
) -> DesiredStatus:
    """What the reconcile wants in status, from what it observed (a pure function).

    ``spec`` is None when it did not parse (then ``problem`` says why). ``api`` and
    ``workers`` are the live Deployments (or None); ``children`` all live children by
    (kind, name) (the pools' Deployments are looked up there); ``gateway_api`` whether the
    cluster serves HTTPRoutes.
    """
    degraded = (
        CondSpec(c.CONDITION_DEGRADED, "True", problem.reason, problem.message)
        if problem is not None
        else CondSpec(
            c.CONDITION_DEGRADED, "False", c.REASON_RECONCILED, "every child is as the spec says"
        )
    )
    fields: dict[str, Any] = {"observedGeneration": ref.generation}
    if spec is None:
        assert problem is not None
        ready = CondSpec(c.CONDITION_READY, "False", problem.reason, problem.message)
        return DesiredStatus(fields, (ready, degraded))

    api_counts = replica_counts(api) if spec.api.enabled else None
    worker_counts = replica_counts(workers)
    fields["queueName"] = spec.queue_identity(ref.namespace, ref.name)
    fields["api"] = api_counts
    fields["workers"] = (
        None
        if worker_counts is None
        else {
            **worker_counts,
            "selector": label_selector(selector_labels(ref.name, c.COMPONENT_WORKER)),
        }
    )
    pools = pool_status(ref, spec, children or {})
    fields["pools"] = pools or None
    fields["url"] = exposure_url(spec)
    if not spec.schedules:  # else the schedule daemon owns status.schedules
        fields["schedules"] = None
    conditions = [
        _ready_condition(spec, problem, redis, api_counts, worker_counts, pools),
        degraded,
        exposed_condition(spec, gateway_api=gateway_api),
    ]
    if not spec.autoscaling.enabled:  # else the autoscaler owns these two
        conditions.append(_redis_condition(redis))
        if redis.counts is not None:
            fields["queue"] = redis.counts.status()
    return DesiredStatus(fields, tuple(conditions))


def _condition_equal(live: Mapping[str, Any] | None, want: CondSpec) -> bool:
    return live is not None and all(
        live.get(k) == getattr(want, k) for k in ("type", "status", "reason", "message")
    )


def merge_conditions(
    existing: Sequence[Mapping[str, Any]], updates: Sequence[CondSpec], now: str
) -> list[JSON]:
    """The condition list with ``updates`` set: other types untouched, order stable, new
    types appended, ``lastTransitionTime`` kept unless the status changed."""
    by_type = {u.type: u for u in updates}
    out: list[JSON] = []
    seen: set[str] = set()

    def make(update: CondSpec, old: Mapping[str, Any] | None) -> Condition:
        keep = old is not None and old.get("status") == update.status
        return {
            "type": update.type,
            "status": update.status,
            "reason": update.reason,
            "message": update.message,
            "lastTransitionTime": str(old.get("lastTransitionTime", now)) if keep and old else now,
        }

    for cond in existing:
        ctype = str(cond.get("type", ""))
        if ctype in by_type:
            seen.add(ctype)
            merged: JSON = dict(make(by_type[ctype], cond))
            if "observedGeneration" in cond:  # another writer's field: kept as it was
                merged["observedGeneration"] = cond["observedGeneration"]
            out.append(merged)
        else:
            out.append(dict(cond))
    out += [dict(make(u, None)) for u in updates if u.type not in seen]
    return out


def status_patch(
    current: Mapping[str, Any] | None, desired: DesiredStatus, now: str
) -> JSON | None:
    """The JSON merge patch of ``status`` that brings ``current`` to ``desired``, or None when
    nothing differs (then nothing is written)."""
    current = current or {}
    changed = {k: v for k, v in desired.fields.items() if current.get(k) != v}
    live_conditions = {str(x.get("type")): x for x in current.get("conditions") or []}
    stale = [u for u in desired.conditions if not _condition_equal(live_conditions.get(u.type), u)]
    if not changed and not stale:
        return None
    patch: JSON = dict(changed)
    if stale:
        patch["conditions"] = merge_conditions(
            current.get("conditions") or [], desired.conditions, now
        )
    return patch


def transitions(current: Mapping[str, Any] | None, desired: DesiredStatus) -> list[CondSpec]:
    """Conditions whose status or reason is about to change (each worth one Event)."""
    live = {str(x.get("type")): x for x in (current or {}).get("conditions") or []}
    out = []
    for want in desired.conditions:
        old = live.get(want.type)
        if old is None or old.get("status") != want.status or old.get("reason") != want.reason:
            out.append(want)
    return out
