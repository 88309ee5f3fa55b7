"""The JobQueue CustomResourceDefinition, generated from the pydantic spec model.

``python -m jobqueue_operator.crd`` writes ``crds/jobqueue.io_jobqueues.yaml``; ``--check``
exits 1 when the committed file is stale. The spec part of the schema is pydantic's JSON schema
of :class:`~jobqueue_operator.spec.JobQueueSpec` rewritten into a *structural* schema (no
``$ref``, no nullable unions, int-or-string for quantities, ``default: {}`` on nested objects
whose fields have defaults so the API server fills them in); the status part, the printer
columns and the subresources are written out here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from jobqueue_operator import constants as c
from jobqueue_operator.spec import JobQueueSpec

JSON = dict[str, Any]

CRD_FILE: Final = Path(__file__).resolve().parents[2] / "crds" / f"{c.GROUP}_{c.PLURAL}.yaml"
HEADER: Final = (
    "# Generated from the operator's spec model by `python -m jobqueue_operator.crd`.\n"
    "# Do not edit by hand: change operator/jobqueue_operator/spec.py and regenerate.\n"
)

# Keywords of a JSON schema node that a CRD's structural schema keeps as they are.
_KEPT: Final = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
)
_NULL: Final = {"type": "null"}
_OPTIONAL: Final = "__optional__"  # a marker while converting, removed before output

# Descriptions for fields of models that carry none (the autoscaling block comes from
# autoscaling.py); keyed by the field's path under spec.
EXTRA_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "autoscaling.enabled": "Scale the workers on queue depth; false: worker.replicas.",
    "autoscaling.minReplicas": "Fewest workers (0 = scale to zero when idle).",
    "autoscaling.maxReplicas": "Most workers.",
    "autoscaling.activationJobs": "Jobs waiting before scaling up from zero.",
    "autoscaling.scaleDownStabilizationSeconds": (
        "Scale down only to the highest recommendation of this window."
    ),
    "autoscaling.cooldownSeconds": "How long the queue must be empty before scaling to zero.",
    "autoscaling.paused": "Hold the current replicas.",
}

_QUANTITY_STATUS: Final = {"type": "integer", "format": "int64", "minimum": 0}


def _deref(node: JSON, defs: Mapping[str, JSON]) -> JSON:
    """``node`` with a ``$ref`` replaced by its definition; the node's own keys win."""
    if "$ref" not in node:
        return node
    target = defs[node["$ref"].rsplit("/", 1)[-1]]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _structural(node: JSON, defs: Mapping[str, JSON], path: str) -> JSON:
    """One JSON-schema node of the pydantic model as a structural CRD schema node."""
    node = _deref(node, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != _NULL]
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        if outer.get("default", 0) is None:
            del outer["default"]  # optional: absent means unset, so never defaulted
            outer[_OPTIONAL] = True
        if len(branches) == 1:
            return _structural({**_deref(branches[0], defs), **outer}, defs, path)
        types = {_deref(b, defs).get("type") for b in branches}
        if types == {"integer", "string"}:  # a Kubernetes quantity
            quantity = _structural(outer, defs, path)
            pattern = next((b["pattern"] for b in branches if "pattern" in b), None)
            quantity["anyOf"] = [{"type": "integer"}, {"type": "string"}]
            quantity["x-kubernetes-int-or-string"] = True
            if pattern:
                quantity["pattern"] = pattern
            return quantity
        raise ValueError(f"spec.{path}: a union of {types} has no structural form")

    out: JSON = {k: node[k] for k in (*_KEPT, _OPTIONAL) if k in node}
    if path in EXTRA_DESCRIPTIONS and "description" not in out:
        out["description"] = EXTRA_DESCRIPTIONS[path]
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            out[key] = value
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        out["type"] = "object"
        props = node.get("properties", {})
        if props:
            out["properties"] = {
                name: _structural(sub, defs, f"{path}.{name}" if path else name)
                for name, sub in props.items()
            }
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = _structural(extra, defs, f"{path}.*")
    elif kind == "array":
        out["items"] = _structural(node["items"], defs, f"{path}[]")
    if out.get("default") in ({}, []):
        del out["default"]
    return out


