"""Patch application: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch.

Strategic merge uses a table of list fields that merge by key (dotted paths without indexes,
e.g. "spec.containers" → "name") instead of being replaced, plus the `$patch` directives
(`replace`, `delete`, `merge`), `$retainKeys`, `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`.
"""
from __future__ import annotations

import copy
import json
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

from apiserver.bounds import MAX_NESTING_DEPTH, exceeds_depth

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

PRIMITIVE_MERGE = ""  # a list of scalars merged as a set union (e.g. finalizers)

PATCH_DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ELEMENT_ORDER = "$setElementOrder/"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"

# Lists of a container (in a pod spec: containers, initContainers, ephemeralContainers) that merge by key.
_CONTAINER_LISTS = {"ports": "containerPort", "env": "name", "volumeMounts": "mountPath",
                    "volumeDevices": "devicePath"}
# Lists of a pod spec that merge by key (upstream's patchMergeKey / patchStrategy=merge struct tags).
_POD_SPEC_LISTS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
                   "volumes": "name", "imagePullSecrets": "name", "hostAliases": "ip",
                   "topologySpreadConstraints": "topologyKey", "schedulingGates": "name", "resourceClaims": "name",
                   **{f"{containers}.{field}": key
                      for containers in ("containers", "initContainers", "ephemeralContainers")
                      for field, key in _CONTAINER_LISTS.items()}}

# Merge keys of the kinds we serve, by dotted path without indexes ("spec.containers" → "name").
# The same table tells server-side apply which lists are maps keyed by these fields (apiserver/apply/).
MERGE_KEYS: dict[str, str] = {
    "metadata.finalizers": PRIMITIVE_MERGE,
    "metadata.ownerReferences": "uid",
    **{f"spec.{path}": key for path, key in _POD_SPEC_LISTS.items()},
    # Pod templates of workloads (Deployments, ReplicaSets, Jobs, ...) merge like the pod spec they hold.
    **{f"spec.template.spec.{path}": key for path, key in _POD_SPEC_LISTS.items()},
    **{f"spec.jobTemplate.spec.template.spec.{path}": key for path, key in _POD_SPEC_LISTS.items()},  # CronJob
    "webhooks": "name",  # Validating/MutatingWebhookConfiguration
    "spec.ports": "port",  # Service ports
    "spec.podCIDRs": PRIMITIVE_MERGE,  # Node
    "status.conditions": "type",
    "status.addresses": "type",
    "status.podIPs": "ip",
    "status.hostIPs": "ip",
}


class PatchError(ValueError):
    """The patch cannot be applied (HTTP 422 for JSON patch test failures, 413 for a result past the size
    limit, 400 otherwise)."""

    def __init__(self, message: str, code: int = 400):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class PatchLimits:
    """What one patch may build. Upstream: JSON patch copies may add at most `JSONPatchMaxCopyBytes` (3 MiB,
    evanphx/json-patch's AccumulatedCopySizeLimit), and no object is larger than a request body (3 MiB).
    Nesting as apiserver.bounds.MAX_NESTING_DEPTH (our recursive pipeline stops far before upstream)."""
    max_result_bytes: int = 3 * 1024 * 1024
    max_copy_bytes: int = 3 * 1024 * 1024
    max_depth: int = MAX_NESTING_DEPTH


LIMITS = PatchLimits()
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def json_size(value: Any, stop_above: int) -> int:
    """The length of `value` encoded as compact JSON (strings counted without escapes), computed
    iteratively and abandoned as soon as it exceeds `stop_above` (then any number above it is returned):
    the cost is bounded by `stop_above`, never by the value."""
    size = 0
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            size += 2 * len(node) + 1 if node else 2  # braces, colons and commas
            for key, item in node.items():
                size += len(key) + 2
                pending.append(item)
        elif isinstance(node, list):
            size += len(node) + 1 if node else 2
            pending.extend(node)
        elif isinstance(node, str):
            size += len(node) + 2
        elif isinstance(node, bool):
            size += 4 if node else 5
        elif node is None:
            size += 4
        else:
            size += len(repr(node))
        if size > stop_above:
            return size
    return size


# --- RFC 7386 -------------------------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- RFC 6902 -------------------------------------------------------------------------------

def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _list_index(container: list, token: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > len(container) or (index == len(container) and not allow_end):
        raise PatchError(f"array index {index} out of bounds")
    return index


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"path not found: /{'/'.join(tokens)}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_list_index(node, token, False)]
        else:
            raise PatchError(f"path not found: /{'/'.join(tokens)}")
    return node


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path not found: {path}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_list_index(parent, last, False)]
    raise PatchError(f"path not found: {path}")


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, last, True), value)
    else:
        raise PatchError(f"path not found: {path}")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the document root")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"Unable to remove nonexistent key: {last}: missing value")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_list_index(parent, last, False))
    raise PatchError(f"path not found: {path}")


