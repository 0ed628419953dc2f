"""Workload kinds: ReplicationController (v1), ReplicaSet and Deployment (apps/v1): defaulting and
validation as upstream's (apps and core validation), status and scale subresources, columns."""
from __future__ import annotations

import dataclasses
import datetime
import re
from dataclasses import dataclass
from typing import Any

from apiserver.errors import FieldError, GoLiteral, forbidden, invalid, not_supported, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.kinds.pods import PodStrategy, _default_container
from apiserver.kinds.workload_tables import deployment_table, replica_set_table
from apiserver.tables import TableSpec
from shipmate.selectors import SelectorError, label_selector_from_dict

WORKLOAD_SUBRESOURCES = ("status", "scale")
RC_INFO = ResourceInfo("", "v1", "ReplicationController", "replicationcontrollers", "replicationcontroller", True,
                       short_names=("rc",), categories=("all",), subresources=WORKLOAD_SUBRESOURCES)
REPLICASET_INFO = ResourceInfo("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, short_names=("rs",),
                               categories=("all",), subresources=WORKLOAD_SUBRESOURCES)
DEPLOYMENT_INFO = ResourceInfo("apps", "v1", "Deployment", "deployments", "deployment", True,
                               short_names=("deploy",), categories=("all",), subresources=WORKLOAD_SUBRESOURCES)

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
_INT_OR_PERCENT = re.compile(r"^(\d+)%$")
_POD_TEMPLATE_DEFAULTS = {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "terminationGracePeriodSeconds": 30,
                          "schedulerName": "default-scheduler"}


# --- Go-literal rendering of bad values, as upstream's messages print them ----------------------
def go_string_map(values: Any) -> GoLiteral:
    if not values:
        return GoLiteral("map[string]string(nil)")
    return GoLiteral("map[string]string{" + ", ".join(f'"{k}":"{values[k]}"' for k in sorted(values)) + "}")


def go_label_selector(selector: Any) -> GoLiteral:
    if not isinstance(selector, dict):
        return GoLiteral("(*v1.LabelSelector)(nil)")
    expressions = selector.get("matchExpressions") or []
    rendered = ", ".join(
        f'v1.LabelSelectorRequirement{{Key:"{e.get("key", "")}", Operator:"{e.get("operator", "")}", '
        f'Values:[]string{{{", ".join(chr(34) + v + chr(34) for v in e.get("values") or [])}}}}}'
        for e in expressions if isinstance(e, dict))
    expressions_text = f"[]v1.LabelSelectorRequirement{{{rendered}}}" if expressions \
        else "[]v1.LabelSelectorRequirement(nil)"
    return GoLiteral(f"v1.LabelSelector{{MatchLabels:{go_string_map(selector.get('matchLabels'))}, "
                     f"MatchExpressions:{expressions_text}}}")


# --- defaulting ------------------------------------------------------------------------------
def default_pod_template(template: Any) -> None:
    """SetDefaults_PodSpec on a template: the pod-level admission defaults (tolerations, priority) stay off."""
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        return
    spec = template["spec"]
    for key, value in _POD_TEMPLATE_DEFAULTS.items():
        spec.setdefault(key, value)
    spec.setdefault("securityContext", {})
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _default_container(container)


