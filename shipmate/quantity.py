"""Kubernetes resource quantities ("500m", "5Gi", "1e3", "129M") as exact numbers.

Parsing follows apimachinery's resource.Quantity: an optional sign, a decimal number and one
suffix — binary SI (Ki..Ei), decimal SI (n, u, m, "", k, M, G, T, P, E) or a decimal exponent
(e3, E-2). Values are kept as exact fractions, rounded up to nano precision like upstream, and
formatted back in the canonical form kubectl prints ("1000m" -> "1", "1.5Gi" -> "1536Mi").
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from functools import lru_cache, total_ordering


class QuantityFormat(str, Enum):
    BINARY_SI = "BinarySI"
    DECIMAL_SI = "DecimalSI"
    DECIMAL_EXPONENT = "DecimalExponent"


class QuantityError(ValueError):
    pass


_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXPONENT = {exp: suffix for suffix, exp in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_EXPONENT = {exp: suffix for suffix, exp in _BINARY_SUFFIXES.items()}

_QUANTITY_RE = re.compile(
    r"^(?P<sign>[+-])?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_NANO = Fraction(1, 10**9)


def _round_up_to_nano(value: Fraction) -> Fraction:
    return Fraction(math.ceil(value / _NANO)) * _NANO


@total_ordering
@dataclass(frozen=True)
class Quantity:
    value: Fraction
    format: QuantityFormat = QuantityFormat.DECIMAL_SI

    def __add__(self, other: "Quantity") -> "Quantity":
        return Quantity(self.value + other.value, self.format)

    def __sub__(self, other: "Quantity") -> "Quantity":
        return Quantity(self.value - other.value, self.format)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __lt__(self, other: "Quantity") -> bool:
        return self.value < other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def int_value(self) -> int:
        """The value rounded up to an integer (bytes, pods)."""
        return math.ceil(self.value)

    def milli_value(self) -> int:
        """The value in thousandths rounded up (millicores)."""
        return math.ceil(self.value * 1000)

    def __str__(self) -> str:
        return format_quantity(self.value, self.format)


def parse_quantity(text: str | int | float) -> Quantity:
    if isinstance(text, bool):
        raise QuantityError(f"quantities must match the regular expression: {text!r}")
    if isinstance(text, int):
        return Quantity(Fraction(text), QuantityFormat.DECIMAL_SI)
    if isinstance(text, float):
        return Quantity(_round_up_to_nano(Fraction(str(text))), QuantityFormat.DECIMAL_SI)
    match = _QUANTITY_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise QuantityError("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    number = Fraction(match["number"] if not match["number"].endswith(".") else match["number"][:-1])
    if match["sign"] == "-":
        number = -number
    suffix = match["suffix"] or ""
    if suffix in _BINARY_SUFFIXES:
        value, fmt = number * (2 ** _BINARY_SUFFIXES[suffix]), QuantityFormat.BINARY_SI
    elif suffix in _DECIMAL_SUFFIXES:
        value, fmt = number * Fraction(10) ** _DECIMAL_SUFFIXES[suffix], QuantityFormat.DECIMAL_SI
    else:
        value, fmt = number * Fraction(10) ** int(suffix[1:]), QuantityFormat.DECIMAL_EXPONENT
    return Quantity(_round_up_to_nano(value), fmt)


def format_quantity(value: Fraction, fmt: QuantityFormat = QuantityFormat.DECIMAL_SI) -> str:
    value = _round_up_to_nano(Fraction(value))
    if fmt == QuantityFormat.BINARY_SI and (value.denominator != 1 or -1024 < value < 1024):
        fmt = QuantityFormat.DECIMAL_SI
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    if fmt == QuantityFormat.BINARY_SI:
        exponent = 60
        while exponent > 0 and magnitude.numerator % (2 ** exponent) != 0:
            exponent -= 10
        return f"{sign}{magnitude.numerator // 2 ** exponent}{_BINARY_BY_EXPONENT.get(exponent, '')}"
    # Largest power of 1000 (from 1e-9 to 1e18) that keeps the mantissa an integer.
    for exponent in range(18, -12, -3):
        mantissa = magnitude / Fraction(10) ** exponent
        if mantissa.denominator == 1:
            break
    if fmt == QuantityFormat.DECIMAL_EXPONENT:
        return f"{sign}{mantissa.numerator}" + (f"e{exponent}" if exponent else "")
    return f"{sign}{mantissa.numerator}{_DECIMAL_BY_EXPONENT[exponent]}"


def canonical(text: str | int) -> str:
    """Canonical form of a quantity string, as the API server stores and returns it."""
    return _canonical_string(text) if type(text) is str else str(parse_quantity(text))


@lru_cache(maxsize=4096)   # the same few quantities come with every node and pod write
def _canonical_string(text: str) -> str:
    return str(parse_quantity(text))
