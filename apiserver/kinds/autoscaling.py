"""autoscaling/v2 HorizontalPodAutoscaler (the controller: controllers/horizontal_pod_autoscaler.py): defaulting
(minReplicas 1, an 80% CPU utilization metric, behavior rules), validation (upstream's messages), status,
columns. Only v2 is served: the registry serves one version per resource, and v1 would need conversions
(targetCPUUtilizationPercentage ⇄ metrics, annotations) on every read, write, patch and watch."""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass
from typing import Any

from apiserver.errors import FieldError, forbidden, invalid, not_supported, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.kinds.field_rules import (go_quantity, is_int, path_segment_problems, quantity_problems,
                                         quantity_sign)
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age
from apiserver.validation import dns1123_label, qualified_name, validate_meta_update
from shipmate.quantity import canonical

HPA_INFO = ResourceInfo("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers",
                        "horizontalpodautoscaler", True, short_names=("hpa",), categories=("all",),
                        subresources=("status",))
METRIC_TYPES = ["ContainerResource", "External", "Object", "Pods", "Resource"]
_TYPE_FIELDS = {"Object": "object", "Pods": "pods", "Resource": "resource", "External": "external",
                "ContainerResource": "containerResource"}
SELECT_POLICIES = ["Disabled", "Max", "Min"]
POLICY_TYPES = ["Percent", "Pods"]
MAX_PERIOD_SECONDS = 1800
MAX_STABILIZATION_WINDOW_SECONDS = 3600
DEFAULT_CPU_UTILIZATION = 80
SCALE_UP_RULES = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                  "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                               {"type": "Percent", "value": 100, "periodSeconds": 15}]}
SCALE_DOWN_RULES = {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}
_QUANTITY_KEYS = ("value", "averageValue")


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


# --- defaulting ------------------------------------------------------------------------------------
def _default_rules(rules: Any, defaults: Obj) -> Obj:
    if not isinstance(rules, dict):
        return copy.deepcopy(defaults)
    for key, value in defaults.items():
        if rules.get(key) is None:
            rules[key] = copy.deepcopy(value)
    return rules


def _canonical_targets(spec: Obj) -> None:
    for metric in _list(spec.get("metrics")):
        for source in _dict(metric).values():
            target = _dict(_dict(source).get("target")) if isinstance(source, dict) else {}
            for key in _QUANTITY_KEYS:
                if key in target and not quantity_problems(target[key]):
                    target[key] = canonical(target[key])


