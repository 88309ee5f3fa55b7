"""kubeconform JSON schemas made offline from a live API server's OpenAPI and from CRD files.

kubeconform normally downloads its schemas (yannh/kubernetes-json-schema); here there is no
network, and the cluster itself is the better source anyway: its ``/openapi/v2`` document
describes exactly the kinds, fields and versions it serves. This module turns that document
(and a CustomResourceDefinition's ``openAPIV3Schema``) into the files kubeconform's default
naming template expects, in the "standalone-strict" flavour kubeconform's own
``scripts/openapi2jsonschema.py`` produces:

* one self-contained file per kind: ``{kind}-{group}-{version}.json`` lower-cased, where
  ``group`` is the first dot-separated label of the API group (``deployment-apps-v1.json``,
  ``clusterrole-rbac-v1.json``, ``jobqueue-jobqueue-v1alpha1.json``); core kinds are
  ``{kind}-{version}.json`` (``service-v1.json``), as in kubeconform's ``pkg/registry``;
* ``$ref``s inlined; a recursive reference (``JSONSchemaProps`` refers to itself) is kept as a
  local ``#/definitions/...`` reference with that definition in the file;
* ``additionalProperties: false`` wherever ``properties`` is given and nothing else is said
  (strict: a misspelt field fails), except under ``x-kubernetes-preserve-unknown-fields``;
* int-or-string (``format: int-or-string``, ``x-kubernetes-int-or-string``) accepts both, a
  Quantity accepts a string or a number, as the API server does;
* an optional field accepts ``null`` (the API server treats it as absent), as upstream does;
* ``kind`` and ``apiVersion`` are pinned to the file's kind (an ``enum``); a CRD's
  ``metadata`` gets the cluster's real ObjectMeta schema instead of a bare ``type: object``.

Schema walking is keyword-aware (a property *named* ``properties`` is not the keyword), and
``description`` is dropped: kubeconform never shows it and it is most of the bytes.

Use: :func:`from_cluster` (I/O) or the pure :func:`openapi_schemas` / :func:`crd_schemas`, then
``kubeconform -strict -schema-location '<dir>/'"$SCHEMA_LOCATION"``; or from a shell:
``python -m tests.cluster.kubeschemas --kubeconfig K --crd crds/x.yaml --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import yaml

JSON = dict[str, Any]

#: The part of kubeconform's -schema-location after the directory (its default file naming).
SCHEMA_LOCATION: Final = "{{ .ResourceKind }}{{ .KindSuffix }}.json"
DEFINITIONS_PREFIX: Final = "#/definitions/"
OBJECT_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
INT_OR_STRING: Final = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY: Final = "io.k8s.apimachinery.pkg.api.resource.Quantity"
GVK_EXTENSION: Final = "x-kubernetes-group-version-kind"
PRESERVE_UNKNOWN: Final = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING_EXTENSION: Final = "x-kubernetes-int-or-string"
EMBEDDED_RESOURCE: Final = "x-kubernetes-embedded-resource"
DROPPED_KEYWORDS: Final = frozenset({"description", GVK_EXTENSION})
#: Definitions whose OpenAPI v2 form is narrower than what the API server accepts.
REPLACED_DEFINITIONS: Final[Mapping[str, JSON]] = {
    INT_OR_STRING: {"type": ["integer", "string"]},
    QUANTITY: {"type": ["number", "string"]},
}
#: Keywords whose value is one schema, a map of schemas, or a list of schemas.
SCHEMA_KEYWORDS: Final = frozenset({"not", "additionalItems"})
SCHEMA_MAP_KEYWORDS: Final = frozenset({"properties", "patternProperties", "definitions"})
SCHEMA_LIST_KEYWORDS: Final = frozenset({"allOf", "anyOf", "oneOf"})


class SchemaError(ValueError):
    """The OpenAPI document or a CRD cannot be converted (a dangling reference, no kind)."""


# ---------------------------------------------------------------------------------------------
# Names


def api_version_of(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def schema_filename(kind: str, api_version: str) -> str:
    """The file kubeconform looks for, exactly as its ``pkg/registry.schemaPath`` builds the
    default ``{{ .ResourceKind }}{{ .KindSuffix }}.json`` template."""
    group_parts = api_version.split("/")
    first_label = group_parts[0].split(".")[0]
    suffix = f"-{first_label.lower()}"
    if len(group_parts) > 1:
        suffix += f"-{group_parts[1].lower()}"
    return f"{kind.lower()}{suffix}.json"


# ---------------------------------------------------------------------------------------------
# Schema rewriting (pure)


def _with_null(schema: JSON) -> JSON:
    """``schema`` that also accepts null (the API server drops a null optional field)."""
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        schema = {**schema, "enum": [*schema["enum"], None]}
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if isinstance(kind, list):
        return schema if "null" in kind else {**schema, "type": [*kind, "null"]}
    if "$ref" in schema or any(k in schema for k in SCHEMA_LIST_KEYWORDS):
        return {"anyOf": [schema, {"type": "null"}]}
    return schema  # no type at all: null is already accepted


def strict(schema: Any) -> Any:
    """A copy of a JSON schema made strict the way kubeconform's standalone-strict schemas
    are; see the module docstring. Pure: ``schema`` is not modified."""
    if not isinstance(schema, Mapping):
        return schema
    out: JSON = {}
    for key, value in schema.items():
        if key in DROPPED_KEYWORDS:
            continue
        if key in SCHEMA_MAP_KEYWORDS and isinstance(value, Mapping):
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif (key in SCHEMA_LIST_KEYWORDS or key == "items") and isinstance(value, list):
            out[key] = [strict(sub) for sub in value]
        elif key in SCHEMA_KEYWORDS or key in ("items", "additionalProperties"):
            out[key] = strict(value)
        else:
            out[key] = value
    if out.get("format") == "int-or-string" or out.get(INT_OR_STRING_EXTENSION) is True:
        out.pop("format", None)
        out.pop("anyOf", None)  # a structural int-or-string spells out both branches
        out["type"] = ["integer", "string"]
    if out.get("nullable") is True:
        out = _with_null(out)
    if out.get(EMBEDDED_RESOURCE) is True:
        props = dict(out.get("properties") or {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
        out["properties"] = props
    if (
        "properties" in out
        and "additionalProperties" not in out
        and out.get(PRESERVE_UNKNOWN) is not True
    ):
        out["additionalProperties"] = False
    if isinstance(out.get("properties"), Mapping):
        required = set(out.get("required") or ())
        out["properties"] = {
            name: sub if name in required else _with_null(sub)
            for name, sub in out["properties"].items()
        }
    return out


def _refs(schema: Any) -> Iterator[str]:
    """Every definition name a schema refers to (directly)."""
    if isinstance(schema, Mapping):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith(DEFINITIONS_PREFIX):
                raise SchemaError(f"unsupported $ref {ref!r}")
            yield ref.removeprefix(DEFINITIONS_PREFIX)
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


def _inline(
    schema: Any, definitions: Mapping[str, Any], stack: tuple[str, ...], recursive: set[str]
) -> Any:
    """``schema`` with every ``$ref`` replaced by its definition, except a reference back to a
    definition being expanded (recursion): that stays, and its name goes into ``recursive``."""
    if isinstance(schema, list):
        return [_inline(x, definitions, stack, recursive) for x in schema]
    if not isinstance(schema, Mapping):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = next(iter(_refs({"$ref": ref})))
        if name in stack:
            recursive.add(name)
            return {"$ref": ref}
        if name not in definitions:
            raise SchemaError(f"dangling $ref {ref!r}")
        target = REPLACED_DEFINITIONS.get(name, definitions[name])
        # Siblings of a v2 $ref are only a description: the target is the whole schema.
        return _inline(target, definitions, (*stack, name), recursive)
    return {k: _inline(v, definitions, stack, recursive) for k, v in schema.items()}


def standalone(name: str, definitions: Mapping[str, Any]) -> JSON:
    """One definition with its references inlined (recursive ones as local definitions)."""
    recursive: set[str] = set()
    root = _inline(definitions[name], definitions, (name,), recursive)
    local: JSON = {}
    pending = set(recursive)
    while pending:
        ref = pending.pop()
        found: set[str] = set()
        local[ref] = _inline(definitions[ref], definitions, (ref,), found)
        pending |= found - local.keys()
    if local:
        root = {**root, "definitions": local}
    return dict(root)


def _pin_type(schema: JSON, kind: str, api_version: str) -> JSON:
    """``kind`` and ``apiVersion`` of a top-level schema restricted to this one kind."""
    props = dict(schema.get("properties") or {})
    props["kind"] = {"type": "string", "enum": [kind]}
    props["apiVersion"] = {"type": "string", "enum": [api_version]}
    return {**schema, "properties": props}


def _gvks(definition: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for gvk in definition.get(GVK_EXTENSION) or ():
        yield str(gvk["kind"]), api_version_of(str(gvk.get("group") or ""), str(gvk["version"]))


def openapi_schemas(openapi: Mapping[str, Any]) -> dict[str, JSON]:
    """kubeconform schemas of every kind an OpenAPI v2 document (``/openapi/v2``) serves, by
    file name. Pure."""
    definitions: Mapping[str, Any] = openapi.get("definitions") or {}
    if not definitions:
        raise SchemaError("no definitions: not an OpenAPI v2 document")
    out: dict[str, JSON] = {}
    for name, definition in sorted(definitions.items()):
        for kind, api_version in _gvks(definition):
            filename = schema_filename(kind, api_version)
            if filename in out:
                raise SchemaError(f"two definitions map to {filename} (the second: {name})")
            out[filename] = _pin_type(strict(standalone(name, definitions)), kind, api_version)
    return out


def object_meta(openapi: Mapping[str, Any]) -> JSON:
    """The strict, standalone ObjectMeta schema of an OpenAPI v2 document."""
    definitions: Mapping[str, Any] = openapi.get("definitions") or {}
    if OBJECT_META not in definitions:
        raise SchemaError(f"{OBJECT_META} is not defined")
    meta: JSON = strict(standalone(OBJECT_META, definitions))
    return meta


def crd_schemas(crd: Mapping[str, Any], metadata: JSON | None = None) -> dict[str, JSON]:
    """kubeconform schemas of every served version of a CustomResourceDefinition, by file name.
    ``metadata``: the schema of ``metadata`` (default: any object, as kubeconform's script)."""
    if crd.get("kind") != "CustomResourceDefinition":
        raise SchemaError(f"not a CustomResourceDefinition: {crd.get('kind')!r}")
    spec = crd["spec"]
    kind, group = str(spec["names"]["kind"]), str(spec["group"])
    out: dict[str, JSON] = {}
    for version in spec.get("versions") or ():
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not version.get("served", True) or not isinstance(schema, Mapping):
            continue
        api_version = api_version_of(group, str(version["name"]))
        converted: JSON = strict(schema)
        props = dict(converted.get("properties") or {})
        props["metadata"] = metadata if metadata is not None else {"type": "object"}
        converted = {**converted, "properties": props}
        converted.setdefault("additionalProperties", False)
        out[schema_filename(kind, api_version)] = _pin_type(converted, kind, api_version)
    if not out:
        raise SchemaError(f"CRD {crd.get('metadata', {}).get('name')} has no served schema")
    return out


# ---------------------------------------------------------------------------------------------
# I/O


def load_crds(paths: Iterable[Path]) -> list[JSON]:
    """Every CustomResourceDefinition in some YAML files (multi-document files too)."""
    found: list[JSON] = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                found.append(doc)
    return found


def write(schemas: Mapping[str, JSON], out_dir: Path) -> Path:
    """Write one compact JSON file per schema into ``out_dir`` (created); returns it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for filename, schema in schemas.items():
        (out_dir / filename).write_text(json.dumps(schema, separators=(",", ":")) + "\n")
    return out_dir


def build(openapi: Mapping[str, Any], crds: Iterable[Mapping[str, Any]]) -> dict[str, JSON]:
    """The cluster's kinds plus the CRDs' (CRD metadata checked as the real ObjectMeta)."""
    schemas = openapi_schemas(openapi)
    meta = object_meta(openapi)
    for crd in crds:
        schemas.update(crd_schemas(crd, meta))
    return schemas


def from_cluster(kube: Any, out_dir: Path, crd_files: Iterable[Path] = ()) -> Path:
    """Fetch ``/openapi/v2`` with ``kube.kubectl`` (a ``tests.cluster.controlplane.Kube``) and
    write the schemas of the cluster's kinds and of the CRDs in ``crd_files`` to ``out_dir``."""
    raw = kube.kubectl("get", "--raw", "/openapi/v2", timeout=120).stdout
    return write(build(json.loads(raw), load_crds(crd_files)), out_dir)


def location(out_dir: Path) -> str:
    """The ``-schema-location`` argument for kubeconform that reads ``out_dir``."""
    return f"{out_dir}/{SCHEMA_LOCATION}"


def main(argv: list[str] | None = None) -> int:
    from tests.cluster.controlplane import Kube

    parser = argparse.ArgumentParser(
        prog="python -m tests.cluster.kubeschemas", description=__doc__
    )
    parser.add_argument("--kubeconfig", type=Path, required=True, help="admin kubeconfig")
    parser.add_argument("--crd", type=Path, action="append", default=[], help="CRD YAML file")
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    args = parser.parse_args(argv)
    out = from_cluster(Kube.from_kubeconfig(args.kubeconfig), args.out, args.crd)
    sys.stdout.write(f"-schema-location '{location(out)}'\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
