"""batch/v1 Job and CronJob: defaulting, selector generation, validation (upstream's batch validation and
messages), status subresources, field selectors and columns."""
from __future__ import annotations

import copy
import dataclasses
import datetime
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from apiserver import request_warnings
from apiserver.cron import CronError, load_zone, parse_standard
from apiserver.errors import FieldError, GoLiteral, duplicate, invalid, not_supported, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.kinds.batch_tables import cronjob_table, job_table
from apiserver.kinds.pods import PodStrategy
from apiserver.kinds.workloads import default_pod_template, go_string_map
from apiserver.tables import TableSpec
from apiserver.validation import dns1123_label, qualified_name, validate_meta_update
from shipmate.selectors import SelectorError, label_selector_from_dict

JOB_INFO = ResourceInfo("batch", "v1", "Job", "jobs", "job", True, categories=("all",), subresources=("status",))
CRONJOB_INFO = ResourceInfo("batch", "v1", "CronJob", "cronjobs", "cronjob", True, short_names=("cj",),
                            categories=("all",), subresources=("status",))

_PREFIX = "batch.kubernetes.io/"
JOB_NAME_LABEL = _PREFIX + "job-name"
CONTROLLER_UID_LABEL = _PREFIX + "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
JOB_TRACKING_FINALIZER = _PREFIX + "job-tracking"
JOB_COMPLETION_INDEX = _PREFIX + "job-completion-index"
CRONJOB_SCHEDULED_TIMESTAMP = _PREFIX + "cronjob-scheduled-timestamp"
JOB_CONTROLLER_NAME = "kubernetes.io/job-controller"