def scaled_int_or_percent(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent; ValueError for a malformed value."""
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    match = _INT_OR_PERCENT.match(str(value))
    if not match:
        raise ValueError("invalid value for IntOrString: invalid type: string is not a percentage")
    scaled = int(match[1]) * total
    return -(-scaled // 100) if round_up else scaled // 100


# --- validation ------------------------------------------------------------------------------
def _non_negative(spec: Obj, key: str, path: str) -> list[FieldError]:
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, int) or isinstance(value, bool):
        return [invalid(f"{path}.{key}", value, "must be an integer")]
    return [invalid(f"{path}.{key}", value, "must be greater than or equal to 0")] if value < 0 else []


def validate_pod_template(template: Any, selector_matches: Any, path: str = "spec.template") -> list[FieldError]:
    """ValidatePodTemplateSpecForReplicaSet: labels match the selector, a valid pod spec, restartPolicy Always.

    `selector_matches(labels) -> bool`, or None when the selector is empty or invalid (nothing to check)."""
    if not isinstance(template, dict):
        return [required(path, "")]
    errors: list[FieldError] = []
    meta = template.get("metadata") or {}
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if selector_matches is not None and not selector_matches(labels or {}):
        errors.append(invalid(f"{path}.metadata.labels", go_string_map(labels),
                              "`selector` does not match template `labels`"))
    pod = {"metadata": {**(meta if isinstance(meta, dict) else {}), "name": "template", "namespace": "template"},
           "spec": template.get("spec")}
    for error in PodStrategy().validate(pod):
        if error.field.startswith("metadata.name") or error.field.startswith("metadata.namespace"):
            continue
        errors.append(dataclasses.replace(error, field=f"{path}.{error.field}"))
    spec = template.get("spec")
    if isinstance(spec, dict):
        if spec.get("restartPolicy") in ("Never", "OnFailure"):
            errors.append(not_supported(f"{path}.spec.restartPolicy", spec["restartPolicy"], ["Always"]))
        if spec.get("activeDeadlineSeconds") is not None:
            errors.append(invalid(f"{path}.spec.activeDeadlineSeconds", spec["activeDeadlineSeconds"],
                                  "activeDeadlineSeconds in ReplicaSet is not Supported"))
    return errors


def validate_label_selector_spec(spec: Obj, path: str = "spec") -> tuple[list[FieldError], Any]:
    """The apps/v1 `selector`: required, non-empty, parseable. Returns (errors, matcher or None)."""
    selector = spec.get("selector")
    if selector is None:
        return [required(f"{path}.selector", "")], None
    if not isinstance(selector, dict):
        return [invalid(f"{path}.selector", selector, "must be a label selector")], None
    try:
        parsed = label_selector_from_dict(selector)
    except SelectorError as exc:
        return [invalid(f"{path}.selector", go_label_selector(selector), str(exc))], None
    if not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return [invalid(f"{path}.selector", go_label_selector(selector), "empty selector is invalid for deployment")], None
    return [], parsed.matches


def _validate_strategy(spec: Obj) -> list[FieldError]:
    strategy = spec.get("strategy") or {}
    kind = strategy.get("type")
    if kind not in ("RollingUpdate", "Recreate"):
        return [not_supported("spec.strategy.type", kind, ["Recreate", "RollingUpdate"])]
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [forbidden("spec.strategy.rollingUpdate",
                              "may not be specified when strategy `type` is 'Recreate'")]
        return []
    errors: list[FieldError] = []
    values = {}
    for key in ("maxUnavailable", "maxSurge"):
        value = (rolling or {}).get(key)
        path = f"spec.strategy.rollingUpdate.{key}"
        try:
            number = scaled_int_or_percent(value, 100, True)
        except ValueError:
            errors.append(invalid(path, value, "a valid percent string must be a numeric string followed by an "
                                               "ending '%' (e.g. '1%',  or '93%', regex used for validation is "
                                               "'[0-9]+%')"))
            continue
        if number < 0:
            errors.append(invalid(path, value, "must be greater than or equal to 0"))
        elif isinstance(value, str) and number > 100 and key == "maxUnavailable":
            errors.append(invalid(path, value, "must not be greater than 100%"))
        values[key] = number
    if values.get("maxUnavailable") == 0 and values.get("maxSurge") == 0 and not errors:
        errors.append(invalid("spec.strategy.rollingUpdate.maxUnavailable", rolling.get("maxUnavailable"),
                              "may not be 0 when `maxSurge` is 0"))
    return errors


def _selector_unchanged(new: Obj, old: Obj) -> list[FieldError]:
    """apps/v1 selectors are immutable."""
    new_selector, old_selector = (new.get("spec") or {}).get("selector"), (old.get("spec") or {}).get("selector")
    if new_selector != old_selector:
        return [invalid("spec.selector", go_label_selector(new_selector), "field is immutable")]
    return []


def _replica_set_status_errors(obj: Obj) -> list[FieldError]:
    status = obj.get("status") or {}
    return [error for key in ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
                              "observedGeneration") for error in _non_negative(status, key, "status")]


@dataclass
class _WorkloadStrategy(Strategy):
    """What ReplicationControllers, ReplicaSets and Deployments share."""
    has_status: bool = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def table(self, now: datetime.datetime) -> TableSpec:
        return replica_set_table(now)


@dataclass
class _ReplicasStatusStrategy(_WorkloadStrategy):
    """ReplicaSet and ReplicationController: `status.replicas` is a required field upstream (no omitempty), so
    even a new object's status carries it (the official client's models refuse a status without it)."""

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"replicas": 0}


@dataclass
class ReplicaSetStrategy(_ReplicasStatusStrategy):
    info: ResourceInfo = REPLICASET_INFO

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("replicas", 1)
            default_pod_template(spec.get("template"))

    def validate(self, obj: Obj) -> list[FieldError]:
        errors = super().validate(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return errors + [required("spec")]
        errors += _non_negative(spec, "replicas", "spec") + _non_negative(spec, "minReadySeconds", "spec")
        selector_errors, matches = validate_label_selector_spec(spec)
        return errors + selector_errors + validate_pod_template(spec.get("template"), matches)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return super().validate_update(new, old) + _selector_unchanged(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return _replica_set_status_errors(new)


@dataclass
class ReplicationControllerStrategy(_ReplicasStatusStrategy):
    info: ResourceInfo = RC_INFO
    orphans_dependents_by_default: bool = True  # core/v1 RCs keep their pods unless told otherwise, as upstream

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        template = spec.get("template")
        template_labels = ((template or {}).get("metadata") or {}).get("labels") if isinstance(template, dict) \
            else None
        if template_labels:
            if not spec.get("selector"):
                spec["selector"] = dict(template_labels)
            meta = obj.setdefault("metadata", {})
            if not meta.get("labels"):
                meta["labels"] = dict(template_labels)
        default_pod_template(template)

    def validate(self, obj: Obj) -> list[FieldError]:
        errors = super().validate(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return errors + [required("spec")]
        errors += _non_negative(spec, "replicas", "spec") + _non_negative(spec, "minReadySeconds", "spec")
        selector = spec.get("selector")
        matches = None
        if not selector:
            errors.append(required("spec.selector", ""))
        elif not isinstance(selector, dict):
            errors.append(invalid("spec.selector", selector, "must be a map of labels"))
        else:
            matches = lambda labels: all(labels.get(k) == v for k, v in selector.items())  # noqa: E731
        if spec.get("template") is None:
            return errors + [required("spec.template", "")]
        return errors + validate_pod_template(spec.get("template"), matches)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return _replica_set_status_errors(new)


@dataclass
class DeploymentStrategy(_WorkloadStrategy):
    info: ResourceInfo = DEPLOYMENT_INFO

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                if isinstance(rolling, dict):
                    rolling.setdefault("maxUnavailable", "25%")
                    rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        default_pod_template(spec.get("template"))

    def validate(self, obj: Obj) -> list[FieldError]:
        errors = super().validate(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return errors + [required("spec")]
        for key in ("replicas", "minReadySeconds", "revisionHistoryLimit"):
            errors += _non_negative(spec, key, "spec")
        selector_errors, matches = validate_label_selector_spec(spec)
        errors += selector_errors + validate_pod_template(spec.get("template"), matches)
        errors += _validate_strategy(spec)
        deadline, min_ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
        if deadline is not None:
            errors += _non_negative(spec, "progressDeadlineSeconds", "spec")
            if isinstance(deadline, int) and isinstance(min_ready, int) and deadline <= min_ready:
                errors.append(invalid("spec.progressDeadlineSeconds", deadline,
                                      "must be greater than minReadySeconds"))
        return errors

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return super().validate_update(new, old) + _selector_unchanged(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = new.get("status") or {}
        return [error for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                                  "unavailableReplicas", "observedGeneration", "collisionCount")
                for error in _non_negative(status, key, "status")]

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """As upstream's deployment status strategy: only spec and labels come from the stored object, so
        the controller records `deployment.kubernetes.io/revision` through /status."""
        annotations = (new.get("metadata") or {}).get("annotations")
        super().prepare_for_status_update(new, old)
        if annotations is not None:
            new["metadata"]["annotations"] = annotations
        else:
            new["metadata"].pop("annotations", None)

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        """Spec or annotation changes bump the generation (annotations are copied to ReplicaSets); the
        revision annotation the controller maintains does not."""
        def user_annotations(obj: Obj) -> dict:
            annotations = dict((obj.get("metadata") or {}).get("annotations") or {})
            annotations.pop(REVISION_ANNOTATION, None)
            return annotations
        return super().spec_changed(new, old) or user_annotations(new) != user_annotations(old)

    def table(self, now: datetime.datetime) -> TableSpec:
        return deployment_table(now)


def workload_strategies() -> list[Strategy]:
    return [ReplicationControllerStrategy(), ReplicaSetStrategy(), DeploymentStrategy()]
