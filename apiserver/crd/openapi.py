"""The OpenAPI schemas of a CRD version, as upstream's CRD OpenAPI builder publishes them: the kind
`<reversed group>.<version>.<Kind>` (the version's schema with apiVersion, kind and a reference to ObjectMeta;
embedded resources get the same) and its list `<reversed group>.<version>.<ListKind>`. v3 keeps the schema
whole; v2 drops what Swagger 2.0 cannot say (allOf/anyOf/oneOf/not, nullable types, the inside of
x-kubernetes-preserve-unknown-fields) and value validations, as upstream's v2 publishing does."""
from __future__ import annotations

import copy
from typing import Any

from apiserver.crd import definition
from apiserver.crd.schema import props

Obj = dict[str, Any]
META_PREFIX = "io.k8s.apimachinery.pkg.apis.meta.v1"
_API_VERSION_DOC = ("APIVersion defines the versioned schema of this representation of an object. Servers should "
                    "convert recognized schemas to the latest internal value, and may reject unrecognized values. "
                    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
                    "api-conventions.md#resources")
_KIND_DOC = ("Kind is a string value representing the REST resource this object represents. Servers may infer this "
             "from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
             "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds")
_METADATA_DOC = ("Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/"
                 "sig-architecture/api-conventions.md#metadata")
_LIST_METADATA_DOC = ("Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/"
                      "sig-architecture/api-conventions.md#metadata")
_EMBEDDED_API_VERSION_DOC = ("apiVersion defines the versioned schema of this representation of an object. More "
                             "info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
                             "api-conventions.md#resources")
_EMBEDDED_KIND_DOC = ("kind is a string value representing the type of this object. In CamelCase. More info: "
                      "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
                      "#types-kinds")
_STRIPPED_V2 = ("allOf", "anyOf", "oneOf", "not")
_VALUE_VALIDATIONS = ("format", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength",
                      "pattern", "maxItems", "minItems", "uniqueItems", "multipleOf", "enum", "maxProperties",
                      "minProperties", "x-kubernetes-validations", *_STRIPPED_V2)


def model_name(group: str, version: str, kind: str) -> str:
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


def _ref(name: str, v2: bool) -> str:
    return f"#/definitions/{name}" if v2 else f"#/components/schemas/{name}"


def _meta_ref(kind: str, description: str, v2: bool) -> Obj:
    ref = {"$ref": _ref(f"{META_PREFIX}.{kind}", v2)}
    return {**ref, "description": description} if v2 else {"allOf": [ref], "description": description}


def _structural(schema: Any) -> Any:
    """The structural part (what ToKubeOpenAPI writes; unfolded int-or-string)."""
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if k not in ("properties", "items", "additionalProperties")}
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: _structural(v) for k, v in schema["properties"].items()}
    if isinstance(schema.get("items"), dict):
        out["items"] = _structural(schema["items"])
    if "additionalProperties" in schema:
        value = schema["additionalProperties"]
        out["additionalProperties"] = _structural(value) if isinstance(value, dict) else value
    return out


def _to_v2(schema: Obj) -> Obj:
    out = {k: v for k, v in schema.items() if k not in _VALUE_VALIDATIONS}
    if out.get("nullable"):
        out.pop("type", None)
        out.pop("nullable", None)
        out.pop("items", None)
        out.pop("properties", None)
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("items", None)
        out.pop("properties", None)
        if out.get("type") == "object":
            out.pop("type")
    if out.get("type") == "array" and not isinstance(out.get("items"), dict):
        out.pop("type", None)
    if isinstance(out.get("properties"), dict):
        nullable = {k for k, v in out["properties"].items() if isinstance(v, dict) and v.get("nullable")}
        if nullable and out.get("required"):
            out["required"] = [r for r in out["required"] if r not in nullable] or None
            if out["required"] is None:
                out.pop("required")
        out["properties"] = {k: _to_v2(v) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _to_v2(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        if out["additionalProperties"].get("nullable"):
            out.pop("required", None)
        out["additionalProperties"] = _to_v2(out["additionalProperties"])
    return out


def _add_embedded(schema: Obj, v2: bool) -> None:
    for child in props(schema).values():
        _add_embedded(child, v2)
    if isinstance(schema.get("items"), dict):
        _add_embedded(schema["items"], v2)
    if isinstance(schema.get("additionalProperties"), dict):
        _add_embedded(schema["additionalProperties"], v2)
    if v2 and schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if schema.get("x-kubernetes-embedded-resource"):
        properties = schema.setdefault("properties", {})
        properties["apiVersion"] = {"type": "string", "description": _EMBEDDED_API_VERSION_DOC}
        properties["kind"] = {"type": "string", "description": _EMBEDDED_KIND_DOC}
        properties["metadata"] = _meta_ref("ObjectMeta", _METADATA_DOC, v2)
        required = schema.setdefault("required", [])
        for key in ("kind", "apiVersion"):
            if key not in required:
                required.append(key)


def kind_schemas(crd: Obj, version: str, v2: bool = False) -> dict[str, Obj]:
    """{model name of the kind: schema, model name of the list: schema} of one version of a CRD."""
    spec = definition.spec_of(crd)
    group = str(spec.get("group"))
    names = definition.accepted_names(crd) or spec.get("names") or {}
    kind, list_kind = str(names.get("kind")), str(names.get("listKind") or f"{names.get('kind')}List")
    gvk = [{"group": group, "version": version, "kind": kind}]
    source = definition.schema_for(crd, version)
    if source is None or (v2 and source.get("x-kubernetes-preserve-unknown-fields")):
        schema: Obj = {"type": "object"}
    else:
        schema = copy.deepcopy(_structural(source))
        if v2:
            schema = _to_v2(schema)
        properties = schema.setdefault("properties", {})
        properties["metadata"] = _meta_ref("ObjectMeta", _METADATA_DOC, v2)
        properties["apiVersion"] = {"type": "string", "description": _API_VERSION_DOC}
        properties["kind"] = {"type": "string", "description": _KIND_DOC}
        _add_embedded(schema, v2)
    schema["x-kubernetes-group-version-kind"] = gvk
    kind_name = model_name(group, version, kind)
    list_schema = {
        "type": "object", "description": f"{list_kind} is a list of {kind}", "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": _API_VERSION_DOC},
            "items": {"type": "array", "description": f"List of {names.get('plural')}. More info: "
                                                      "https://git.k8s.io/community/contributors/devel/"
                                                      "sig-architecture/api-conventions.md",
                      "items": {"$ref": _ref(kind_name, v2)}},
            "kind": {"type": "string", "description": _KIND_DOC},
            "metadata": _meta_ref("ListMeta", _LIST_METADATA_DOC, v2),
        },
        "x-kubernetes-group-version-kind": [{"group": group, "version": version, "kind": list_kind}],
    }
    return {kind_name: schema, model_name(group, version, list_kind): list_schema}
