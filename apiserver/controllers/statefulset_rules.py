"""What a StatefulSet should do (pure functions, after upstream's stateful_set_control.go and
stateful_set_utils.go): stable pod identities `<set>-<ordinal>` (hostname, subdomain = serviceName, the
pod-name and pod-index labels), claims `<template>-<set>-<ordinal>` from volumeClaimTemplates with owner
references following persistentVolumeClaimRetentionPolicy, OrderedReady (one pod at a time, waiting for
Running and Ready, scale down from the highest ordinal) or Parallel pod management, RollingUpdate from the
highest ordinal down to the partition within maxUnavailable, OnDelete, status."""
from __future__ import annotations

import copy
import datetime
import re
from dataclasses import dataclass, field
from typing import Any

from apiserver.controllers.ownership import is_pod_available, is_pod_ready, owner_reference
from apiserver.controllers.revision_rules import REVISION_HASH_LABEL, apply_revision
from apiserver.kinds.workloads import scaled_int_or_percent

Obj = dict[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


# --- identity ---------------------------------------------------------------------------------------
def parent_and_ordinal(pod: Obj) -> tuple[str, int]:
    match = _ORDINAL.match(pod["metadata"]["name"])
    if not match:
        return "", -1
    return match[1], int(match[2])


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod)[1]


def is_member(statefulset: Obj, pod: Obj) -> bool:
    return parent_and_ordinal(pod)[0] == statefulset["metadata"]["name"]


def start_ordinal(statefulset: Obj) -> int:
    ordinals = (statefulset.get("spec") or {}).get("ordinals") or {}
    return int(ordinals.get("start") or 0)


def replica_count(statefulset: Obj) -> int:
    return int((statefulset.get("spec") or {}).get("replicas") or 0)


def in_range(statefulset: Obj, pod: Obj) -> bool:
    ordinal = ordinal_of(pod)
    start = start_ordinal(statefulset)
    return start <= ordinal < start + replica_count(statefulset)


def pod_name(statefulset: Obj, ordinal: int) -> str:
    return f"{statefulset['metadata']['name']}-{ordinal}"


def claim_name(statefulset: Obj, template_name: str, ordinal: int) -> str:
    return f"{template_name}-{statefulset['metadata']['name']}-{ordinal}"


