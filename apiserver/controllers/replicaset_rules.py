"""What a ReplicaSet (or ReplicationController) should do about its pods (pure functions, as upstream's
replica_set.go): which pods it claims, adopts and releases, which pods go first when scaling down,
the status it reports, and the pod it creates from its template."""
from __future__ import annotations

import copy
import datetime
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from apiserver.controllers.ownership import (Claim, claim, is_pod_active, is_pod_available, is_pod_ready,
                                             labels_of, owner_reference, ready_since, seconds_until_available)
from shipmate.timeutil import parse_rfc3339

Obj = dict[str, Any]
Matcher = Callable[[dict[str, str]], bool]
BURST_REPLICAS = 500  # upstream's burstReplicas: at most this many creations or deletions per sync
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def claim_pods(owner: Obj, matches: Matcher, pods: list[Obj]) -> Claim:
    """ControllerRefManager.ClaimPods, keeping the active pods as owned."""
    return claim(owner, matches, pods, is_pod_active)


def replica_diff(replicas: int, active_owned: int) -> int:
    """Pods to create (> 0) or delete (< 0), bounded by the burst size."""
    diff = replicas - active_owned
    return max(-BURST_REPLICAS, min(BURST_REPLICAS, diff))


def _restarts(pod: Obj) -> int:
    return max((c.get("restartCount", 0) for c in (pod.get("status") or {}).get("containerStatuses") or []),
               default=0)


def _timestamp_key(moment: datetime.datetime | None) -> float:
    """Sorts a missing time first, then later (newer) times before earlier ones."""
    return float("-inf") if moment is None else -moment.timestamp()


def pods_to_delete(pods: list[Obj], count: int, related: list[Obj] | None = None) -> list[Obj]:
    """getPodsToDelete: the `count` pods upstream would remove first (ActivePodsWithRanks order):
    unscheduled, then Pending < Unknown < Running, not ready before ready, more related pods on the same
    node first, ready for less time first, more restarts first, newer first."""
    on_node = Counter((p.get("spec") or {}).get("nodeName") for p in (related if related is not None else pods)
                      if is_pod_active(p))

    def rank(pod: Obj) -> tuple:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        node = spec.get("nodeName") or ""
        ready = is_pod_ready(pod)
        return (bool(node), _PHASE_ORDER.get(status.get("phase"), 0), ready,
                -on_node[node] if node else 0,
                _timestamp_key(ready_since(pod)) if ready else 0.0,
                -_restarts(pod),
                _timestamp_key(parse_rfc3339(pod["metadata"].get("creationTimestamp"))))
    return sorted(pods, key=rank)[:max(count, 0)]


def pod_from_template(owner: Obj) -> Obj:
    """The pod a ReplicaSet creates: the template's labels, annotations and spec, `<owner>-` generated
    name, and the owner's controller reference."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    template_meta = template.get("metadata") or {}
    meta: Obj = {"generateName": f"{owner['metadata']['name']}-", "namespace": owner["metadata"]["namespace"],
                 "ownerReferences": [owner_reference(owner)]}
    for key in ("labels", "annotations", "finalizers"):
        if template_meta.get(key):
            meta[key] = template_meta[key]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template.get("spec") or {}}


@dataclass
class StatusResult:
    status: Obj
    recheck_in: float | None  # seconds until a Ready pod becomes available (minReadySeconds)


def replica_status(owner: Obj, owned: list[Obj], now: datetime.datetime, manage_error: str | None = None,
                   now_text: str = "") -> StatusResult:
    """calculateStatus: counts of the active owned pods, observedGeneration, the ReplicaFailure condition."""
    spec = owner.get("spec") or {}
    min_ready = spec.get("minReadySeconds") or 0
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    fully_labeled = ready = available = 0
    recheck: float | None = None
    for pod in owned:
        labels = labels_of(pod)
        if all(labels.get(k) == v for k, v in template_labels.items()):
            fully_labeled += 1
        if is_pod_ready(pod):
            ready += 1
            if is_pod_available(pod, min_ready, now):
                available += 1
            else:
                wait = seconds_until_available(pod, min_ready, now)
                if wait is not None:
                    recheck = wait if recheck is None else min(recheck, wait)
    previous = owner.get("status") or {}
    status: Obj = {"replicas": len(owned)}
    for key, value in (("fullyLabeledReplicas", fully_labeled), ("readyReplicas", ready),
                       ("availableReplicas", available)):
        if value:
            status[key] = value
    generation = owner["metadata"].get("generation")
    if generation:
        status["observedGeneration"] = generation
    conditions = [c for c in previous.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    failure = next((c for c in previous.get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
    if manage_error is not None:
        if failure is None:
            reason = "FailedCreate" if len(owned) < (spec.get("replicas") or 0) else "FailedDelete"
            failure = {"type": "ReplicaFailure", "status": "True", "lastTransitionTime": now_text,
                       "reason": reason, "message": manage_error}
        conditions.append(failure)
    if conditions:
        status["conditions"] = conditions
    return StatusResult(status, recheck)
