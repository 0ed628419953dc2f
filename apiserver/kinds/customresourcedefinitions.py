"""apiextensions.k8s.io/v1 CustomResourceDefinition: defaulting, validation (upstream's messages, apiserver/crd/
definition.py), status (accepted names, conditions, stored versions) and deletion through the
`customresourcecleanup.apiextensions.k8s.io` finalizer (the CRD controller deletes the custom objects first)."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Callable

from apiserver import errors
from apiserver.crd import definition
from apiserver.errors import FieldError
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from shipmate.timeutil import rfc3339

CRD_INFO = ResourceInfo(definition.GROUP, "v1", "CustomResourceDefinition", "customresourcedefinitions",
                        "customresourcedefinition", False, short_names=("crd", "crds"),
                        categories=("api-extensions",), subresources=("status",))


@dataclass
class CustomResourceDefinitionStrategy(Strategy):
    info: ResourceInfo = CRD_INFO
    has_status: bool = True
    # How many CRDs exist now (set by the API from the served set): creates past MAX_CRDS are refused.
    count: Callable[[], int] = field(default=lambda: 0)

    def subresource_strategies(self) -> dict[str, Strategy]:
        return {}

    def default(self, obj: Obj) -> None:
        definition.default_crd(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}
        stored = definition.storage_version(obj)
        if stored:
            obj["status"]["storedVersions"] = [stored]

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        stored = definition.storage_version(new)
        status = new.setdefault("status", {})
        if stored and stored not in (status.get("storedVersions") or []):
            status["storedVersions"] = [*(status.get("storedVersions") or []), stored]

    def validate(self, obj: Obj) -> list[FieldError]:
        return definition.validate_crd(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return definition.validate_crd_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return definition.validate_crd_status(new, old)

    def admit(self, new: Obj, old: Obj | None) -> list[FieldError]:
        if old is None and self.count() >= definition.MAX_CRDS:
            raise errors.forbidden_error(self.info.group, self.info.plural, new["metadata"].get("name", ""),
                                         f"this cluster already has {definition.MAX_CRDS} "
                                         "CustomResourceDefinitions, the most a server serves")
        return []

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        return new.get("spec") != old.get("spec")

    def blocks_deletion(self, obj: Obj) -> bool:
        """A delete only marks the CRD (as upstream's CRD REST): the controller removes the objects, then the
        cleanup finalizer."""
        return super().blocks_deletion(obj) or not obj.get("metadata", {}).get("deletionTimestamp")

    def mark_deleting(self, obj: Obj) -> None:
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if definition.CLEANUP_FINALIZER not in finalizers:
            finalizers.append(definition.CLEANUP_FINALIZER)
        definition.set_condition(obj, {"type": "Terminating", "status": "True", "reason": "InstanceDeletionPending",
                                       "message": "CustomResourceDefinition marked for deletion; CustomResource "
                                                  "deletion will begin soon"},
                                 rfc3339(datetime.datetime.now(datetime.timezone.utc)))
