"""Validation helpers shared by the kinds: names, labels, object metadata (messages as upstream)."""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from apiserver.errors import FieldError, invalid, required
from apiserver.bounds import MAX_NESTING_DEPTH, exceeds_depth

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(f"^{_DNS1123_LABEL}$")
_DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

NameValidator = Callable[[str], list[str]]

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024  # upstream's TotalAnnotationSizeLimitB
MAX_OBJECT_DEPTH = MAX_NESTING_DEPTH


def dns1123_label(value: str) -> list[str]:
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _DNS1123_LABEL_RE.match(value):
        problems.append("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                        "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
                        "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
    return problems


def dns1123_subdomain(value: str) -> list[str]:
    problems = []
    if len(value) > 253:
        problems.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        problems.append("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
                        "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
                        "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*"
                        "[a-z0-9])?)*')")
    return problems


_DNS1035_LABEL_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def dns1035_label(value: str) -> list[str]:
    """apimachinery's IsDNS1035Label (Service names, CRD names)."""
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _DNS1035_LABEL_RE.match(value):
        problems.append("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                        "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
                        "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
    return problems


def path_segment_name(value: str) -> list[str]:
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    for bad in ("/", "%"):
        if bad in value:
            return [f"may not contain '{bad}'"]
    return []


_QUALIFIED_NAME_ERROR = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                         "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                         "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


def qualified_name(value: str) -> list[str]:
    """A label or annotation key: optional DNS subdomain prefix + '/' + name of <= 63 chars (upstream's
    IsQualifiedName, same messages)."""
    parts = value.split("/")
    if len(parts) > 2:
        return [f"a qualified name {_QUALIFIED_NAME_ERROR} with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"]
    name = parts[-1]
    problems = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            problems += [f"prefix part {p}" for p in dns1123_subdomain(prefix)]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if not _QUALIFIED_NAME_RE.match(name):
        problems.append(f"name part {_QUALIFIED_NAME_ERROR}")
    return problems


def label_value(value: str) -> list[str]:
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _LABEL_VALUE_RE.match(value):
        problems.append("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
                        "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
                        "'my_value',  or '12345', regex used for validation is "
                        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    return problems


def validate_object_meta(obj: dict[str, Any], namespaced: bool, name_validator: NameValidator) -> list[FieldError]:
    errors: list[FieldError] = []
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [required("metadata")]
    name = meta.get("name")
    if not name:
        errors.append(required("metadata.name", "name or generateName is required"))
    elif not isinstance(name, str):
        errors.append(invalid("metadata.name", name, "must be a string"))
    else:
        errors += [invalid("metadata.name", name, p) for p in name_validator(name)]
    namespace = meta.get("namespace")
    if namespaced:
        if not namespace:
            errors.append(required("metadata.namespace"))
        else:
            errors += [invalid("metadata.namespace", namespace, p) for p in dns1123_label(namespace)]
    elif namespace:
        errors.append(FieldError("FieldValueForbidden", "metadata.namespace", "not allowed on this type"))
    errors += validate_labels(meta.get("labels"), "metadata.labels")
    errors += validate_annotations(meta.get("annotations"), "metadata.annotations")
    errors += _nesting_errors(obj)
    return errors


def validate_annotations(annotations: Any, path: str) -> list[FieldError]:
    """Keys are qualified names (case-insensitive, as upstream), values strings, all of it <= 256 KiB."""
    if annotations is None:
        return []
    if not isinstance(annotations, dict):
        return [invalid(path, annotations, "must be a map of strings")]
    errors = []
    total = 0
    for key, value in annotations.items():
        errors += [invalid(path, key, p) for p in qualified_name(key.lower())]
        if not isinstance(value, str):
            errors.append(invalid(f"{path}[{key}]", value, "must be a string"))
            continue
        total += len(key.encode()) + len(value.encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errors.append(FieldError("FieldValueTooLong", path, f"may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"))
    return errors


def _nesting_errors(obj: dict[str, Any]) -> list[FieldError]:
    """Objects stay within the nesting a request body may have, so repeated patches (each adding a body's
    depth) cannot grow a stored object until recursive code (copying, encoding) fails on it."""
    if not exceeds_depth(obj, MAX_OBJECT_DEPTH):  # one walk: the object's values are one level deeper
        return []
    return [FieldError("FieldValueForbidden", key, f"must not nest more than {MAX_OBJECT_DEPTH} levels deep")
            for key, value in obj.items() if exceeds_depth(value, MAX_OBJECT_DEPTH - 1)]


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [invalid(path, labels, "must be a map of strings")]
    errors = []
    for key, value in labels.items():
        errors += [invalid(path, key, p) for p in qualified_name(key)]
        if not isinstance(value, str):
            errors.append(invalid(f"{path}[{key}]", value, "must be a string"))
        else:
            errors += [invalid(path, value, p) for p in label_value(value)]
    return errors


def validate_meta_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errors = []
    new_meta, old_meta = new.get("metadata", {}), old.get("metadata", {})
    for field in ("name", "namespace", "uid", "creationTimestamp"):
        if new_meta.get(field) != old_meta.get(field):
            errors.append(invalid(f"metadata.{field}", new_meta.get(field), "field is immutable"))
    return errors


def endpoint_ip_problems(value: str) -> list[str]:
    """Why an address may not be a Service backend or external IP (upstream's ValidateEndpointIP): the
    unspecified address, loopback, link-local unicast (169.254.169.254 is the cloud metadata service) and
    link-local multicast. Traffic to such an endpoint would stay on the node that proxies it. An IPv4-mapped
    IPv6 address counts as its IPv4 address, as Go parses it. Not an IP at all: ["must be a valid IP address"]."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address"]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    problems = []
    if address.is_unspecified:
        problems.append(f"may not be unspecified ({value})")
    if address.is_loopback:
        problems.append("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    if address.is_link_local:
        problems.append("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    if address in _LINK_LOCAL_MULTICAST_V4 or (address.version == 6 and address.packed[0] == 0xFF
                                               and address.packed[1] & 0x0F == 0x02):
        problems.append("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    return problems


_LINK_LOCAL_MULTICAST_V4 = ipaddress.ip_network("224.0.0.0/24")


def is_ip(value: Any) -> bool:
    """An IPv4 or IPv6 address in its text form."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
