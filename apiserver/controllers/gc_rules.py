"""The garbage collector's model and decisions (pure): a graph of owner references over every object,
and what to do with a dependent given the state of its owners (upstream's attemptToDeleteItem)."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from apiserver.deletion_propagation import FOREGROUND_FINALIZER, ORPHAN_FINALIZER

Obj = dict[str, Any]


@dataclass
class Node:
    uid: str
    group: str
    plural: str
    namespace: str
    name: str
    owners: list[Obj] = field(default_factory=list)
    deleting: bool = False
    finalizers: tuple[str, ...] = ()

    @property
    def orphaning(self) -> bool:
        return self.deleting and ORPHAN_FINALIZER in self.finalizers

    @property
    def deleting_dependents(self) -> bool:
        return self.deleting and FOREGROUND_FINALIZER in self.finalizers


class OwnerGraph:
    """uid → node, and owner uid → dependent uids (owners may be absent: dependents point at a uid)."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self._dependents: dict[str, set[str]] = {}

    def observe(self, event_type: str, obj: Obj, group: str, plural: str) -> tuple[Node | None, Node | None]:
        """Applies a watch event; returns (previous node, current node or None when deleted)."""
        meta = obj.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return None, None
        previous = self.nodes.get(uid)
        if previous is not None:
            for ref in previous.owners:
                dependents = self._dependents.get(ref.get("uid", ""))
                if dependents is not None:
                    dependents.discard(uid)
                    if not dependents:
                        del self._dependents[ref.get("uid", "")]
        if event_type == "DELETED":
            self.nodes.pop(uid, None)
            return previous, None
        node = Node(uid, group, plural, meta.get("namespace", ""), meta.get("name", ""),
                    [dict(r) for r in meta.get("ownerReferences") or [] if r.get("uid")],
                    bool(meta.get("deletionTimestamp")), tuple(meta.get("finalizers") or ()))
        self.nodes[uid] = node
        for ref in node.owners:
            self._dependents.setdefault(ref["uid"], set()).add(uid)
        return previous, node

    def dependents(self, uid: str) -> list[Node]:
        return [self.nodes[d] for d in sorted(self._dependents.get(uid, ())) if d in self.nodes]

    def blocking_dependents(self, uid: str) -> list[Node]:
        """Dependents whose reference to this owner has blockOwnerDeletion: a foreground deletion waits for them."""
        return [node for node in self.dependents(uid)
                if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in node.owners)]

    def needs_owner_check(self, node: Node) -> bool:
        """An owner we have not seen (maybe gone) or one deleting its dependents: look at the dependent."""
        for ref in node.owners:
            owner = self.nodes.get(ref["uid"])
            if owner is None or owner.deleting_dependents:
                return True
        return False


class OwnerState(enum.Enum):
    SOLID = "solid"          # exists and is not deleting its dependents
    DANGLING = "dangling"    # absent (or the name now belongs to another uid)
    WAITING = "waiting"      # deleting in the foreground: waits for its dependents


@dataclass(frozen=True)
class Decision:
    action: str  # "keep", "remove-refs" or "delete"
    remove_owner_uids: tuple[str, ...] = ()
    propagation_policy: str | None = None


def decide(owners: list[tuple[Obj, OwnerState]], finalizers: tuple[str, ...] | list[str],
           has_dependents: bool) -> Decision:
    """attemptToDeleteItem: a dependent with a solid owner stays (references to absent or foreground-
    deleting owners are removed); one whose owners all wait for it is deleted in the foreground when it
    has dependents itself; one without any live owner is deleted with the policy its finalizers ask for."""
    if not owners:
        return Decision("keep")
    solid = [ref for ref, state in owners if state is OwnerState.SOLID]
    dangling = [ref for ref, state in owners if state is OwnerState.DANGLING]
    waiting = [ref for ref, state in owners if state is OwnerState.WAITING]
    if solid:
        stale = tuple(ref["uid"] for ref in dangling + waiting)
        return Decision("remove-refs", stale) if stale else Decision("keep")
    if waiting and has_dependents:
        return Decision("delete", propagation_policy="Foreground")
    if ORPHAN_FINALIZER in finalizers:
        policy = "Orphan"
    elif FOREGROUND_FINALIZER in finalizers:
        policy = "Foreground"
    else:
        policy = "Background"
    return Decision("delete", propagation_policy=policy)


def without_owner_refs(obj: Obj, uids: set[str]) -> Obj:
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") not in uids]
    if refs:
        obj["metadata"]["ownerReferences"] = refs
    else:
        obj["metadata"].pop("ownerReferences", None)
    return obj


def without_finalizer(obj: Obj, finalizer: str) -> Obj:
    finalizers = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
    if finalizers:
        obj["metadata"]["finalizers"] = finalizers
    else:
        obj["metadata"].pop("finalizers", None)
    return obj