def default_hpa(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        behavior["scaleUp"] = _default_rules(behavior.get("scaleUp"), SCALE_UP_RULES)
        behavior["scaleDown"] = _default_rules(behavior.get("scaleDown"), SCALE_DOWN_RULES)
    _canonical_targets(spec)


# --- validation -------------------------------------------------------------------------------------
def _reference(ref: Any, path: str) -> list[FieldError]:
    ref = _dict(ref)
    errors: list[FieldError] = []
    for key in ("kind", "name"):
        value = ref.get(key) or ""
        if not value:
            errors.append(required(f"{path}.{key}", ""))
        else:
            errors += [invalid(f"{path}.{key}", value, problem) for problem in path_segment_problems(value)]
    return errors


def _metric_identifier(identifier: Any, path: str) -> list[FieldError]:
    name = _dict(identifier).get("name") or ""
    if not name:
        return [required(f"{path}.name", "must specify a metric name")]
    return [invalid(f"{path}.name", name, problem) for problem in path_segment_problems(name)]


def _metric_target(target: Any, path: str) -> list[FieldError]:
    target = _dict(target)
    errors: list[FieldError] = []
    kind = target.get("type") or ""
    if not kind:
        errors.append(required(f"{path}.type", "must specify a metric target type"))
    if kind not in ("Utilization", "Value", "AverageValue"):
        errors.append(invalid(f"{path}.type", kind, "must be either Utilization, Value, or AverageValue"))
    for key in _QUANTITY_KEYS:
        if target.get(key) is None:
            continue
        problems = quantity_problems(target[key])
        if problems:
            errors += [invalid(f"{path}.{key}", target[key], problem) for problem in problems]
        elif quantity_sign(target[key]) != 1:
            errors.append(invalid(f"{path}.{key}", go_quantity(target[key]), "must be positive"))
    utilization = target.get("averageUtilization")
    if utilization is not None and (not is_int(utilization) or utilization < 1):
        errors.append(invalid(f"{path}.averageUtilization", utilization, "must be greater than 0"))
    return errors


def _resource_source(source: Obj, path: str, container: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    name = source.get("name") or ""
    if not name:
        errors.append(required(f"{path}.name", "must specify a resource name"))
    elif container:
        errors += [invalid(f"{path}.name", name, problem) for problem in qualified_name(name)]
    if container:
        name = source.get("container") or ""
        if not name:
            errors.append(required(f"{path}.container", "must specify a container"))
        else:
            errors += [invalid(f"{path}.container", name, problem) for problem in dns1123_label(name)]
    target = _dict(source.get("target"))
    errors += _metric_target(target, f"{path}.target")
    if target.get("averageUtilization") is None and target.get("averageValue") is None:
        errors.append(required(f"{path}.target.averageUtilization",
                               "must set either a target raw value or a target utilization"))
    if target.get("averageUtilization") is not None and target.get("averageValue") is not None:
        errors.append(forbidden(f"{path}.target.averageValue",
                                "may not set both a target raw value and a target utilization"))
    return errors


def _source(kind: str, source: Obj, path: str) -> list[FieldError]:
    target = _dict(source.get("target"))
    if kind == "object":
        errors = _reference(source.get("describedObject"), f"{path}.describedObject")
        errors += _metric_identifier(source.get("metric"), f"{path}.metric") + _metric_target(target, f"{path}.target")
        if target.get("value") is None and target.get("averageValue") is None:
            errors.append(required(f"{path}.target.averageValue", "must set either a target value or averageValue"))
        return errors
    if kind == "external":
        errors = _metric_identifier(source.get("metric"), f"{path}.metric") + _metric_target(target, f"{path}.target")
        if target.get("value") is None and target.get("averageValue") is None:
            errors.append(required(f"{path}.target.averageValue",
                                   "must set either a target value for metric or a per-pod target"))
        if target.get("value") is not None and target.get("averageValue") is not None:
            errors.append(forbidden(f"{path}.target.value",
                                    "may not set both a target value for metric and a per-pod target"))
        return errors
    if kind == "pods":
        errors = _metric_identifier(source.get("metric"), f"{path}.metric") + _metric_target(target, f"{path}.target")
        if target.get("averageValue") is None:
            errors.append(required(f"{path}.target.averageValue", "must specify a positive target averageValue"))
        return errors
    return _resource_source(source, path, container=kind == "containerResource")


def validate_metric(metric: Any, path: str) -> list[FieldError]:
    metric = _dict(metric)
    kind = metric.get("type") or ""
    errors: list[FieldError] = []
    if not kind:
        errors.append(required(f"{path}.type", "must specify a metric source type"))
    if kind not in METRIC_TYPES:
        errors.append(not_supported(f"{path}.type", kind, METRIC_TYPES))
    present = [field for field in ("object", "external", "pods", "resource", "containerResource")
               if metric.get(field) is not None]
    if present:
        errors += _source(present[0], _dict(metric[present[0]]), f"{path}.{present[0]}")
    expected = _TYPE_FIELDS.get(kind)
    if expected is not None:
        if metric.get(expected) is None:
            errors.append(required(f"{path}.{expected}", "must populate information for the given metric source"))
    else:
        errors.append(not_supported(f"{path}.type", kind, METRIC_TYPES))
    if len(present) > 1:
        errors += [forbidden(f"{path}.{field}", "must populate the given metric source only")
                   for field in present if field != expected]
    return errors


def _scaling_rules(rules: Any, path: str) -> list[FieldError]:
    if rules is None:
        return []
    rules = _dict(rules)
    errors: list[FieldError] = []
    window = rules.get("stabilizationWindowSeconds")
    if is_int(window) and window < 0:
        errors.append(invalid(f"{path}.stabilizationWindowSeconds", window, "must be greater than or equal to zero"))
    if is_int(window) and window > MAX_STABILIZATION_WINDOW_SECONDS:
        errors.append(invalid(f"{path}.stabilizationWindowSeconds", window,
                              f"must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"))
    if rules.get("selectPolicy") is not None and rules["selectPolicy"] not in SELECT_POLICIES:
        errors.append(not_supported(f"{path}.selectPolicy", rules["selectPolicy"], SELECT_POLICIES))
    policies = _list(rules.get("policies"))
    if not policies:
        errors.append(required(f"{path}.policies", "must specify at least one Policy"))
    for index, policy in enumerate(policies):
        policy = _dict(policy)
        where = f"{path}.policies[{index}]"
        if policy.get("type") not in POLICY_TYPES:
            errors.append(not_supported(f"{where}.type", policy.get("type", ""), POLICY_TYPES))
        for key in ("value", "periodSeconds"):
            value = policy.get(key, 0)
            if not is_int(value) or value <= 0:
                errors.append(invalid(f"{where}.{key}", value, "must be greater than zero"))
        period = policy.get("periodSeconds", 0)
        if is_int(period) and period > MAX_PERIOD_SECONDS:
            errors.append(invalid(f"{where}.periodSeconds", period,
                                  f"must be less than or equal to {MAX_PERIOD_SECONDS}"))
    return errors


def validate_hpa_spec(spec: Any, min_replicas_lower_bound: int = 1) -> list[FieldError]:
    spec = _dict(spec)
    errors: list[FieldError] = []
    low, high = spec.get("minReplicas"), spec.get("maxReplicas", 0)
    if is_int(low) and low < min_replicas_lower_bound:
        errors.append(invalid("spec.minReplicas", low, f"must be greater than or equal to {min_replicas_lower_bound}"))
    if not is_int(high) or high < 1:
        errors.append(invalid("spec.maxReplicas", high, "must be greater than 0"))
    if is_int(low) and is_int(high) and high < low:
        errors.append(invalid("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`"))
    errors += _reference(spec.get("scaleTargetRef"), "spec.scaleTargetRef")
    metrics = _list(spec.get("metrics"))
    for index, metric in enumerate(metrics):
        errors += validate_metric(metric, f"spec.metrics[{index}]")
    if low == 0 and not any(_dict(m).get("type") in ("Object", "External") for m in metrics):
        errors.append(forbidden("spec.metrics", "must specify at least one Object or External metric to support "
                                                "scaling to zero replicas"))
    behavior = spec.get("behavior")
    if behavior is not None:
        errors += _scaling_rules(_dict(behavior).get("scaleUp"), "spec.behavior.scaleUp")
        errors += _scaling_rules(_dict(behavior).get("scaleDown"), "spec.behavior.scaleDown")
    return errors


def _status_errors(status: Any) -> list[FieldError]:
    status = _dict(status)
    return [invalid(f"status.{key}", status[key], "must be greater than or equal to 0")
            for key in ("currentReplicas", "desiredReplicas") if is_int(status.get(key)) and status[key] < 0]


# --- columns -----------------------------------------------------------------------------------------
COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Reference", "string", "", "scaleTargetRef points to the target resource to scale, and is used to the "
           "pods for which metrics should be collected, as well as to actually change the replica count."),
    Column("Targets", "string", "", "metrics contains the specifications for which to use to calculate the desired "
           "replica count (the maximum replica count across all metrics will be used).  The desired replica count "
           "is calculated multiplying the ratio between the target value and the current value by the current "
           "number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See "
           "the individual metric source types for more information about how each type of metric must respond."),
    Column("MinPods", "string", "", "minReplicas is the lower limit for the number of replicas to which the "
           "autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature "
           "gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is "
           "active as long as at least one metric value is available."),
    Column("MaxPods", "string", "", "maxReplicas is the upper limit for the number of replicas to which the "
           "autoscaler can scale up. It cannot be less that minReplicas."),
    Column("Replicas", "string", "", "currentReplicas is current number of replicas of pods managed by this "
           "autoscaler, as last seen by the autoscaler."),
    Column("Age", "string", "", AGE_DESCRIPTION),
]


