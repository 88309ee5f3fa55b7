"""The CRD agrees with the spec model: the committed file is the generated one, and an
independent walk over the pydantic fields finds the same names, defaults, bounds and enums."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
import pytest
import yaml
from jobqueue_operator import constants as c
from jobqueue_operator.crd import CRD_FILE, build_crd, render
from jobqueue_operator.spec import JobQueueSpec
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

JSON = dict[str, Any]


def crd_version() -> JSON:
    versions = build_crd()["spec"]["versions"]
    assert len(versions) == 1
    return versions[0]


def spec_schema() -> JSON:
    return crd_version()["schema"]["openAPIV3Schema"]["properties"]["spec"]


def test_the_committed_crd_is_the_generated_one() -> None:
    assert CRD_FILE.read_text() == render(), (
        "crds/jobqueue.io_jobqueues.yaml is stale: run `python -m jobqueue_operator.crd`"
    )


def test_the_committed_crd_is_plain_yaml_without_anchors() -> None:
    text = CRD_FILE.read_text()
    assert "&id" not in text and "*id" not in text
    assert yaml.safe_load(text) == build_crd()


def test_names_scope_and_subresources() -> None:
    crd = build_crd()
    assert crd["metadata"]["name"] == "jobqueues.jobqueue.io"
    spec = crd["spec"]
    assert spec["group"] == "jobqueue.io" and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "JobQueue" and spec["names"]["shortNames"] == ["jq"]
    version = crd_version()
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.worker.replicas",
        "statusReplicasPath": ".status.workers.replicas",
        "labelSelectorPath": ".status.workers.selector",
    }
    columns = [col["name"] for col in version["additionalPrinterColumns"]]
    for wanted in ("Ready", "Workers", "Queue", "InFlight", "Age"):
        assert wanted in columns


def walk_schema(node: JSON, path: str = "") -> Iterator[tuple[str, JSON]]:
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from walk_schema(sub, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        yield from walk_schema(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk_schema(node["additionalProperties"], f"{path}.*")


def test_the_schema_is_structural() -> None:
    """Every node has a type (or is int-or-string); no $ref, oneOf, nullable unions or
    additionalProperties: false; unknown fields kept only under status.kopf and in a
    schedule's job payload."""
    root = crd_version()["schema"]["openAPIV3Schema"]
    for path, node in walk_schema(root):
        assert "$ref" not in node and "oneOf" not in node and "allOf" not in node, path
        assert node.get("additionalProperties") is not False, path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert "anyOf" not in node, path
            assert node.get("type") in ("object", "array", "string", "integer", "boolean"), path
        if node.get("x-kubernetes-preserve-unknown-fields"):
            assert path in ("status.kopf", "spec.schedules[].payload"), path  # a job payload


def cel_rules(node: JSON) -> list[str]:
    return [r["rule"] for r in node.get("x-kubernetes-validations", [])]


def test_cross_field_rules_are_cel_with_readable_messages() -> None:
    spec = spec_schema()
    props = spec["properties"]
    assert any("has(self.urlFrom)" in r for r in cel_rules(props["redis"]))
    assert any("minReplicas <= self.maxReplicas" in r for r in cel_rules(props["autoscaling"]))
    assert any("drainTimeoutSeconds <" in r for r in cel_rules(props["worker"]))
    assert any(
        "self.matches('^rediss?(\\\\+(sentinel|cluster))?://')" in r
        for r in cel_rules(props["redis"]["properties"]["url"])
    )
    assert any("oldSelf.queueName" in r for r in cel_rules(spec))
    for _, node in walk_schema(crd_version()["schema"]["openAPIV3Schema"]):
        for rule in node.get("x-kubernetes-validations", []):
            assert len(rule["message"]) > 20 and "self." not in rule["message"], rule


# -- the independent walk over the pydantic model ---------------------------------------------


