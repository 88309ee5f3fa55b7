"""tests/cluster/kubeschemas.py: kubeconform's file naming, strictness and $ref inlining."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster import kubeschemas as ks

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "jobqueue.io_jobqueues.yaml"


@pytest.mark.parametrize(
    ("kind", "api_version", "filename"),
    [
        # As kubeconform's pkg/registry.schemaPath derives {{ .ResourceKind }}{{ .KindSuffix }}.
        ("Service", "v1", "service-v1.json"),
        ("Deployment", "apps/v1", "deployment-apps-v1.json"),
        ("ClusterRole", "rbac.authorization.k8s.io/v1", "clusterrole-rbac-v1.json"),
        (
            "CustomResourceDefinition",
            "apiextensions.k8s.io/v1",
            "customresourcedefinition-apiextensions-v1.json",
        ),
        ("JobQueue", "jobqueue.io/v1alpha1", "jobqueue-jobqueue-v1alpha1.json"),
        ("ServiceMonitor", "monitoring.coreos.com/v1", "servicemonitor-monitoring-v1.json"),
    ],
)
def test_schema_filename_follows_kubeconforms_default_template(
    kind: str, api_version: str, filename: str
) -> None:
    assert ks.schema_filename(kind, api_version) == filename


def test_strict_closes_objects_that_list_their_properties() -> None:
    out = ks.strict({"type": "object", "properties": {"a": {"type": "string"}}})
    assert out["additionalProperties"] is False


def test_strict_keeps_maps_and_explicit_additional_properties() -> None:
    labels = {"type": "object", "additionalProperties": {"type": "string"}}
    assert ks.strict(labels) == labels
    opened = {"type": "object", "properties": {}, "additionalProperties": True}
    assert ks.strict(opened)["additionalProperties"] is True


def test_strict_leaves_preserve_unknown_fields_open() -> None:
    out = ks.strict(
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"known": {"type": "string"}},
        }
    )
    assert "additionalProperties" not in out


def test_strict_is_keyword_aware_for_a_property_named_properties() -> None:
    """JSONSchemaProps has a property called "properties"; it is not the keyword."""
    schema = {
        "type": "object",
        "required": ["properties"],
        "properties": {
            "properties": {"type": "object", "additionalProperties": {"type": "string"}}
        },
    }
    out = ks.strict(schema)
    assert out["properties"]["properties"] == {
        "type": "object",
        "additionalProperties": {"type": "string"},
    }
    assert out["additionalProperties"] is False
    assert "additionalProperties" not in out["properties"]


def test_strict_accepts_both_forms_of_int_or_string() -> None:
    v2 = ks.strict({"type": "string", "format": "int-or-string"})
    assert v2 == {"type": ["integer", "string"]}
    structural = ks.strict(
        {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
    )
    assert structural["type"] == ["integer", "string"]
    assert "anyOf" not in structural


def test_strict_lets_optional_fields_be_null_but_not_required_ones() -> None:
    out = ks.strict(
        {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "mode": {"type": "string", "enum": ["A", "B"]},
                "nested": {"$ref": "#/definitions/x"},
            },
        }
    )
    assert out["properties"]["name"] == {"type": "string"}
    assert out["properties"]["mode"] == {"type": ["string", "null"], "enum": ["A", "B", None]}
    assert out["properties"]["nested"] == {"anyOf": [{"$ref": "#/definitions/x"}, {"type": "null"}]}


def test_strict_drops_descriptions_and_does_not_modify_its_input() -> None:
    schema: dict[str, Any] = {
        "description": "d",
        "type": "object",
        "properties": {"a": {"description": "d", "type": "string"}},
    }
    out = ks.strict(schema)
    assert "description" not in out and "description" not in out["properties"]["a"]
    assert schema["properties"]["a"] == {"description": "d", "type": "string"}
    assert "additionalProperties" not in schema


OPENAPI: dict[str, Any] = {
    "definitions": {
        "io.example.v1.Widget": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "spec": {"$ref": "#/definitions/io.example.v1.WidgetSpec", "description": "s"},
            },
            "x-kubernetes-group-version-kind": [
                {"group": "widgets.example.io", "kind": "Widget", "version": "v1"}
            ],
        },
        "io.example.v1.WidgetSpec": {
            "type": "object",
            "properties": {
                "port": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
                "size": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
                "tree": {"$ref": "#/definitions/io.example.v1.Node"},
            },
        },
        "io.example.v1.Node": {
            "type": "object",
            "properties": {
                "children": {"type": "array", "items": {"$ref": "#/definitions/io.example.v1.Node"}}
            },
        },
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
            "type": "string",
            "format": "int-or-string",
        },
        "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
        },
    }
}


def test_openapi_schemas_inline_refs_and_pin_the_kind() -> None:
    schemas = ks.openapi_schemas(OPENAPI)
    assert list(schemas) == ["widget-widgets-v1.json"]
    widget = schemas["widget-widgets-v1.json"]
    assert widget["properties"]["kind"] == {"type": "string", "enum": ["Widget"]}
    assert widget["properties"]["apiVersion"] == {
        "type": "string",
        "enum": ["widgets.example.io/v1"],
    }
    spec = widget["properties"]["spec"]
    assert spec["type"] == ["object", "null"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["port"]["type"] == ["integer", "string", "null"]
    assert spec["properties"]["size"]["type"] == ["number", "string", "null"]


def test_a_recursive_ref_becomes_a_local_definition() -> None:
    widget = ks.openapi_schemas(OPENAPI)["widget-widgets-v1.json"]
    node = widget["definitions"]["io.example.v1.Node"]
    assert node["additionalProperties"] is False
    tree = widget["properties"]["spec"]["properties"]["tree"]
    children = tree["properties"]["children"]
    assert children["items"] == {"$ref": "#/definitions/io.example.v1.Node"}


def test_a_dangling_ref_is_an_error() -> None:
    broken = {
        "definitions": {
            "a.A": {
                "properties": {"b": {"$ref": "#/definitions/missing"}},
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "A", "version": "v1"}],
            }
        }
    }
    with pytest.raises(ks.SchemaError, match="dangling"):
        ks.openapi_schemas(broken)


def test_crd_schema_is_strict_with_real_object_meta() -> None:
    crd = yaml.safe_load(CRD_FILE.read_text())
    meta = ks.object_meta(OPENAPI)
    schemas = ks.crd_schemas(crd, meta)
    assert list(schemas) == ["jobqueue-jobqueue-v1alpha1.json"]
    schema = schemas["jobqueue-jobqueue-v1alpha1.json"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["metadata"] == meta
    assert schema["properties"]["kind"]["enum"] == ["JobQueue"]
    spec = schema["properties"]["spec"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["worker"]["additionalProperties"] is False
    kopf_state = schema["properties"]["status"]["properties"]["kopf"]
    assert "additionalProperties" not in kopf_state  # x-kubernetes-preserve-unknown-fields


def test_crd_without_a_served_schema_is_an_error() -> None:
    crd = {
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "x.example.io"},
        "spec": {"group": "example.io", "names": {"kind": "X"}, "versions": []},
    }
    with pytest.raises(ks.SchemaError, match="no served schema"):
        ks.crd_schemas(crd)