def _copied(doc: Any, source: str, copied_so_far: int, limit: int) -> tuple[Any, int]:
    """A copy of the value at `source` and the accumulated size of all copies, refused (422, as
    evanphx/json-patch's AccumulatedCopySizeError) before anything is copied once the copies of one patch
    would add more than `limit` bytes: repeated copies of a subtree cannot build a huge document."""
    value = _get(doc, source)
    total = copied_so_far + json_size(value, limit - copied_so_far)
    if total > limit:
        raise PatchError(f"Unable to complete the copy, the accumulated size increase of copy is {total}, "
                         f"exceeding the limit {limit}", code=422)
    return copy.deepcopy(value), total


def json_patch(target: Any, operations: Any, limits: PatchLimits = LIMITS) -> Any:
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    copied = 0
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"invalid json patch operation: {operation!r}")
        op, path = operation["op"], operation["path"]
        if op in ("add", "replace", "test") and "value" not in operation:
            raise PatchError(f"missing value for {op} operation")
        if op == "add":
            doc = _add(doc, path, copy.deepcopy(operation["value"]))
        elif op == "remove":
            doc, _ = _remove(doc, path)
        elif op == "replace":
            doc, _ = _remove(doc, path) if _pointer(path) else (doc, None)
            doc = _add(doc, path, copy.deepcopy(operation["value"]))
        elif op == "move":
            doc, value = _remove(doc, operation["from"])
            doc = _add(doc, path, value)
        elif op == "copy":
            value, copied = _copied(doc, operation["from"], copied, limits.max_copy_bytes)
            doc = _add(doc, path, value)
        elif op == "test":
            if _get(doc, path) != operation["value"]:
                raise PatchError(f"testing value {path} failed: test failed", code=422)
        else:
            raise PatchError(f"Unexpected kind: {op}")
    return doc


# --- strategic merge ------------------------------------------------------------------------

def strategic_merge_patch(target: Any, patch: Any, merge_keys: Mapping[str, str] = MERGE_KEYS) -> Any:
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    return _merge_map(copy.deepcopy(target) if isinstance(target, dict) else {}, patch, "", merge_keys)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_directive(key: str) -> bool:
    return key in (PATCH_DIRECTIVE, RETAIN_KEYS) or key.startswith((SET_ELEMENT_ORDER, DELETE_FROM_PRIMITIVE_LIST))


def _merge_map(original: dict, patch: dict, path: str, merge_keys: Mapping[str, str]) -> dict:
    directive = patch.get(PATCH_DIRECTIVE)
    if directive == "replace":
        return _merge_map({}, {k: v for k, v in patch.items() if k != PATCH_DIRECTIVE}, path, merge_keys)
    if directive == "delete":
        return {}
    if directive not in (None, "merge"):
        raise PatchError(f"Unknown patch type: {directive} in map: {patch}")
    retain = patch.get(RETAIN_KEYS)
    if retain is not None:
        # retainKeys strategy (a union such as Deployment strategy or a volume source): fields the patch
        # does not list are cleared from the original.
        if not isinstance(retain, list):
            raise PatchError(f"invalid type for {RETAIN_KEYS}: expected a list, got {retain!r}")
        for key in patch:
            if not _is_directive(key) and patch[key] is not None and key not in retain:
                raise PatchError(f"all fields in patch must be in {RETAIN_KEYS}: {key} is not")
        original = {k: v for k, v in original.items() if k in retain}
    server_lists = {key: original.get(key[len(SET_ELEMENT_ORDER):]) for key in patch
                    if key.startswith(SET_ELEMENT_ORDER)}
    for key, value in patch.items():
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            field = key[len(DELETE_FROM_PRIMITIVE_LIST):]
            if isinstance(original.get(field), list) and isinstance(value, list):
                original[field] = [item for item in original[field] if item not in value]
            continue
        if _is_directive(key):
            continue
        field_path = _join(path, key)
        if value is None:
            original.pop(key, None)
        elif isinstance(value, dict):
            current = original.get(key)
            merged = _merge_map(current if isinstance(current, dict) else {}, value, field_path, merge_keys)
            if value.get(PATCH_DIRECTIVE) == "delete":
                original.pop(key, None)
            else:
                original[key] = merged
        elif isinstance(value, list) and field_path in merge_keys:
            current = original.get(key)
            original[key] = _merge_list(current if isinstance(current, list) else [], value, field_path,
                                        merge_keys)
        else:
            original[key] = _strip_directives(value)
    for key, order in patch.items():
        if key.startswith(SET_ELEMENT_ORDER):
            field = key[len(SET_ELEMENT_ORDER):]
            field_path = _join(path, field)
            if isinstance(original.get(field), list) and isinstance(order, list) and field_path in merge_keys:
                original[field] = _ordered(original[field], order, server_lists[key] or [], merge_keys[field_path])
    return original


