"""metadata.managedFields: who owns which fields, kept on every write (Update) and driving Apply.

Entries are keyed as upstream's: (manager, operation, apiVersion, subresource). An Update takes ownership of
the fields it changes (from everyone else); an Apply owns exactly the fields of its configuration, fails
on fields another manager owns with a different value (unless forced), and removes fields it applied
before and no longer applies when nobody else owns them.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable

from apiserver.apply.fieldpath import (BUILTIN, CONTAINER, FieldSet, Layout, Path, field_set, field_values,
                                       fields_v1_of, from_fields_v1, key_fields, key_value, leaf_value, missing,
                                       path_string, remove, to_fields_v1, value_at)
from apiserver.patch import PRIMITIVE_MERGE

Obj = dict[str, Any]
APPLY, UPDATE = "Apply", "Update"


@dataclass
class Entry:
    manager: str
    operation: str
    api_version: str
    time: str
    fields: FieldSet
    subresource: str = ""

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return self.manager, self.operation, self.api_version, self.subresource

    def describe(self) -> str:
        """How a conflict names the manager (upstream's printManager on the manager identifier)."""
        text = f'"{self.manager}"'
        if self.subresource:
            text += f' with subresource "{self.subresource}"'
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text

    def to_json(self) -> Obj:
        return _entry_json(self.manager, self.operation, self.api_version, self.time, to_fields_v1(self.fields),
                           self.subresource)


def _entry_json(manager: str, operation: str, api_version: str, time: str, fields_v1: dict,
                subresource: str) -> Obj:
    entry = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": time,
             "fieldsType": "FieldsV1", "fieldsV1": fields_v1}
    if subresource:
        entry["subresource"] = subresource
    return entry


@dataclass(frozen=True)
class Conflict:
    manager: str  # Entry.describe() of the owner
    path: Path


class ApplyConflict(Exception):
    def __init__(self, conflicts: list[Conflict]):
        super().__init__(conflict_message(conflicts))
        self.conflicts = conflicts


def conflict_message(conflicts: list[Conflict]) -> str:
    if len(conflicts) == 1:
        return f"Apply failed with 1 conflict: conflict with {conflicts[0].manager}: {path_string(conflicts[0].path)}"
    by_manager: dict[str, list[Path]] = {}
    for conflict in conflicts:
        by_manager.setdefault(conflict.manager, []).append(conflict.path)
    lines = []
    for manager in sorted(by_manager):
        lines.append(f"conflicts with {manager}:")
        lines += [f"- {path_string(path)}" for path in by_manager[manager]]
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


def _parse(raw: Any) -> Entry | None:
    if not isinstance(raw, dict) or not raw.get("manager") and not raw.get("fieldsV1"):
        return None
    return Entry(raw.get("manager", ""), raw.get("operation", UPDATE), raw.get("apiVersion", ""),
                 raw.get("time", ""), from_fields_v1(raw.get("fieldsV1")), raw.get("subresource", ""))


def parse_entries(obj: Obj) -> list[Entry]:
    entries = (_parse(raw) for raw in (obj.get("metadata") or {}).get("managedFields") or [])
    return [entry for entry in entries if entry is not None]


def _store(obj: Obj, entries: Iterable[Entry]) -> None:
    kept = [entry.to_json() for entry in entries if entry.fields]
    meta = obj.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)


def _entry(entries: list[Entry], manager: str, operation: str, api_version: str, subresource: str,
           now: str) -> Entry:
    for entry in entries:
        if entry.identity == (manager, operation, api_version, subresource):
            return entry
    entry = Entry(manager, operation, api_version, now, set(), subresource)
    entries.append(entry)
    return entry


def _changed(new: Obj, old: Obj | None, subresource: str, layout: Layout) -> tuple[FieldSet, FieldSet]:
    """(paths added or changed, paths removed) from old to new, maps created included as nodes. Maps and
    lists with fields of their own compare by presence; their fields are compared one by one."""
    new_values = field_values(new, nodes=True, subresource=subresource, layout=layout)
    old_values = field_values(old, nodes=True, subresource=subresource, layout=layout) if old is not None else {}
    changed = {path for path, value in new_values.items()
               if path not in old_values or (value is not CONTAINER and old_values[path] != value)}
    return changed, old_values.keys() - new_values.keys()


