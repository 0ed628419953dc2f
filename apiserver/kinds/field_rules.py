"""Validation pieces the networking, policy, scheduling and autoscaling kinds share (upstream's messages):
label selectors (meta/v1 validation), ports, DNS-1035 labels, wildcard hosts, domain-prefixed paths,
int-or-percent values, quantities, and the Go %#v forms upstream prints for structs it cannot print plainly."""
from __future__ import annotations

import ipaddress
import re
from fractions import Fraction
from typing import Any

from apiserver.errors import FieldError, GoLiteral, forbidden, invalid, required
from apiserver.validation import dns1035_label, dns1123_subdomain, label_value, qualified_name, validate_labels
from shipmate.quantity import QuantityError, QuantityFormat, parse_quantity

Obj = dict[str, Any]

PORT_RANGE_MESSAGE = "must be between 1 and 65535, inclusive"
CIDR_MESSAGE = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
_WILDCARD = re.compile(r"^\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HTTP_PATH = re.compile(r"^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$")
_PERCENT = re.compile(r"^[0-9]+%$")
_QUANTITY_TEXT = re.compile(r"^([+-]?)([0-9]*)(?:\.([0-9]*))?(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}




__all__ = ["dns1035_label"]  # re-exported for the kinds that import it from here


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- names -----------------------------------------------------------------------------------------
def wildcard_dns1123_subdomain(value: str) -> list[str]:
    """apimachinery's IsWildcardDNS1123Subdomain (`*.example.com` Ingress hosts)."""
    problems = []
    if len(value) > 253:
        problems.append("must be no more than 253 characters")
    if not _WILDCARD.match(value):
        problems.append("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
                        "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
                        "alphanumeric character (e.g. '*.example.com', regex used for validation is "
                        "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    return problems


def domain_prefixed_path(path: str, value: str) -> list[FieldError]:
    """apimachinery's IsDomainPrefixedPath (an IngressClass controller: `example.com/ingress-nginx`)."""
    if not value:
        return [required(path, "")]
    host, slash, rest = value.partition("/")
    if not slash or not host or not rest:
        return [invalid(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    errors = [invalid(path, host, problem) for problem in dns1123_subdomain(host)]
    if not _HTTP_PATH.match(rest):
        errors.append(invalid(path, rest, "Invalid path (regex used for validation is "
                                          "'[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')"))
    return errors


def path_segment_problems(value: str) -> list[str]:
    """apimachinery's IsValidPathSegmentName."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in value]


# --- ports and addresses ----------------------------------------------------------------------------
def port_name_problems(name: str) -> list[str]:
    """apimachinery's IsValidPortName (IANA_SVC_NAME)."""
    problems = []
    if len(name) > 15:
        problems.append("must be no more than 15 characters")
    if not re.match(r"^[-a-z0-9]+$", name):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", name):
        problems.append("must contain at least one letter (a-z)")
    if name.startswith("-") or name.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    if "--" in name:
        problems.append("must not contain consecutive hyphens")
    return problems


def port_number_problems(number: Any) -> list[str]:
    return [] if is_int(number) and 1 <= number <= 65535 else [PORT_RANGE_MESSAGE]


def cidr(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR as Go's ParseCIDR takes it (host bits may be set), or None."""
    if not isinstance(value, str) or "/" not in value:
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


# --- label selectors ---------------------------------------------------------------------------------
def validate_label_selector(selector: Any, path: str, allow_invalid_values: bool = False) -> list[FieldError]:
    """meta/v1 ValidateLabelSelector: matchLabels as labels, each expression's operator, key and values."""
    if selector is None:
        return []
    if not isinstance(selector, dict):
        return [invalid(path, selector, "must be a label selector")]
    errors = validate_labels(selector.get("matchLabels"), f"{path}.matchLabels")
    for index, expression in enumerate(selector.get("matchExpressions") or []):
        where = f"{path}.matchExpressions[{index}]"
        if not isinstance(expression, dict):
            errors.append(invalid(where, expression, "must be a label selector requirement"))
            continue
        operator, values = expression.get("operator", ""), expression.get("values") or []
        if operator in ("In", "NotIn"):
            if not values:
                errors.append(required(f"{where}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                errors.append(forbidden(f"{where}.values",
                                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errors.append(invalid(f"{where}.operator", operator, "not a valid selector operator"))
        key = expression.get("key", "")
        errors += [invalid(f"{where}.key", key, problem) for problem in qualified_name(str(key))]
        if not allow_invalid_values:
            for value_index, value in enumerate(values):
                errors += [invalid(f"{where}.values[{value_index}]", value, problem)
                           for problem in label_value(str(value))]
    return errors


def selector_has_invalid_values(selector: Any) -> bool:
    """LabelSelectorHasInvalidLabelValue: stored objects with such values may keep them on update."""
    if not isinstance(selector, dict):
        return False
    return any(label_value(str(value)) for expression in selector.get("matchExpressions") or []
               if isinstance(expression, dict) for value in expression.get("values") or [])


# --- int-or-percent ----------------------------------------------------------------------------------
def go_int_or_string(value: Any) -> GoLiteral:
    """An intstr.IntOrString as Go's %#v prints it (upstream's messages show the value that way)."""
    if isinstance(value, str):
        return GoLiteral(f'intstr.IntOrString{{Type:1, IntVal:0, StrVal:"{value}"}}')
    return GoLiteral(f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}')


def validate_positive_int_or_percent(value: Any, path: str) -> list[FieldError]:
    """apps ValidatePositiveIntOrPercent + IsNotMoreThan100Percent."""
    if isinstance(value, str):
        if not _PERCENT.match(value):
            return [invalid(path, go_int_or_string(value), "a valid percent string must be a numeric string "
                            "followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is "
                            "'[0-9]+%')")]
        if int(value[:-1]) > 100:
            return [invalid(path, go_int_or_string(value), "must not be greater than 100%")]
        return []
    if is_int(value):
        return [invalid(path, value, "must be greater than or equal to 0")] if value < 0 else []
    return [invalid(path, value, "must be an integer or percentage (e.g '5%')")]


# --- quantities ----------------------------------------------------------------------------------------
def quantity_problems(value: Any) -> list[str]:
    try:
        parse_quantity(value)
    except (QuantityError, TypeError):
        return ["quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"]
    return []


def go_quantity(text: Any) -> GoLiteral:
    """A resource.Quantity as Go's %#v prints it in upstream's messages: the int64 amount ParseQuantity makes
    (value × 10^scale), the cached string and the format."""
    source = str(text)
    try:
        quantity = parse_quantity(text)
    except QuantityError:
        return GoLiteral(source)
    value, scale = quantity.value, 0
    match = _QUANTITY_TEXT.match(source.strip())
    if match and quantity.format != QuantityFormat.BINARY_SI:
        sign, whole, fraction, suffix = match.groups()
        digits = int((whole or "") + (fraction or "") or "0")
        exponent = _DECIMAL.get(suffix or "", None)
        if exponent is None:
            exponent = int((suffix or "e0")[1:])
        value, scale = Fraction(-digits if sign == "-" else digits), exponent - len(fraction or "")
    amount = value if value.denominator == 1 else Fraction(0)
    return GoLiteral(f"resource.Quantity{{i:resource.int64Amount{{value:{int(amount)}, scale:{scale}}}, "
                     f"d:resource.infDecAmount{{Dec:(*inf.Dec)(nil)}}, s:\"{source}\", "
                     f"Format:\"{quantity.format.value}\"}}")


def quantity_sign(value: Any) -> int:
    quantity = parse_quantity(value)
    return (quantity.value > 0) - (quantity.value < 0)


# --- conditions -----------------------------------------------------------------------------------------
def set_status_condition(conditions: list[Obj], condition: Obj, now: str) -> bool:
    """meta.SetStatusCondition: insert or update by type; lastTransitionTime changes only with the status.
    Returns whether anything changed."""
    for existing in conditions:
        if existing.get("type") == condition["type"]:
            updated = {**existing, **condition}
            if existing.get("status") != condition.get("status") or not existing.get("lastTransitionTime"):
                updated["lastTransitionTime"] = now
            else:
                updated["lastTransitionTime"] = existing["lastTransitionTime"]
            if updated == existing:
                return False
            existing.clear()
            existing.update(updated)
            return True
    conditions.append({"type": condition["type"], "status": condition["status"],
                       **({"observedGeneration": condition["observedGeneration"]}
                          if condition.get("observedGeneration") else {}),
                       "lastTransitionTime": now, "reason": condition.get("reason", ""),
                       "message": condition.get("message", "")})
    return True
