"""core/v1 ResourceQuota: validation of `spec.hard`, status written by the quota controller, columns."""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from apiserver.errors import FieldError, invalid, not_supported
from apiserver.kinds.base import Obj, ResourceInfo, Strategy, canonicalize_quantities
from apiserver.quota import parse_resource_list
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age
from shipmate.quantity import QuantityError, parse_quantity

RESOURCE_QUOTA_INFO = ResourceInfo("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", True,
                                   short_names=("quota",), subresources=("status",))
SCOPES = ["BestEffort", "CrossNamespacePodAffinity", "NotBestEffort", "NotTerminating", "PriorityClass",
          "Terminating", "VolumeAttributesClass"]
_RESOURCE_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_INTEGER_NAMES = ("pods", "services", "configmaps", "secrets", "replicationcontrollers", "resourcequotas",
                  "persistentvolumeclaims", "services.nodeports", "services.loadbalancers")

COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Age", "string", "", AGE_DESCRIPTION),
    Column("Request", "string", "", "Request represents a minimum amount of cpu/memory that a container may consume."),
    Column("Limit", "string", "", "Limits control the maximum amount of cpu/memory that a container may use "
           "independent of contention on the node."),
]


def _validate_hard(hard: object, path: str) -> list[FieldError]:
    if hard is None:
        return []
    if not isinstance(hard, dict):
        return [invalid(path, hard, "must be a map of resource quantities")]
    errors = []
    for name, value in hard.items():
        field_path = f"{path}[{name}]"
        if not _RESOURCE_NAME.match(str(name)):
            errors.append(invalid(field_path, name, "must be a standard resource type or fully qualified"))
            continue
        try:
            quantity = parse_quantity(value)
        except QuantityError:
            errors.append(invalid(field_path, value, "quantities must match the regular expression "
                                  "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))
            continue
        if quantity.value < 0:
            errors.append(invalid(field_path, value, "must be greater than or equal to 0"))
        elif (name in _INTEGER_NAMES or str(name).startswith("count/")) and quantity.value.denominator != 1:
            errors.append(invalid(field_path, value, "must be an integer"))
    return errors


def quota_row(quota: Obj, now: datetime.datetime) -> Row:
    """Upstream's printResourceQuota: `name: used/hard` pairs, limits.* in LIMIT, the rest in REQUEST."""
    status = quota.get("status") or {}
    used, hard = status.get("used") or {}, status.get("hard") or {}
    requests, limits = [], []
    for name in sorted((quota.get("spec") or {}).get("hard") or {}):
        text = f"{name}: {used.get(name, '0')}/{hard.get(name, '0')}"
        (limits if name.split(".")[0] == "limits" and "." in name else requests).append(text)
    return Row([quota["metadata"]["name"], age(quota["metadata"].get("creationTimestamp"), now),
                ", ".join(requests), ", ".join(limits)])


@dataclass
class ResourceQuotaStrategy(Strategy):
    info: ResourceInfo = RESOURCE_QUOTA_INFO
    has_status: bool = True
    tracks_generation: bool = False

    def default(self, obj: Obj) -> None:
        for section in ("spec", "status"):
            part = obj.get(section)
            if isinstance(part, dict):
                canonicalize_quantities(part.get("hard"))
                canonicalize_quantities(part.get("used"))

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def validate(self, obj: Obj) -> list[FieldError]:
        errors = super().validate(obj)
        spec = obj.get("spec") or {}
        errors += _validate_hard(spec.get("hard"), "spec.hard")
        for index, scope in enumerate(spec.get("scopes") or []):
            if scope not in SCOPES:
                errors.append(not_supported(f"spec.scopes[{index}]", scope, SCOPES))
        status = obj.get("status") or {}
        errors += _validate_hard(status.get("hard"), "status.hard")
        errors += _validate_hard(status.get("used"), "status.used")
        return errors

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(columns=COLUMNS, row=lambda obj: quota_row(obj, now))


def hard_limits(quota: Obj) -> dict:
    """The enforced limits: status.hard once the controller has copied them, spec.hard before."""
    return parse_resource_list((quota.get("status") or {}).get("hard") or (quota.get("spec") or {}).get("hard"))
