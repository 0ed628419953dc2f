"""meta.k8s.io Table rendering: column definitions, rows, and kubectl's human durations."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Callable

from shipmate.timeutil import parse_rfc3339

NAME_DESCRIPTION = ("Name must be unique within a namespace. Is required when creating resources, although "
                    "some resources may allow a client to request the generation of an appropriate name "
                    "automatically. Name is primarily intended for creation idempotence and configuration "
                    "definition. Cannot be updated. More info: "
                    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
AGE_DESCRIPTION = ("CreationTimestamp is a timestamp representing the server time when this object was "
                   "created. It is not guaranteed to be set in happens-before order across separate operations. "
                   "Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\n"
                   "Populated by the system. Read-only. Null for lists. More info: "
                   "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    format: str = ""
    description: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}


@dataclass
class Row:
    cells: list[Any]
    conditions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TableSpec:
    columns: list[Column]
    row: Callable[[dict[str, Any]], Row]


def human_duration(delta: datetime.timedelta) -> str:
    """kubectl's duration.HumanDuration."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if rest == 0 else f"{hours // 24 // 365}y{rest}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None, now: datetime.datetime) -> str:
    moment = parse_rfc3339(timestamp)
    if moment is None:
        return "<unknown>"
    return human_duration(now - moment)


def partial_object_metadata(obj: dict[str, Any], api_version: str) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version, "metadata": obj.get("metadata", {})}


def render_table(spec: TableSpec, objects: list[dict[str, Any]], include_object: str, table_version: str,
                 resource_version: str = "", continue_token: str = "") -> dict[str, Any]:
    """A meta.k8s.io Table; include_object is None, Metadata (default) or Object."""
    rows = []
    for obj in objects:
        row = spec.row(obj)
        entry: dict[str, Any] = {"cells": row.cells}
        if row.conditions:
            entry["conditions"] = row.conditions
        if include_object == "Object":
            entry["object"] = obj
        elif include_object != "None":
            entry["object"] = partial_object_metadata(obj, f"meta.k8s.io/{table_version}")
        rows.append(entry)
    metadata: dict[str, Any] = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    return {"kind": "Table", "apiVersion": f"meta.k8s.io/{table_version}", "metadata": metadata,
            "columnDefinitions": [c.definition() for c in spec.columns], "rows": rows}