def _defaults_of(schema: JSON) -> JSON:
    """The value the API server's defaulting would give an empty object of ``schema``."""
    out: JSON = {}
    for name, sub in schema.get("properties", {}).items():
        if "default" in sub:
            out[name] = sub["default"]
    return out


def _default_nested_objects(schema: JSON) -> JSON:
    """Default each optional nested object whose fields have defaults to those defaults, so
    the API server fills them in when the block is left out (pydantic writes no default for a
    ``default_factory``); an optional object without one (``redis.managed``) stays absent.

    The default is written out in full rather than as ``{}``: the API server checks a default
    against the object's CEL rules as written, before nested defaulting.
    """
    props = schema.get("properties", {})
    required = set(schema.get("required", ()))
    for name, sub in props.items():
        optional = sub.pop(_OPTIONAL, False)
        _default_nested_objects(sub)
        if optional or name in required or "default" in sub:
            continue
        if sub.get("type") == "object" and (default := _defaults_of(sub)):
            sub["default"] = default
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key].pop(_OPTIONAL, None)
            _default_nested_objects(schema[key])
    return schema


def spec_schema() -> JSON:
    """The structural schema of ``spec``, from :class:`JobQueueSpec`."""
    raw = JobQueueSpec.model_json_schema(by_alias=True)
    defs = raw.pop("$defs", {})
    return _default_nested_objects(_structural(raw, defs, ""))


def _counts(*names: str) -> JSON:
    return {"type": "object", "properties": {n: dict(_QUANTITY_STATUS) for n in names}}


def _queue_status() -> JSON:
    """status.queue (and each pool's): the depth as last read, in which format, and how the
    autoscaler notices new work."""
    queue = _counts("ready", "inFlight", "delayed", "dead")
    queue["properties"]["format"] = {
        "type": "string",
        "description": "The queue's format (spec.queue.format).",
    }
    queue["properties"]["wakeup"] = {
        "type": "string",
        "description": "How the autoscaler notices new work: events (the jobqueue protocol's "
        "channel), keyspace-notifications (Redis), or polling (every pollIntervalSeconds).",
    }
    return queue


def _condition_schema() -> JSON:
    """One metav1.Condition."""
    return {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string", "maxLength": 316},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string", "maxLength": 1024},
            "message": {"type": "string", "maxLength": 32768},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
        },
    }


def _pools_status() -> JSON:
    """status.pools: the pools of spec.workers."""
    return {
        "type": "array",
        "description": "The pools of spec.workers: queue, job types, pods.",
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "queueName": {"type": "string"},
                "jobTypes": {"type": "array", "items": {"type": "string"}},
                **_counts("desired", "replicas", "ready")["properties"],
            },
        },
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
    }


def _schedules_status() -> JSON:
    """status.schedules: each schedule's last and next fire time."""
    return {
        "type": "array",
        "description": "Each schedule of spec.schedules: its last and next fire time.",
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "lastFireTime": {"type": "string", "format": "date-time"},
                "lastJobId": {"type": "string"},
                "nextFireTime": {"type": "string", "format": "date-time"},
            },
        },
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
    }


def _pool_scaling_status() -> JSON:
    """status.poolScaling: each pool's autoscaler, by pool name."""
    return {
        "type": "object",
        "description": "The autoscaler of each pool of spec.workers, by pool name.",
        "additionalProperties": {
            "type": "object",
            "properties": {
                "queue": _queue_status(),
                "desiredWorkers": dict(_QUANTITY_STATUS),
                "lastScaleTime": {"type": "string", "format": "date-time"},
                "reason": {"type": "string"},
                "message": {"type": "string"},
            },
        },
    }


