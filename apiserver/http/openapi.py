"""OpenAPI v3 documents per group-version: paths and operations of our resources, and the schemas of
their kinds (apiserver/openapi_schemas) so `kubectl explain` documents every field.

The operations declare `fieldValidation` so kubectl validates server-side. PATCH operations declare no
request body types: kubectl then computes client-side apply patches from its own built-in type
metadata (upstream's merge keys), not from our schemas.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from apiserver.http.discovery import GIT_VERSION, group_versions
from apiserver.kinds.base import ResourceInfo
from apiserver.openapi_schemas.schema import full_name, schemas_for

_QUERY_PARAMETERS = {
    "post": ["dryRun", "fieldManager", "fieldValidation", "pretty"],
    "put": ["dryRun", "fieldManager", "fieldValidation", "pretty"],
    "patch": ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"],
    "delete": ["dryRun", "gracePeriodSeconds", "propagationPolicy", "pretty"],
    "get": ["pretty"],
}
_LIST_PARAMETERS = ["allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
                    "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch"]


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def definition_name(info: ResourceInfo) -> str:
    return f"{info.group.split('.')[0] if info.group else 'core'}.{info.kind}"


def schema_name(info: ResourceInfo) -> str:
    return full_name(definition_name(info))


def _operation(info: ResourceInfo, method: str, action: str, operation_id: str, extra: list[str] = ()) -> dict:
    parameters = [{"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
                  for name in [*_QUERY_PARAMETERS[method], *extra]]
    ref = {"$ref": f"#/components/schemas/{schema_name(info)}"}
    return {"operationId": operation_id, "parameters": parameters,
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}},
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": {"group": info.group, "version": info.version, "kind": info.kind}}


def group_version_document(resources: list[ResourceInfo], group: str, version: str) -> dict[str, Any] | None:
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
        paths[scope] = {
            "get": _operation(info, "get", "list", f"list{suffix}", _LIST_PARAMETERS),
            "post": _operation(info, "post", "post", f"create{suffix}"),
            "parameters": path_params,
        }
        paths[f"{scope}/{{name}}"] = {
            "get": _operation(info, "get", "get", f"read{suffix}"),
            "put": _operation(info, "put", "put", f"replace{suffix}"),
            "patch": _operation(info, "patch", "patch", f"patch{suffix}"),
            "delete": _operation(info, "delete", "delete", f"delete{suffix}"),
            "parameters": path_params + name_param,
        }
        for sub in info.subresources:
            if sub == "status":
                paths[f"{scope}/{{name}}/status"] = {
                    "get": _operation(info, "get", "get", f"read{suffix}Status"),
                    "put": _operation(info, "put", "put", f"replace{suffix}Status"),
                    "patch": _operation(info, "patch", "patch", f"patch{suffix}Status"),
                    "parameters": path_params + name_param,
                }
        kinds[definition_name(info)] = {"group": info.group, "version": info.version, "kind": info.kind}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": GIT_VERSION},
            "paths": paths, "components": {"schemas": schemas_for(kinds)}}


def document_hash(document: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:64].upper()


def root_document(resources: list[ResourceInfo]) -> dict[str, Any]:
    paths = {}
    for group, versions in group_versions(resources).items():
        for version in versions:
            document = group_version_document(resources, group, version)
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
