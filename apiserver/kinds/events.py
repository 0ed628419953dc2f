"""core/v1 Events: free-form names, involvedObject field selectors (kubectl describe uses them)."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from apiserver import printers
from apiserver.errors import FieldError, invalid, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.tables import TableSpec
from apiserver.validation import path_segment_name

EVENT_INFO = ResourceInfo("", "v1", "Event", "events", "event", True, short_names=("ev",))
_INVOLVED_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")


@dataclass
class EventStrategy(Strategy):
    info: ResourceInfo = EVENT_INFO
    name_validator: object = path_segment_name
    allow_create_on_update: bool = True
    field_labels: tuple[str, ...] = field(default=(
        "metadata.name", "metadata.namespace", "reason", "reportingComponent", "source", "type",
        *(f"involvedObject.{f}" for f in _INVOLVED_FIELDS)))

    def validate(self, obj: Obj) -> list[FieldError]:
        errors = super().validate(obj)
        involved = obj.get("involvedObject")
        if not isinstance(involved, dict):
            return errors + [required("involvedObject")]
        namespace = (obj.get("metadata") or {}).get("namespace")
        if involved.get("namespace") and involved["namespace"] != namespace:
            errors.append(invalid("involvedObject.namespace", involved["namespace"],
                                  "does not match event.namespace"))
        return errors

    def field_values(self, obj: Obj) -> dict[str, str]:
        values = super().field_values(obj)
        involved = obj.get("involvedObject") or {}
        for name in _INVOLVED_FIELDS:
            values[f"involvedObject.{name}"] = str(involved.get(name, ""))
        source = obj.get("source") or {}
        values.update({"reason": obj.get("reason", ""), "type": obj.get("type", ""),
                       "reportingComponent": obj.get("reportingComponent", ""),
                       "source": source.get("component") or obj.get("reportingComponent", "")})
        return values

    def table(self, now: datetime.datetime) -> TableSpec:
        return printers.spec_for(printers.EVENT_COLUMNS, printers.event_row, now)