MAX_PARALLELISM_INDEXED = 100_000
MAX_FAILED_INDEXES = 100_000
COMPLETIONS_SOFT_LIMIT = 100_000
PARALLELISM_LIMIT_HIGH_COMPLETIONS = 10_000
MAX_FAILED_INDEXES_HIGH_COMPLETIONS = 10_000
MAX_POD_FAILURE_POLICY_RULES = 20
MAX_EXIT_CODE_VALUES = 255
MAX_POD_CONDITION_PATTERNS = 20
MAX_MANAGED_BY_LENGTH = 63
MAX_SUCCESS_POLICY_RULES = 20
MAX_SUCCEEDED_INDEXES_LENGTH = 64 * 1024
_POLICY_ACTIONS = ["Count", "FailIndex", "FailJob", "Ignore"]
_EXIT_CODE_OPERATORS = ["In", "NotIn"]
_CONDITION_STATUSES = ["False", "True", "Unknown"]
_REPLACEMENT_POLICIES = ["Failed", "TerminatingOrFailed"]
_CONCURRENCY_POLICIES = ["Allow", "Forbid", "Replace"]
_TIME_ZONE_PART = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}$")
_DOMAIN_PREFIXED_PATH = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[-a-zA-Z0-9._~!$&'()*+,;=:@%/]+$")


# --- Go renderings of bad values -----------------------------------------------------------------------
def go_selector(selector: Any) -> GoLiteral:
    """A *metav1.LabelSelector as its generated String() (how upstream's errors print it)."""
    if not isinstance(selector, dict):
        return GoLiteral("nil")
    labels = selector.get("matchLabels") or {}
    label_text = "".join(f"{key}: {labels[key]}," for key in sorted(labels))
    expressions = "".join(
        f"LabelSelectorRequirement{{Key:{e.get('key', '')},Operator:{e.get('operator', '')},"
        f"Values:[{' '.join(e.get('values') or [])}],}},"
        for e in selector.get("matchExpressions") or [] if isinstance(e, dict))
    return GoLiteral(f"&LabelSelector{{MatchLabels:map[string]string{{{label_text}}},"
                     f"MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}")


def _go_int_list(values: Any) -> GoLiteral:
    return GoLiteral("[]int32{" + ", ".join(str(v) for v in values or []) + "}")


# --- shared checks -----------------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _non_negative(spec: Obj, key: str, path: str) -> list[FieldError]:
    value = spec.get(key)
    if value is None:
        return []
    if not _is_int(value):
        return [invalid(f"{path}.{key}", value, "must be an integer")]
    return [invalid(f"{path}.{key}", value, "must be greater than or equal to 0")] if value < 0 else []


def selector_matcher(selector: Any) -> Callable[[dict[str, str]], bool] | None:
    """A label selector's matcher; None when it is not a valid selector."""
    if not isinstance(selector, dict):
        return None
    try:
        return label_selector_from_dict(selector).matches
    except SelectorError:
        return None


def _validate_label_selector(selector: Any, path: str) -> list[FieldError]:
    if not isinstance(selector, dict):
        return [invalid(path, selector, "must be a label selector")]
    errors: list[FieldError] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        errors += [invalid(f"{path}.matchLabels", key, p) for p in qualified_name(str(key))]
        if not isinstance(value, str):
            errors.append(invalid(f"{path}.matchLabels", value, "must be a string"))
    for index, expression in enumerate(selector.get("matchExpressions") or []):
        where = f"{path}.matchExpressions[{index}]"
        if not isinstance(expression, dict):
            errors.append(invalid(where, expression, "must be a label selector requirement"))
            continue
        operator, values = expression.get("operator"), expression.get("values") or []
        if operator in ("In", "NotIn"):
            if not values:
                errors.append(required(f"{where}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                errors.append(FieldError("FieldValueForbidden", f"{where}.values",
                                         "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errors.append(invalid(f"{where}.operator", operator, "not a valid selector operator"))
        errors += [invalid(f"{where}.key", expression.get("key"), p) for p in qualified_name(str(expression.get("key", "")))]
    return errors


def validate_job_pod_template(template: Any, path: str) -> list[FieldError]:
    """ValidatePodTemplateSpec: template metadata and a valid pod spec (restartPolicy is checked by the Job rules)."""
    if not isinstance(template, dict):
        return [required(path, "")]
    meta = template.get("metadata") or {}
    pod = {"metadata": {**(meta if isinstance(meta, dict) else {}), "name": "template", "namespace": "template"},
           "spec": template.get("spec")}
    errors = []
    for error in PodStrategy().validate(pod):
        if error.field.startswith(("metadata.name", "metadata.namespace", "spec.restartPolicy")):
            continue
        errors.append(dataclasses.replace(error, field=f"{path}.{error.field}"))
    return errors


def _has_label(template: Obj, key: str, expected: str) -> list[FieldError]:
    """ValidateHasLabel on the pod template's labels."""
    labels = ((template or {}).get("metadata") or {}).get("labels") or {}
    where = f"spec.template.metadata.labels[{key}]"
    if key not in labels:
        return [required(where, f"must be '{expected}'")]
    if labels[key] != expected:
        return [invalid(where, labels[key], f"must be '{expected}'")]
    return []


# --- Job -------------------------------------------------------------------------------------------
def default_job_spec(spec: Obj) -> None:
    """SetDefaults_Job's spec part (parallelism/completions, backoffLimit, completionMode, suspend,
    podReplacementPolicy, pod failure policy condition status, manualSelector) and the template defaults."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    if spec.get("completionMode") is None:
        spec["completionMode"] = "NonIndexed"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    policy = spec.get("podFailurePolicy")
    if isinstance(policy, dict):
        for rule in policy.get("rules") or []:
            for pattern in (rule.get("onPodConditions") or []) if isinstance(rule, dict) else []:
                if isinstance(pattern, dict) and not pattern.get("status"):
                    pattern["status"] = "True"
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if policy is not None else "TerminatingOrFailed"
    if spec.get("manualSelector") is None:
        spec["manualSelector"] = False
    default_pod_template(spec.get("template"))


def generate_selector(job: Obj) -> None:
    """The selector and template labels of a Job without a manual selector: job-name and controller-uid
    (prefixed and legacy) on the template, `batch.kubernetes.io/controller-uid` selected."""
    meta, spec = job["metadata"], job["spec"]
    template = spec.setdefault("template", {}) if isinstance(spec.get("template"), dict) or \
        spec.get("template") is None else None
    if template is None:
        return
    template_meta = template.setdefault("metadata", {})
    if not isinstance(template_meta, dict):
        return
    labels = template_meta.get("labels")
    if not isinstance(labels, dict):
        labels = template_meta["labels"] = {}
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(key, meta.get("name", ""))
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, meta.get("uid", ""))
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    match_labels = selector.get("matchLabels")
    if not isinstance(match_labels, dict):
        match_labels = selector["matchLabels"] = {}
    match_labels.setdefault(CONTROLLER_UID_LABEL, meta.get("uid", ""))


def _copy_template_labels(job: Obj) -> None:
    """SetDefaults_Job: a Job without labels shows its template's."""
    meta = job.setdefault("metadata", {})
    template_labels = (((job.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")
    if isinstance(template_labels, dict) and template_labels and not meta.get("labels"):
        meta["labels"] = dict(template_labels)


def _validate_pod_failure_policy(spec: Obj, path: str) -> list[FieldError]:
    policy = spec["podFailurePolicy"]
    if not isinstance(policy, dict):
        return [invalid(path, policy, "must be an object")]
    errors: list[FieldError] = []
    rules = policy.get("rules") or []
    rules_path = f"{path}.rules"
    if len(rules) > MAX_POD_FAILURE_POLICY_RULES:
        errors.append(FieldError("FieldValueTooMany", rules_path,
                                 f"must have at most {MAX_POD_FAILURE_POLICY_RULES} items", len(rules)))
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    names = {c.get("name") for key in ("containers", "initContainers") for c in pod_spec.get(key) or []
             if isinstance(c, dict)}
    for index, rule in enumerate(rules):
        where = f"{rules_path}[{index}]"
        if not isinstance(rule, dict):
            errors.append(invalid(where, rule, "must be an object"))
            continue
        action = rule.get("action")
        if not action:
            errors.append(required(f"{where}.action", "valid values: [" + " ".join(f'"{a}"' for a in _POLICY_ACTIONS)
                                   + "]"))
        elif action == "FailIndex":
            if spec.get("backoffLimitPerIndex") is None:
                errors.append(invalid(f"{where}.action", action, "requires the backoffLimitPerIndex to be set"))
        elif action not in _POLICY_ACTIONS:
            errors.append(not_supported(f"{where}.action", action, _POLICY_ACTIONS))
        on_exit, on_conditions = rule.get("onExitCodes"), rule.get("onPodConditions") or []
        if on_exit is not None:
            errors += _validate_on_exit_codes(on_exit, f"{where}.onExitCodes", names)
        if on_conditions:
            if len(on_conditions) > MAX_POD_CONDITION_PATTERNS:
                errors.append(FieldError("FieldValueTooMany", f"{where}.onPodConditions",
                                         f"must have at most {MAX_POD_CONDITION_PATTERNS} items", len(on_conditions)))
            for j, pattern in enumerate(on_conditions):
                pattern_path = f"{where}.onPodConditions[{j}]"
                pattern = pattern if isinstance(pattern, dict) else {}
                errors += [invalid(f"{pattern_path}.type", pattern.get("type", ""), p)
                           for p in qualified_name(str(pattern.get("type", "")))]
                status = pattern.get("status")
                if not status:
                    errors.append(required(f"{pattern_path}.status", "valid values: ["
                                           + " ".join(f'"{s}"' for s in _CONDITION_STATUSES) + "]"))
                elif status not in _CONDITION_STATUSES:
                    errors.append(not_supported(f"{pattern_path}.status", status, _CONDITION_STATUSES))
        if on_exit is not None and on_conditions:
            errors.append(FieldError("FieldValueInvalid", where,
                                     "specifying both OnExitCodes and OnPodConditions is not supported",
                                     GoLiteral("<omitted>")))
        if on_exit is None and not on_conditions:
            errors.append(FieldError("FieldValueInvalid", where,
                                     "specifying one of OnExitCodes and OnPodConditions is required",
                                     GoLiteral("<omitted>")))
    return errors


def _validate_on_exit_codes(requirement: Any, path: str, container_names: set[str]) -> list[FieldError]:
    if not isinstance(requirement, dict):
        return [invalid(path, requirement, "must be an object")]
    errors: list[FieldError] = []
    operator = requirement.get("operator")
    if not operator:
        errors.append(required(f"{path}.operator", "valid values: [" + " ".join(f'"{o}"' for o in _EXIT_CODE_OPERATORS)
                               + "]"))
    elif operator not in _EXIT_CODE_OPERATORS:
        errors.append(not_supported(f"{path}.operator", operator, _EXIT_CODE_OPERATORS))
    container = requirement.get("containerName")
    if container is not None and container not in container_names:
        errors.append(invalid(f"{path}.containerName", container,
                              "must be one of the container or initContainer names in the pod template"))
    values = requirement.get("values") or []
    if not values:
        errors.append(invalid(f"{path}.values", _go_int_list(values), "at least one value is required"))
    elif len(values) > MAX_EXIT_CODE_VALUES:
        errors.append(FieldError("FieldValueTooMany", f"{path}.values",
                                 f"must have at most {MAX_EXIT_CODE_VALUES} items", len(values)))
    seen: set[int] = set()
    ordered = True
    for j, value in enumerate(values):
        if operator == "In" and value == 0:
            errors.append(invalid(f"{path}.values[{j}]", value, "must not be 0 for the In operator"))
        if value in seen:
            errors.append(duplicate(f"{path}.values[{j}]", value))
        seen.add(value)
        if j > 0 and _is_int(values[j - 1]) and _is_int(value) and values[j - 1] > value:
            ordered = False
    if not ordered:
        errors.append(invalid(f"{path}.values", _go_int_list(values), "must be ordered"))
    return errors


def parse_index_interval(text: str, completions: int) -> tuple[int, int]:
    """parseIndexInterval: "X" or "X-Y" below completions; ValueError with upstream's message."""
    limits = text.split("-")
    if len(limits) > 2:
        raise ValueError(f"the fragment {_go_quote(text)} violates the requirement that an index interval can have "
                         "at most two parts separated by '-'")
    try:
        low = int(limits[0]) if re.fullmatch(r"[+-]?[0-9]+", limits[0]) else int("x")
    except ValueError:
        raise ValueError(f"cannot convert string to integer for index: {_go_quote(limits[0])}") from None
    if low >= completions:
        raise ValueError(f"too large index: {_go_quote(limits[0])}")
    if len(limits) == 1:
        return low, low
    try:
        high = int(limits[1]) if re.fullmatch(r"[+-]?[0-9]+", limits[1]) else int("x")
    except ValueError:
        raise ValueError(f"cannot convert string to integer for index: {_go_quote(limits[1])}") from None
    if high >= completions:
        raise ValueError(f"too large index: {_go_quote(limits[1])}")
    if low >= high:
        raise ValueError(f"non-increasing order, previous: {low}, current: {high}")
    return low, high


def validate_indexes_format(text: str, completions: int) -> int:
    """validateIndexesFormat: the number of indexes in "1,3-5,7"; ValueError when malformed."""
    if not text:
        return 0
    last, total = None, 0
    for part in text.split(","):
        low, high = parse_index_interval(part, completions)
        if last is not None and last >= low:
            raise ValueError(f"non-increasing order, previous: {last}, current: {low}")
        total += high - low + 1
        last = high
    return total


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _validate_success_policy(spec: Obj, path: str) -> list[FieldError]:
    policy = spec["successPolicy"]
    rules = (policy or {}).get("rules") or [] if isinstance(policy, dict) else []
    errors: list[FieldError] = []
    if not rules:
        errors.append(required(f"{path}.rules", "at least one rules must be specified when the successPolicy is "
                                               "specified"))
    if len(rules) > MAX_SUCCESS_POLICY_RULES:
        errors.append(FieldError("FieldValueTooMany", f"{path}.rules",
                                 f"must have at most {MAX_SUCCESS_POLICY_RULES} items", len(rules)))
    completions = spec.get("completions") or 0
    for index, rule in enumerate(rules):
        where = f"{path}.rules[{index}]"
        rule = rule if isinstance(rule, dict) else {}
        indexes, count = rule.get("succeededIndexes"), rule.get("succeededCount")
        if indexes is None and count is None:
            errors.append(required(where, "at least one of succeededCount or succeededIndexes must be specified"))
        total = 0
        if indexes is not None:
            if len(indexes) > MAX_SUCCEEDED_INDEXES_LENGTH:
                errors.append(FieldError("FieldValueTooLong", f"{where}.succeededIndexes",
                                         f"must have at most {MAX_SUCCEEDED_INDEXES_LENGTH} bytes", indexes))
            try:
                total = validate_indexes_format(indexes, completions)
            except ValueError as exc:
                errors.append(invalid(f"{where}.succeededIndexes", indexes, f"error parsing succeededIndexes: {exc}"))
        if count is not None:
            errors += _non_negative(rule, "succeededCount", where)
            if _is_int(count) and count > completions:
                errors.append(invalid(f"{where}.succeededCount", count, f"must be less than or equal to {completions} "
                                                                        "(the number of specified completions)"))
            if indexes is not None and _is_int(count) and count > total:
                errors.append(invalid(f"{where}.succeededCount", count, f"must be less than or equal to {total} (the "
                                      "number of indexes in the specified succeededIndexes field)"))
    return errors


def validate_job_spec_body(spec: Obj, path: str) -> list[FieldError]:
    """validateJobSpec: what a Job and a CronJob's job template share."""
    errors: list[FieldError] = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished",
                "backoffLimitPerIndex", "maxFailedIndexes"):
        errors += _non_negative(spec, key, path)
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        errors.append(required(f"{path}.backoffLimitPerIndex", "when maxFailedIndexes is specified"))
    managed_by = spec.get("managedBy")
    if managed_by is not None:
        if not isinstance(managed_by, str) or not _DOMAIN_PREFIXED_PATH.match(managed_by):
            errors.append(invalid(f"{path}.managedBy", managed_by, "must be a domain-prefixed path (such as "
                                                                   "\"acme.io/foo\")"))
        if isinstance(managed_by, str) and len(managed_by) > MAX_MANAGED_BY_LENGTH:
            errors.append(FieldError("FieldValueTooLong", f"{path}.managedBy",
                                     f"may not be more than {MAX_MANAGED_BY_LENGTH} bytes", managed_by))
    mode = spec.get("completionMode")
    completions, parallelism = spec.get("completions"), spec.get("parallelism")
    max_failed, per_index = spec.get("maxFailedIndexes"), spec.get("backoffLimitPerIndex")
    if mode is not None:
        if mode not in ("NonIndexed", "Indexed"):
            errors.append(not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"]))
        if mode == "Indexed":
            if completions is None:
                errors.append(required(f"{path}.completions", "when completion mode is Indexed"))
            if _is_int(parallelism) and parallelism > MAX_PARALLELISM_INDEXED:
                errors.append(invalid(f"{path}.parallelism", parallelism, f"must be less than or equal to "
                                      f"{MAX_PARALLELISM_INDEXED} when completion mode is Indexed"))
            if _is_int(completions) and _is_int(max_failed) and max_failed > completions:
                errors.append(invalid(f"{path}.maxFailedIndexes", max_failed,
                                      "must be less than or equal to completions"))
            if _is_int(max_failed) and max_failed > MAX_FAILED_INDEXES:
                errors.append(invalid(f"{path}.maxFailedIndexes", max_failed,
                                      f"must be less than or equal to {MAX_FAILED_INDEXES}"))
            if _is_int(completions) and completions > COMPLETIONS_SOFT_LIMIT and per_index is not None:
                if max_failed is None:
                    errors.append(required(f"{path}.maxFailedIndexes", f"must be specified when completions is "
                                                                       f"above {COMPLETIONS_SOFT_LIMIT}"))
                if _is_int(parallelism) and parallelism > PARALLELISM_LIMIT_HIGH_COMPLETIONS:
                    errors.append(invalid(f"{path}.parallelism", parallelism, f"must be less than or equal to "
                                          f"{PARALLELISM_LIMIT_HIGH_COMPLETIONS} when completions are above "
                                          f"{COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"))
                if _is_int(max_failed) and max_failed > MAX_FAILED_INDEXES_HIGH_COMPLETIONS:
                    errors.append(invalid(f"{path}.maxFailedIndexes", max_failed, f"must be less than or equal to "
                                          f"{MAX_FAILED_INDEXES_HIGH_COMPLETIONS} when completions are above "
                                          f"{COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"))
    if mode in (None, "NonIndexed"):
        if per_index is not None:
            errors.append(invalid(f"{path}.backoffLimitPerIndex", per_index, "requires indexed completion mode"))
        if max_failed is not None:
            errors.append(invalid(f"{path}.maxFailedIndexes", max_failed, "requires indexed completion mode"))
    if spec.get("podFailurePolicy") is not None:
        errors += _validate_pod_failure_policy(spec, f"{path}.podFailurePolicy")
    if spec.get("successPolicy") is not None:
        if mode != "Indexed":
            errors.append(invalid(f"{path}.successPolicy", GoLiteral("batch.SuccessPolicy{...}"),
                                  "requires indexed completion mode"))
        else:
            errors += _validate_success_policy(spec, f"{path}.successPolicy")
    replacement = spec.get("podReplacementPolicy")
    if replacement is not None:
        if spec.get("podFailurePolicy") is not None:
            if replacement != "Failed":
                errors.append(not_supported(f"{path}.podReplacementPolicy", replacement, ["Failed"]))
        elif replacement not in _REPLACEMENT_POLICIES:
            errors.append(not_supported(f"{path}.podReplacementPolicy", replacement, _REPLACEMENT_POLICIES))
    template = spec.get("template")
    errors += validate_job_pod_template(template, f"{path}.template")
    restart = ((template or {}).get("spec") or {}).get("restartPolicy") if isinstance(template, dict) else None
    restart_path = f"{path}.template.spec.restartPolicy"
    if restart in ("Always", "", None):
        errors.append(required(restart_path, 'valid values: "OnFailure", "Never"'))
    elif restart not in ("OnFailure", "Never"):
        errors.append(not_supported(restart_path, restart, ["OnFailure", "Never"]))
    elif spec.get("podFailurePolicy") is not None and restart != "Never":
        errors.append(invalid(restart_path, restart, 'only "Never" is supported when podFailurePolicy is specified'))
    return errors


def _is_condition_true(job: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [] if isinstance(c, dict))


@dataclass
class JobStrategy(Strategy):
    info: ResourceInfo = JOB_INFO
    has_status: bool = True
    orphans_dependents_by_default: bool = True  # batch/v1 Jobs keep their pods unless told otherwise, as upstream
    field_labels: tuple[str, ...] = field(default=("metadata.name", "metadata.namespace", "status.successful"))

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            default_job_spec(spec)
            _copy_template_labels(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}
        spec = obj.get("spec")
        if isinstance(spec, dict) and not spec.get("manualSelector"):
            generate_selector(obj)
            _copy_template_labels(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return self._validate(obj, require_prefixed_labels=True)

    def _validate(self, obj: Obj, require_prefixed_labels: bool) -> list[FieldError]:
        errors = super().validate(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return errors + [required("spec")]
        meta = obj.get("metadata") or {}
        selector = spec.get("selector")
        if not spec.get("manualSelector") and selector is not None:
            if not meta.get("uid"):
                errors.append(required("metadata.uid", ""))
            template = spec.get("template") or {}
            errors += _has_label(template, LEGACY_CONTROLLER_UID_LABEL, meta.get("uid", ""))
            errors += _has_label(template, LEGACY_JOB_NAME_LABEL, meta.get("name", ""))
            expected = {LEGACY_CONTROLLER_UID_LABEL: meta.get("uid", ""), LEGACY_JOB_NAME_LABEL: meta.get("name", "")}
            if require_prefixed_labels:
                errors += _has_label(template, CONTROLLER_UID_LABEL, meta.get("uid", ""))
                errors += _has_label(template, JOB_NAME_LABEL, meta.get("name", ""))
                expected.update({CONTROLLER_UID_LABEL: meta.get("uid", ""), JOB_NAME_LABEL: meta.get("name", "")})
            matches = selector_matcher(selector)
            if matches is not None and not matches(expected):
                errors.append(invalid("spec.selector", go_selector(selector), "`selector` not auto-generated"))
        errors += validate_job_spec_body(spec, "spec")
        if selector is None:
            errors.append(required("spec.selector", ""))
        else:
            errors += _validate_label_selector(selector, "spec.selector")
        matches = selector_matcher(selector)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") \
            if isinstance(spec.get("template"), dict) else None
        if matches is not None and not matches(template_labels or {}):
            errors.append(invalid("spec.template.metadata.labels", go_string_map(template_labels),
                                  "`selector` does not match template `labels`"))
        completions = spec.get("completions")
        if spec.get("completionMode") == "Indexed" and _is_int(completions) and completions > 0:
            hostname = f"{meta.get('name', '')}-{completions - 1}"
            if dns1123_label(hostname):
                errors.append(invalid("metadata.name", meta.get("name", ""),
                                      f"will not able to create pod with invalid DNS label: {hostname}"))
        return errors

    def admit(self, new: Obj, old: Obj | None) -> list[FieldError]:
        if old is None:
            problems = dns1123_label(new["metadata"].get("name", ""))
            if problems:
                request_warnings.add("metadata.name: this is used in Pod names and hostnames, which can result in "
                                     f"surprising behavior; a DNS label is recommended: [{' '.join(problems)}]")
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        old_labels = ((old.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
        prefixed = JOB_NAME_LABEL in old_labels and CONTROLLER_UID_LABEL in old_labels
        errors = self._validate(new, prefixed) + validate_meta_update(new, old)
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        errors += _completions_update(spec, old_spec)
        if spec.get("selector") != old_spec.get("selector"):
            errors.append(invalid("spec.selector", go_selector(spec.get("selector")), "field is immutable"))
        errors += _template_update(spec, old_spec, old)
        for key, literal in (("completionMode", None), ("podFailurePolicy", "batch.PodFailurePolicy{...}"),
                             ("backoffLimitPerIndex", None), ("managedBy", None),
                             ("successPolicy", "batch.SuccessPolicy{...}")):
            if spec.get(key) != old_spec.get(key):
                value = spec.get(key)
                shown = GoLiteral(literal) if literal and value is not None else value
                errors.append(invalid(f"spec.{key}", shown, "field is immutable"))
        return errors

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = new.get("status") or {}
        errors: list[FieldError] = []
        for key in ("active", "succeeded", "failed", "ready", "terminating"):
            errors += _non_negative(status, key, "status")
        uncounted = status.get("uncountedTerminatedPods") or {}
        seen: set[str] = set()
        for kind in ("succeeded", "failed"):
            for index, uid in enumerate(uncounted.get(kind) or []):
                where = f"status.uncountedTerminatedPods.{kind}[{index}]"
                if not uid:
                    errors.append(invalid(where, uid, "must not be empty"))
                elif uid in seen:
                    errors.append(duplicate(where, uid))
                else:
                    seen.add(uid)
        for kind in ("Failed", "Complete", "FailureTarget"):
            if _is_condition_true(old, kind) and not _is_condition_true(new, kind):
                errors.append(invalid("status.conditions", GoLiteral("<omitted>"),
                                      f"cannot disable the terminal {kind}=True condition"))
        if _is_condition_true(new, "Complete") and _is_condition_true(new, "Failed"):
            errors.append(invalid("status.conditions", GoLiteral("<omitted>"),
                                  "cannot set Complete=True and Failed=true conditions"))
        return errors

    def field_values(self, obj: Obj) -> dict[str, str]:
        values = super().field_values(obj)
        values["status.successful"] = str((obj.get("status") or {}).get("succeeded", 0))
        return values

    def table(self, now: datetime.datetime) -> TableSpec:
        return job_table(now)


def _completions_update(spec: Obj, old_spec: Obj) -> list[FieldError]:
    """Completions are immutable, except for Indexed Jobs changing them together with parallelism."""
    new, old = spec.get("completions"), old_spec.get("completions")
    if new == old:
        return []
    if spec.get("completionMode") == "Indexed":
        if new is None:
            return []
        if new != spec.get("parallelism"):
            return [invalid("spec.completions", new, "can only be modified in tandem with spec.parallelism")]
        return []
    return [invalid("spec.completions", new, "field is immutable")]


def _template_update(spec: Obj, old_spec: Obj, old_job: Obj) -> list[FieldError]:
    """The template is immutable; a suspended Job that never started may change its scheduling directives
    (node affinity, node selector, tolerations, scheduling gates) and template labels/annotations."""
    template, old_template = spec.get("template") or {}, old_spec.get("template") or {}
    if template == old_template:
        return []
    never_started = bool(old_spec.get("suspend")) and not (old_job.get("status") or {}).get("startTime")
    if never_started:
        relaxed = copy.deepcopy(old_template)
        new_meta, new_pod = template.get("metadata") or {}, template.get("spec") or {}
        meta = relaxed.setdefault("metadata", {})
        pod = relaxed.setdefault("spec", {})
        for key in ("labels", "annotations"):
            if key in new_meta:
                meta[key] = new_meta[key]
            else:
                meta.pop(key, None)
        for key in ("nodeSelector", "tolerations", "schedulingGates"):
            if key in new_pod:
                pod[key] = new_pod[key]
            else:
                pod.pop(key, None)
        new_affinity, old_affinity = new_pod.get("affinity"), pod.get("affinity")
        if new_affinity is None and old_affinity is not None:
            rest = {k: v for k, v in old_affinity.items() if k != "nodeAffinity"}
            if rest:
                pod["affinity"] = rest
            else:
                pod.pop("affinity")
        elif new_affinity is not None:
            rest = {k: v for k, v in (old_affinity or {}).items() if k != "nodeAffinity"}
            if "nodeAffinity" in new_affinity:
                rest["nodeAffinity"] = new_affinity["nodeAffinity"]
            pod["affinity"] = rest
        if relaxed == template:
            return []
    return [invalid("spec.template", GoLiteral("core.PodTemplateSpec{...}"), "field is immutable")]


# --- CronJob -----------------------------------------------------------------------------------------
def _validate_time_zone(zone: Any, path: str) -> list[FieldError]:
    if zone is None:
        return []
    if zone == "":
        return [invalid(path, zone, "timeZone must be nil or non-empty string")]
    for part in str(zone).split("/"):
        if part in (".", "..") or part.startswith("-") or not _TIME_ZONE_PART.match(part):
            return [invalid(path, zone, f"unknown time zone {zone}")]
    errors = []
    if str(zone).lower() == "local":
        errors.append(invalid(path, zone, "timeZone must be an explicit time zone as defined in "
                                          "https://www.iana.org/time-zones"))
    try:
        load_zone(str(zone))
    except CronError as exc:
        errors.append(invalid(path, zone, str(exc)))
    return errors


def _validate_schedule(schedule: str, allow_tz: bool, zone: Any, path: str) -> list[FieldError]:
    errors = []
    try:
        parse_standard(schedule)
    except CronError as exc:
        errors.append(invalid(path, schedule, str(exc)))
    if allow_tz and "TZ" in schedule and zone is not None:
        errors.append(invalid(path, schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
    elif not allow_tz and "TZ" in schedule:
        errors.append(invalid(path, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    return errors


def validate_cronjob_spec(spec: Obj, old_spec: Obj | None) -> list[FieldError]:
    errors: list[FieldError] = []
    schedule = spec.get("schedule")
    if not schedule:
        errors.append(required("spec.schedule", ""))
    elif not isinstance(schedule, str):
        errors.append(invalid("spec.schedule", schedule, "must be a string"))
    else:
        allow_tz = old_spec is not None and "TZ" in (old_spec.get("schedule") or "")
        errors += _validate_schedule(schedule, allow_tz, spec.get("timeZone"), "spec.schedule")
    errors += _non_negative(spec, "startingDeadlineSeconds", "spec")
    if old_spec is None or old_spec.get("timeZone") != spec.get("timeZone"):
        errors += _validate_time_zone(spec.get("timeZone"), "spec.timeZone")
    policy = spec.get("concurrencyPolicy")
    if not policy:
        errors.append(required("spec.concurrencyPolicy", ""))
    elif policy not in _CONCURRENCY_POLICIES:
        errors.append(not_supported("spec.concurrencyPolicy", policy, _CONCURRENCY_POLICIES))
    job_template = spec.get("jobTemplate")
    job_spec = (job_template or {}).get("spec") if isinstance(job_template, dict) else None
    if not isinstance(job_spec, dict):
        job_spec = {}
    errors += validate_job_spec_body(job_spec, "spec.jobTemplate.spec")
    if job_spec.get("selector") is not None:
        errors.append(invalid("spec.jobTemplate.spec.selector", go_selector(job_spec["selector"]),
                              "`selector` will be auto-generated"))
    if job_spec.get("manualSelector"):
        errors.append(not_supported("spec.jobTemplate.spec.manualSelector", GoLiteral("true"), ["nil", "false"]))
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        errors += _non_negative(spec, key, "spec")
    return errors


@dataclass
class CronJobStrategy(Strategy):
    info: ResourceInfo = CRONJOB_INFO
    has_status: bool = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if not spec.get("concurrencyPolicy"):
            spec["concurrencyPolicy"] = "Allow"
        if spec.get("suspend") is None:
            spec["suspend"] = False
        if spec.get("successfulJobsHistoryLimit") is None:
            spec["successfulJobsHistoryLimit"] = 3
        if spec.get("failedJobsHistoryLimit") is None:
            spec["failedJobsHistoryLimit"] = 1
        job_template = spec.get("jobTemplate")
        if isinstance(job_template, dict) and isinstance(job_template.get("spec"), dict):
            default_pod_template(job_template["spec"].get("template"))

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def validate(self, obj: Obj) -> list[FieldError]:
        errors = super().validate(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return errors + [required("spec")]
        errors += validate_cronjob_spec(spec, None)
        name = (obj.get("metadata") or {}).get("name") or ""
        if len(name) > 52:
            errors.append(invalid("metadata.name", name, "must be no more than 52 characters"))
        return errors

    def admit(self, new: Obj, old: Obj | None) -> list[FieldError]:
        if old is None:
            problems = dns1123_label(new["metadata"].get("name", ""))
            if problems:
                request_warnings.add("metadata.name: this is used in Pod names and hostnames, which can result in "
                                     f"surprising behavior; a DNS label is recommended: [{' '.join(problems)}]")
            if "TZ" in ((new.get("spec") or {}).get("schedule") or ""):
                request_warnings.add("CRON_TZ or TZ used in spec.schedule is not officially supported, see "
                                     "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more "
                                     "details")
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errors = Strategy.validate(self, new) + validate_meta_update(new, old)
        spec = new.get("spec")
        if not isinstance(spec, dict):
            return errors + [required("spec")]
        return errors + validate_cronjob_spec(spec, old.get("spec") or {})

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return []

    def table(self, now: datetime.datetime) -> TableSpec:
        return cronjob_table(now)


def batch_strategies() -> list[Strategy]:
    return [JobStrategy(), CronJobStrategy()]
