"""The per-kind strategy contract and the defaults most kinds share."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from apiserver.apply.fieldpath import BUILTIN, Layout
from apiserver.errors import FieldError
from apiserver.fieldcheck import unknown_fields
from apiserver.patch import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from apiserver.tables import Column, Row, TableSpec
from shipmate.quantity import QuantityError, canonical
from apiserver.validation import NameValidator, dns1123_subdomain, validate_meta_update, validate_object_meta

Obj = dict[str, Any]


def canonicalize_quantities(resources: Any) -> None:
    """Rewrite parseable quantities in a resource map to canonical form, as upstream stores them."""
    if not isinstance(resources, dict):
        return
    for name, value in list(resources.items()):
        try:
            resources[name] = canonical(value)
        except QuantityError:
            pass  # reported by validation


@dataclass(frozen=True)
class ResourceInfo:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # e.g. ("status", "binding")
    # Served by a route of their own (pods/log, pods/exec proxied to the node): listed in discovery only.
    proxied_subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    deprecation: str = ""  # sent as a Warning header on every request for the resource, as upstream

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass
class Strategy:
    """Behaviour of one kind. Subclasses override what differs from these defaults."""
    info: ResourceInfo
    name_validator: NameValidator = dns1123_subdomain
    allow_create_on_update: bool = False
    has_status: bool = False
    tracks_generation: bool = True  # False: no metadata.generation (upstream sets it only for some kinds)
    field_labels: tuple[str, ...] = field(default=("metadata.name", "metadata.namespace"))
    orphans_dependents_by_default: bool = False  # DeleteOptions without a propagationPolicy orphan dependents

    def subresource_strategies(self) -> dict[str, "Strategy"]:
        """Subresources written through a strategy of their own (only some fields change), by name."""
        return {}

    def default(self, obj: Obj) -> None:
        """Fill in defaults (runs on create and update, like upstream's defaulting on decode)."""

    def prepare_for_create(self, obj: Obj) -> None:
        """Reset fields a client may not set on create (e.g. status for kinds with status)."""

    def unknown_fields(self, body: Any) -> list[str]:
        """Paths of the fields of a request body the kind does not declare (fieldValidation Strict/Warn)."""
        return unknown_fields(self.info.kind, body)

    def field_layout(self) -> Layout:
        """How managed fields see the kind's lists and maps (built-in kinds share upstream's merge keys)."""
        return BUILTIN

    def patch_types(self) -> tuple[str, ...]:
        """The PATCH content types the kind accepts (custom resources: no strategic merge, as upstream)."""
        return (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_object_meta(obj, self.info.namespaced, self.name_validator)

    def admit(self, new: Obj, old: Obj | None) -> list[FieldError]:
        """Once validation passed: claim what the object needs (ClusterIPs, NodePorts); problems are 422s."""
        return []

    def check_delete(self, obj: Obj) -> None:
        """Raise an APIError to refuse deleting this object (the system PriorityClasses cannot be deleted, as
        upstream's PriorityClass REST storage refuses)."""

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """An update of the main resource keeps the stored status (status goes through /status)."""
        if self.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + validate_meta_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """A /status update keeps everything but status (and labels/annotations are kept too)."""
        status = new.get("status")
        for key in list(new):
            if key not in ("apiVersion", "kind", "metadata", "status"):
                del new[key]
        for key, value in old.items():
            if key not in ("apiVersion", "kind", "metadata", "status"):
                new[key] = value
        if status is None:
            new.pop("status", None)
        old_meta = old.get("metadata", {})
        new_meta = new.setdefault("metadata", {})
        for key in ("labels", "annotations", "finalizers", "ownerReferences", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "generation"):
            if key in old_meta:
                new_meta[key] = old_meta[key]
            else:
                new_meta.pop(key, None)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate_update(new, old)

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        """Whether metadata.generation should be bumped."""
        if not self.tracks_generation:
            return False
        return {k: v for k, v in new.items() if k not in ("metadata", "status")} != \
            {k: v for k, v in old.items() if k not in ("metadata", "status")}

    def field_values(self, obj: Obj) -> dict[str, str]:
        meta = obj.get("metadata", {})
        values = {"metadata.name": meta.get("name", "")}
        if self.info.namespaced:
            values["metadata.namespace"] = meta.get("namespace", "")
        return values

    def graceful_delete_seconds(self, obj: Obj, requested: int | None) -> int:
        """Seconds of grace before removal; 0 removes at once (kinds without graceful deletion)."""
        return 0

    def blocks_deletion(self, obj: Obj) -> bool:
        """Whether finalizers keep a deleted object stored."""
        return bool(obj.get("metadata", {}).get("finalizers"))

    def mark_deleting(self, obj: Obj) -> None:
        """Kind-specific changes when deletion starts (namespaces turn Terminating)."""

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(columns=[Column("Name", "string", "name", "Name must be unique within a namespace.", 0),
                                  Column("Created At", "date", "", "CreationTimestamp is a timestamp "
                                         "representing the server time when this object was created.", 0)],
                         row=lambda obj: Row([obj["metadata"]["name"], obj["metadata"].get("creationTimestamp")]))
