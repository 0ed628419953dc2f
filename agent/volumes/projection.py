"""The files of API data volumes (configMap, secret, downwardAPI, projected), as kubelet's
MakePayload functions compute them; pure."""
from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from agent.container_config import ContainerConfigError, NodeResources, resource_field_value
from agent.volumes.atomic_writer import FileProjection
from agent.volumes.errors import VolumeError

Obj = dict[str, Any]
Payload = dict[str, FileProjection]
DEFAULT_MODE = 0o644

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def _mode(value: Any, default: int) -> int:
    return default if value is None else int(value)


def config_map_payload(source: Obj, config_map: Obj | None, default_mode: int | None = None) -> Payload:
    """`config_map` None: the object does not exist (only allowed when the source is optional)."""
    mode = _mode(source.get("defaultMode") if default_mode is None else default_mode, DEFAULT_MODE)
    data = dict((config_map or {}).get("data") or {})
    binary = (config_map or {}).get("binaryData") or {}
    contents = {key: value.encode() for key, value in data.items()}
    for key, value in binary.items():
        contents[key] = _base64(value, f"configmap binaryData key {key}")
    return _items_payload(source, contents, mode, "configmap references non-existent config key: ")


def secret_payload(source: Obj, secret: Obj | None, default_mode: int | None = None) -> Payload:
    mode = _mode(source.get("defaultMode") if default_mode is None else default_mode, DEFAULT_MODE)
    contents = {key: _base64(value, f"secret key {key}") for key, value in ((secret or {}).get("data") or {}).items()}
    for key, value in ((secret or {}).get("stringData") or {}).items():
        contents[key] = value.encode()
    return _items_payload(source, contents, mode, "references non-existent secret key: ")


def _items_payload(source: Obj, contents: dict[str, bytes], mode: int, missing_key: str) -> Payload:
    items = source.get("items") or []
    if not items:
        return {key: FileProjection(value, mode) for key, value in contents.items()}
    payload = {}
    for item in items:
        key = item.get("key", "")
        if key not in contents:
            if source.get("optional"):
                continue
            raise VolumeError(missing_key + key)
        payload[item["path"]] = FileProjection(contents[key], _mode(item.get("mode"), mode))
    return payload


def _base64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VolumeError(f"{what} is not valid base64") from None


def format_map(values: dict[str, str]) -> str:
    """kubelet's fieldpath.FormatMap: `key="value"` lines sorted by key (Go %q quoting)."""
    return "\n".join(f"{key}={json.dumps(values[key], ensure_ascii=False)}" for key in sorted(values))


def field_path_value(pod: Obj, path: str) -> str:
    meta = pod.get("metadata") or {}
    simple = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
              "metadata.uid": meta.get("uid", "")}
    if path in simple:
        return simple[path]
    if path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(path.split(".")[1]) or {})
    match = _SUBSCRIPT.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise VolumeError(f"unsupported fieldPath: {path}")


def _resource_value(pod: Obj, selector: Obj, node: NodeResources) -> str:
    name = selector.get("containerName", "")
    spec = pod.get("spec") or {}
    container = next((c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                      if c.get("name") == name), None)
    if container is None:
        raise VolumeError(f"container {name} not found")
    try:
        return resource_field_value(container, selector, node)
    except ContainerConfigError as error:
        raise VolumeError(str(error)) from None


def downward_api_payload(source: Obj, pod: Obj, default_mode: int | None = None,
                         node: NodeResources = NodeResources()) -> Payload:
    """`node`: what a container without limits may use (its limits default to the node's
    allocatable, as kubelet's)."""
    mode = _mode(source.get("defaultMode") if default_mode is None else default_mode, DEFAULT_MODE)
    payload = {}
    for item in source.get("items") or []:
        if item.get("fieldRef"):
            value = field_path_value(pod, item["fieldRef"].get("fieldPath", ""))
        elif item.get("resourceFieldRef"):
            value = _resource_value(pod, item["resourceFieldRef"], node)
        else:
            raise VolumeError(f"downwardAPI item {item.get('path')} has neither fieldRef nor resourceFieldRef")
        payload[item["path"]] = FileProjection(value.encode(), _mode(item.get("mode"), mode))
    return payload