def _current(statuses: list, index: int, field: str) -> Obj | None:
    if index < len(statuses) and isinstance(statuses[index], dict) and isinstance(statuses[index].get(field), dict):
        return _dict(statuses[index][field].get("current"))
    return None


def _value(current: Obj | None, key: str) -> str:
    return str(current[key]) if current is not None and current.get(key) is not None else "<unknown>"


def format_metrics(specs: list, statuses: list) -> str:
    """kubectl's formatHPAMetrics: "cpu: 40%/80%", "<unknown>" until the controller reports; two at most."""
    if not specs:
        return "<none>"
    shown = []
    for index, spec in enumerate(specs):
        spec = _dict(spec)
        kind = spec.get("type")
        field = _TYPE_FIELDS.get(kind or "")
        source = _dict(spec.get(field)) if field else {}
        target = _dict(source.get("target"))
        current = _current(statuses, index, field) if field else None
        if kind in ("External", "Object"):
            if target.get("averageValue") is not None:
                shown.append(f"{_value(current, 'averageValue')}/{target['averageValue']} (avg)")
            else:
                shown.append(f"{_value(current, 'value')}/{target.get('value', '0')}")
        elif kind == "Pods":
            shown.append(f"{_value(current, 'averageValue')}/{target.get('averageValue', '0')}")
        elif kind in ("Resource", "ContainerResource"):
            name = source.get("name", "")
            if target.get("averageValue") is not None:
                shown.append(f"{name}: {_value(current, 'averageValue')}/{target['averageValue']}")
            else:
                utilization = current.get("averageUtilization") if current is not None else None
                now_text = "<unknown>" if utilization is None else f"{utilization}%"
                wanted = "<auto>" if target.get("averageUtilization") is None else f"{target['averageUtilization']}%"
                shown.append(f"{name}: {now_text}/{wanted}")
        else:
            shown.append("<unknown type>")
    if len(shown) > 2:
        return f"{', '.join(shown[:2])} + {len(shown) - 2} more..."
    return ", ".join(shown)


