"""Label and field selectors with Kubernetes' string syntax and matching rules.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a`, `a>1`, `a<1`,
joined by commas (all must match). Field selectors: `f=v`, `f==v`, `f!=v` joined by commas, with
backslash escapes for `,`, `=` and `\\`. Which field names a kind supports is the caller's business.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping


class SelectorError(ValueError):
    pass


class Operator(str, Enum):
    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case Operator.EQUALS | Operator.IN:
                return present and value in self.values
            case Operator.NOT_EQUALS | Operator.NOT_IN:
                return not present or value not in self.values
            case Operator.EXISTS:
                return present
            case Operator.DOES_NOT_EXIST:
                return not present
            case Operator.GREATER_THAN | Operator.LESS_THAN:
                try:
                    left, right = int(value or ""), int(self.values[0])
                except ValueError:
                    return False
                return left > right if self.operator == Operator.GREATER_THAN else left < right
        return False


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(requirement.matches(labels) for requirement in self.requirements)

    def empty(self) -> bool:
        return not self.requirements


_LABEL_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                           r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


def _check_key(key: str) -> str:
    if not _LABEL_KEY_RE.match(key):
        raise SelectorError(f"invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if not _LABEL_VALUE_RE.match(value):
        raise SelectorError(f"invalid label value: {value!r}")
    return value


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside a parenthesised value set."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced parenthesis in selector {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise SelectorError(f"unbalanced parenthesis in selector {text!r}")
    parts.append("".join(current))
    return parts


_SET_RE = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_BINARY_RE = re.compile(r"^(?P<key>[^=!<>\s]+)\s*(?P<op>==|!=|=|<|>)\s*(?P<value>[^=!<>\s]*)$")


def parse_label_selector(text: str | None) -> LabelSelector:
    text = (text or "").strip()
    if not text:
        return LabelSelector()
    requirements = []
    for part in _split_top_level(text):
        part = part.strip()
        if not part:
            raise SelectorError(f"found empty requirement in selector {text!r}")
        if match := _SET_RE.match(part):
            values = tuple(sorted({_check_value(v.strip()) for v in match["values"].split(",")}))
            operator = Operator.IN if match["op"] == "in" else Operator.NOT_IN
            requirements.append(Requirement(_check_key(match["key"]), operator, values))
        elif part.startswith("!"):
            requirements.append(Requirement(_check_key(part[1:].strip()), Operator.DOES_NOT_EXIST))
        elif match := _BINARY_RE.match(part):
            key, op, value = _check_key(match["key"]), match["op"], match["value"]
            if op in ("<", ">"):
                if not re.fullmatch(r"-?[0-9]+", value):
                    raise SelectorError(f"for 'Gt', 'Lt' operators, the value must be an integer: {value!r}")
                operator = Operator.GREATER_THAN if op == ">" else Operator.LESS_THAN
            else:
                operator = Operator.NOT_EQUALS if op == "!=" else Operator.EQUALS
            requirements.append(Requirement(key, operator, (_check_value(value),)))
        elif re.fullmatch(r"\S+", part):
            requirements.append(Requirement(_check_key(part), Operator.EXISTS))
        else:
            raise SelectorError(f"unable to parse requirement: {part!r}")
    return LabelSelector(tuple(requirements))


_EXPRESSION_OPERATORS = {"In": Operator.IN, "NotIn": Operator.NOT_IN, "Exists": Operator.EXISTS,
                         "DoesNotExist": Operator.DOES_NOT_EXIST}


def label_selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A metav1.LabelSelector (matchLabels + matchExpressions) as a LabelSelector."""
    if selector is None:
        return LabelSelector()
    requirements = [Requirement(_check_key(k), Operator.EQUALS, (_check_value(str(v)),))
                    for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        operator = _EXPRESSION_OPERATORS.get(expression.get("operator", ""))
        if operator is None:
            raise SelectorError(f"{expression.get('operator')!r} is not a valid label selector operator")
        values = tuple(sorted(expression.get("values") or ()))
        if operator in (Operator.IN, Operator.NOT_IN) and not values:
            raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
        requirements.append(Requirement(_check_key(expression.get("key", "")), operator, values))
    return LabelSelector(tuple(requirements))


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: Operator  # EQUALS or NOT_EQUALS
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        actual = fields.get(self.field, "")
        return actual == self.value if self.operator == Operator.EQUALS else actual != self.value


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = field(default_factory=tuple)

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(requirement.matches(fields) for requirement in self.requirements)

    def empty(self) -> bool:
        return not self.requirements

    def required_value(self, field_name: str) -> str | None:
        """The value an `=` requirement pins `field_name` to, if any (e.g. spec.nodeName)."""
        for requirement in self.requirements:
            if requirement.field == field_name and requirement.operator == Operator.EQUALS:
                return requirement.value
        return None


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    result, escaped = [], False
    for char in text:
        if escaped:
            if char not in "\\,=!":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{char}")
            result.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            result.append(char)
    return "".join(result)


_FIELD_OPERATORS = (("!=", Operator.NOT_EQUALS), ("==", Operator.EQUALS), ("=", Operator.EQUALS))


def _split_field_term(term: str) -> tuple[str, Operator, str] | None:
    """`field op value` at the first unescaped operator, as upstream's splitTerm: one pass over the term
    (a regular expression here backtracked quadratically on long runs of blanks)."""
    index = 0
    while index < len(term):
        char = term[index]
        if char == "\\":
            index += 2
            continue
        if char in "!=":
            for text, operator in _FIELD_OPERATORS:
                if term.startswith(text, index):
                    return term[:index], operator, term[index + len(text):]
            return None
        index += 1
    return None


def parse_field_selector(text: str | None) -> FieldSelector:
    text = (text or "").strip()
    if not text:
        return FieldSelector()
    requirements = []
    for part in _split_unescaped(text, ","):
        if not part:
            continue
        split = _split_field_term(part)
        if split is None or not split[0].strip():
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        name, operator, value = split
        requirements.append(FieldRequirement(_unescape(name.strip()), operator, _unescape(value)))
    return FieldSelector(tuple(requirements))
