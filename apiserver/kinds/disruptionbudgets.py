"""policy/v1 PodDisruptionBudget: validation (upstream's messages), status (written by the disruption controller,
controllers/disruption.py, and by evictions, apiserver/eviction.py), columns."""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from apiserver.errors import FieldError, GoLiteral, invalid, not_supported, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.kinds.field_rules import (is_int, selector_has_invalid_values, validate_label_selector,
                                         validate_positive_int_or_percent)
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age
from apiserver.validation import path_segment_name, qualified_name, validate_meta_update

PDB_INFO = ResourceInfo("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", True,
                        short_names=("pdb",), subresources=("status",))
EVICTION_POLICIES = ["AlwaysAllow", "IfHealthyBudget"]
DISRUPTION_ALLOWED = "DisruptionAllowed"
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_STATUS_COUNTS = ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods")

COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Min Available", "string", "", "The minimum number of pods that must be available."),
    Column("Max Unavailable", "string", "", "The maximum number of pods that may be unavailable."),
    Column("Allowed Disruptions", "integer", "", "Calculated number of pods that may be disrupted at this time."),
    Column("Age", "string", "", AGE_DESCRIPTION),
]


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _go_pointer(type_name: str, value: Any) -> str:
    return f"(*{type_name})(nil)" if value is None else f"(*{type_name})(0xc000000000)"


def _go_spec(spec: Obj) -> GoLiteral:
    """policy.PodDisruptionBudgetSpec as Go's %#v prints it (pointers print as addresses upstream)."""
    return GoLiteral("policy.PodDisruptionBudgetSpec{"
                     f"MinAvailable:{_go_pointer('intstr.IntOrString', spec.get('minAvailable'))}, "
                     f"Selector:{_go_pointer('v1.LabelSelector', spec.get('selector'))}, "
                     f"MaxUnavailable:{_go_pointer('intstr.IntOrString', spec.get('maxUnavailable'))}, "
                     "UnhealthyPodEvictionPolicy:" + _go_pointer("policy.UnhealthyPodEvictionPolicyType",
                                                                 spec.get("unhealthyPodEvictionPolicy")) + "}")


def validate_pdb_spec(spec: Any, allow_invalid_selector_values: bool = False) -> list[FieldError]:
    spec = _dict(spec)
    errors: list[FieldError] = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        errors.append(invalid("spec", _go_spec(spec), "minAvailable and maxUnavailable cannot be both set"))
    for key in ("minAvailable", "maxUnavailable"):
        if spec.get(key) is not None:
            errors += validate_positive_int_or_percent(spec[key], f"spec.{key}")
    errors += validate_label_selector(spec.get("selector"), "spec.selector", allow_invalid_selector_values)
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in EVICTION_POLICIES:
        errors.append(not_supported("spec.unhealthyPodEvictionPolicy", policy, EVICTION_POLICIES))
    return errors


def validate_conditions(conditions: Any, path: str) -> list[FieldError]:
    """meta/v1 ValidateConditions, as the PDB status strategy runs it."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, condition in enumerate(conditions if isinstance(conditions, list) else []):
        condition = _dict(condition)
        where = f"{path}[{index}]"
        kind = condition.get("type") or ""
        errors += [invalid(f"{where}.type", kind, problem) for problem in qualified_name(kind)]
        if kind in seen:
            errors.append(FieldError("FieldValueDuplicate", f"{where}.type", "", kind))
        seen.add(kind)
        if condition.get("status") not in ("True", "False", "Unknown"):
            errors.append(not_supported(f"{where}.status", condition.get("status", ""), ["False", "True", "Unknown"]))
        generation = condition.get("observedGeneration")
        if is_int(generation) and generation < 0:
            errors.append(invalid(f"{where}.observedGeneration", generation, "must be greater than or equal to zero"))
        if not condition.get("lastTransitionTime"):
            errors.append(required(f"{where}.lastTransitionTime", "must be set"))
        reason = condition.get("reason") or ""
        if not reason:
            errors.append(required(f"{where}.reason", "must be set"))
        else:
            if len(reason) > 1024:
                errors.append(FieldError("FieldValueTooLong", f"{where}.reason", "may not be more than 1024 bytes"))
            if not _REASON.match(reason):
                errors.append(invalid(f"{where}.reason", reason, "a condition reason must start with alphabetic "
                                      "character, optionally followed by a string of alphanumeric characters or "
                                      "'_,:', and must end with an alphanumeric character or '_' (e.g. 'my_name',  "
                                      "or 'MY_NAME',  or 'MyName',  or 'ReasonA,ReasonB',  or 'ReasonA:ReasonB', "
                                      "regex used for validation is '[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?')"))
        if len(condition.get("message") or "") > 32 * 1024:
            errors.append(FieldError("FieldValueTooLong", f"{where}.message", "may not be more than 32768 bytes"))
    return errors


def int_or_percent_text(value: Any) -> str:
    return "N/A" if value is None else str(value)


def pdb_row(pdb: Obj, now: datetime.datetime) -> Row:
    spec, status = _dict(pdb.get("spec")), _dict(pdb.get("status"))
    return Row([pdb["metadata"]["name"], int_or_percent_text(spec.get("minAvailable")),
                int_or_percent_text(spec.get("maxUnavailable")), status.get("disruptionsAllowed", 0),
                age(pdb["metadata"].get("creationTimestamp"), now)])


@dataclass
class PodDisruptionBudgetStrategy(Strategy):
    info: ResourceInfo = PDB_INFO
    has_status: bool = True
    name_validator: Any = path_segment_name  # upstream validates PDB names as path segments only

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {key: 0 for key in _STATUS_COUNTS}

    def default(self, obj: Obj) -> None:
        status = obj.get("status")
        if isinstance(status, dict):
            for key in _STATUS_COUNTS:
                status.setdefault(key, 0)

    def validate(self, obj: Obj) -> list[FieldError]:
        return super().validate(obj) + validate_pdb_spec(obj.get("spec"))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        allow = selector_has_invalid_values(_dict(old.get("spec")).get("selector"))
        return Strategy.validate(self, new) + validate_meta_update(new, old) + \
            validate_pdb_spec(new.get("spec"), allow)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = _dict(new.get("status"))
        errors = validate_meta_update(new, old) + validate_conditions(status.get("conditions"), "status.conditions")
        for key in _STATUS_COUNTS:
            value = status.get(key, 0)
            if is_int(value) and value < 0:
                errors.append(invalid(f"status.{key}", value, "must be greater than or equal to 0"))
        return errors

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(COLUMNS, lambda obj: pdb_row(obj, now))

