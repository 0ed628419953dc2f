"""The part of client-go's JSONPath that printer columns, selectable fields and scale paths use:
`.a.b`, `['a.b']`, `["x"]`, `[0]`, `[-1]`, `[*]`, `.*`, `..name` and filters `[?(@.type=="Ready")]`
(`==`, `!=`, `<`, `>`, `<=`, `>=`, or `[?(@.field)]` for presence). Missing keys give no result (as
AllowMissingKeys(true))."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


class JSONPathError(ValueError):
    pass


@dataclass(frozen=True)
class _Step:
    kind: str  # field, index, wildcard, recurse, filter
    name: str = ""
    index: int = 0
    filter_path: tuple["_Step", ...] = ()
    operator: str = ""
    literal: Any = None


_FILTER = re.compile(r"^\?\(\s*@((?:\.[A-Za-z0-9_\-]+|\[['\"][^'\"]*['\"]\])*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)$")


def parse(expression: str) -> tuple[_Step, ...]:
    """Parse `.a.b[0]` (with or without surrounding `{}`)."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[_Step] = []
    position = 0
    while position < len(text):
        char = text[position]
        if text.startswith("..", position):
            position += 2
            steps.append(_Step("recurse"))
            continue
        if char == ".":
            position += 1
            if position < len(text) and text[position] == "*":
                steps.append(_Step("wildcard"))
                position += 1
                continue
            match = re.match(r"[A-Za-z0-9_\-/$@]+", text[position:])
            if not match:
                if position >= len(text):
                    break
                raise JSONPathError(f"invalid field name at {position} in {expression!r}")
            steps.append(_Step("field", match.group(0)))
            position += len(match.group(0))
            continue
        if char == "[":
            end = _closing(text, position)
            inner = text[position + 1:end].strip()
            position = end + 1
            steps.append(_bracket(inner, expression))
            continue
        match = re.match(r"[A-Za-z0-9_\-]+", text[position:])
        if match and not steps:
            steps.append(_Step("field", match.group(0)))
            position += len(match.group(0))
            continue
        raise JSONPathError(f"unrecognized character {char!r} in {expression!r}")
    return tuple(steps)


def _closing(text: str, start: int) -> int:
    depth, quote = 0, ""
    for position in range(start, len(text)):
        char = text[position]
        if quote:
            if char == quote:
                quote = ""
            continue
        if char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return position
    raise JSONPathError(f"unterminated [ in {text!r}")


def _bracket(inner: str, expression: str) -> _Step:
    if inner == "*":
        return _Step("wildcard")
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return _Step("field", inner[1:-1])
    if re.fullmatch(r"-?\d+", inner):
        return _Step("index", index=int(inner))
    match = _FILTER.match(inner)
    if match:
        path_text, operator, literal_text = match.groups()
        filter_path = parse(path_text) if path_text else ()
        literal = None
        if operator:
            literal_text = literal_text.strip()
            if literal_text[:1] in "'\"" and literal_text[-1:] == literal_text[:1]:
                literal = literal_text[1:-1]
            else:
                try:
                    literal = json.loads(literal_text)
                except ValueError:
                    raise JSONPathError(f"invalid filter literal in {expression!r}") from None
        return _Step("filter", filter_path=filter_path, operator=operator or "", literal=literal)
    raise JSONPathError(f"unsupported bracket expression [{inner}] in {expression!r}")


def _apply(step: _Step, values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if step.kind == "field":
            if isinstance(value, dict) and step.name in value:
                out.append(value[step.name])
        elif step.kind == "index":
            if isinstance(value, list) and -len(value) <= step.index < len(value):
                out.append(value[step.index])
        elif step.kind == "wildcard":
            if isinstance(value, dict):
                out += list(value.values())
            elif isinstance(value, list):
                out += value
        elif step.kind == "recurse":
            out += _descendants(value)
        elif step.kind == "filter":
            items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else []
            out += [item for item in items if _matches(step, item)]
    return out


def _descendants(value: Any) -> list[Any]:
    found = [value]
    pending = [value]
    while pending:
        node = pending.pop(0)
        children = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else []
        found += children
        pending += children
    return found


def _matches(step: _Step, item: Any) -> bool:
    values = [item]
    for sub in step.filter_path:
        values = _apply(sub, values)
    if not step.operator:
        return bool(values)
    if not values:
        return False
    left, right = values[0], step.literal
    try:
        if step.operator == "==":
            return left == right and type(left) is not bool or (isinstance(left, bool) and left is right)
        if step.operator == "!=":
            return left != right
        return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[step.operator]
    except TypeError:
        return False


def find(expression: str | tuple, obj: Any) -> list[Any]:
    """Every value the path selects in `obj` (missing keys select nothing)."""
    steps = parse(expression) if isinstance(expression, str) else expression
    values = [obj]
    for step in steps:
        values = _apply(step, values)
    return values


def text_of(value: Any) -> str:
    """How kubectl's JSONPath printer writes one result: strings as they are, other values as JSON
    (numbers and booleans as Go prints them)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"))


def simple_path_problem(path: str) -> str:
    """validateSimpleJSONPath: "" when `path` is a dot-notation path starting with "."."""
    if not path:
        return "must not be empty"
    if path[0] != ".":
        return "must be a simple json path starting with ."
    return ""