def status_schema() -> JSON:
    """The structural schema of ``status`` (the reconcile's fields and the autoscaler's)."""
    workers = _counts("desired", "replicas", "ready")
    workers["properties"]["selector"] = {
        "type": "string",
        "description": "Label selector of the worker pods (for the scale subresource).",
    }
    return {
        "type": "object",
        "description": "Observed state, written by the operator.",
        "properties": {
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "The metadata.generation the status describes.",
            },
            "queueName": {
                "type": "string",
                "description": "The queue's identity in Redis (QUEUE_NAME).",
            },
            "conditions": {
                "type": "array",
                "description": "Ready, RedisReachable, Degraded and (autoscaler) Scaling.",
                "items": _condition_schema(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "api": {**_counts("desired", "replicas", "ready"), "description": "API pods."},
            "workers": {**workers, "description": "Worker pods."},
            "queue": {**_queue_status(), "description": "Jobs in the queue, as last read."},
            "desiredWorkers": {
                **_QUANTITY_STATUS,
                "description": "The autoscaler's last decision.",
            },
            "lastScaleTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the autoscaler last changed the worker replicas.",
            },
            "url": {
                "type": "string",
                "description": "Where the API is reached from outside (Ingress or HTTPRoute).",
            },
            "pools": _pools_status(),
            "schedules": _schedules_status(),
            "poolScaling": _pool_scaling_status(),
            c.KOPF_STATUS_FIELD: {
                "type": "object",
                "description": "The operator framework's bookkeeping.",
                "x-kubernetes-preserve-unknown-fields": True,
            },
        },
    }


NAME_RULES: Final = (
    {
        "rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "message": "metadata.name must be a DNS-1035 label (lower-case letters, digits and "
        "'-', starting with a letter): it names the Services the operator creates",
    },
    {
        "rule": "self.metadata.name.size() <= 40",
        "message": "metadata.name must be at most 40 characters: the operator's child "
        "objects add suffixes such as -worker and -redis",
    },
)

PRINTER_COLUMNS: Final = (
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Workers", "type": "integer", "jsonPath": ".status.workers.ready"},
    {"name": "Queue", "type": "integer", "jsonPath": ".status.queue.ready"},
    {"name": "InFlight", "type": "integer", "jsonPath": ".status.queue.inFlight"},
    {"name": "Pools", "type": "string", "jsonPath": ".status.pools[*].name"},
    {"name": "URL", "type": "string", "jsonPath": ".status.url", "priority": 1},
    {"name": "Format", "type": "string", "jsonPath": ".status.queue.format", "priority": 1},
    {"name": "Wakeup", "type": "string", "jsonPath": ".status.queue.wakeup", "priority": 1},
    {
        "name": "Schedules",
        "type": "string",
        "jsonPath": ".status.schedules[*].name",
        "priority": 1,
    },
    {
        "name": "Desired",
        "type": "integer",
        "jsonPath": ".status.workers.desired",
        "priority": 1,
    },
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        "priority": 1,
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)


def build_crd() -> JSON:
    """The whole CustomResourceDefinition, as a dict."""
    schema = {
        "type": "object",
        "description": "A Redis-backed background-job system: HTTP API, workers, autoscaling.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
        "x-kubernetes-validations": [dict(r) for r in NAME_RULES],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": c.CRD_NAME,
            "labels": {c.LABEL_NAME: c.APP_NAME, c.LABEL_PART_OF: c.PART_OF},
        },
        "spec": {
            "group": c.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": c.KIND,
                "listKind": f"{c.KIND}List",
                "plural": c.PLURAL,
                "singular": c.SINGULAR,
                "shortNames": [c.SHORT_NAME],
                "categories": ["all"],
            },
            "versions": [
                {
                    "name": c.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.worker.replicas",
                            "statusReplicasPath": ".status.workers.replicas",
                            "labelSelectorPath": ".status.workers.selector",
                        },
                    },
                    "additionalPrinterColumns": [dict(col) for col in PRINTER_COLUMNS],
                }
            ],
        },
    }


def render() -> str:
    """The CRD as the YAML text committed under crds/."""
    import yaml  # only the generator needs PyYAML (a dev dependency), not the operator image

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True  # write shared sub-schemas out in full: no YAML anchors in a CRD

    return HEADER + yaml.dump(
        build_crd(), Dumper=Dumper, sort_keys=False, width=100, allow_unicode=True
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--output", type=Path, default=CRD_FILE)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            sys.stderr.write(f"{args.output} is stale: run python -m jobqueue_operator.crd\n")
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
