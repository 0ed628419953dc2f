"""One served version of a CustomResourceDefinition: its ResourceInfo, Strategy and Registry.

What upstream's customresource handler and strategy do, in the shape of our built-in kinds:
- request bodies and objects read from storage are pruned (unknown fields dropped unless
  x-kubernetes-preserve-unknown-fields), nulls of non-nullable fields dropped, and defaulted with the schema of
  the version they are read as (`conversion: None`: only apiVersion changes between versions);
- objects are stored under `/registry/<group>/<plural>/…` as the storage version;
- validation: metadata, the schema (kube-openapi messages, ratcheting on update), scale paths, embedded
  resources, list-type sets and maps; `/status` validates the status schema only;
- generation moves on any change but metadata; with the status subresource, status goes through `/status`;
- tables from additionalPrinterColumns, field selectors metadata.name/namespace plus selectableFields.
"""
from __future__ import annotations

import copy
import datetime
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from apiserver import errors, request_warnings
from apiserver.crd import definition, jsonpath
from apiserver.crd.gofmt import bad_value
from apiserver.crd.schema import apply_defaults, embedded_errors, list_errors, prune, prune_nulls
from apiserver.crd.validate import NO_OLD, validate
from apiserver.decoded_objects import DecodedObjects
from apiserver.errors import FieldError
from apiserver.fieldcheck import WrongType, check_types
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.openapi_schemas import DEFINITIONS
from apiserver.apply.fieldpath import Layout
from apiserver.patch import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, PRIMITIVE_MERGE
from apiserver.registry import Clock, Registry, encode, utc_now
from apiserver.storage.interface import KeyValue, Storage
from apiserver.tables import Column, Row, TableSpec, age, NAME_DESCRIPTION
from apiserver.validation import dns1123_subdomain, qualified_name, validate_meta_update, validate_object_meta

STANDARD_FINALIZERS = frozenset({"orphan", "foregroundDeletion", "kubernetes"})
MAX_INT32 = 2 ** 31 - 1
_REGISTRY_SERIALS = itertools.count()  # CustomResourceRegistry's decode scope


def _path_parts(path: str) -> list[str]:
    return path.lstrip(".").split(".") if path else []


def nested_get(obj: Any, path: str) -> tuple[Any, bool]:
    node = obj
    for part in _path_parts(path):
        if not isinstance(node, dict) or part not in node:
            return None, False
        node = node[part]
    return node, True


def nested_set(obj: Obj, path: str, value: Any) -> None:
    parts = _path_parts(path)
    node = obj
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def layout_of(schema: Obj | None) -> Layout:
    """Managed fields of a custom resource follow its schema, as upstream's type converter built from it: lists
    of x-kubernetes-list-type map are keyed by their x-kubernetes-list-map-keys, sets by value, other lists are
    atomic; x-kubernetes-map-type atomic maps are owned whole; only metadata is an always-present struct."""
    merge_keys: dict[str, Any] = {"metadata.finalizers": PRIMITIVE_MERGE, "metadata.ownerReferences": "uid"}
    atomic: set[str] = set()
    pending = [("", schema)] if isinstance(schema, dict) else []
    while pending:
        dotted, node = pending.pop()
        list_type = node.get("x-kubernetes-list-type")
        if dotted and node.get("type") == "array":
            keys = [str(k) for k in node.get("x-kubernetes-list-map-keys") or []]
            if list_type == "map" and keys:
                merge_keys[dotted] = keys[0] if len(keys) == 1 else tuple(keys)
            elif list_type == "set":
                merge_keys[dotted] = PRIMITIVE_MERGE
        if dotted and node.get("x-kubernetes-map-type") == "atomic":
            atomic.add(dotted)
        for key, child in (node.get("properties") or {}).items():
            if isinstance(child, dict) and not (not dotted and key == "metadata"):
                pending.append((f"{dotted}.{key}" if dotted else key, child))
        items = node.get("items")
        if isinstance(items, dict) and list_type == "map":
            pending.append((dotted, {k: v for k, v in items.items()
                                     if k not in ("x-kubernetes-list-type", "x-kubernetes-list-map-keys")}))
    return Layout(merge_keys, frozenset(atomic), frozenset({"metadata"}))


