"""core/v1 LimitRange: defaulting (a Container item's default/defaultRequest filled from max/default/min, as
upstream's SetDefaults_LimitRangeItem) and validation (upstream's ValidateLimitRange and messages). The
defaults and min/max/ratio limits are applied to pods by the LimitRanger admission, not here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apiserver.errors import FieldError, duplicate, forbidden, invalid, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy, canonicalize_quantities
from apiserver.kinds.field_rules import go_quantity, quantity_problems
from apiserver.validation import qualified_name
from shipmate.quantity import parse_quantity

LIMIT_RANGE_INFO = ResourceInfo("", "v1", "LimitRange", "limitranges", "limitrange", True, short_names=("limits",))
LIMIT_TYPES = ("Pod", "Container", "PersistentVolumeClaim")
_SECTIONS = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")
_STANDARD_CONTAINER = {"cpu", "memory", "ephemeral-storage"}
_STANDARD = _STANDARD_CONTAINER | {
    "storage", "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers", "requests.cpu", "requests.memory",
    "requests.storage", "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage"}
_NATIVE_PREFIX = "kubernetes.io/"
_NO_OVERCOMMIT_PREFIXES = ("hugepages-",)  # plus extended resources (names with a domain)


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _standard(name: str, container: bool) -> bool:
    standard = _STANDARD_CONTAINER if container else _STANDARD
    return name in standard or name.startswith("hugepages-") or \
        (not container and (name.startswith("requests.hugepages-") or name.startswith("limits.hugepages-")))


def resource_name_problems(limit_type: Any, name: str, path: str) -> list[FieldError]:
    """validateLimitRangeResourceName: container resources for Pod/Container items, any resource otherwise."""
    errors = [invalid(path, name, problem) for problem in qualified_name(name)]
    if errors:
        return errors
    container = limit_type in ("Pod", "Container")
    if "/" not in name:
        if not _standard(name, False):
            return [invalid(path, name, "must be a standard resource type or fully qualified")]
        if container and not _standard(name, True):
            return [invalid(path, name, "must be a standard resource for containers")]
    elif container and not name.startswith(_NATIVE_PREFIX) and name.startswith("requests."):
        return [invalid(path, name, "doesn't follow extended resource name standard")]
    return []


def _type_problems(limit_type: Any, path: str) -> list[FieldError]:
    value = str(limit_type or "")
    errors = [invalid(path, value, problem) for problem in qualified_name(value)]
    if not errors and "/" not in value and value not in LIMIT_TYPES:
        errors.append(invalid(path, value, "must be a standard limit type or fully qualified"))
    return errors


def _overcommit_allowed(name: str) -> bool:
    return not name.startswith(_NO_OVERCOMMIT_PREFIXES) and ("/" not in name or name.startswith(_NATIVE_PREFIX))


def validate_limit_item(item: Any, path: str, seen_types: set[Any]) -> list[FieldError]:
    item = _dict(item)
    limit_type = item.get("type")
    errors = _type_problems(limit_type, f"{path}.type")
    if limit_type in seen_types:
        errors.append(duplicate(f"{path}.type", limit_type))
    seen_types.add(limit_type)
    values: dict[str, dict[str, Any]] = {section: {} for section in _SECTIONS}

    def collect(section: str) -> None:
        for name, value in _dict(item.get(section)).items():
            where = f"{path}.{section}[{name}]"
            errors.extend(resource_name_problems(limit_type, name, where))
            problems = quantity_problems(value)
            if problems:
                errors.extend(invalid(where, value, problem) for problem in problems)
            else:
                values[section][name] = value
    collect("max")
    collect("min")
    if limit_type == "Pod":
        for section in ("default", "defaultRequest"):
            if _dict(item.get(section)):
                errors.append(forbidden(f"{path}.{section}", "may not be specified when `type` is 'Pod'"))
    else:
        collect("default")
        collect("defaultRequest")
    if limit_type == "PersistentVolumeClaim" and "storage" not in _dict(item.get("min")) and \
            "storage" not in _dict(item.get("max")):
        errors.append(required(f"{path}.limits", "either minimum or maximum storage value is required, but "
                                                  "neither was provided"))
    collect("maxLimitRequestRatio")
    names = sorted({name for section in values.values() for name in section})
    for name in names:
        errors += _compare(path, name, {section: values[section].get(name) for section in _SECTIONS})
    return errors


def _compare(path: str, name: str, raw: dict[str, Any]) -> list[FieldError]:
    parsed = {section: parse_quantity(value) for section, value in raw.items() if value is not None}
    text = {section: str(quantity) for section, quantity in parsed.items()}
    low, high, default, request, ratio = (parsed.get(section) for section in
                                          ("min", "max", "default", "defaultRequest", "maxLimitRequestRatio"))
    errors: list[FieldError] = []

    def add(section: str, shown: str, message: str) -> None:
        errors.append(invalid(f"{path}.{section}[{name}]", go_quantity(raw[shown]), message))
    if low is not None and high is not None and low > high:
        add("min", "min", f"min value {text['min']} is greater than max value {text['max']}")
    if request is not None and low is not None and low > request:
        add("defaultRequest", "defaultRequest",
            f"min value {text['min']} is greater than default request value {text['defaultRequest']}")
    if request is not None and high is not None and request > high:
        add("defaultRequest", "defaultRequest",
            f"default request value {text['defaultRequest']} is greater than max value {text['max']}")
    if request is not None and default is not None and request > default:
        add("defaultRequest", "defaultRequest",
            f"default request value {text['defaultRequest']} is greater than default limit value {text['default']}")
    if default is not None and low is not None and low > default:
        add("default", "min", f"min value {text['min']} is greater than default value {text['default']}")
    if default is not None and high is not None and default > high:
        add("default", "max", f"default value {text['default']} is greater than max value {text['max']}")
    if ratio is not None and ratio.value < 1:
        add("maxLimitRequestRatio", "maxLimitRequestRatio", f"ratio {text['maxLimitRequestRatio']} is less than 1")
    if ratio is not None and low is not None and high is not None and low.value != 0:
        limit = high.value / low.value
        if ratio.value > limit:
            add("maxLimitRequestRatio", "maxLimitRequestRatio",
                f"ratio {text['maxLimitRequestRatio']} is greater than max/min = {float(limit):f}")
    if not _overcommit_allowed(name) and default is not None and request is not None and default != request:
        add("defaultRequest", "defaultRequest", f"default value {text['default']} must equal to defaultRequest "
                                                f"value {text['defaultRequest']} in {name}")
    return errors


def default_limit_item(item: Any) -> None:
    """SetDefaults_LimitRangeItem: for Container items, default ← max, defaultRequest ← default, then min."""
    if not isinstance(item, dict):
        return
    for section in _SECTIONS:
        canonicalize_quantities(item.get(section))
    if item.get("type") != "Container":
        return
    default = dict(_dict(item.get("default")))
    request = dict(_dict(item.get("defaultRequest")))
    for name, value in _dict(item.get("max")).items():
        default.setdefault(name, value)
    for name, value in default.items():
        request.setdefault(name, value)
    for name, value in _dict(item.get("min")).items():
        request.setdefault(name, value)
    if default:
        item["default"] = default
    if request:
        item["defaultRequest"] = request


@dataclass
class LimitRangeStrategy(Strategy):
    info: ResourceInfo = LIMIT_RANGE_INFO
    tracks_generation: bool = False

    def default(self, obj: Obj) -> None:
        for item in _dict(obj.get("spec")).get("limits") or []:
            default_limit_item(item)

    def validate(self, obj: Obj) -> list[FieldError]:
        errors = super().validate(obj)
        seen: set[Any] = set()
        limits = _dict(obj.get("spec")).get("limits") or []
        for index, item in enumerate(limits if isinstance(limits, list) else []):
            errors += validate_limit_item(item, f"spec.limits[{index}]", seen)
        return errors