@dataclass
class Facts:
    """What the model says about one field."""

    type: str
    required: bool
    default: Any  # PydanticUndefined: none
    bounds: dict[str, Any]
    enum: list[Any] | None
    model: type[BaseModel] | None


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) < len(get_args(annotation)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True  # noqa: UP007
    return annotation, False


def _json_type(annotation: Any) -> tuple[str, list[Any] | None, type[BaseModel] | None]:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _json_type(get_args(annotation)[0])
    if origin is Literal:
        return "string", list(get_args(annotation)), None
    if origin in (Union, types.UnionType):
        kinds = {_json_type(a)[0] for a in get_args(annotation)}
        assert kinds == {"integer", "string"}, annotation
        return "int-or-string", None, None
    if origin is list:
        return "array", None, None
    if origin is dict:
        return "object", None, None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object", None, annotation
    return {bool: "boolean", int: "integer", str: "string"}[annotation], None, None


def _bounds(info: FieldInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for meta in info.metadata:
        if isinstance(meta, at.Ge):
            out["minimum"] = meta.ge
        elif isinstance(meta, at.Le):
            out["maximum"] = meta.le
        elif isinstance(meta, at.MinLen):
            out["minLength"] = meta.min_length
        elif isinstance(meta, at.MaxLen):
            out["maxLength"] = meta.max_length
        elif getattr(meta, "pattern", None) is not None:
            out["pattern"] = meta.pattern
    return out


def model_facts(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Facts]]:
    for name, info in model.model_fields.items():
        path = f"{prefix}.{info.alias or name}" if prefix else str(info.alias or name)
        annotation, _ = _unwrap_optional(info.annotation)
        kind, enum, sub = _json_type(annotation)
        if info.default_factory is not None:
            default: Any = info.default_factory()  # type: ignore[call-arg]
        else:
            default = info.default
        facts = Facts(kind, info.is_required(), default, _bounds(info), enum, sub)
        yield path, facts
        if sub is not None:
            yield from model_facts(sub, path)


def crd_nodes() -> dict[str, JSON]:
    return {path: node for path, node in walk_schema(spec_schema()) if path}


def _container_bound(kind: str, bound: str) -> str:
    if kind == "array":
        return {"minLength": "minItems", "maxLength": "maxItems"}[bound]
    if kind == "object":
        return {"minLength": "minProperties", "maxLength": "maxProperties"}[bound]
    return bound


def _expected_default(facts: Facts) -> Any:
    """The CRD default a field's model default implies (PydanticUndefined: no default)."""
    value = facts.default
    if value is PydanticUndefined or value is None or value in ({}, []):
        return PydanticUndefined
    if isinstance(value, BaseModel):
        scalars = {
            k: v
            for k, v in value.model_dump(by_alias=True).items()
            if v is not None and not isinstance(v, dict | list)
        }
        return scalars or PydanticUndefined
    return value


FACTS = dict(model_facts(JobQueueSpec))


def test_the_crd_and_the_model_have_the_same_fields() -> None:
    nodes = crd_nodes()
    model_paths = set(FACTS)
    crd_paths = {p for p in nodes if "[]" not in p and ".*" not in p}
    assert crd_paths == model_paths


@pytest.mark.parametrize("path", sorted(FACTS))
def test_each_field_agrees_on_type_requiredness_default_bounds_and_enum(path: str) -> None:
    facts = FACTS[path]
    node = crd_nodes()[path]
    if facts.type == "int-or-string":
        assert node.get("x-kubernetes-int-or-string") is True
    else:
        assert node["type"] == facts.type
    parent_path, _, leaf = path.rpartition(".")
    parent = crd_nodes()[parent_path] if parent_path else spec_schema()
    assert (leaf in parent.get("required", [])) == facts.required
    expected = _expected_default(facts)
    if expected is PydanticUndefined:
        assert "default" not in node
    else:
        assert node["default"] == expected
    for bound, value in facts.bounds.items():
        key = _container_bound(facts.type, bound)
        assert node[key] == value, (key, node)
    crd_bounds = {
        k
        for k in (
            "minimum",
            "maximum",
            "minLength",
            "maxLength",
            "minItems",
            "maxItems",
            "maxProperties",
        )
        if k in node
    }
    assert crd_bounds == {_container_bound(facts.type, b) for b in facts.bounds if b != "pattern"}
    assert node.get("enum") == facts.enum


def test_optional_blocks_stay_absent_and_defaulted_blocks_are_filled() -> None:
    props = spec_schema()["properties"]
    assert "default" not in props["redis"]["properties"]["managed"]
    assert props["worker"]["default"]["concurrency"] == 8
    assert props["autoscaling"]["default"]["maxReplicas"] == 10
    assert props["api"]["default"]["enabled"] is True


def test_env_lists_merge_by_name_under_server_side_apply() -> None:
    env = spec_schema()["properties"]["worker"]["properties"]["env"]
    assert env["x-kubernetes-list-type"] == "map"
    assert env["x-kubernetes-list-map-keys"] == ["name"]
    assert "name" in env["items"]["required"]


def test_status_conditions_are_a_map_keyed_by_type_with_kopf_state_preserved() -> None:
    status = crd_version()["schema"]["openAPIV3Schema"]["properties"]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert status["properties"][c.KOPF_STATUS_FIELD]["x-kubernetes-preserve-unknown-fields"]
    for field in ("queue", "desiredWorkers", "lastScaleTime", "workers", "api"):
        assert field in status["properties"]
