"""Decoding of request bodies (JSON, YAML, protobuf) into JSON values, refusing hostile input cleanly.

Every failure is an `errors.APIError` (400, 413 or 415), never another exception:
- JSON as upstream's decoder (encoding/json): invalid UTF-8 inside strings becomes U+FFFD, NaN/Infinity are
  syntax errors. Nesting is bounded (`MAX_NESTING_DEPTH`): upstream allows 10000 levels, but our pipeline
  (copy, patch, managed fields, encoding) is recursive Python, so we stop far earlier; no kind we serve
  nests beyond ~20 levels.
- YAML as sigs.k8s.io/yaml (YAML converted to JSON): keys become strings, timestamps stay strings, and
  aliases that expand the document ("billion laughs") or refer to themselves are refused before anything is
  built (upstream's go-yaml: "document contains excessive aliasing").
- Object bodies must be JSON objects; JSON patches lists of at most 10000 operations (upstream's limit).
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
from typing import Any

import yaml

from apiserver import errors, protobuf
from apiserver.bounds import MAX_NESTING_DEPTH, exceeds_depth
from apiserver.patch import JSON_PATCH

log = logging.getLogger(__name__)

JSON = "application/json"
MAX_JSON_PATCH_OPERATIONS = 10000
# Aliases may add at most this many nodes beyond the literal document, plus as many as it has.
YAML_ALIAS_ALLOWANCE = 10000
_THREAD_THRESHOLD = 64 * 1024  # bodies larger than this are decoded off the event loop

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _JSONishLoader(_Loader):  # type: ignore[misc, valid-type]
    """YAML → JSON values as sigs.k8s.io/yaml: timestamps and binaries stay strings, sets become maps."""


_JSONishLoader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))
_JSONishLoader.add_constructor("tag:yaml.org,2002:binary", lambda loader, node: loader.construct_scalar(node))
_JSONishLoader.add_constructor("tag:yaml.org,2002:set",
                               lambda loader, node: {key: None for key in loader.construct_mapping(node)})


def _decode_error(detail: str) -> errors.APIError:
    return errors.bad_request(f"error decoding request body: {detail}")


def _go_type(value: Any) -> str:
    """The JSON type name encoding/json uses in "cannot unmarshal <type>" messages."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {list: "array", str: "string"}.get(type(value), "object")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def _decode_json(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise _decode_error("exceeded max depth") from None
    except ValueError as exc:
        raise _decode_error(str(exc)) from None
    if exceeds_depth(value):
        raise _decode_error("exceeded max depth")
    return value


def _check_yaml_events(raw: bytes) -> None:
    """One pass over the parser's events (iterative: safe at any depth): nesting and alias expansion."""
    open_nodes: list[list[Any]] = []  # [anchor, expanded size] of each open collection
    anchored: dict[str, int] = {}  # anchor → expanded size of its node
    literal = expanded = 0
    for event in yaml.parse(raw, Loader=_Loader):
        size = 0
        if isinstance(event, yaml.AliasEvent):
            if any(node[0] == event.anchor for node in open_nodes):
                raise _decode_error(f"yaml: anchor '{event.anchor}' value contains itself")
            size = anchored.get(event.anchor, 0)  # an undefined alias is the loader's error to report
            expanded += size
        elif isinstance(event, yaml.ScalarEvent):
            size, literal = 1, literal + 1
            expanded += 1
            if event.anchor:
                anchored[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            literal, expanded = literal + 1, expanded + 1
            open_nodes.append([event.anchor, 1])
            if len(open_nodes) > MAX_NESTING_DEPTH:
                raise _decode_error("exceeded max depth")
            continue
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = open_nodes.pop()
            if anchor:
                anchored[anchor] = size
        else:
            continue
        if expanded > 2 * literal + YAML_ALIAS_ALLOWANCE:
            raise _decode_error("yaml: document contains excessive aliasing")
        if open_nodes:
            open_nodes[-1][1] += size


def _jsonable(value: Any) -> Any:
    """A loaded YAML value as JSON would hold it (depth is already bounded, so recursion is safe)."""
    if isinstance(value, dict):
        return {_key(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise _decode_error(f"json: unsupported value: {value}")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, (int, float)):
        return str(key)
    raise _decode_error(f"yaml: invalid map key: {key!r}")


def _decode_yaml(raw: bytes) -> Any:
    try:
        _check_yaml_events(raw)
        value = yaml.load(raw, Loader=_JSONishLoader)  # noqa: S506 - a safe loader (subclass of SafeLoader)
    except yaml.YAMLError as exc:
        raise _decode_error(str(exc)) from None
    except RecursionError:
        raise _decode_error("exceeded max depth") from None
    return _jsonable(value)


def _decode_protobuf(raw: bytes) -> dict[str, Any]:
    try:
        return protobuf.decode_object(raw)
    except (protobuf.ProtobufError, UnicodeDecodeError) as exc:
        log.info("protobuf body not decoded error=%s", exc)
        raise errors.unsupported_media_type([JSON, "application/yaml"]) from None


def decode(raw: bytes, content_type: str) -> Any:
    """The body as a JSON value: an object, or the operation list of a JSON patch. Raises APIError."""
    media = content_type.split(";")[0].strip().lower()
    if media == protobuf.CONTENT_TYPE:
        return _decode_protobuf(raw)
    if media not in (JSON, "application/yaml", "*/*", "") and not media.endswith(("+json", "+yaml")):
        raise errors.unsupported_media_type([JSON, "application/yaml"])
    value = _decode_yaml(raw) if media.endswith("yaml") else _decode_json(raw)
    if media == JSON_PATCH:
        if not isinstance(value, list):
            raise errors.bad_request(f"json: cannot unmarshal {_go_type(value)} into Go value of type "
                                     "jsonpatch.Patch")
        if len(value) > MAX_JSON_PATCH_OPERATIONS:
            raise errors.APIError(413, "RequestEntityTooLarge", "Request entity too large: The allowed maximum "
                                  f"operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {len(value)}")
        for index, operation in enumerate(value):
            _check_patch_operation(index, operation)
        return value
    if value is not None and not isinstance(value, dict):
        raise errors.bad_request(f"couldn't get version/kind; json parse error: json: cannot unmarshal "
                                 f"{_go_type(value)} into Go value of type struct {{ APIVersion string "
                                 '"json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }')
    return value


def _check_patch_operation(index: int, operation: Any) -> None:
    """The shape of one RFC 6902 operation: "op" and "path" strings, and "from" for move and copy."""
    if not isinstance(operation, dict):
        raise errors.bad_request(f"json patch operation {index}: cannot unmarshal {_go_type(operation)} into an "
                                 "operation object")
    needed = ("op", "path", "from") if operation.get("op") in ("move", "copy") else ("op", "path")
    for name in needed:
        if not isinstance(operation.get(name), str):
            raise errors.bad_request(f'json patch operation {index}: "{name}" must be a string')


async def decode_async(raw: bytes, content_type: str) -> Any:
    """`decode`, run in a thread for large bodies so a slow decode never stalls the event loop."""
    if len(raw) > _THREAD_THRESHOLD:
        return await asyncio.to_thread(decode, raw, content_type)
    return decode(raw, content_type)
