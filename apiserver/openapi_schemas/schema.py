"""OpenAPI v3 schemas (components/schemas) from the definitions, named as upstream's
(io.k8s.api.core.v1.PodSpec, io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta, ...)."""
from __future__ import annotations

from typing import Any

from apiserver.openapi_schemas import DEFINITIONS
from apiserver.openapi_schemas.common import Definition
from apiserver.openapi_schemas.patch_semantics import ATOMIC_STRUCTS, PATCH_SEMANTICS

_PACKAGES = {"meta": "io.k8s.apimachinery.pkg.apis.meta.v1", "autoscaling": "io.k8s.api.autoscaling.v2",
             "apiextensions": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1"}
_SPECIAL = {
    "Quantity": ("io.k8s.apimachinery.pkg.api.resource.Quantity", {
        "description": "A fixed-point number with an optional suffix: 100m, 1.5, 2Gi, 500M.",
        "oneOf": [{"type": "string"}, {"type": "number"}]}),
    "Time": ("io.k8s.apimachinery.pkg.apis.meta.v1.Time", {
        "description": "A timestamp in RFC 3339 form, in UTC, with second precision.",
        "type": "string", "format": "date-time"}),
    "IntOrString": ("io.k8s.apimachinery.pkg.util.intstr.IntOrString", {
        "description": "An integer or a string (for example a port number or a port name, a count or a percent).",
        "x-kubernetes-int-or-string": True}),
}
_PRIMITIVES = ("string", "integer", "number", "boolean")


def full_name(name: str) -> str:
    if name in _SPECIAL:
        return _SPECIAL[name][0]
    package, _, kind = name.partition(".")
    return f"{_PACKAGES.get(package, f'io.k8s.api.{package}.v1')}.{kind}"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{full_name(name)}"}


def _type_schema(type_name: str) -> dict[str, Any]:
    if type_name.startswith("[]"):
        return {"type": "array", "items": _type_schema(type_name[2:])}
    if type_name.startswith("map[string]"):
        return {"type": "object", "additionalProperties": _type_schema(type_name[len("map[string]"):])}
    if type_name in _PRIMITIVES:
        return {"type": type_name}
    if type_name == "object":
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return _ref(type_name)


def _property(type_name: str, description: str, extensions: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = _type_schema(type_name)
    if "$ref" in schema:  # upstream's v3 form: a reference with its own description sits in allOf
        return {"allOf": [schema], "description": description, "default": {}, **(extensions or {})}
    return {**schema, "description": description, **(extensions or {})}


def _referenced(type_name: str) -> list[str]:
    base = type_name
    while base.startswith(("[]", "map[string]")):
        base = base[2:] if base.startswith("[]") else base[len("map[string]"):]
    return [] if base in _PRIMITIVES or base == "object" else [base]


def definition_schema(definition: Definition, name: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"description": definition.description, "type": "object",
                              "properties": {field: _property(type_name, description,
                                                              PATCH_SEMANTICS.get((name, field)))
                                             for field, (type_name, description) in definition.fields.items()}}
    if definition.required:
        schema["required"] = list(definition.required)
    if name in ATOMIC_STRUCTS:
        schema["x-kubernetes-map-type"] = "atomic"
    return schema


def loose_fields(root: str) -> list[tuple[str, str]]:
    """(definition, field) pairs below `root` (its status excepted) whose values are free-form: a kind whose
    spec side has none is published exactly, so kubectl may compute strategic merge patches from it."""
    loose, seen, pending = [], set(), [(root, True)]
    while pending:
        name, is_root = pending.pop()
        if name in seen or name in _SPECIAL or name in _PRIMITIVES:
            continue
        seen.add(name)
        definition = DEFINITIONS.get(name)
        if definition is None:
            loose.append((name, ""))
            continue
        for field, (type_name, _) in definition.fields.items():
            if is_root and field == "status":
                continue
            for referenced in _referenced(type_name):
                pending.append((referenced, False))
            base = type_name
            while base.startswith(("[]", "map[string]")):
                base = base[2:] if base.startswith("[]") else base[len("map[string]"):]
            if base == "object" and (name, field) != ("meta.ManagedFieldsEntry", "fieldsV1"):
                loose.append((name, field))
    return loose


def schemas_for(kinds: dict[str, dict[str, str]], with_gvk: bool = True) -> dict[str, dict[str, Any]]:
    """Schemas of the given kinds ("core.Pod" → its group/version/kind) and everything they reference.
    A kind without a definition gets a bare object schema."""
    schemas: dict[str, dict[str, Any]] = {}
    pending = list(kinds)
    while pending:
        name = pending.pop()
        full = full_name(name)
        if full in schemas:
            continue
        if name in _SPECIAL:
            schemas[full] = dict(_SPECIAL[name][1])
            continue
        definition = DEFINITIONS.get(name)
        schemas[full] = definition_schema(definition, name) if definition else {"type": "object"}
        if name in kinds and with_gvk:
            schemas[full]["x-kubernetes-group-version-kind"] = [kinds[name]]
        if definition:
            for type_name, _ in definition.fields.values():
                pending += _referenced(type_name)
    return schemas
