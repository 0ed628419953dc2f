"""OpenAPI v3 documents per group-version: paths and operations of our resources, and the schemas of
their kinds (apiserver/openapi_schemas, custom resources from their CRDs) so `kubectl explain` documents every
field.

The operations declare `fieldValidation` so kubectl validates server-side. A kind whose schema is exact (no
free-form object on its spec side: openapi_schemas.schema.loose_fields) declares the strategic merge patch
among its PATCH request body types, and its lists carry upstream's merge keys and list types
(openapi_schemas/patch_semantics.py): kubectl then computes client-side apply three-way merges from the
published schema. Other kinds declare JSON, merge and apply patches only; custom resources never strategic
merge (as upstream), so kubectl falls back to a JSON merge patch for them.
"""
from __future__ import annotations

import functools
import hashlib
import json
from typing import Any, Callable

from apiserver.http.discovery import GIT_VERSION, group_versions
from apiserver.kinds.base import ResourceInfo
from apiserver.openapi_schemas.schema import full_name, loose_fields, schemas_for

_PATCH_SCHEMA = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
_PATCH_CONTENT = ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
                  "application/strategic-merge-patch+json")


@functools.lru_cache(maxsize=None)
def exact(name: str) -> bool:
    """Whether the definition's spec side is described down to its leaves."""
    return not loose_fields(name)

_QUERY_PARAMETERS = {
    "post": ["dryRun", "fieldManager", "fieldValidation", "pretty"],
    "put": ["dryRun", "fieldManager", "fieldValidation", "pretty"],
    "patch": ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"],
    "delete": ["dryRun", "gracePeriodSeconds", "propagationPolicy", "pretty"],
    "get": ["pretty"],
}
_LIST_PARAMETERS = ["allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
                    "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch"]


# (model name by kind, schemas by model name) of the custom resources of one group-version
CustomSchemas = tuple[dict[str, str], dict[str, dict[str, Any]]]


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def definition_name(info: ResourceInfo) -> str:
    return f"{info.group.split('.')[0] if info.group else 'core'}.{info.kind}"


def schema_name(info: ResourceInfo) -> str:
    return full_name(definition_name(info))


