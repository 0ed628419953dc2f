"""DeleteOptions.propagationPolicy → the garbage collector's finalizers on the deleted object (as upstream's
generic registry: `orphan` keeps dependents, `foregroundDeletion` deletes them before the owner goes)."""
from __future__ import annotations

from typing import Any

from apiserver import errors
from apiserver.kinds.base import Obj

ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"
POLICIES = ("Foreground", "Background", "Orphan")


def parse_policy(policy: Any, orphan_dependents: Any) -> tuple[str | None, bool | None]:
    """Validated (propagationPolicy, orphanDependents) of a DeleteOptions (query or body)."""
    if isinstance(orphan_dependents, str):
        orphan_dependents = orphan_dependents in ("1", "true", "True")
    problems = []
    if policy is not None and orphan_dependents is not None:
        problems.append(errors.invalid("orphanDependents", orphan_dependents,
                                       "Cannot set both OrphanDependents and PropagationPolicy"))
    if policy is not None and policy not in POLICIES:
        problems.append(errors.not_supported("propagationPolicy", policy, list(POLICIES)))
    if problems:
        raise errors.invalid_object("meta.k8s.io", "DeleteOptions", "", problems)
    return policy, orphan_dependents


def _orphans(finalizers: list[str], policy: str | None, orphan_dependents: bool | None, default_orphan: bool) -> bool:
    if orphan_dependents is not None:
        return orphan_dependents
    if policy is not None:
        return policy == "Orphan"
    if ORPHAN_FINALIZER in finalizers:
        return True
    if FOREGROUND_FINALIZER in finalizers:
        return False
    return default_orphan


def _deletes_in_foreground(finalizers: list[str], policy: str | None, orphan_dependents: bool | None) -> bool:
    if orphan_dependents is not None:
        return False
    if policy is not None:
        return policy == "Foreground"
    return FOREGROUND_FINALIZER in finalizers


def gc_finalizers(obj: Obj, policy: str | None, orphan_dependents: bool | None,
                  default_orphan: bool = False) -> list[str] | None:
    """The finalizers the object gets when deleted with these options; None when they stay as they are."""
    current = list((obj.get("metadata") or {}).get("finalizers") or [])
    wanted = [f for f in current if f not in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)]
    if _orphans(current, policy, orphan_dependents, default_orphan):
        wanted.append(ORPHAN_FINALIZER)
    if _deletes_in_foreground(current, policy, orphan_dependents):
        wanted.append(FOREGROUND_FINALIZER)
    return None if set(wanted) == set(current) else wanted
