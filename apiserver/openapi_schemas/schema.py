"""OpenAPI v3 schemas (components/schemas) from the definitions, named as upstream's
(io.k8s.api.core.v1.PodSpec, io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta, ...)."""
from __future__ import annotations

from typing import Any

from apiserver.openapi_schemas import DEFINITIONS
from apiserver.openapi_schemas.common import Definition

_PACKAGES = {"meta": "io.k8s.apimachinery.pkg.apis.meta.v1"}
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


def _property(type_name: str, description: str) -> dict[str, Any]:
    schema = _type_schema(type_name)
    if "$ref" in schema:  # upstream's v3 form: a reference with its own description sits in allOf
        return {"allOf": [schema], "description": description, "default": {}}
    return {**schema, "description": description}


def _referenced(type_name: str) -> list[str]:
    base = type_name
    while base.startswith(("[]", "map[string]")):
        base = base[2:] if base.startswith("[]") else base[len("map[string]"):]
    return [] if base in _PRIMITIVES or base == "object" else [base]


def definition_schema(definition: Definition) -> dict[str, Any]:
    schema: dict[str, Any] = {"description": definition.description, "type": "object",
                              "properties": {field: _property(type_name, description)
                                             for field, (type_name, description) in definition.fields.items()}}
    if definition.required:
        schema["required"] = list(definition.required)
    return schema


def schemas_for(kinds: dict[str, dict[str, str]]) -> dict[str, dict[str, Any]]:
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
        schemas[full] = definition_schema(definition) if definition else {"type": "object"}
        if name in kinds:
            schemas[full]["x-kubernetes-group-version-kind"] = [kinds[name]]
        if definition:
            for type_name, _ in definition.fields.values():
                pending += _referenced(type_name)
    return schemas
