"""Values printed the way Go prints them in upstream's messages (fmt %v of decoded JSON, %q of strings)."""
from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from apiserver.errors import GoLiteral


def go_float(value: float) -> str:
    """fmt's %v of a float64: the shortest digits that round-trip, in exponent form when the decimal exponent
    is below -4 or at least 6 (strconv's 'g' with the shortest precision: 1e+06, 100000, 1.5)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)  # digits before the decimal point
    decimal_exponent = point - 1
    prefix = "-" if sign else ""
    if decimal_exponent < -4 or decimal_exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if decimal_exponent < 0 else '+'}{abs(decimal_exponent):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{prefix}{digits}{'0' * (point - len(digits))}"
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def go_value(value: Any) -> str:
    """fmt's %v of a decoded JSON scalar (int64, float64, bool, string as is)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if value is None:
        return "<nil>"
    if isinstance(value, (dict, list)):
        return go_slice_or_map(value)
    return str(value)


def go_slice_or_map(value: Any) -> str:
    """fmt's %v of a []interface{} or map[string]interface{}: [a b] and map[k:v] (keys sorted)."""
    if isinstance(value, list):
        return "[" + " ".join(go_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_value(value[key])}" for key in sorted(value)) + "]"
    return go_value(value)


def go_quote(text: str) -> str:
    """fmt's %q of a string (strconv.Quote: JSON-like escapes, non-printables as \\x or \\u)."""
    return json.dumps(text, ensure_ascii=False)


def bad_value(value: Any) -> Any:
    """A field.Error bad value as apimachinery prints it: scalars as %v/%q, anything else as JSON."""
    if isinstance(value, (dict, list)):
        return GoLiteral(json.dumps(value, separators=(",", ":"), sort_keys=True))
    if isinstance(value, float):
        return GoLiteral(go_float(value))
    return value
