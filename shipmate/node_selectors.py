"""Upstream's NodeSelector (core/v1): terms are ORed, a term's requirements ANDed, an empty term selects
nothing; matchFields knows only metadata.name. The scheduler's node affinity and a local volume's node
affinity both read it."""
from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def requirement_matches(requirement: Obj, value: str | None) -> bool:
    """One NodeSelectorRequirement against the label's value (None: the node has no such label)."""
    operator, values = requirement.get("operator"), requirement.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            actual, bound = int(value), int(values[0])
        except ValueError:
            return False
        return actual > bound if operator == "Gt" else actual < bound
    return False


def term_matches(term: Obj | None, labels: dict[str, str], node_name: str) -> bool:
    expressions, fields = (term or {}).get("matchExpressions") or [], (term or {}).get("matchFields") or []
    if not expressions and not fields:
        return False
    return all(requirement_matches(r, labels.get(r.get("key", ""))) for r in expressions) and \
        all(r.get("key") == "metadata.name" and requirement_matches(r, node_name) for r in fields)


def node_selector_matches(selector: Obj, labels: dict[str, str], node_name: str) -> bool:
    return any(term_matches(term, labels, node_name) for term in selector.get("nodeSelectorTerms") or [])
