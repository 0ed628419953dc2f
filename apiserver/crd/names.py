"""Which names of a CRD are accepted: the naming controller's rule (upstream's NamingConditionController).

A requested name is accepted when it equals the one accepted already, or when no other CRD of the group holds
it (plural, singular and short names share one namespace; kind and listKind another). Conflicting names keep
their previous accepted value, and NamesAccepted turns False with the conflict's reason."""
from __future__ import annotations

from typing import Any, Iterable

Obj = dict[str, Any]


def _names(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _used(others: Iterable[Obj], group: str) -> tuple[set[str], set[str]]:
    resources: set[str] = set()
    kinds: set[str] = set()
    for other in others:
        if (other.get("spec") or {}).get("group") != group:
            continue
        accepted = _names((other.get("status") or {}).get("acceptedNames"))
        resources.update(n for n in (accepted.get("plural"), accepted.get("singular")) if n)
        resources.update(accepted.get("shortNames") or [])
        kinds.update(n for n in (accepted.get("kind"), accepted.get("listKind")) if n)
    return resources, kinds


def _conflict(requested: Any, accepted: Any, used: set[str]) -> str:
    if requested == accepted or requested not in used:
        return ""
    return f'"{requested}" is already in use'


def accept_names(crd: Obj, others: Iterable[Obj]) -> tuple[Obj, Obj, Obj]:
    """(acceptedNames, NamesAccepted condition, Established condition) for `crd` given the group's other
    CRDs (their accepted names)."""
    spec = crd.get("spec") or {}
    requested = _names(spec.get("names"))
    accepted = _names((crd.get("status") or {}).get("acceptedNames"))
    resources, kinds = _used([o for o in others if (o.get("metadata") or {}).get("name") !=
                              (crd.get("metadata") or {}).get("name")], spec.get("group"))
    new = dict(accepted)
    condition = {"type": "NamesAccepted", "status": "Unknown"}

    def fail(reason: str, message: str) -> None:
        condition.update(status="False", reason=reason, message=message)

    for key, reason in (("plural", "PluralConflict"), ("singular", "SingularConflict")):
        problem = _conflict(requested.get(key), accepted.get(key), resources)
        if problem:
            fail(reason, problem)
        elif requested.get(key) is not None:
            new[key] = requested.get(key)
    if (requested.get("shortNames") or []) != (accepted.get("shortNames") or []):
        existing = set(accepted.get("shortNames") or [])
        problems = [_conflict(short, "", resources) for short in requested.get("shortNames") or []
                    if short not in existing]
        problems = [p for p in problems if p]
        if problems:
            fail("ShortNamesConflict", problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]")
        else:
            if requested.get("shortNames"):
                new["shortNames"] = list(requested["shortNames"])
            else:
                new.pop("shortNames", None)
    for key, reason in (("kind", "KindConflict"), ("listKind", "ListKindConflict")):
        problem = _conflict(requested.get(key), accepted.get(key), kinds)
        if problem:
            fail(reason, problem)
        elif requested.get(key) is not None:
            new[key] = requested.get(key)
    if requested.get("categories"):
        new["categories"] = list(requested["categories"])
    else:
        new.pop("categories", None)
    if condition["status"] == "Unknown":
        condition.update(status="True", reason="NoConflicts", message="no conflicts found")
    established = next((dict(c) for c in (crd.get("status") or {}).get("conditions") or []
                        if isinstance(c, dict) and c.get("type") == "Established"),
                       {"type": "Established", "status": "False", "reason": "NotAccepted",
                        "message": "not all names are accepted"})
    if established.get("status") != "True" and condition["status"] == "True":
        established = {"type": "Established", "status": "False", "reason": "Installing",
                       "message": "the initial names have been accepted"}
    established.pop("lastTransitionTime", None)
    return new, condition, established
