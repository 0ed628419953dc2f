"""Namespaces: DNS-1123 label names, Active/Terminating phase, the `kubernetes` finalizer."""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field

from apiserver import printers
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.tables import TableSpec
from apiserver.validation import dns1123_label

NAMESPACE_INFO = ResourceInfo("", "v1", "Namespace", "namespaces", "namespace", False, short_names=("ns",),
                              subresources=("status", "finalize"))
NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass
class NamespaceStrategy(Strategy):
    info: ResourceInfo = NAMESPACE_INFO
    name_validator: object = dns1123_label
    has_status: bool = True
    field_labels: tuple[str, ...] = field(default=("metadata.name", "status.phase"))

    def default(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        if meta.get("name"):
            labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
            labels[NAME_LABEL] = meta["name"]
            meta["labels"] = labels
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("finalizers", ["kubernetes"])

    def subresource_strategies(self) -> dict[str, Strategy]:
        return {"finalize": NamespaceFinalizeStrategy()}

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}

    def blocks_deletion(self, obj: Obj) -> bool:
        return super().blocks_deletion(obj) or bool((obj.get("spec") or {}).get("finalizers"))

    def mark_deleting(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"

    def field_values(self, obj: Obj) -> dict[str, str]:
        values = super().field_values(obj)
        values["status.phase"] = (obj.get("status") or {}).get("phase", "")
        return values

    def table(self, now: datetime.datetime) -> TableSpec:
        return printers.spec_for(printers.NAMESPACE_COLUMNS, printers.namespace_row, now)


@dataclass
class NamespaceFinalizeStrategy(NamespaceStrategy):
    """The `finalize` subresource: only spec.finalizers change (the namespace controller empties them once the
    namespace's content is gone); everything else stays as stored."""

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
        finalizers = list(spec.get("finalizers") or [])
        meta = new["metadata"]  # the registry holds this dict: changed in place
        meta.clear()
        meta.update(copy.deepcopy(old["metadata"]))
        for key in [k for k in new if k != "metadata"]:
            del new[key]
        new.update({k: copy.deepcopy(v) for k, v in old.items() if k != "metadata"})
        new.setdefault("spec", {})["finalizers"] = finalizers