def record_update(new: Obj, old: Obj | None, manager: str, subresource: str, now: str,
                  layout: Layout = BUILTIN) -> None:
    """Bookkeeping of a create (old None) or an update by `manager`: it owns what it changed, others lose
    it; removed fields leave every set. Managed fields the client wrote itself are kept as written."""
    new_meta = new.setdefault("metadata", {})
    old_fields = (old or {}).get("metadata", {}).get("managedFields")
    if "managedFields" in new_meta and new_meta["managedFields"] != old_fields:
        if new_meta["managedFields"] in ([], [{}]):
            new_meta.pop("managedFields")  # upstream: an empty list (or [{}]) resets them
        return
    if old is None:  # a create: the manager owns every field there is (one walk, no path sets)
        fields_v1 = fields_v1_of(new, subresource, layout)
        if fields_v1:
            new_meta["managedFields"] = [_entry_json(manager, UPDATE, new.get("apiVersion", ""), now, fields_v1,
                                                     subresource)]
        return
    changed, removed = _changed(new, old, subresource, layout)
    if not changed and not removed:
        if old_fields is not None:
            new_meta["managedFields"] = old_fields
        return
    lost = changed | removed
    identity = (manager, UPDATE, new.get("apiVersion", ""), subresource)
    kept: list[Obj] = []
    mine_at: int | None = None
    for raw in old_fields or []:
        if not isinstance(raw, dict):
            continue
        if _raw_identity(raw) == identity:
            mine_at = len(kept)
            kept.append(raw)
        elif any(_owns(raw.get("fieldsV1"), path) for path in lost):
            entry = _parse(raw)
            if entry is not None and entry.fields - lost:
                entry.fields -= lost
                kept.append(entry.to_json())
        else:
            kept.append(raw)  # untouched: kept as stored
    if mine_at is not None:
        mine = _parse(kept[mine_at]) or Entry(manager, UPDATE, identity[2], now, set(), subresource)
        mine.fields = (mine.fields - removed) | changed
        if changed:
            mine.time = now
        if mine.fields:
            kept[mine_at] = mine.to_json()
        else:
            del kept[mine_at]
    elif changed:
        kept.append(Entry(manager, UPDATE, identity[2], now, changed, subresource).to_json())
    if kept:
        new_meta["managedFields"] = kept
    else:
        new_meta.pop("managedFields", None)


def _raw_identity(raw: Obj) -> tuple[str, str, str, str]:
    return (raw.get("manager", ""), raw.get("operation", UPDATE), raw.get("apiVersion", ""),
            raw.get("subresource", ""))


def _owns(fields_v1: Any, path: Path) -> bool:
    """Whether a FieldsV1 tree holds `path` (without parsing the whole tree)."""
    node = fields_v1
    for element in path:
        if not isinstance(node, dict) or element not in node:
            return False
        node = node[element]
    return node == {} or (isinstance(node, dict) and "." in node)


def _merge(live: Any, config: Any, dotted: str, layout: Layout) -> Any:
    """The applied configuration merged into the live object: maps field by field (but atomic ones), lists
    merged by key as strategic merge does (the layout's merge keys), everything else replaced."""
    if isinstance(live, dict) and isinstance(config, dict) and dotted not in layout.atomic_maps:
        merged = dict(live)
        for key, value in config.items():
            child = f"{dotted}.{key}" if dotted else key
            merged[key] = _merge(live.get(key), value, child, layout)
        return merged
    if isinstance(live, list) and isinstance(config, list) and dotted in layout.merge_keys:
        merge_key = layout.merge_keys[dotted]
        if merge_key == PRIMITIVE_MERGE:
            return list(live) + [item for item in config if item not in live]
        keys = key_fields(merge_key)
        merged = list(live)
        for item in config:
            index = next((i for i, existing in enumerate(merged) if isinstance(existing, dict) and
                          isinstance(item, dict) and all(key_value(existing, k) == key_value(item, k)
                                                         for k in keys)), None)
            if index is None:
                merged.append(copy.deepcopy(item))
            else:
                merged[index] = _merge(merged[index], item, dotted, layout)
        return merged
    return copy.deepcopy(config)


def _removals(previous: FieldSet, applied: FieldSet, owned_by_others: FieldSet) -> list[Path]:
    """What an applier stops applying and nobody else owns: leaves, and list items as a whole (shortest
    first: an item's key fields must still be there to find it). A map that merely contains fields (".")
    goes only once empty."""
    containers = {path[:depth] for path in previous for depth in range(1, len(path))}
    others_under = {path[:depth] for path in owned_by_others for depth in range(1, len(path) + 1)}
    gone = []
    for path in sorted(previous - applied - owned_by_others, key=len):
        is_item = path[-1].startswith(("k:", "v:"))
        if (is_item and path not in others_under) or (not is_item and path not in containers):
            gone.append(path)
    return gone


def apply(live: Obj | None, config: Obj, manager: str, force: bool, now: str, layout: Layout = BUILTIN) -> Obj:
    """Server-side apply of `config` by `manager` to `live` (None: create). Raises ApplyConflict."""
    config = copy.deepcopy(config)
    config.pop("status", None)
    config.setdefault("metadata", {}).pop("managedFields", None)
    applied = field_set(config, layout=layout)
    live = copy.deepcopy(live) if live is not None else {}
    entries = parse_entries(live)
    api_version = config.get("apiVersion") or live.get("apiVersion", "")
    mine = _entry(entries, manager, APPLY, api_version, "", now)
    others = [entry for entry in entries if entry is not mine]
    conflicts = []
    for path in sorted(applied):
        if leaf_value(config, path) == leaf_value(live, path) and not missing(value_at(live, path)):
            continue  # same value: shared ownership
        for entry in others:
            if path in entry.fields:
                conflicts.append(Conflict(entry.describe(), path))
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    changed = {conflict.path for conflict in conflicts}
    for entry in others:
        entry.fields -= changed
    result = _merge(live, config, "", layout)
    if "resourceVersion" not in config["metadata"]:
        result.get("metadata", {}).pop("resourceVersion", None)  # only a resourceVersion sent is a precondition
    owned_by_others = set().union(*(entry.fields for entry in others)) if others else set()
    for path in _removals(mine.fields, applied, owned_by_others):
        remove(result, path)
    if mine.fields != applied or not mine.time:
        mine.time = now
    mine.fields = applied
    _store(result, entries)
    return result