def _operation(info: ResourceInfo, method: str, action: str, operation_id: str, extra: list[str] = (),
               model: str = "") -> dict:
    parameters = [{"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
                  for name in [*_QUERY_PARAMETERS[method], *extra]]
    ref = {"$ref": f"#/components/schemas/{model or schema_name(info)}"}
    operation = {"operationId": operation_id, "parameters": parameters,
                 "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}},
                 "x-kubernetes-action": action,
                 "x-kubernetes-group-version-kind": {"group": info.group, "version": info.version, "kind": info.kind}}
    if method in ("post", "put"):
        operation["requestBody"] = {"content": {"*/*": {"schema": ref}}, "required": True}
    if method == "patch":
        strategic = not model and exact(definition_name(info))
        content = [c for c in _PATCH_CONTENT if strategic or c != "application/strategic-merge-patch+json"]
        operation["requestBody"] = {"content": {c: {"schema": {"$ref": f"#/components/schemas/{_PATCH_SCHEMA}"}}
                                                for c in content}, "required": True}
    return operation


def group_version_document(resources: list[ResourceInfo], group: str, version: str,
                           custom: "CustomSchemas | None" = None) -> dict[str, Any] | None:
    """The document of one group-version; `custom` holds the models of the custom resources in it."""
    models, custom_schemas = custom or ({}, {})
    selected = [r for r in resources if r.group == group and r.version == version]
    if not selected:
        return None
    paths: dict[str, Any] = {}
    kinds: dict[str, dict[str, str]] = {}
    base = "/" + gv_path(group, version)
    for info in selected:
        scope = f"{base}/namespaces/{{namespace}}/{info.plural}" if info.namespaced else f"{base}/{info.plural}"
        path_params = [{"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}] \
            if info.namespaced else []
        name_param = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
        suffix = info.kind
        model = models.get(info.kind, "")
        paths[scope] = {
            "get": _operation(info, "get", "list", f"list{suffix}", _LIST_PARAMETERS, model),
            "post": _operation(info, "post", "post", f"create{suffix}", model=model),
            "parameters": path_params,
        }
        paths[f"{scope}/{{name}}"] = {
            "get": _operation(info, "get", "get", f"read{suffix}", model=model),
            "put": _operation(info, "put", "put", f"replace{suffix}", model=model),
            "patch": _operation(info, "patch", "patch", f"patch{suffix}", model=model),
            "delete": _operation(info, "delete", "delete", f"delete{suffix}", model=model),
            "parameters": path_params + name_param,
        }
        for sub in info.subresources:
            if sub == "status":
                paths[f"{scope}/{{name}}/status"] = {
                    "get": _operation(info, "get", "get", f"read{suffix}Status", model=model),
                    "put": _operation(info, "put", "put", f"replace{suffix}Status", model=model),
                    "patch": _operation(info, "patch", "patch", f"patch{suffix}Status", model=model),
                    "parameters": path_params + name_param,
                }
        if not model:
            kinds[definition_name(info)] = {"group": info.group, "version": info.version, "kind": info.kind}
    schemas = schemas_for(kinds)
    schemas[_PATCH_SCHEMA] = {"type": "object", "description": "Patch is provided to give a concrete name and type to "
                                                               "the Kubernetes PATCH request body."}
    if custom_schemas:
        schemas.update(custom_schemas)
        schemas.update(schemas_for({"meta.ObjectMeta": {}, "meta.ListMeta": {}}, with_gvk=False))
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": GIT_VERSION},
            "paths": paths, "components": {"schemas": schemas}}


def document_hash(document: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:64].upper()


def root_document(resources: list[ResourceInfo],
                  custom: "Callable[[str, str], CustomSchemas] | None" = None) -> dict[str, Any]:
    paths = {}
    for group, versions in group_versions(resources).items():
        for version in versions:
            document = group_version_document(resources, group, version, custom(group, version) if custom else None)
            path = gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={document_hash(document)}"}
    return {"paths": paths}


def _proto_string(number: int, text: str) -> bytes:
    data = text.encode()
    return bytes([number << 3 | 2, len(data)]) + data


def v2_document() -> bytes:
    """/openapi/v2 as gnostic's protobuf Document (swagger = 1, info = 2 {title = 1, version = 2}) without
    definitions. kubectl reads it only to validate `kind: List` items client-side; a kind it finds no
    schema for is left to the server's own (Strict) field validation."""
    info = _proto_string(1, "Kubernetes") + _proto_string(2, GIT_VERSION)
    return _proto_string(1, "2.0") + bytes([2 << 3 | 2, len(info)]) + info


def _v2_schema(node: Any) -> Any:
    """A v3 schema as Swagger 2.0 has it: references under #/definitions, a described reference as a plain
    $ref with its description (v2 cannot combine them in allOf), no nullable."""
    if isinstance(node, list):
        return [_v2_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1 and "$ref" in node["allOf"][0]:
        ref = node["allOf"][0]["$ref"].replace("#/components/schemas/", "#/definitions/")
        return {"$ref": ref, **({"description": node["description"]} if node.get("description") else {})}
    out = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = value.replace("#/components/schemas/", "#/definitions/")
        elif key in ("nullable", "default") and isinstance(value, (bool, dict)) and key == "nullable":
            continue
        else:
            out[key] = _v2_schema(value)
    return out


def v2_json_document(resources: list[ResourceInfo],
                     custom: "Callable[[str, str], CustomSchemas] | None" = None,
                     custom_v2: "Callable[[str, str], CustomSchemas] | None" = None) -> dict[str, Any]:
    """/openapi/v2 as JSON (Swagger 2.0): every kind's definition (custom resources as upstream publishes them
    in v2) and paths, for clients that generate code from it."""
    definitions: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for group, versions in group_versions(resources).items():
        for version in versions:
            document = group_version_document(resources, group, version, custom(group, version) if custom else None)
            if document is None:
                continue
            definitions.update({name: _v2_schema(schema) for name, schema in document["components"]["schemas"].items()})
            if custom_v2:
                definitions.update(custom_v2(group, version)[1])
            for path, item in document["paths"].items():
                converted: dict[str, Any] = {}
                for method, operation in item.items():
                    if method == "parameters":
                        converted[method] = [{"name": p["name"], "in": p["in"], "required": p.get("required", False),
                                              "type": "string", **({"uniqueItems": True} if p["in"] == "query" else {})}
                                             for p in operation]
                        continue
                    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
                    v2_operation = {
                        "operationId": operation["operationId"],
                        "consumes": ["*/*"] if method != "patch" else list(operation["requestBody"]["content"]),
                        "produces": ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
                        "schemes": ["https"],
                        "parameters": [{"name": p["name"], "in": "query", "type": "string", "uniqueItems": True}
                                       for p in operation["parameters"]],
                        "responses": {"200": {"description": "OK", "schema": {
                            "$ref": ref.replace("#/components/schemas/", "#/definitions/")}},
                            "401": {"description": "Unauthorized"}},
                        "x-kubernetes-action": operation["x-kubernetes-action"],
                        "x-kubernetes-group-version-kind": operation["x-kubernetes-group-version-kind"],
                    }
                    if method in ("post", "put", "patch"):
                        schema = {"$ref": "#/definitions/" + _PATCH_SCHEMA} if method == "patch" else \
                            {"$ref": ref.replace("#/components/schemas/", "#/definitions/")}
                        v2_operation["parameters"].insert(0, {"name": "body", "in": "body", "required": True,
                                                              "schema": schema})
                    converted[method] = v2_operation
                paths[path] = converted
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": GIT_VERSION}, "paths": paths,
            "definitions": definitions,
            "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header",
                                                    "description": "Bearer Token authentication"}},
            "security": [{"BearerToken": []}]}
