"""Field sets as FieldsV1: paths of elements "f:<field>", "k:<json key>" (an item of a list merged by key),
"v:<json value>" (an item of a set-like list of scalars). Which lists are keyed comes from the
strategic-merge table in apiserver/patch.py, so apply and patch agree on list identity."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Union

from apiserver.patch import MERGE_KEYS, PRIMITIVE_MERGE

Path = tuple[str, ...]
FieldSet = set[Path]

# Fields that are never owned: identity and bookkeeping the server sets (upstream's reset fields); status
# belongs to the status subresource.
_UNOWNED_TOP = frozenset({"apiVersion", "kind"})
_UNOWNED_META = frozenset({"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                           "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"})
# Maps whose value is owned as a whole (upstream's structType/mapType=atomic): label selectors.
ATOMIC_MAPS = frozenset({"spec.selector", "spec.template.spec.nodeSelector", "spec.nodeSelector"})
# Structs a Go object always carries (non-pointer fields): no "." of their own when first written.
_ALWAYS_PRESENT = frozenset({"metadata", "spec", "spec.strategy", "spec.template", "spec.template.metadata",
                             "spec.template.spec", "spec.template.spec.containers", "spec.containers"})


MergeKey = Union[str, tuple[str, ...]]  # a field, several (x-kubernetes-list-map-keys), or PRIMITIVE_MERGE (a set)

# Apply keys some lists by more fields than strategic merge (upstream's x-kubernetes-list-map-keys against its
# patchMergeKey, as apiserver/openapi_schemas/patch_semantics.py publishes them): a Service's ports by port and
# protocol, so that 53/UDP and 53/TCP are two items. A key field the applier leaves out takes its schema default.
_WIDER_KEYS: dict[str, tuple[str, ...]] = {"port": ("port", "protocol"), "containerPort": ("containerPort", "protocol"),
                                           "topologyKey": ("topologyKey", "whenUnsatisfiable")}
APPLY_MERGE_KEYS: dict[str, MergeKey] = {
    path: _WIDER_KEYS.get(key, key) if isinstance(key, str) else key for path, key in MERGE_KEYS.items()}
KEY_DEFAULTS: Mapping[str, Any] = {"protocol": "TCP"}


@dataclass(frozen=True)
class Layout:
    """How a kind's fields are owned: lists merged by key (merge_keys), maps owned whole (atomic_maps), structs
    that are always there and so never recorded as created (always_present). Dotted paths without indexes."""
    merge_keys: Mapping[str, MergeKey] = field(default_factory=lambda: APPLY_MERGE_KEYS)
    atomic_maps: frozenset[str] = ATOMIC_MAPS
    always_present: frozenset[str] = _ALWAYS_PRESENT


BUILTIN = Layout()


def key_fields(merge_key: MergeKey) -> tuple[str, ...]:
    return merge_key if isinstance(merge_key, tuple) else (merge_key,)


def _dotted(dotted: str, key: str) -> str:
    return f"{dotted}.{key}" if dotted else key


def key_value(item: Any, key: str) -> Any:
    """An item's value of one of its list's key fields, defaulted as the schema defaults it."""
    if not isinstance(item, dict):
        return None
    value = item.get(key)
    return KEY_DEFAULTS.get(key) if value is None else value


def item_element(item: Any, merge_key: MergeKey) -> str:
    if merge_key == PRIMITIVE_MERGE:
        return "v:" + json.dumps(item, separators=(",", ":"))
    keys = key_fields(merge_key)
    return "k:" + json.dumps({k: key_value(item, k) for k in keys}, separators=(",", ":"))


def item_matches(item: Any, element_keys: Mapping[str, Any]) -> bool:
    return isinstance(item, dict) and all(key_value(item, k) == v for k, v in element_keys.items())


CONTAINER = object()  # the value of a map, keyed list or list item whose fields are paths of their own


def _walk(value: Any, dotted: str, path: Path, layout: Layout, nodes: bool) -> Iterator[tuple[Path, Any]]:
    merge_keys = layout.merge_keys
    if isinstance(value, dict) and value and dotted not in layout.atomic_maps:
        if nodes and path and dotted not in layout.always_present:
            yield path, CONTAINER
        for key, child in value.items():
            yield from _walk(child, _dotted(dotted, key), path + (f"f:{key}",), layout, nodes)
    elif isinstance(value, list) and dotted in merge_keys:
        if nodes and value and dotted not in layout.always_present:
            yield path, CONTAINER
        merge_key = merge_keys[dotted]
        for item in value:
            item_path = path + (item_element(item, merge_key),)
            if merge_key != PRIMITIVE_MERGE and isinstance(item, dict):
                yield item_path, CONTAINER
                for key, child in item.items():
                    yield from _walk(child, _dotted(dotted, key), item_path + (f"f:{key}",), layout, nodes)
            else:
                yield item_path, item
    elif path:
        yield path, value


def field_values(obj: Any, nodes: bool = False, subresource: str = "", layout: Layout = BUILTIN) -> dict[Path, Any]:
    """The owned paths of an object with their values (CONTAINER for maps, lists and items that have fields
    of their own): leaves (scalars, atomic lists and maps, empty maps) and list items. `nodes` adds the maps
    and keyed lists themselves (what an Update that creates them records as ".")."""
    values: dict[Path, Any] = {}
    if not isinstance(obj, dict):
        return values
    for key, child in obj.items():
        if key in _UNOWNED_TOP or (key == "status") != (subresource == "status") and key != "metadata":
            continue  # a status write changes only status (and metadata), any other write never status
        if key == "metadata" and isinstance(child, dict):
            child = {name: value for name, value in child.items() if name not in _UNOWNED_META}
            if not child:
                continue
        values.update(_walk(child, key, (f"f:{key}",), layout, nodes))
    return values


def field_set(obj: Any, nodes: bool = False, subresource: str = "", layout: Layout = BUILTIN) -> FieldSet:
    return set(field_values(obj, nodes, subresource, layout))


_MISSING = object()


def value_at(obj: Any, path: Path) -> Any:
    """The value at a path, or _MISSING."""
    node = obj
    for element in path:
        kind, _, name = element.partition(":")
        if kind == "f" and isinstance(node, dict) and name in node:
            node = node[name]
        elif kind == "k" and isinstance(node, list):
            wanted_keys = json.loads(name)
            node = next((item for item in node if item_matches(item, wanted_keys)), _MISSING)
        elif kind == "v" and isinstance(node, list):
            wanted = json.loads(name)
            node = wanted if wanted in node else _MISSING
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def missing(value: Any) -> bool:
    return value is _MISSING


def leaf_value(obj: Any, path: Path) -> Any:
    """For comparisons: a list item or map compares by presence only (its fields are paths of their own)."""
    value = value_at(obj, path)
    if isinstance(value, dict) and value and not path[-1].startswith("f:"):
        return True
    return value


def remove(obj: dict, path: Path) -> None:
    """Remove the field or list item at `path`, and the maps and lists this leaves empty."""
    parents = [obj]
    for element in path[:-1]:
        node = value_at(parents[-1], (element,))
        if missing(node) or not isinstance(node, (dict, list)):
            return
        parents.append(node)
    _remove_element(parents[-1], path[-1])
    for depth in range(len(path) - 1, 0, -1):
        if parents[depth] not in ({}, []):
            break
        _remove_element(parents[depth - 1], path[depth - 1])


def _remove_element(container: Any, element: str) -> None:
    kind, _, name = element.partition(":")
    if kind == "f" and isinstance(container, dict):
        container.pop(name, None)
    elif kind == "k" and isinstance(container, list):
        wanted_keys = json.loads(name)
        container[:] = [item for item in container if not item_matches(item, wanted_keys)]
    elif kind == "v" and isinstance(container, list):
        wanted = json.loads(name)
        container[:] = [item for item in container if item != wanted]


def fields_v1_of(obj: Any, subresource: str = "", layout: Layout = BUILTIN) -> dict:
    """to_fields_v1(field_set(obj, nodes=True, subresource=...)) in one walk, without building paths: what a
    create records for its manager (every write's hot path)."""
    tree: dict = {}
    if not isinstance(obj, dict):
        return tree
    for key, child in obj.items():
        if key in _UNOWNED_TOP or (key == "status") != (subresource == "status") and key != "metadata":
            continue
        if key == "metadata" and isinstance(child, dict):
            child = {name: value for name, value in child.items() if name not in _UNOWNED_META}
            if not child:
                continue
        subtree = _subtree(child, key, layout)
        if subtree is not None:
            tree[f"f:{key}"] = subtree
    return _sorted_tree(tree)


def _subtree(value: Any, dotted: str, layout: Layout) -> dict | None:
    """The FieldsV1 node (children unsorted) of a value at an owned path, None when field_values() would
    yield nothing at or below it (an empty keyed list, or an always-present struct holding only those)."""
    if isinstance(value, dict) and value and dotted not in layout.atomic_maps:
        children: dict = {}
        for key, child in value.items():
            subtree = _subtree(child, _dotted(dotted, key), layout)
            if subtree is not None:
                children[f"f:{key}"] = subtree
        return _node(dotted not in layout.always_present, children)
    if isinstance(value, list) and dotted in layout.merge_keys:
        merge_key = layout.merge_keys[dotted]
        children = {}
        for item in value:
            element = item_element(item, merge_key)
            if merge_key != PRIMITIVE_MERGE and isinstance(item, dict):
                fields: dict = {}
                for key, child in item.items():
                    subtree = _subtree(child, _dotted(dotted, key), layout)
                    if subtree is not None:
                        fields[f"f:{key}"] = subtree
                subtree = _node(True, fields)
            else:
                subtree = {}
            existing = children.get(element)
            children[element] = subtree if existing is None else _merged(existing, subtree)
        return _node(bool(value) and dotted not in layout.always_present, children)
    return {}


def _node(member: bool, children: dict) -> dict | None:
    """As to_fields_v1 marks a node: "." only for a member that has fields below it; {} for a member leaf."""
    if children:
        return {".": {}, **children} if member else children
    return {} if member else None


def _merged(first: dict, second: dict) -> dict:
    """Two FieldsV1 nodes of one path (list items with the same key): the union of their paths."""
    member = not first or "." in first or not second or "." in second
    children = {key: value for key, value in first.items() if key != "."}
    for key, value in second.items():
        if key != ".":
            children[key] = value if key not in children else _merged(children[key], value)
    return _node(member, children)


def _sorted_tree(node: dict) -> dict:
    """Children in path order ("." sorts before every "f:", "k:" and "v:" element), as to_fields_v1 writes."""
    return {key: _sorted_tree(node[key]) for key in sorted(node)}


def to_fields_v1(paths: FieldSet) -> dict:
    tree: dict = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    members = set(paths)

    def mark(node: dict, prefix: Path) -> dict:
        out = {}
        if node and prefix in members:
            out["."] = {}
        for element, child in node.items():
            out[element] = mark(child, prefix + (element,))
        return out
    return mark(tree, ())


def from_fields_v1(fields: Any, prefix: Path = ()) -> FieldSet:
    paths: FieldSet = set()
    if not isinstance(fields, dict):
        return paths
    for element, child in fields.items():
        if element == ".":
            paths.add(prefix)
        elif isinstance(child, dict) and child:
            paths |= from_fields_v1(child, prefix + (element,))
        else:
            paths.add(prefix + (element,))
    return paths


def path_string(path: Path) -> str:
    """Upstream's fieldpath.Path.String(): .spec.replicas, .spec.containers[name="a"].image, [="x"]."""
    text = ""
    for element in path:
        kind, _, name = element.partition(":")
        if kind == "f":
            text += f".{name}"
        elif kind == "k":
            keys = json.loads(name)
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        else:
            text += f"[={name}]"
    return text
