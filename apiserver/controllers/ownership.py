"""Owner references and pod states the workload controllers share (pure functions)."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Callable

from shipmate.timeutil import parse_rfc3339

Obj = dict[str, Any]
Matcher = Callable[[dict[str, str]], bool]


def controller_ref(obj: Obj) -> Obj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_reference(owner: Obj) -> Obj:
    """The controller reference a controller puts on what it creates (and adopts)."""
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def is_owned_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == owner["metadata"]["uid"]


def labels_of(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def is_pod_active(pod: Obj) -> bool:
    """controller.IsPodActive: not Succeeded/Failed and not being deleted."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and \
        not pod["metadata"].get("deletionTimestamp")


def _ready_condition(pod: Obj) -> Obj | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return None


def is_pod_ready(pod: Obj) -> bool:
    condition = _ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def ready_since(pod: Obj) -> datetime.datetime | None:
    condition = _ready_condition(pod)
    if condition is None or condition.get("status") != "True":
        return None
    return parse_rfc3339(condition.get("lastTransitionTime"))


def is_pod_available(pod: Obj, min_ready_seconds: int, now: datetime.datetime) -> bool:
    """podutil.IsPodAvailable: Ready for at least minReadySeconds."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + datetime.timedelta(seconds=min_ready_seconds) <= now


def seconds_until_available(pod: Obj, min_ready_seconds: int, now: datetime.datetime) -> float | None:
    """For a Ready pod not yet available: seconds until it is (to requeue its owner then)."""
    since = ready_since(pod)
    if since is None or min_ready_seconds <= 0:
        return None
    remaining = (since + datetime.timedelta(seconds=min_ready_seconds) - now).total_seconds()
    return remaining if remaining > 0 else None


@dataclass
class Claim:
    owned: list[Obj] = field(default_factory=list)      # what the owner controls after the claim
    adopt: list[Obj] = field(default_factory=list)      # orphans matching the selector: take them
    release: list[Obj] = field(default_factory=list)    # owned objects that no longer match: let them go


def claim(owner: Obj, matches: Matcher, objects: list[Obj], counts: Callable[[Obj], bool]) -> Claim:
    """ControllerRefManager.ClaimObject over a list: owned + matching stays, owned + not matching is
    released, orphans matching are adopted (not by an owner being deleted, nor objects being deleted);
    `counts` filters what ends up in `owned`."""
    result = Claim()
    uid = owner["metadata"]["uid"]
    owner_deleting = bool(owner["metadata"].get("deletionTimestamp"))
    for obj in objects:
        ref = controller_ref(obj)
        selected = matches(labels_of(obj))
        deleting = bool(obj["metadata"].get("deletionTimestamp"))
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if selected:
                if counts(obj):
                    result.owned.append(obj)
            elif not deleting:
                result.release.append(obj)
        elif selected and not owner_deleting and not deleting:
            result.adopt.append(obj)
            if counts(obj):
                result.owned.append(obj)
    return result
