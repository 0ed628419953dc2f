"""What a DaemonSet should do (pure functions, after upstream's daemon_controller.go, update.go and
daemon/util): which nodes should run its pod (node selector, required node affinity, taints against the
template's tolerations plus the default daemon tolerations), the pod it creates for a node (pinned through a
`metadata.name` matchFields node-affinity term, placed by the default scheduler), which pods go (failed ones,
extras, pods on nodes that should not run one), rolling updates within maxUnavailable / maxSurge, status."""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field
from typing import Any

from apiserver.controllers.ownership import is_pod_available, is_pod_ready, owner_reference
from apiserver.controllers.ownership import seconds_until_available as _until_available
from apiserver.controllers.revision_rules import REVISION_HASH_LABEL, by_revision
from apiserver.kinds.workloads import scaled_int_or_percent
from apiserver.scheduler.predicates import matches_node_affinity, tolerated

Obj = dict[str, Any]

TEMPLATE_GENERATION_LABEL = "pod-template-generation"
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
# AddOrUpdateDaemonPodTolerations, in upstream's order.
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
NETWORK_UNAVAILABLE_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                                  "effect": "NoSchedule"}


def _same_toleration(a: Obj, b: Obj) -> bool:
    """Toleration.MatchToleration: key, operator, value and effect equal."""
    return all((a.get(k) or "") == (b.get(k) or "") for k in ("key", "value", "effect")) and \
        (a.get("operator") or "Equal") == (b.get("operator") or "Equal")


def add_daemon_tolerations(spec: Obj) -> None:
    """AddOrUpdateDaemonPodTolerations: a daemon pod survives node problems (not-ready/unreachable NoExecute
    without a time limit) and is placed despite pressure and cordons (NoSchedule); with hostNetwork also on
    nodes whose network is not ready."""
    tolerations = list(spec.get("tolerations") or [])
    wanted = list(DAEMON_TOLERATIONS) + ([NETWORK_UNAVAILABLE_TOLERATION] if spec.get("hostNetwork") else [])
    for toleration in wanted:
        for index, existing in enumerate(tolerations):
            if isinstance(existing, dict) and _same_toleration(existing, toleration):
                tolerations[index] = dict(toleration)
                break
        else:
            tolerations.append(dict(toleration))
    spec["tolerations"] = tolerations


def pin_to_node(affinity: Obj | None, node_name: str) -> Obj:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: the required node affinity becomes the single term
    `metadata.name In [node]` (preferred terms and other affinities stay)."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
    affinity = copy.deepcopy(affinity) if isinstance(affinity, dict) else {}
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not isinstance(required, dict):
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [term]}
    else:
        required["nodeSelectorTerms"] = [term]
    return affinity


def target_node(pod: Obj) -> str:
    """GetTargetNodeName: spec.nodeName, else the node its `metadata.name` matchFields term names."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for requirement in term.get("matchFields") or []:
            values = requirement.get("values") or []
            if requirement.get("key") == "metadata.name" and requirement.get("operator") == "In" and len(values) == 1:
                return values[0]
    return ""


def template_generation(daemonset: Obj) -> str | None:
    return ((daemonset.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)


def pod_template(daemonset: Obj, hash_value: str) -> Obj:
    """CreatePodTemplate: the template with the daemon tolerations and the generation and hash labels."""
    template = copy.deepcopy((daemonset.get("spec") or {}).get("template") or {})
    spec = template.setdefault("spec", {})
    add_daemon_tolerations(spec)
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    generation = template_generation(daemonset)
    if generation is not None:
        labels[TEMPLATE_GENERATION_LABEL] = generation
    if hash_value:
        labels[REVISION_HASH_LABEL] = hash_value
    return template


def pod_for_node(daemonset: Obj, hash_value: str, node_name: str) -> Obj:
    """The pod created for one node: `<ds>-` generated name, the controller reference, pinned to the node."""
    template = pod_template(daemonset, hash_value)
    template_meta = template.get("metadata") or {}
    meta: Obj = {"generateName": f"{daemonset['metadata']['name']}-", "namespace": daemonset["metadata"]["namespace"],
                 "ownerReferences": [owner_reference(daemonset)]}
    for key in ("labels", "annotations", "finalizers"):
        if template_meta.get(key):
            meta[key] = template_meta[key]
    spec = template.get("spec") or {}
    spec["affinity"] = pin_to_node(spec.get("affinity"), node_name)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def node_should_run(node: Obj, daemonset: Obj) -> tuple[bool, bool]:
    """NodeShouldRunDaemonPod: (should run, should keep running). Node name, selector and required affinity
    must fit; an untolerated NoSchedule taint stops new pods, an untolerated NoExecute one existing pods too."""
    spec = copy.deepcopy(((daemonset.get("spec") or {}).get("template") or {}).get("spec") or {})
    name = node["metadata"]["name"]
    if spec.get("nodeName") and spec["nodeName"] != name:
        return False, False
    add_daemon_tolerations(spec)
    labels = node["metadata"].get("labels") or {}
    if not matches_node_affinity(spec, labels, name):
        return False, False
    tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
    taints = (node.get("spec") or {}).get("taints") or []
    if any(t.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(tolerations, t) for t in taints):
        return False, not any(t.get("effect") == "NoExecute" and not tolerated(tolerations, t) for t in taints)
    return True, True


def is_updated(pod: Obj, hash_value: str, generation: str | None) -> bool:
    """IsPodUpdated: the current revision's hash, or the template generation, on the pod."""
    labels = pod["metadata"].get("labels") or {}
    return bool(hash_value) and labels.get(REVISION_HASH_LABEL) == hash_value or \
        generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == generation