def info_for(crd: Obj, version: str) -> ResourceInfo:
    spec = definition.spec_of(crd)
    names = definition.accepted_names(crd)
    subresources = definition.subresources_for(crd, version)
    subs = tuple(name for name in ("status", "scale") if subresources.get(name) is not None)
    terminating = definition.is_true(crd, "Terminating")
    verbs = ("delete", "deletecollection", "get", "list", "watch") if terminating else \
        ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")
    entry = definition.version(crd, version) or {}
    deprecation = ""
    if entry.get("deprecated"):
        deprecation = entry.get("deprecationWarning") or _default_deprecation(crd, version)
    return ResourceInfo(str(spec.get("group")), version, str(names.get("kind")), str(names.get("plural")),
                        str(names.get("singular") or ""), spec.get("scope") == "Namespaced",
                        tuple(names.get("shortNames") or ()), tuple(names.get("categories") or ()), subs, (),
                        verbs, deprecation)


def _default_deprecation(crd: Obj, version: str) -> str:
    spec = definition.spec_of(crd)
    kind = (spec.get("names") or {}).get("kind")
    message = f"{spec.get('group')}/{version} {kind} is deprecated"
    newer = [str(v.get("name")) for v in definition.versions(crd) if v.get("served") and not v.get("deprecated")
             and definition.kube_version_key(str(v.get("name"))) < definition.kube_version_key(version)]
    if newer:
        message += f"; use {spec.get('group')}/{sorted(newer, key=definition.kube_version_key)[0]} {kind}"
    return message


def _finalizer_warnings(obj: Obj, old: Obj | None) -> list[str]:
    new = set((obj.get("metadata") or {}).get("finalizers") or [])
    if old is not None:
        new -= set((old.get("metadata") or {}).get("finalizers") or [])
    warnings = []
    where = "metadata.finalizers"
    for name in sorted(str(f) for f in new):
        warnings += [f'{where}: "{name}": {p}' for p in qualified_name(name)]
        if "/" not in name and name not in STANDARD_FINALIZERS:
            hint = " including a path (/)" if "." in name else ""
            warnings.append(f'{where}: "{name}": prefer a domain-qualified finalizer name{hint} to avoid accidental '
                            "conflicts with other finalizer writers")
    return warnings


