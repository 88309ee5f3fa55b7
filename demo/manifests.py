"""The manifests the demo applies: the two examples/ JobQueues with demo settings laid over them.

Pure functions. The examples stay what a user copies; the demo only changes what a demo needs
changed: its namespace, short autoscaling windows (a whole scale-up/scale-down cycle in well
under a minute), small pods for a laptop, the external Redis URL of the Secret example, and
the managed Redis' image and volume size. `python -m demo manifests` prints the result.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from demo import constants as c

Manifest = dict[str, Any]

SMALL_POD = {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


def load(path: Path) -> list[Manifest]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> Manifest:
    """Deep merge: mappings merge key by key, anything else in `over` replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def autoscaling(queue: str) -> dict[str, Any]:
    low, high = c.WORKER_BOUNDS[queue]
    return {
        "enabled": True,
        "minReplicas": low,
        "maxReplicas": high,
        "targetJobsPerWorker": c.TARGET_JOBS_PER_WORKER,
        "pollIntervalSeconds": c.POLL_INTERVAL_SECONDS,
        "scaleDownStabilizationSeconds": c.SCALE_DOWN_STABILIZATION_SECONDS,
        "cooldownSeconds": c.COOLDOWN_SECONDS,
    }


def _jobqueue_overlay(queue: str, *, redis_image: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "api": {"replicas": 1, "resources": SMALL_POD},
        "worker": {
            "concurrency": c.WORKER_CONCURRENCY,
            "drainTimeoutSeconds": 5,
            "terminationGracePeriodSeconds": 10,
            "resources": SMALL_POD,
        },
        "autoscaling": autoscaling(queue),
    }
    if queue == c.MANAGED_QUEUE:
        managed: dict[str, Any] = {"storage": c.MANAGED_STORAGE}
        if redis_image:
            managed["image"] = redis_image
        spec["redis"] = {"managed": managed}
    return {"spec": spec}


def demo_manifests(
    examples: Sequence[Manifest],
    *,
    namespace: str = c.NAMESPACE,
    external_redis_url: str | None,
    redis_image: str | None = None,
    managed: bool = True,
) -> list[Manifest]:
    """The examples, in the demo namespace, with the demo's settings.

    external_redis_url: the URL the Secret example's `redis-creds` Secret carries (None: the
    Secret example is left out). managed=False leaves the managed-Redis example out (no node:
    nothing could run its Redis).
    """
    out: list[Manifest] = []
    for doc in examples:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        if kind == "JobQueue" and name == c.MANAGED_QUEUE and not managed:
            continue
        if external_redis_url is None and (
            (kind == "JobQueue" and name == c.SECRET_QUEUE)
            or (kind == "Secret" and name in (c.EXTERNAL_REDIS_SECRET, c.API_TOKEN_SECRET))
        ):
            continue
        doc = merge(doc, {"metadata": {"namespace": namespace}})
        if kind == "Secret" and name == c.EXTERNAL_REDIS_SECRET:
            doc["stringData"] = {c.EXTERNAL_REDIS_SECRET_KEY: external_redis_url}
        if kind == "JobQueue" and name in c.WORKER_BOUNDS:
            doc = merge(doc, _jobqueue_overlay(str(name), redis_image=redis_image))
            if name == c.SECRET_QUEUE:
                # The example pins the worker image; the demo uses the operator's default.
                doc["spec"]["worker"].pop("image", None)
        out.append(doc)
    return out


def namespace_manifest(namespace: str = c.NAMESPACE) -> Manifest:
    """The demo namespace, enforcing Pod Security `restricted` (what the operator's pods meet)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }


def api_token(docs: Sequence[Manifest]) -> str | None:
    """The bearer token the Secret example's API requires (from its Secret), if any."""
    for doc in docs:
        if doc.get("kind") == "Secret" and doc["metadata"]["name"] == c.API_TOKEN_SECRET:
            data = doc.get("stringData") or {}
            value = data.get(c.API_TOKEN_SECRET_KEY)
            return str(value) if value else None
    return None


def managed_redis_url(password: str, namespace: str = c.NAMESPACE, db: int = 1) -> str:
    """A URL of database `db` of the managed example's Redis, through its Service."""
    host = f"{c.MANAGED_QUEUE}-redis.{namespace}.svc"
    return f"redis://:{quote(password, safe='')}@{host}:6379/{db}"


def dump(docs: Sequence[Manifest]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)