def hpa_row(hpa: Obj, now: datetime.datetime) -> Row:
    spec, status = _dict(hpa.get("spec")), _dict(hpa.get("status"))
    ref = _dict(spec.get("scaleTargetRef"))
    min_pods = spec.get("minReplicas")
    return Row([hpa["metadata"]["name"], f"{ref.get('kind', '')}/{ref.get('name', '')}",
                format_metrics(_list(spec.get("metrics")), _list(status.get("currentMetrics"))),
                "<unset>" if min_pods is None else str(min_pods), spec.get("maxReplicas", 0),
                status.get("currentReplicas", 0), age(hpa["metadata"].get("creationTimestamp"), now)])


@dataclass
class HorizontalPodAutoscalerStrategy(Strategy):
    info: ResourceInfo = HPA_INFO
    has_status: bool = True
    tracks_generation: bool = False

    def default(self, obj: Obj) -> None:
        default_hpa(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"desiredReplicas": 0}

    def validate(self, obj: Obj) -> list[FieldError]:
        return super().validate(obj) + validate_hpa_spec(obj.get("spec"))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        bound = 0 if _dict(old.get("spec")).get("minReplicas") == 0 else 1
        return validate_meta_update(new, old) + Strategy.validate(self, new) + \
            validate_hpa_spec(new.get("spec"), bound)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_meta_update(new, old) + _status_errors(new.get("status"))

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(COLUMNS, lambda obj: hpa_row(obj, now))
