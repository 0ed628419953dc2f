"""Validation of a custom object against an OpenAPI v3 schema (a CRD version's openAPIV3Schema), with the
messages and field paths of upstream's kube-openapi validator as apiextensions-apiserver turns them into field
errors (`spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`).

Validators run per value in kube-openapi's order: type, allOf/anyOf/oneOf/not, string, format, number, array,
enum, object. Updates ratchet as upstream (CRDValidationRatcheting, GA since 1.33): a value equal to the one it
replaces (correlated by property name, by key in map lists, by value in sets) is not validated again, so a
schema made stricter does not refuse updates that leave the old values alone.
"""
from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from apiserver import errors
from apiserver.crd.gofmt import bad_value, go_float, go_quote, go_slice_or_map, go_value
from apiserver.errors import FieldError

Schema = dict[str, Any]
IN = "body"
NO_OLD = object()  # no correlated old value: validate everything

# Formats upstream validates in CRDs (apiextensions-apiserver/pkg/apiserver/validation/formats.go, names as
# go-openapi normalizes them: without "-"); any other format is ignored.
SUPPORTED_FORMATS = frozenset({
    "bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid", "uuid3", "uuid4", "uuid5",
    "isbn", "isbn10", "isbn13", "creditcard", "ssn", "hexcolor", "rgbcolor", "byte", "password", "date", "duration",
    "datetime", "k8s-short-name", "k8s-long-name"})


def supported_format(schema: Schema) -> str:
    fmt = schema.get("format")
    if not isinstance(fmt, str) or not fmt:
        return ""
    return fmt if fmt.replace("-", "") in SUPPORTED_FORMATS or fmt in SUPPORTED_FORMATS else ""


@dataclass
class Problem:
    """One kube-openapi validation error: its code decides the field error it becomes."""
    code: str  # type, required, enum, too_long, max_items, max_properties, other, composite
    name: str
    message: str
    value: Any = ""
    valid: Any = None
    values: list = field(default_factory=list)


# --- JSON kinds ------------------------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_type(value: Any) -> str:
    """The schema type of a decoded JSON value (as kube-openapi infers it from the Go value)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return ""


def json_equal(a: Any, b: Any) -> bool:
    """reflect.DeepEqual of decoded JSON: booleans never equal numbers, ints equal floats of the same value
    only where upstream converts (enum matching uses this through conversion)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def schema_types(schema: Schema) -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    kind = schema.get("type")
    return [kind] if isinstance(kind, str) and kind else []


# --- formats ---------------------------------------------------------------------------------------------
_UUID_PATTERNS = {
    "uuid": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
    "uuid3": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
    "uuid4": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
    "uuid5": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
}
_HOSTNAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}"
                       r"[a-zA-Z0-9])?)*\.?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_MAC = re.compile(r"^(?:[0-9A-Fa-f]{2}[:-]){5,19}[0-9A-Fa-f]{2}$|^(?:[0-9A-Fa-f]{4}\.){2,9}[0-9A-Fa-f]{4}$")