def _strip_directives(value: Any) -> Any:
    """A value set wholesale (a new list element, a non-merging list) carries no directives into storage."""
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not _is_directive(k) and v is not None}
    if isinstance(value, list):
        return [_strip_directives(item) for item in value]
    return copy.deepcopy(value)


def _identity(item: Any, merge_key: str) -> Any:
    if merge_key == PRIMITIVE_MERGE:
        return item
    return item.get(merge_key) if isinstance(item, dict) else None


def _ordered(items: list, order: list, server: list, merge_key: str) -> list:
    """$setElementOrder: the listed elements in the given order, merged with the elements it does not name
    (set by others, in their server order) as upstream's mergeSortedSlice: of the two heads, the one
    earlier in the server's list goes first; a head the server did not have goes first."""
    position = {_identity(entry, merge_key): index for index, entry in enumerate(order)}
    server_index = {_identity(item, merge_key): index for index, item in enumerate(server)}
    listed = deque(sorted((item for item in items if _identity(item, merge_key) in position),
                          key=lambda item: position[_identity(item, merge_key)]))
    unlisted = deque(item for item in items if _identity(item, merge_key) not in position)
    result: list = []
    while listed and unlisted:
        listed_at = server_index.get(_identity(listed[0], merge_key))
        unlisted_at = server_index.get(_identity(unlisted[0], merge_key))
        take_unlisted = listed_at is not None and unlisted_at is not None and unlisted_at < listed_at
        result.append(unlisted.popleft() if take_unlisted else listed.popleft())
    return result + list(listed) + list(unlisted)


def _merge_list(original: list, patch: list, path: str, merge_keys: Mapping[str, str]) -> list:
    if any(isinstance(item, dict) and item.get(PATCH_DIRECTIVE) == "replace" for item in patch):
        return [_strip_directives(item) for item in patch
                if not (isinstance(item, dict) and PATCH_DIRECTIVE in item and len(item) == 1)]
    merge_key = merge_keys[path]
    result = copy.deepcopy(original)
    if merge_key == PRIMITIVE_MERGE:
        for item in patch:
            if item not in result:
                result.append(copy.deepcopy(item))
        return result
    # Indexes of the elements by merge key value, built in one pass, so a long patch list against a long
    # list stays linear; deleted elements become None and are dropped at the end.
    slots: list[Any] = list(result)
    positions: dict[Any, deque[int]] = {}
    for index, existing in enumerate(slots):
        if isinstance(existing, dict):
            positions.setdefault(_hashable(existing.get(merge_key)), deque()).append(index)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"{path}: expected a map with merge key {merge_key!r}, got {item!r}")
        if merge_key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
        same_key = positions.setdefault(_hashable(item[merge_key]), deque())
        if item.get(PATCH_DIRECTIVE) == "delete":
            if same_key:
                slots[same_key.popleft()] = None
            continue
        if not same_key:
            same_key.append(len(slots))
            slots.append(_merge_map({}, item, path, merge_keys))
        else:
            slots[same_key[0]] = _merge_map(slots[same_key[0]], item, path, merge_keys)
    return [slot for slot in slots if slot is not None]


def _hashable(value: Any) -> Any:
    """A merge key value usable as a dict key (keys are strings or numbers; anything else by its JSON)."""
    try:
        hash(value)
        return (type(value).__name__, value)
    except TypeError:
        return ("json", json.dumps(value, sort_keys=True))


def apply_patch(patch_type: str, target: dict, patch: Any, limits: PatchLimits = LIMITS) -> dict:
    """The patched object; a result nesting deeper than `limits.max_depth` is refused (422) and one larger
    than `limits.max_result_bytes` (413) before anything else sees it."""
    if patch_type == JSON_PATCH:
        result = json_patch(target, patch, limits)
    elif patch_type == MERGE_PATCH:
        if not isinstance(patch, dict):
            raise PatchError("merge patch must be a JSON object")
        result = merge_patch(target, patch)
    elif patch_type == STRATEGIC_MERGE_PATCH:
        result = strategic_merge_patch(target, patch)
    else:
        raise PatchError(f"unsupported patch type {patch_type}", code=415)
    if not isinstance(result, dict):
        raise PatchError("the patch produced a non-object document")
    _check_result(result, limits)
    return result


def _check_result(result: dict, limits: PatchLimits) -> None:
    if exceeds_depth(result, limits.max_depth):  # before anything recursive (copies, encoding) sees it
        raise PatchError("the patched object nests deeper than the allowed maximum depth of "
                         f"{limits.max_depth}", code=422)
    size = len(_ENCODER.encode(result))  # bounded: the body and the copies are, and so is the target
    if size > limits.max_result_bytes:
        raise PatchError(f"Request entity too large: limit is {limits.max_result_bytes}", code=413)
