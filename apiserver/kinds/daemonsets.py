"""apps/v1 DaemonSet: defaulting and validation as upstream's (apps validation), `/status`, kubectl's columns.
The controller is controllers/daemonset.py."""
from __future__ import annotations

import copy
import dataclasses
import datetime
import re
from dataclasses import dataclass
from typing import Any

from apiserver.errors import FieldError, invalid, not_supported, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.kinds.workloads import (_non_negative, _selector_unchanged, default_pod_template,
                                       validate_label_selector_spec, validate_pod_template)
from apiserver.printers import format_labels
from apiserver.kinds.workload_tables import selector_string
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age

DAEMONSET_INFO = ResourceInfo("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, short_names=("ds",),
                              categories=("all",), subresources=("status",))
_PERCENT = re.compile(r"^[0-9]+%$")
_PERCENT_MESSAGE = ("a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', "
                    "regex used for validation is '[0-9]+%')")
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
STATUS_COUNTS = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady",
                 "observedGeneration", "updatedNumberScheduled", "numberAvailable", "numberUnavailable",
                 "collisionCount")


# --- shared by DaemonSets and StatefulSets ---------------------------------------------------------
def template_errors(spec: Obj, kind: str) -> list[FieldError]:
    """Selector (required, non-empty, matching the template's labels) and the pod template, with the
    kind's own wording for an empty selector and activeDeadlineSeconds."""
    selector_errors, matches = validate_label_selector_spec(spec)
    errors = [dataclasses.replace(e, detail=e.detail.replace("for deployment", f"for {kind.lower()}"))
              for e in selector_errors]
    for error in validate_pod_template(spec.get("template"), matches):
        if error.field.endswith("spec.activeDeadlineSeconds"):
            if kind == "StatefulSet":
                error = FieldError("FieldValueForbidden", error.field,
                                   "activeDeadlineSeconds in StatefulSet is not Supported")
            else:
                error = dataclasses.replace(error, detail=f"activeDeadlineSeconds in {kind} is not Supported")
        errors.append(error)
    return errors