@dataclass
class CustomResourceStrategy(Strategy):
    """One version of a CRD (a snapshot of it: a CRD change builds new strategies)."""
    crd: Obj = field(default_factory=dict)
    version: str = ""
    schemas: dict[str, Obj | None] = field(default_factory=dict)  # by version, for objects stored as another

    def __post_init__(self) -> None:
        self.schema = definition.schema_for(self.crd, self.version)
        subresources = definition.subresources_for(self.crd, self.version)
        self.status_enabled = subresources.get("status") is not None
        self.scale = subresources.get("scale") if isinstance(subresources.get("scale"), dict) else None
        self.has_status = self.status_enabled
        self.selectable = [p for p in definition.selectable_fields_for(self.crd, self.version)]
        meta_labels = ("metadata.name", "metadata.namespace") if self.info.namespaced else ("metadata.name",)
        self.field_labels = meta_labels + tuple(p.lstrip(".") for p in self.selectable)
        self.layout = layout_of(self.schema)
        self.columns = definition.columns_for(self.crd, self.version)
        self._parsed_columns = []
        for column in self.columns:
            try:
                self._parsed_columns.append(jsonpath.parse(str(column.get("jsonPath") or "")))
            except jsonpath.JSONPathError:
                self._parsed_columns.append(None)

    # shape ----------------------------------------------------------------------------------------------
    def normalize(self, obj: Obj, version: str | None = None) -> list[str]:
        """Prune, drop non-nullable nulls and default with the schema of `version` (this one by default), as
        upstream's decoding of request bodies and stored objects does. Returns the pruned paths."""
        schema = self.schema if version is None or version == self.version else self.schemas.get(version)
        removed = prune(obj, schema)
        prune_nulls(obj, schema)
        apply_defaults(obj, schema)
        return removed

    def unknown_fields(self, body: Any) -> list[str]:
        """What pruning would remove from a request body (fieldValidation Strict/Warn)."""
        if not isinstance(body, dict):
            return []
        copied = copy.deepcopy(body)
        removed = prune(copied, self.schema)
        meta = body.get("metadata")
        if isinstance(meta, dict):
            known = set(DEFINITIONS["meta.ObjectMeta"].fields)
            removed += [f"metadata.{key}" for key in meta if key not in known]
        return removed

    def default(self, obj: Obj) -> None:
        self.normalize(obj)

    def patch_types(self) -> tuple[str, ...]:
        return (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)

    def field_layout(self) -> Layout:
        return self.layout

    def prepare_for_create(self, obj: Obj) -> None:
        if self.status_enabled:
            obj.pop("status", None)
        for warning in _finalizer_warnings(obj, None):
            request_warnings.add(warning)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        for warning in _finalizer_warnings(new, old):
            request_warnings.add(warning)

    def admit(self, new: Obj, old: Obj | None) -> list[FieldError]:
        if old is None and definition.is_true(self.crd, "Terminating"):
            raise errors.forbidden_error(self.info.group, self.info.plural, new["metadata"].get("name", ""),
                                         "create not allowed while custom resource definition is terminating")
        return []

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        """Generation moves on any change but metadata (status too, unless it has a subresource of its own:
        then the main resource cannot change it and /status writes never move generation)."""
        ignored = ("metadata", "status") if self.status_enabled else ("metadata",)
        return {k: v for k, v in new.items() if k not in ignored} != {k: v for k, v in old.items() if k not in ignored}

    # validation -----------------------------------------------------------------------------------------
    def _scale_errors(self, obj: Obj, spec: bool = True) -> list[FieldError]:
        if self.scale is None:
            return []
        found = []
        paths = [("specReplicasPath", self.scale.get("specReplicasPath"))] if spec else []
        paths.append(("statusReplicasPath", self.scale.get("statusReplicasPath")))
        for _, path in paths:
            if not path:
                continue
            value, exists = nested_get(obj, path)
            if not exists:
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                kind = {"str": "string", "float": "float64", "bool": "bool", "dict": "map[string]interface {}",
                        "list": "[]interface {}", "NoneType": "<nil>"}.get(type(value).__name__, type(value).__name__)
                found.append(errors.invalid(path, 0, f"{path.lstrip('.')} accessor error: {bad_value(value)} is of "
                                                     f"the type {kind}, expected int64"))
            elif value < 0:
                found.append(errors.invalid(path, value, "should be a non-negative integer"))
            elif value > MAX_INT32:
                found.append(errors.invalid(path, value, f"should be less than or equal to {MAX_INT32}"))
        selector = self.scale.get("labelSelectorPath")
        if selector:
            value, exists = nested_get(obj, selector)
            if exists and not isinstance(value, str):
                found.append(errors.invalid(selector, "", f"{selector.lstrip('.')} accessor error: {value} is of the "
                                                          f"type {type(value).__name__}, expected string"))
        return found

    def _type_meta_errors(self, obj: Obj) -> list[FieldError]:
        found = []
        if obj.get("kind") != self.info.kind:
            found.append(errors.invalid("kind", obj.get("kind"), f"must be {self.info.kind}"))
        if obj.get("apiVersion") != self.info.api_version:
            found.append(errors.invalid("apiVersion", obj.get("apiVersion"), f"must be {self.info.api_version}"))
        return found

    def validate(self, obj: Obj) -> list[FieldError]:
        found = self._type_meta_errors(obj)
        if found:
            return found
        found = validate_object_meta(obj, self.info.namespaced, dns1123_subdomain)
        found += validate(obj, self.schema)
        found += self._scale_errors(obj)
        found += embedded_errors(obj, self.schema)
        found += list_errors(obj, self.schema)
        return found

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        found = self._type_meta_errors(new)
        if found:
            return found
        found = validate_object_meta(new, self.info.namespaced, dns1123_subdomain) + validate_meta_update(new, old)
        found += validate(new, self.schema, old=old)
        found += self._scale_errors(new)
        found += embedded_errors(new, self.schema)
        if not list_errors(old, self.schema):
            found += list_errors(new, self.schema)
        return found

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        found = self._type_meta_errors(new)
        if found:
            return found
        found = validate_meta_update(new, old)
        status_schema = ((self.schema or {}).get("properties") or {}).get("status")
        if "status" in new and isinstance(status_schema, dict):
            found += validate(new["status"], status_schema, "status", old.get("status", NO_OLD))
        found += self._scale_errors(new, spec=False)
        new_lists = list_errors(new, self.schema)
        if new_lists and not list_errors(old, self.schema):
            found += new_lists
        return found

    # reads ----------------------------------------------------------------------------------------------
    def field_values(self, obj: Obj) -> dict[str, str]:
        values = super().field_values(obj)
        for path in self.selectable:
            found = jsonpath.find(path, obj)
            value = found[0] if found else None
            values[path.lstrip(".")] = "" if value is None else \
                ("true" if value is True else "false" if value is False else str(value))
        return values

    def table(self, now: datetime.datetime) -> TableSpec:
        columns = [Column("Name", "string", "name", NAME_DESCRIPTION)]
        for column in self.columns:
            description = column.get("description") or \
                f"Custom resource definition column (in JSONPath format): {column.get('jsonPath')}"
            columns.append(Column(str(column.get("name")), str(column.get("type")), str(column.get("format") or ""),
                                  description, int(column.get("priority") or 0)))

        def row(obj: Obj) -> Row:
            cells: list[Any] = [obj["metadata"]["name"]]
            for column, parsed in zip(self.columns, self._parsed_columns):
                found = jsonpath.find(parsed, obj) if parsed is not None else []
                cells.append(_cell(str(column.get("type")), found[0] if found else None, now))
            return Row(cells)
        return TableSpec(columns=columns, row=row)

    # scale ----------------------------------------------------------------------------------------------
    def scale_of(self, obj: Obj) -> Obj:
        assert self.scale is not None
        meta = obj["metadata"]
        replicas, _ = nested_get(obj, str(self.scale.get("specReplicasPath") or ""))
        status_replicas, _ = nested_get(obj, str(self.scale.get("statusReplicasPath") or ""))
        selector = ""
        if self.scale.get("labelSelectorPath"):
            value, _ = nested_get(obj, str(self.scale["labelSelectorPath"]))
            selector = value if isinstance(value, str) else ""
        scale_meta = {key: meta[key] for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                      if key in meta}
        status: Obj = {"replicas": status_replicas if isinstance(status_replicas, int) else 0}
        if selector:
            status["selector"] = selector
        return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
                "spec": {"replicas": replicas if isinstance(replicas, int) else 0}, "status": status}

    def set_replicas(self, obj: Obj, replicas: int) -> None:
        assert self.scale is not None
        nested_set(obj, str(self.scale.get("specReplicasPath")), replicas)