def revision_of(pod: Obj) -> str:
    return (pod["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL, "")


def claims_for(statefulset: Obj, ordinal: int) -> dict[str, Obj]:
    """getPersistentVolumeClaims: template name → the claim of this ordinal (the template's labels plus the
    set's matchLabels)."""
    spec = statefulset.get("spec") or {}
    match_labels = (spec.get("selector") or {}).get("matchLabels") or {}
    claims = {}
    for template in spec.get("volumeClaimTemplates") or []:
        template_meta = template.get("metadata") or {}
        name = template_meta.get("name", "")
        meta: Obj = {"name": claim_name(statefulset, name, ordinal), "namespace": statefulset["metadata"]["namespace"],
                     "labels": {**(template_meta.get("labels") or {}), **match_labels}}
        if template_meta.get("annotations"):
            meta["annotations"] = dict(template_meta["annotations"])
        claims[name] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
                        "spec": copy.deepcopy(template.get("spec") or {})}
    return claims


def new_pod(statefulset: Obj, ordinal: int, revision_name: str) -> Obj:
    """newStatefulSetPod + setPodRevision: the template's pod named `<set>-<ordinal>` (generateName `<set>-`
    as GetPodFromTemplate leaves it), hostname = name, subdomain = serviceName, the claims as volumes."""
    spec = statefulset.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    template_meta = template.get("metadata") or {}
    name = pod_name(statefulset, ordinal)
    meta: Obj = {"name": name, "generateName": f"{statefulset['metadata']['name']}-",
                 "namespace": statefulset["metadata"]["namespace"], "ownerReferences": [owner_reference(statefulset)]}
    for key in ("annotations", "finalizers"):
        if template_meta.get(key):
            meta[key] = template_meta[key]
    meta["labels"] = {**(template_meta.get("labels") or {}), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
                      REVISION_HASH_LABEL: revision_name}
    pod_spec = template.get("spec") or {}
    pod_spec["hostname"] = name
    if spec.get("serviceName"):
        pod_spec["subdomain"] = spec["serviceName"]
    claims = claims_for(statefulset, ordinal)
    volumes = [{"name": template_name, "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
               for template_name, claim in claims.items()]
    volumes += [v for v in pod_spec.get("volumes") or [] if v.get("name") not in claims]
    if volumes:
        pod_spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}


def identity_matches(statefulset: Obj, pod: Obj) -> bool:
    parent, ordinal = parent_and_ordinal(pod)
    labels = pod["metadata"].get("labels") or {}
    return ordinal >= 0 and parent == statefulset["metadata"]["name"] and \
        pod["metadata"].get("namespace") == statefulset["metadata"]["namespace"] and \
        labels.get(POD_NAME_LABEL) == pod["metadata"]["name"] and labels.get(POD_INDEX_LABEL) == str(ordinal)


def identity_labels(pod: Obj) -> dict[str, str]:
    """updateIdentity: the labels a member pod must carry."""
    return {POD_NAME_LABEL: pod["metadata"]["name"], POD_INDEX_LABEL: str(ordinal_of(pod))}


# --- claims and their owners -------------------------------------------------------------------------
def retention(statefulset: Obj) -> tuple[str, str]:
    policy = (statefulset.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    return policy.get("whenDeleted") or "Retain", policy.get("whenScaled") or "Retain"


def _matches_ref(ref: Obj, kind: str, name: str) -> bool:
    return ref.get("kind") == kind and ref.get("name") == name


def stale_claim(claim: Obj, pod_name_: str, pod_uid: str) -> bool:
    """hasStaleOwnerRef for the pod: the claim names a pod of this name with another uid (an earlier pod
    whose claim the garbage collector is about to delete)."""
    for ref in (claim.get("metadata") or {}).get("ownerReferences") or []:
        if _matches_ref(ref, "Pod", pod_name_):
            return ref.get("uid") != pod_uid
    return False


def claim_owner_refs(statefulset: Obj, pod: Obj, claim: Obj) -> list[Obj] | None:
    """updateClaimOwnerRefForSetAndPod: the claim's owner references under the retention policy — the set as
    controller when `whenDeleted: Delete` (while the pod is in range), the pod as controller when
    `whenScaled: Delete` and the pod is scaled away. None when nothing is to change (also for claims another
    controller owns, or with stale references: those are left alone, as upstream)."""
    refs = list((claim.get("metadata") or {}).get("ownerReferences") or [])
    set_meta, pod_meta = statefulset["metadata"], pod["metadata"]
    for ref in refs:
        if _matches_ref(ref, "StatefulSet", set_meta["name"]) and ref.get("uid") != set_meta["uid"]:
            return None
        if _matches_ref(ref, "Pod", pod_meta["name"]) and ref.get("uid") != pod_meta.get("uid"):
            return None
    ours = {set_meta["uid"], pod_meta.get("uid")}
    if any(ref.get("controller") and ref.get("uid") not in ours for ref in refs):
        kept = [r for r in refs if r.get("uid") not in ours]
        return kept if kept != refs else None
    when_deleted, when_scaled = retention(statefulset)
    scaled_down = not in_range(statefulset, pod)
    kept = [r for r in refs if r.get("uid") not in ours]
    pod_ref = {"apiVersion": "v1", "kind": "Pod", "name": pod_meta["name"], "uid": pod_meta.get("uid"),
               "controller": True, "blockOwnerDeletion": True}
    if when_scaled == "Delete" and scaled_down:
        kept.append(pod_ref)
    elif when_deleted == "Delete":
        kept.append(owner_reference(statefulset))
    current = {r.get("uid"): r for r in refs}
    wanted = {r.get("uid"): r for r in kept}
    return kept if current != wanted else None


# --- pods ------------------------------------------------------------------------------------------
def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def is_created(pod: Obj) -> bool:
    return bool(phase(pod))


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def running_and_ready(pod: Obj) -> bool:
    return phase(pod) == "Running" and is_pod_ready(pod)


def running_and_available(pod: Obj, min_ready: int, now: datetime.datetime) -> bool:
    return phase(pod) == "Running" and is_pod_available(pod, min_ready, now)


def healthy(pod: Obj) -> bool:
    return running_and_ready(pod) and not is_terminating(pod)


def max_unavailable(statefulset: Obj) -> int:
    """getStatefulSetMaxUnavailable: maxUnavailable (percent of replicas, rounded down) at least 1."""
    rolling = ((statefulset.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    value = rolling.get("maxUnavailable")
    if value is None:
        return 1
    return max(scaled_int_or_percent(value, replica_count(statefulset), False), 1)


# --- the plan of one pass --------------------------------------------------------------------------
@dataclass
class Action:
    verb: str                 # "create" (pod + claims), "delete", "recreate-failed", "identity", "claims"
    pod: Obj
    statefulset: Obj          # the set at the revision the pod belongs to (its claims come from it)


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    waiting: str = ""         # why an OrderedReady pass stops (logged)


def _versioned_pod(statefulset: Obj, current_set: Obj, update_set: Obj, current_revision: str,
                   update_revision: str, ordinal: int) -> Obj:
    """newVersionedStatefulSetPod: below the partition (or, without rollingUpdate, below the current
    replicas) a new pod gets the current revision, else the update revision."""
    spec = current_set.get("spec") or {}
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate")
    start = start_ordinal(current_set)
    current_replicas = int((statefulset.get("status") or {}).get("currentReplicas") or 0)
    if (strategy.get("type") == "RollingUpdate" and rolling is None and ordinal < start + current_replicas) or \
            (rolling is not None and ordinal < start + int(rolling.get("partition") or 0)):
        return new_pod(current_set, ordinal, current_revision)
    return new_pod(update_set, ordinal, update_revision)


def split_pods(statefulset: Obj, pods: list[Obj]) -> tuple[list[Obj | None], list[Obj]]:
    """(replicas by ordinal slot, None where missing; condemned pods beyond the range, highest first)."""
    start, count = start_ordinal(statefulset), replica_count(statefulset)
    replicas: list[Obj | None] = [None] * count
    condemned = []
    for pod in pods:
        ordinal = ordinal_of(pod)
        if start <= ordinal < start + count:
            replicas[ordinal - start] = pod
        elif ordinal >= 0:
            condemned.append(pod)
    condemned.sort(key=ordinal_of, reverse=True)
    return replicas, condemned


def plan_pass(statefulset: Obj, pods: list[Obj], current_revision: Obj, update_revision: Obj,
              now: datetime.datetime) -> Plan:
    """updateStatefulSet: what to do in this pass, in order. OrderedReady stops at the first pod it must wait
    for; Parallel does everything at once."""
    plan = Plan()
    if statefulset["metadata"].get("deletionTimestamp"):
        return plan
    spec = statefulset.get("spec") or {}
    min_ready = spec.get("minReadySeconds") or 0
    current_set, update_set = apply_revision(statefulset, current_revision), apply_revision(statefulset, update_revision)
    current_name, update_name = current_revision["metadata"]["name"], update_revision["metadata"]["name"]
    replicas, condemned = split_pods(statefulset, pods)
    start = start_ordinal(statefulset)
    slots: list[Obj] = [pod if pod is not None else
                        _versioned_pod(statefulset, current_set, update_set, current_name, update_name, start + i)
                        for i, pod in enumerate(replicas)]
    first_unhealthy = next((p for p in slots if not healthy(p)), None)
    if first_unhealthy is None:
        first_unhealthy = next((p for p in reversed(condemned) if not healthy(p)), None)
    monotonic = spec.get("podManagementPolicy") != "Parallel"

    def wait(why: str) -> Plan:
        plan.waiting = why
        return plan

    for pod in slots:
        name = pod["metadata"]["name"]
        if phase(pod) in ("Failed", "Succeeded"):
            if not is_terminating(pod):
                plan.actions.append(Action("recreate-failed", pod, update_set))
            if monotonic:
                return wait(f"pod {name} finished and is being replaced")
            continue
        if not is_created(pod):
            plan.actions.append(Action("create", pod, current_set if revision_of(pod) == current_name else update_set))
            if monotonic:
                return wait(f"pod {name} was just created")
            continue
        if phase(pod) == "Pending":
            plan.actions.append(Action("claims", pod, update_set))
        if is_terminating(pod) and monotonic:
            return wait(f"pod {name} is terminating")
        if not running_and_ready(pod) and monotonic:
            return wait(f"pod {name} is not Running and Ready")
        if not running_and_available(pod, min_ready, now) and monotonic:
            return wait(f"pod {name} is not available")
        if not identity_matches(statefulset, pod):
            plan.actions.append(Action("identity", pod, update_set))
        if phase(pod) != "Pending":
            plan.actions.append(Action("claims", pod, update_set))
    for pod in condemned:
        plan.actions.append(Action("claims", pod, update_set))
    for pod in condemned:
        name = pod["metadata"]["name"]
        if is_terminating(pod):
            if monotonic:
                return wait(f"pod {name} is terminating")
            continue
        if monotonic and pod is not first_unhealthy and \
                (not running_and_ready(pod) or not running_and_available(pod, min_ready, now)):
            return wait(f"pod {name} is not healthy and not the first unhealthy pod")
        plan.actions.append(Action("delete", pod, statefulset))
        if monotonic:
            return wait(f"pod {name} is being deleted for scale down")
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return plan
    rolling = strategy.get("rollingUpdate") or {}
    partition = int(rolling.get("partition") or 0)
    allowed = max_unavailable(statefulset)
    unavailable = sum(1 for pod in slots if not healthy(pod) or not running_and_available(pod, min_ready, now))
    if unavailable >= allowed:
        return wait(f"{unavailable} pods unavailable, maxUnavailable {allowed}")
    budget = allowed - unavailable
    for index in range(len(slots) - 1, partition - 1, -1):
        if budget <= 0:
            break
        pod = slots[index]
        if revision_of(pod) != update_name and not is_terminating(pod):
            plan.actions.append(Action("delete", pod, statefulset))
            budget -= 1
    return plan


def statefulset_status(statefulset: Obj, pods: list[Obj], current_revision: str, update_revision: str,
                       collision_count: int, now: datetime.datetime) -> Obj:
    """updateStatus + completeRollingUpdate over the set's pods (in range and condemned)."""
    spec = statefulset.get("spec") or {}
    min_ready = spec.get("minReadySeconds") or 0
    replicas = ready = available = current = updated = 0
    for pod in pods:
        if ordinal_of(pod) < 0:
            continue
        if is_created(pod):
            replicas += 1
        if running_and_ready(pod):
            ready += 1
            if running_and_available(pod, min_ready, now):
                available += 1
        if is_created(pod) and not is_terminating(pod):
            revision = revision_of(pod)
            current += revision == current_revision
            updated += revision == update_revision
    status: Obj = {"observedGeneration": int(statefulset["metadata"].get("generation") or 0), "replicas": replicas}
    if (spec.get("updateStrategy") or {}).get("type") == "RollingUpdate" and updated == replicas and ready == replicas:
        current, current_revision = updated, update_revision
    for key, value in (("readyReplicas", ready), ("currentReplicas", current), ("updatedReplicas", updated)):
        if value:
            status[key] = value
    status["availableReplicas"] = available
    if current_revision:
        status["currentRevision"] = current_revision
    if update_revision:
        status["updateRevision"] = update_revision
    status["collisionCount"] = collision_count
    previous = statefulset.get("status") or {}
    if previous.get("conditions"):
        status["conditions"] = previous["conditions"]
    return status


def live_revisions(pods: list[Obj], current: str, update: str) -> set[str]:
    return {current, update} | {revision_of(pod) for pod in pods}