def int_or_percent_value(value: Any) -> int | None:
    """getIntOrPercentValue: the number of an int or of a "N%" string; None when malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _PERCENT.match(value):
        return int(value[:-1])
    return None


def validate_positive_int_or_percent(value: Any, path: str) -> list[FieldError]:
    """ValidatePositiveIntOrPercent + IsNotMoreThan100Percent."""
    if value is None:
        return []
    if isinstance(value, str):
        if not _PERCENT.match(value):
            return [invalid(path, value, _PERCENT_MESSAGE)]
        if int(value[:-1]) > 100:
            return [invalid(path, value, "must not be greater than 100%")]
        return []
    if isinstance(value, bool) or not isinstance(value, int):
        return [invalid(path, value, "must be an integer or percentage (e.g '5%')")]
    return [invalid(path, value, "must be greater than or equal to 0")] if value < 0 else []


def template_cells(obj: Obj) -> tuple[str, str]:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


# --- DaemonSet ------------------------------------------------------------------------------------------
def _validate_update_strategy(spec: Obj) -> list[FieldError]:
    """ValidateDaemonSetUpdateStrategy + ValidateRollingUpdateDaemonSet."""
    strategy = spec.get("updateStrategy") or {}
    kind = strategy.get("type")
    path = "spec.updateStrategy"
    if kind == "OnDelete":
        return []
    if kind != "RollingUpdate":
        return [not_supported(path, kind, ["RollingUpdate", "OnDelete"])]
    rolling = strategy.get("rollingUpdate")
    if not isinstance(rolling, dict):
        return [required(f"{path}.rollingUpdate", "")]
    errors: list[FieldError] = []
    for key in ("maxUnavailable", "maxSurge"):
        errors += validate_positive_int_or_percent(rolling.get(key), f"{path}.rollingUpdate.{key}")
    has_unavailable = (int_or_percent_value(rolling.get("maxUnavailable")) or 0) != 0
    has_surge = (int_or_percent_value(rolling.get("maxSurge")) or 0) != 0
    if has_unavailable and has_surge:
        errors.append(invalid(f"{path}.rollingUpdate.maxSurge", rolling.get("maxSurge"),
                              "may not be set when maxUnavailable is non-zero"))
    elif not has_unavailable and not has_surge:
        errors.append(required(f"{path}.rollingUpdate.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return errors


DAEMONSET_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Desired", "integer", "", "The total number of nodes that should be running the daemon pod (including "
           "nodes correctly running the daemon pod). More info: "
           "https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"),
    Column("Current", "integer", "", "The number of nodes that are running at least 1 daemon pod and are supposed "
           "to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"),
    Column("Ready", "integer", "", "numberReady is the number of nodes that should be running the daemon pod and "
           "have one or more of the daemon pod running with a Ready Condition."),
    Column("Up-to-date", "integer", "", "The total number of nodes that are running updated daemon pod"),
    Column("Available", "integer", "", "The number of nodes that should be running the daemon pod and have one or "
           "more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
    Column("Node Selector", "string", "", "NodeSelector is a selector which must be true for the pod to fit on a "
           "node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: "
           "https://kubernetes.io/docs/concepts/configuration/assign-pod-node/"),
    Column("Age", "string", "", AGE_DESCRIPTION),
    Column("Containers", "string", "", "Names of each container in the template.", 1),
    Column("Images", "string", "", "Images referenced by each container in the template.", 1),
    Column("Selector", "string", "", "A label query over pods that are managed by the daemon set. Must match in "
           "order to be controlled. It must match the pod template's labels. More info: "
           "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", 1),
]


def daemonset_row(obj: Obj, now: datetime.datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = template_cells(obj)
    node_selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector")
    return Row([obj["metadata"]["name"], status.get("desiredNumberScheduled", 0),
                status.get("currentNumberScheduled", 0), status.get("numberReady", 0),
                status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0), format_labels(node_selector),
                age(obj["metadata"].get("creationTimestamp"), now), names, images,
                selector_string(spec.get("selector")) or "<none>"])


@dataclass
class DaemonSetStrategy(Strategy):
    info: ResourceInfo = DAEMONSET_INFO
    has_status: bool = True

    def default(self, obj: Obj) -> None:
        """SetDefaults_DaemonSet: RollingUpdate with maxUnavailable 1 / maxSurge 0, revisionHistoryLimit 10."""
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        strategy = spec.setdefault("updateStrategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                if isinstance(rolling, dict):
                    rolling.setdefault("maxUnavailable", 1)
                    rolling.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        default_pod_template(spec.get("template"))

    def prepare_for_create(self, obj: Obj) -> None:
        """Status counts start at 0 (required fields); the template generation (apps/v1 keeps it in an
        annotation) starts at 1."""
        obj["status"] = {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                         "numberReady": 0}
        annotations = obj.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[TEMPLATE_GENERATION_ANNOTATION] = "1"

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """A new pod template raises the template generation (kept in the annotation, as upstream's apps/v1)."""
        super().prepare_for_update(new, old)
        old_generation = ((old.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
        try:
            generation = int(old_generation or 0)
        except ValueError:
            generation = 0
        new_template = copy.deepcopy((new.get("spec") or {}).get("template"))
        default_pod_template(new_template)  # defaulting runs after this: compare like with like
        if new_template != (old.get("spec") or {}).get("template"):
            generation += 1
        if generation:
            new.setdefault("metadata", {}).setdefault("annotations", {})[TEMPLATE_GENERATION_ANNOTATION] = \
                str(generation)

    def validate(self, obj: Obj) -> list[FieldError]:
        errors = super().validate(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return errors + [required("spec")]
        errors += template_errors(spec, "DaemonSet")
        for key in ("minReadySeconds", "templateGeneration", "revisionHistoryLimit"):
            errors += _non_negative(spec, key, "spec")
        return errors + _validate_update_strategy(spec)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return super().validate_update(new, old) + _selector_unchanged(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = new.get("status") or {}
        return [error for key in STATUS_COUNTS for error in _non_negative(status, key, "status")]

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(DAEMONSET_COLUMNS, lambda obj: daemonset_row(obj, now))