def _cell(kind: str, value: Any, now: datetime.datetime) -> Any:
    """cellForJSONValue: the cell of a printer column of this type (None when the value does not fit)."""
    if value is None:
        return None
    if kind == "string":
        return jsonpath.text_of(value)
    if kind == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return int(value)
        return None
    if kind == "number":
        if isinstance(value, bool):
            return None
        return float(value) if isinstance(value, (int, float)) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "date":
        if isinstance(value, str):
            text = age(value, now)
            return "<invalid>" if text == "<unknown>" else text
        return None
    return None


class CustomResourceRegistry(Registry):
    """Registry of one version of a custom resource: keys under `/registry/<group>/<plural>/`, stored as the
    storage version, read (and watched) as this version with its schema's pruning and defaults."""
    serves_cached_reads = False   # registries come and go with their CRD: no cache watch to leave behind
    serves_stored_bytes = False   # decode() prunes, defaults and converts

    def __init__(self, strategy: CustomResourceStrategy, storage: Storage, storage_version: str,
                 clock: Clock = utc_now, decoded: DecodedObjects | None = None):
        super().__init__(strategy, storage, clock, decoded)
        self.storage_version = storage_version
        # decode() prunes and defaults by this CRD's schemas: a registry rebuilt for a changed CRD (same
        # apiVersion and kind) must not be handed the objects its predecessor decoded.
        self._decode_scope = (self.info.api_version, f"{self.info.kind}#{next(_REGISTRY_SERIALS)}")
        self.crd_uid = (strategy.crd.get("metadata") or {}).get("uid", "")

    def key(self, namespace: str, name: str) -> str:
        base = f"/registry/{self.info.group}/{self.info.plural}/"
        return f"{base}{namespace}/{name}" if self.info.namespaced else f"{base}{name}"

    def prefix(self, namespace: str = "") -> str:
        base = f"/registry/{self.info.group}/{self.info.plural}/"
        return f"{base}{namespace}/" if self.info.namespaced and namespace else base

    def decode(self, kv: KeyValue) -> Obj:
        obj = json.loads(kv.value)
        stored_version = str(obj.get("apiVersion", "")).rpartition("/")[2]
        strategy: CustomResourceStrategy = self.strategy  # type: ignore[assignment]
        if stored_version and stored_version != strategy.version and stored_version in strategy.schemas:
            prune(obj, strategy.schemas[stored_version])
        strategy.normalize(obj)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if not meta.get("generation"):
            meta["generation"] = 1
        meta["resourceVersion"] = str(kv.mod_revision)
        obj["apiVersion"], obj["kind"] = self.info.api_version, self.info.kind
        return obj

    def encode(self, obj: Obj) -> bytes:
        stored = dict(obj)
        stored["apiVersion"] = f"{self.info.group}/{self.storage_version}"
        return encode(stored)

    def decode_body(self, obj: Any) -> Obj:
        obj = super().decode_body(obj)
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            try:
                check_types(DEFINITIONS, "meta.ObjectMeta", meta)
            except WrongType as wrong:
                raise errors.bad_request(f'{self.info.kind} in version "{self.info.version}" cannot be handled as a '
                                         f"{self.info.kind}: {wrong}") from None
        elif "metadata" in obj:
            raise errors.bad_request(f'{self.info.kind} in version "{self.info.version}" cannot be handled as a '
                                     f"{self.info.kind}: metadata must be an object")
        return obj


def registries_for(crd: Obj, storage: Storage, clock: Clock = utc_now,
                   decoded: DecodedObjects | None = None) -> dict[str, CustomResourceRegistry]:
    """A registry per served version of the CRD (the storage version's too, even when not served: the
    garbage collector and namespace deletion reach objects through it)."""
    schemas = {str(v.get("name")): definition.schema_for(crd, str(v.get("name"))) for v in definition.versions(crd)}
    stored = definition.storage_version(crd)
    wanted = definition.served_versions(crd)
    if stored and stored not in wanted:
        wanted.append(stored)
    result = {}
    for version in wanted:
        strategy = CustomResourceStrategy(info_for(crd, version), crd=crd, version=version, schemas=schemas)
        result[version] = CustomResourceRegistry(strategy, storage, stored, clock, decoded)
    return result
