"""scheduling.k8s.io/v1 PriorityClass: defaulting, validation (upstream's messages), the built-in
`system-node-critical` / `system-cluster-critical` classes (created at server start, never deletable), and
upstream's Priority-admission rule that at most one class is `globalDefault`. Resolving a pod's priority from
its class is admission's job, not this kind's."""
from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import Any

from apiserver import errors
from apiserver.errors import FieldError, forbidden, invalid, not_supported
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.kinds.field_rules import is_int
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age
from apiserver.validation import validate_meta_update

log = logging.getLogger(__name__)

PRIORITY_CLASS_INFO = ResourceInfo("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass",
                                   False, short_names=("pc",))
SYSTEM_PREFIX = "system-"
SYSTEM_CRITICAL_PRIORITY = 2 * 1000000000
HIGHEST_USER_DEFINABLE_PRIORITY = 1000000000
PREEMPTION_POLICIES = ["Never", "PreemptLowerPriority"]
SYSTEM_PRIORITY_CLASSES: list[Obj] = [
    {"metadata": {"name": "system-node-critical"}, "value": SYSTEM_CRITICAL_PRIORITY + 1000,
     "description": "Used for system critical pods that must not be moved from their current node."},
    {"metadata": {"name": "system-cluster-critical"}, "value": SYSTEM_CRITICAL_PRIORITY,
     "description": "Used for system critical pods that must run in the cluster, but can be moved to another node "
                    "if necessary."},
]
_SYSTEM_VALUES = {pc["metadata"]["name"]: pc["value"] for pc in SYSTEM_PRIORITY_CLASSES}

COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Value", "integer", "", "value represents the integer value of this priority class. This is the actual "
           "priority that pods receive when they have the name of this class in their pod spec."),
    Column("Global-Default", "boolean", "", "globalDefault specifies whether this PriorityClass should be "
           "considered as the default priority for pods that do not have any priority class. Only one PriorityClass "
           "can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their "
           "`globalDefault` field set to true, the smallest value of such global default PriorityClasses will be "
           "used as the default priority."),
    Column("Age", "string", "", AGE_DESCRIPTION),
    Column("PreemptionPolicy", "string", "", "preemptionPolicy is the Policy for preempting pods with lower "
           "priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."),
]


def known_system_class_problem(name: str, value: Any, global_default: bool) -> str:
    """IsKnownSystemPriorityClass: "" when the class is one of the system classes as defined."""
    if name not in _SYSTEM_VALUES:
        return f"{name} is not a known system priority class"
    if value != _SYSTEM_VALUES[name]:
        return f"value of {name} PriorityClass must be {_SYSTEM_VALUES[name]}"
    if global_default:
        return f"globalDefault of {name} PriorityClass must be false"
    return ""


def validate_priority_class(obj: Obj) -> list[FieldError]:
    name = (obj.get("metadata") or {}).get("name") or ""
    value = obj.get("value", 0)
    problems: list[FieldError] = []
    if not is_int(value):
        return [invalid("value", value, "must be an integer")]
    if name.startswith(SYSTEM_PREFIX):
        why = known_system_class_problem(name, value, bool(obj.get("globalDefault")))
        if why:
            problems.append(forbidden("metadata.name", f"priority class names with '{SYSTEM_PREFIX}' prefix are "
                                                       f"reserved for system use only. error: {why}"))
    elif value > HIGHEST_USER_DEFINABLE_PRIORITY:
        problems.append(forbidden("value", "maximum allowed value of a user defined priority is "
                                           f"{HIGHEST_USER_DEFINABLE_PRIORITY}"))
    policy = obj.get("preemptionPolicy")
    if policy is not None and policy not in PREEMPTION_POLICIES:
        problems.append(not_supported("preemptionPolicy", policy, PREEMPTION_POLICIES))
    return problems


def global_default_conflict(new: Obj, others: list[Obj], creating: bool) -> str:
    """The Priority admission's rule: the name of another class already marked globalDefault that `new`
    (marked globalDefault on create, or turned so on update) collides with; "" when there is none."""
    if not new.get("globalDefault"):
        return ""
    name = new["metadata"].get("name")
    for other in others:
        if other.get("globalDefault") and (creating or other["metadata"]["name"] != name):
            return other["metadata"]["name"]
    return ""


@dataclass
class PriorityClassStrategy(Strategy):
    info: ResourceInfo = PRIORITY_CLASS_INFO
    tracks_generation: bool = False

    def default(self, obj: Obj) -> None:
        obj.setdefault("value", 0)
        if obj.get("preemptionPolicy") is None:
            obj["preemptionPolicy"] = "PreemptLowerPriority"

    def validate(self, obj: Obj) -> list[FieldError]:
        return super().validate(obj) + validate_priority_class(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        problems = validate_meta_update(new, old) + self.validate(new)
        if new.get("value") != old.get("value"):
            problems.append(forbidden("value", "may not be changed in an update."))
        if new.get("preemptionPolicy") != old.get("preemptionPolicy"):
            problems.append(invalid("preemptionPolicy", new.get("preemptionPolicy"), "field is immutable"))
        return problems

    def check_delete(self, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if name in _SYSTEM_VALUES:
            raise errors.forbidden_error(self.info.group, self.info.plural, name,
                                         "this is a system priority class and cannot be deleted")

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(COLUMNS, lambda obj: Row([
            obj["metadata"]["name"], obj.get("value", 0), bool(obj.get("globalDefault")),
            age(obj["metadata"].get("creationTimestamp"), now), obj.get("preemptionPolicy") or ""]))


async def ensure_system_priority_classes(registry: Any) -> None:
    """Creates the system classes that are missing (upstream's bootstrap-system-priority-classes hook); existing
    ones are left as they are."""
    for system_class in SYSTEM_PRIORITY_CLASSES:
        body = {"apiVersion": PRIORITY_CLASS_INFO.api_version, "kind": PRIORITY_CLASS_INFO.kind,
                **{key: (dict(value) if isinstance(value, dict) else value) for key, value in system_class.items()}}
        try:
            await registry.create("", body)
            log.info("created system priority class name=%s", system_class["metadata"]["name"])
        except errors.APIError as exc:
            if exc.reason != "AlreadyExists":
                raise