def _by_age(pods: list[Obj]) -> list[Obj]:
    """podByCreationTimestampAndPhase: scheduled first, then oldest, then by name."""
    return sorted(pods, key=lambda p: (not (p.get("spec") or {}).get("nodeName"),
                                       p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))


def surge_and_unavailable(daemonset: Obj, desired: int) -> tuple[int, int]:
    """SurgeCount / UnavailableCount (percentages rounded up); both 0 means maxUnavailable 1."""
    strategy = (daemonset.get("spec") or {}).get("updateStrategy") or {}
    if strategy.get("type") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = scaled_int_or_percent(rolling.get("maxSurge") or 0, desired, True)
    unavailable = scaled_int_or_percent(rolling.get("maxUnavailable") or 0, desired, True)
    if desired > 0 and surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def allows_surge(daemonset: Obj) -> bool:
    return surge_and_unavailable(daemonset, 1)[0] > 0


@dataclass
class Plan:
    create_on: list[str] = field(default_factory=list)        # node names that get a new pod
    delete: list[Obj] = field(default_factory=list)            # pods to delete
    failed: list[tuple[Obj, str]] = field(default_factory=list)  # failed pods found (pod, node), reported


def manage(daemonset: Obj, nodes: list[Obj], node_pods: dict[str, list[Obj]], hash_value: str,
           now: datetime.datetime) -> Plan:
    """manage + podsShouldBeOnNode: one pod on every node that should run it, none elsewhere."""
    plan = Plan()
    min_ready = (daemonset.get("spec") or {}).get("minReadySeconds") or 0
    surge = allows_surge(daemonset)
    node_names = set()
    for node in nodes:
        name = node["metadata"]["name"]
        node_names.add(name)
        should_run, should_continue = node_should_run(node, daemonset)
        pods = node_pods.get(name) or []
        if should_run and not pods:
            plan.create_on.append(name)
        elif should_continue:
            running = []
            for pod in pods:
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                phase = (pod.get("status") or {}).get("phase")
                if phase == "Failed":
                    plan.failed.append((pod, name))
                    plan.delete.append(pod)
                elif phase == "Succeeded":
                    plan.delete.append(pod)
                else:
                    running.append(pod)
            running = _by_age(running)
            if not surge:
                plan.delete += running[1:]
            elif not running:
                if should_run:
                    plan.create_on.append(name)
            elif len(running) > 1:
                newest = oldest_old = None
                for pod in running:
                    if is_updated(pod, hash_value, None):
                        if newest is None:
                            newest = pod
                            continue
                    elif oldest_old is None:
                        oldest_old = pod
                        continue
                    plan.delete.append(pod)
                if newest is not None and oldest_old is not None and \
                        (not is_pod_ready(oldest_old) or is_pod_available(newest, min_ready, now)):
                    plan.delete.append(oldest_old)
        elif pods:
            plan.delete += [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    # getUnscheduledPodsWithoutNode: pods waiting for a node that is gone would never be scheduled.
    for name, pods in node_pods.items():
        if name not in node_names:
            plan.delete += [p for p in pods if not (p.get("spec") or {}).get("nodeName")
                            and not p["metadata"].get("deletionTimestamp")]
    return plan


def _updated_and_old(pods: list[Obj], hash_value: str, generation: str | None) -> tuple[Obj | None, Obj | None, bool]:
    """findUpdatedPodsOnNode: (new pod, old pod, at most one of each)."""
    new = old = None
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        if is_updated(pod, hash_value, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def rolling_update(daemonset: Obj, nodes: list[Obj], node_pods: dict[str, list[Obj]], hash_value: str,
                   now: datetime.datetime) -> Plan:
    """rollingUpdate: without surge, delete old pods while unavailable pods stay within maxUnavailable (the
    manage pass then creates their replacements); with surge, start new pods beside old ones (at most
    maxSurge at a time) and delete each old pod once its replacement is available."""
    spec = daemonset.get("spec") or {}
    min_ready = spec.get("minReadySeconds") or 0
    generation = template_generation(daemonset)
    by_name = {n["metadata"]["name"]: n for n in nodes}
    pods_by_node = {name: list(pods) for name, pods in node_pods.items()}
    desired = 0
    for node in nodes:
        if node_should_run(node, daemonset)[0]:
            desired += 1
            pods_by_node.setdefault(node["metadata"]["name"], [])
    max_surge, max_unavailable = surge_and_unavailable(daemonset, desired)
    plan = Plan()
    available = lambda pod: is_pod_available(pod, min_ready, now)  # noqa: E731
    if max_surge == 0:
        unavailable = 0
        replace: list[Obj] = []
        candidates: list[Obj] = []
        for name in sorted(pods_by_node):
            new, old, ok = _updated_and_old(pods_by_node[name], hash_value, generation)
            if not ok or (old is None) == (new is None):
                unavailable += 1
            elif new is not None:
                if not available(new):
                    unavailable += 1
            elif not available(old):
                replace.append(old)
            elif unavailable < max_unavailable:
                candidates.append(old)
        room = max(0, min(max_unavailable - unavailable, len(candidates)))
        plan.delete = replace + candidates[:room]
        return plan
    surging = available_count = 0
    allowed_new: list[str] = []
    candidates_new: list[str] = []
    should_not_run: list[Obj] = []
    for name in sorted(pods_by_node):
        new, old, ok = _updated_and_old(pods_by_node[name], hash_value, generation)
        if not ok:
            surging += 1
            continue
        if old is not None:
            available_count += available(old)
        elif new is not None:
            available_count += available(new)
        if old is None:
            continue
        if new is None:
            node = by_name.get(name)
            runs = node is not None and node_should_run(node, daemonset)[0]
            if not available(old):
                if not runs:
                    plan.delete.append(old)
                else:
                    allowed_new.append(name)
            elif not runs:
                should_not_run.append(old)
            elif surging < max_surge:
                candidates_new.append(name)
        elif not available(new):
            surging += 1
        else:
            plan.delete.append(old)
    deletable = available_count - desired
    if deletable > 0:
        plan.delete += should_not_run[:deletable]
    room = max(0, min(max_surge - surging, len(candidates_new)))
    plan.create_on = allowed_new + candidates_new[:room]
    return plan


def daemonset_status(daemonset: Obj, nodes: list[Obj], node_pods: dict[str, list[Obj]], hash_value: str,
                     now: datetime.datetime) -> Obj:
    """updateDaemonSetStatus: counts over the nodes (the oldest daemon pod of a node speaks for it)."""
    spec = daemonset.get("spec") or {}
    min_ready = spec.get("minReadySeconds") or 0
    generation = template_generation(daemonset)
    desired = current = misscheduled = ready = available = updated = 0
    for node in nodes:
        name = node["metadata"]["name"]
        should_run, _ = node_should_run(node, daemonset)
        pods = node_pods.get(name) or []
        if should_run:
            desired += 1
            if not pods:
                continue
            current += 1
            pod = _by_age(pods)[0]
            if is_pod_ready(pod):
                ready += 1
                if is_pod_available(pod, min_ready, now):
                    available += 1
            if is_updated(pod, hash_value, generation):
                updated += 1
        elif pods:
            misscheduled += 1
    status: Obj = {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
                   "desiredNumberScheduled": desired, "numberReady": ready}
    for key, value in (("observedGeneration", int(daemonset["metadata"].get("generation") or 0)),
                       ("updatedNumberScheduled", updated), ("numberAvailable", available),
                       ("numberUnavailable", desired - available)):
        if value:
            status[key] = value
    previous = daemonset.get("status") or {}
    for key in ("collisionCount", "conditions"):
        if previous.get(key) is not None:
            status[key] = previous[key]
    return status


def history_to_delete(daemonset: Obj, old: list[Obj], live_hashes: set[str]) -> list[Obj]:
    """cleanupHistory: beyond revisionHistoryLimit old revisions go, oldest first, unless a pod still has
    their hash."""
    limit = (daemonset.get("spec") or {}).get("revisionHistoryLimit")
    to_kill = len(old) - (10 if limit is None else int(limit))
    doomed = []
    for revision in by_revision(old):
        if to_kill <= 0:
            break
        if (revision["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL) in live_hashes:
            continue
        doomed.append(revision)
        to_kill -= 1
    return doomed


def seconds_until_available(pods: list[Obj], min_ready: int, now: datetime.datetime) -> float | None:
    """The soonest a Ready pod of the set turns available (minReadySeconds), to look again then."""
    waits = [w for pod in pods if is_pod_ready(pod) and (w := _until_available(pod, min_ready, now)) is not None]
    return min(waits) if waits else None
