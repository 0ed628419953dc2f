"""apps/v1 ControllerRevision: an immutable snapshot of a DaemonSet's or StatefulSet's pod template (`data`,
a strategic merge patch restoring it) with a `revision` number; what `kubectl rollout history|undo` read."""
from __future__ import annotations

import datetime
from dataclasses import dataclass

from apiserver.errors import FieldError, invalid, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age

CONTROLLER_REVISION_INFO = ResourceInfo("apps", "v1", "ControllerRevision", "controllerrevisions",
                                        "controllerrevision", True)

CONTROLLER_REVISION_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Controller", "string", "", "Controller of the object"),
    Column("Revision", "string", "", "Revision indicates the revision of the state represented by Data."),
    Column("Age", "string", "", AGE_DESCRIPTION),
]


def controller_text(obj: Obj) -> str:
    """formatResourceName(GroupKind, name, withKind): `daemonset.apps/web`, `<none>` without a controller."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            group = (ref.get("apiVersion") or "").rpartition("/")[0]
            kind = ref.get("kind", "")
            return f"{kind}.{group}".lower() + f"/{ref.get('name', '')}" if group else f"{kind.lower()}/{ref.get('name', '')}"
    return "<none>"


def controller_revision_row(obj: Obj, now: datetime.datetime) -> Row:
    meta = obj["metadata"]
    return Row([meta["name"], controller_text(obj), obj.get("revision", 0), age(meta.get("creationTimestamp"), now)])


@dataclass
class ControllerRevisionStrategy(Strategy):
    info: ResourceInfo = CONTROLLER_REVISION_INFO
    tracks_generation: bool = False

    def validate(self, obj: Obj) -> list[FieldError]:
        errors = super().validate(obj)
        if obj.get("data") is None:
            errors.append(required("data", "data is mandatory"))
        revision = obj.get("revision", 0)
        if not isinstance(revision, int) or isinstance(revision, bool):
            errors.append(invalid("revision", revision, "must be an integer"))
        elif revision < 0:
            errors.append(invalid("revision", revision, "must be greater than or equal to 0"))
        return errors

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errors = super().validate_update(new, old)
        if new.get("data") != old.get("data"):
            errors.append(invalid("data", "", "field is immutable"))
        return errors

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(CONTROLLER_REVISION_COLUMNS, lambda obj: controller_revision_row(obj, now))