_DURATION = re.compile(r"^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)\s*(?:ns|us|µs|ms|s|m|h|d|w)\s*)+$|^0$")
_HEXCOLOR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_RGBCOLOR = re.compile(r"^rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)$")
_SSN = re.compile(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$")
_BSON = re.compile(r"^[0-9a-fA-F]{24}$")
_K8S_SHORT = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_K8S_LONG = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _format_ok(fmt: str, data: str) -> bool:
    name = fmt.replace("-", "") if fmt not in ("k8s-short-name", "k8s-long-name") else fmt
    try:
        if name == "datetime":
            text = data.replace("Z", "+00:00").replace("z", "+00:00")
            datetime.datetime.fromisoformat(text)
            return "T" in data.upper()
        if name == "date":
            datetime.date.fromisoformat(data)
            return len(data) == 10
        if name == "ipv4":
            ipaddress.IPv4Address(data)
            return True
        if name == "ipv6":
            ipaddress.IPv6Address(data)
            return True
        if name == "cidr":
            ipaddress.ip_network(data, strict=False)
            return "/" in data
        if name == "byte":
            base64.b64decode(data, validate=True)
            return True
    except ValueError:
        return False
    if name in _UUID_PATTERNS:
        return re.match(_UUID_PATTERNS[name], data) is not None
    if name == "hostname":
        return len(data) <= 255 and _HOSTNAME.match(data) is not None
    if name == "email":
        return _EMAIL.match(data) is not None
    if name == "uri":
        return "://" in data or data.startswith("/")
    if name == "mac":
        return _MAC.match(data) is not None
    if name == "duration":
        return _DURATION.match(data.strip()) is not None
    if name == "hexcolor":
        return _HEXCOLOR.match(data) is not None
    if name == "rgbcolor":
        match = _RGBCOLOR.match(data)
        return match is not None and all(int(group) <= 255 for group in match.groups())
    if name == "ssn":
        return _SSN.match(data) is not None
    if name == "bsonobjectid":
        return _BSON.match(data) is not None
    if name == "k8s-short-name":
        return len(data) <= 63 and _K8S_SHORT.match(data) is not None
    if name == "k8s-long-name":
        return len(data) <= 253 and _K8S_LONG.match(data) is not None
    if name in ("isbn", "isbn10", "isbn13", "creditcard"):
        digits = re.sub(r"[^0-9Xx]", "", data)
        return len(digits) in ((10,) if name == "isbn10" else (13,) if name == "isbn13" else (10, 13, 14, 15, 16))
    return True  # password


# --- patterns --------------------------------------------------------------------------------------------
_PATTERN_CACHE: dict[str, re.Pattern | None] = {}


def compile_pattern(pattern: str) -> re.Pattern | None:
    """An ECMA/RE2 pattern as a Python regex (None when Python cannot compile it). Cached (bounded)."""
    if pattern in _PATTERN_CACHE:
        return _PATTERN_CACHE[pattern]
    translated = pattern.replace("(?P<", "(?P<").replace("\\z", "\\Z")
    try:
        compiled: re.Pattern | None = re.compile(translated)
    except re.error:
        compiled = None
    if len(_PATTERN_CACHE) > 4096:
        _PATTERN_CACHE.clear()
    _PATTERN_CACHE[pattern] = compiled
    return compiled


# --- the validator ---------------------------------------------------------------------------------------
def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _correlated_item(old: Any, item: Any, schema: Schema) -> Any:
    """The old list item `item` replaces: by key in a map list, by value in a set; else none."""
    if not isinstance(old, list):
        return NO_OLD
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "map" and isinstance(item, dict):
        keys = schema.get("x-kubernetes-list-map-keys") or []
        for candidate in old:
            if isinstance(candidate, dict) and all(json_equal(candidate.get(k), item.get(k)) for k in keys):
                return candidate
        return NO_OLD
    if list_type == "set":
        return item if any(json_equal(candidate, item) for candidate in old) else NO_OLD
    return NO_OLD


def problems(data: Any, schema: Schema | None, path: str = "", old: Any = NO_OLD) -> list[Problem]:
    """kube-openapi's SchemaValidator.Validate (with ratcheting against `old`)."""
    if schema is None:
        return []
    if old is not NO_OLD and json_equal(old, data):
        return []
    found: list[Problem] = []
    types = schema_types(schema)
    fmt = supported_format(schema)
    if data is None:
        if (types or fmt) and types and "null" not in types and not schema.get("nullable"):
            found.append(Problem("type", path, f'{path} in {IN} must be of type {",".join(types)}: "null"', "null"))
        found += _enum(data, schema, path)
        return found
    kind = json_type(data)
    # type
    if types or fmt:
        found += _type(data, kind, types, fmt, path)
    # allOf / anyOf / oneOf / not
    found += _combinators(data, schema, path, old)
    if kind == "string":
        found += _string(data, schema, path)
        if fmt and not _format_ok(fmt, data):
            found.append(Problem("type", path, f"{path} in {IN} must be of type {fmt}: {go_quote(data)}", data))
    if kind in ("integer", "number"):
        found += _number(data, schema, path)
    if kind == "array":
        found += _array(data, schema, path, old)
    found += _enum(data, schema, path)
    if kind == "object":
        found += _object(data, schema, path, old)
    return found


def _type(data: Any, kind: str, types: list[str], fmt: str, path: str) -> list[Problem]:
    is_float_int = kind == "number" and float(data).is_integer() and "integer" in types
    is_int_float = kind == "integer" and "number" in types
    if kind not in ("string", "array") and fmt and not (kind in types or is_float_int or is_int_float):
        go_format = "int64" if kind == "integer" else "float64" if kind == "number" else ""
        return [Problem("type", path, f"{path} in {IN} must be of type {fmt}: {go_quote(go_format)}", go_format)]
    if not ("number" in types or "integer" in types) and fmt and kind in ("string", "array"):
        return []
    if types and not (kind in types or is_float_int or is_int_float):
        return [Problem("type", path, f'{path} in {IN} must be of type {",".join(types)}: {go_quote(kind)}', kind)]
    return []


def _combinators(data: Any, schema: Schema, path: str, old: Any) -> list[Problem]:
    found: list[Problem] = []
    any_of = [s for s in schema.get("anyOf") or [] if isinstance(s, dict)]
    if any_of:
        best: list[Problem] | None = None
        succeeded = False
        for sub in any_of:
            result = problems(data, sub, path, old)
            if not result:
                succeeded, best = True, None
                break
            if best is None or len(result) < len(best):
                best = result
        if not succeeded:
            found.append(Problem("composite", path, f"{go_quote(path)} must validate at least one schema (anyOf)"))
            found += best or []
    one_of = [s for s in schema.get("oneOf") or [] if isinstance(s, dict)]
    if one_of:
        valid, best = 0, None
        for sub in one_of:
            result = problems(data, sub, path, old)
            if not result:
                valid += 1
                best = None
            elif valid == 0 and (best is None or len(result) < len(best)):
                best = result
        if valid != 1:
            extra = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            found.append(Problem("composite", path,
                                 f"{go_quote(path)} must validate one and only one schema (oneOf). {extra}"))
            found += best or []
    all_of = [s for s in schema.get("allOf") or [] if isinstance(s, dict)]
    if all_of:
        valid = 0
        for sub in all_of:
            result = problems(data, sub, path, old)
            valid += not result
            found += result
        if valid != len(all_of):
            extra = ". None validated" if valid == 0 else ""
            found.append(Problem("composite", path, f"{go_quote(path)} must validate all the schemas (allOf){extra}"))
    not_schema = schema.get("not")
    if isinstance(not_schema, dict) and not problems(data, not_schema, path, old):
        found.append(Problem("composite", path, f"{go_quote(path)} must not validate the schema (not)"))
    return found


def _string(data: str, schema: Schema, path: str) -> list[Problem]:
    length = len(data)  # runes
    max_length, min_length = schema.get("maxLength"), schema.get("minLength")
    if _is_int(max_length) and length > max_length:
        return [Problem("too_long", path, f"{path} in {IN} should be at most {max_length} chars long", data,
                        max_length)]
    if _is_int(min_length) and length < min_length:
        return [Problem("other", path, f"{path} in {IN} should be at least {min_length} chars long", data,
                        min_length)]
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and pattern:
        compiled = compile_pattern(pattern)
        if compiled is None:
            return [Problem("other", path, f"{path} in {IN} should match '{pattern}, but pattern is invalid'", data)]
        if compiled.search(data) is None:
            return [Problem("other", path, f"{path} in {IN} should match '{pattern}'", data)]
    return []


def _bound(value: float, data: Any) -> str:
    """How a bound prints: as an integer against integer data (upstream converts it), else as a float."""
    if _is_int(data):
        return str(int(value))
    return go_float(float(value))


def _number(data: Any, schema: Schema, path: str) -> list[Problem]:
    found: list[Problem] = []
    multiple = schema.get("multipleOf")
    if _is_number(multiple):
        if multiple <= 0:
            found.append(Problem("other", path, f"factor MultipleOf declared for {path} must be positive: "
                                                f"{_bound(multiple, data)}", multiple))
        elif _is_int(data) and float(multiple).is_integer():
            if data % int(multiple):
                found.append(Problem("other", path, f"{path} in {IN} should be a multiple of {int(multiple)}", data))
        else:
            quotient = (1 / multiple * data) if multiple < 1 else (data / multiple)
            if not float(quotient).is_integer() or math.isinf(quotient):
                found.append(Problem("other", path, f"{path} in {IN} should be a multiple of {go_float(float(multiple))}",
                                     data))
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    if _is_number(minimum):
        bound = int(minimum) if _is_int(data) else minimum
        exclusive = bool(schema.get("exclusiveMinimum"))
        if (data <= bound) if exclusive else (data < bound):
            word = "greater than" if exclusive else "greater than or equal to"
            found.append(Problem("other", path, f"{path} in {IN} should be {word} {_bound(minimum, data)}", data))
    if _is_number(maximum):
        bound = int(maximum) if _is_int(data) else maximum
        exclusive = bool(schema.get("exclusiveMaximum"))
        if (data >= bound) if exclusive else (data > bound):
            word = "less than" if exclusive else "less than or equal to"
            found.append(Problem("other", path, f"{path} in {IN} should be {word} {_bound(maximum, data)}", data))
    # upstream reports multipleOf, then minimum, then maximum
    return found


def _array(data: list, schema: Schema, path: str, old: Any) -> list[Problem]:
    found: list[Problem] = []
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(data):
            found += problems(item, items, f"{path}[{index}]", _correlated_item(old, item, schema))
    size = len(data)
    min_items, max_items = schema.get("minItems"), schema.get("maxItems")
    if _is_int(min_items) and size < min_items:
        found.append(Problem("other", path, f"{path} in {IN} should have at least {min_items} items", size, min_items))
    if _is_int(max_items) and size > max_items:
        found.append(Problem("max_items", path, f"{path} in {IN} should have at most {max_items} items", size,
                             max_items))
    if schema.get("uniqueItems") is True:
        for index, item in enumerate(data):
            if any(json_equal(item, other) for other in data[:index]):
                found.append(Problem("other", path, f"{path} in {IN} shouldn't contain duplicates"))
                break
    return found


def _enum(data: Any, schema: Schema, path: str) -> list[Problem]:
    values = schema.get("enum")
    if not isinstance(values, list) or not values:
        return []
    for candidate in values:
        if candidate is not None and data is not None and json_equal(data, candidate):
            return []
    shown = "[" + " ".join(go_value(v) if not isinstance(v, (dict, list)) else go_slice_or_map(v)
                           for v in values) + "]"
    return [Problem("enum", path, f"{path} in {IN} should be one of {shown}", data, values=values)]


def _object(data: dict, schema: Schema, path: str, old: Any) -> list[Problem]:
    found: list[Problem] = []
    size = len(data)
    min_props, max_props = schema.get("minProperties"), schema.get("maxProperties")
    if _is_int(min_props) and size < min_props:
        found.append(Problem("other", path, f"{path} in {IN} should have at least {min_props} properties", size,
                             min_props))
    if _is_int(max_props) and size > max_props:
        found.append(Problem("max_properties", path, f"{path} in {IN} should have at most {max_props} properties",
                             size, max_props))
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    additional = schema.get("additionalProperties")
    old_map = old if isinstance(old, dict) else {}
    if additional is False:
        for key in data:
            if key not in properties:
                found.append(Problem("other", path, f"{path}.{key} in {IN} is a forbidden property", key))
    elif isinstance(additional, dict):
        for key, value in data.items():
            if key not in properties:
                found += problems(value, additional, f"{path}.{key}", old_map.get(key, NO_OLD))
    for key, sub in properties.items():
        if key in data and isinstance(sub, dict):
            found += problems(data[key], sub, _child(path, key), old_map.get(key, NO_OLD))
    for key in schema.get("required") or []:
        if isinstance(key, str) and key not in data:
            found.append(Problem("required", f"{path}.{key}", f"{path}.{key} in {IN} is required"))
    return found


# --- field errors ----------------------------------------------------------------------------------------
def _field(root: str, name: str) -> str:
    name = name[1:] if name.startswith(".") else name
    if name and name != ".":
        return f"{root}.{name}" if root else name
    return root or "<nil>"


def field_errors(found: list[Problem], root: str = "") -> list[FieldError]:
    """apiextensions' kubeOpenAPIResultToFieldErrors: each problem as the field error upstream returns."""
    result: list[FieldError] = []
    for problem in found:
        if problem.code == "composite":
            result.append(errors.invalid(root or "<nil>", "", problem.message))
            continue
        path = _field(root, problem.name)
        if problem.code == "required":
            result.append(errors.required(path))
        elif problem.code == "enum":
            supported = [v if isinstance(v, str) else json.dumps(v, separators=(",", ":")) for v in problem.values]
            result.append(errors.not_supported(path, bad_value(problem.value), supported))
        elif problem.code == "too_long":
            unit = "byte" if problem.valid == 1 else "bytes"
            result.append(FieldError("FieldValueTooLong", path, f"may not be more than {problem.valid} {unit}"))
        elif problem.code in ("max_items", "max_properties"):
            unit = "item" if problem.valid == 1 else "items"
            result.append(FieldError("FieldValueTooMany", path, f"must have at most {problem.valid} {unit}",
                                     problem.value))
        elif problem.code == "type":
            result.append(FieldError("FieldValueTypeInvalid", path, problem.message, bad_value(problem.value)))
        else:
            result.append(errors.invalid(path, bad_value(problem.value if problem.value is not None else ""),
                                         problem.message))
    return result


def validate(data: Any, schema: Schema | None, root: str = "", old: Any = NO_OLD) -> list[FieldError]:
    """Field errors of `data` against `schema` (`root`: the field path the data sits at, e.g. "status")."""
    return field_errors(problems(data, schema, "", old), root)


def iter_schemas(schema: Any) -> Iterator[Schema]:
    """Every schema node (depth first): properties, additionalProperties, items, allOf/anyOf/oneOf/not."""
    pending = [schema]
    while pending:
        node = pending.pop()
        if not isinstance(node, dict):
            continue
        yield node
        props = node.get("properties")
        if isinstance(props, dict):
            pending += list(props.values())
        for key in ("additionalProperties", "items", "not"):
            if isinstance(node.get(key), dict):
                pending.append(node[key])
        for key in ("allOf", "anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                pending += node[key]


__all__ = ["NO_OLD", "Problem", "field_errors", "iter_schemas", "json_equal", "json_type", "problems",
           "schema_types", "supported_format", "validate"]
