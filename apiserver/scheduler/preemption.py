"""Preemption, pure rules (kube-scheduler's DefaultPreemption PostFilter and its preemption evaluator).

A pod that fits no node may make room by evicting pods of lower priority:
- eligibility (`ineligible`): `preemptionPolicy: Never` never preempts; a pod already nominated to a node where
  a lower-priority pod is still terminating because of preemption waits for it;
- candidates (`find_candidates`): nodes whose failure another pod's removal can fix (resource shortages, not
  taints, affinity or cordons); on each, every pod of lower priority is removed and the pod must then fit
  (else the node fails with the reasons left, or `No preemption victims found for incoming pod` when it has
  no such pods); then, most important first (higher priority, then earlier start), pods are given back while
  the pod still fits — first those whose PodDisruptionBudget would be violated, then the others; the ones that
  cannot come back are the victims, with the number of budget violations among them;
- choice (`pick_candidate`): fewest budget violations, then the lowest highest victim priority, the smallest
  sum of priorities, the fewest victims, the latest start of the highest-priority victims, then the first.
- the answer when no node helps (`no_candidate_message`): `0/3 nodes are available: 1 Insufficient cpu, 2
  Preemption is not helpful for scheduling.` (per node: the reason left after the dry run).

Upstream samples the nodes of big clusters (10 %, at least 100) for candidates; we examine every node.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from apiserver.kinds.base import Obj
from apiserver.scheduler.predicates import (NO_VICTIMS, NOT_HELPFUL, NodeInfo, PodFacts, Resources, counts_on_node,
                                            filter_reasons, nodes_available, pod_facts, unresolvable)
from shipmate.selectors import SelectorError, label_selector_from_dict

PREEMPTION_REASON = "PreemptionByScheduler"
_MAX_INT32 = 2 ** 31 - 1
_NOW = "9999-12-31T23:59:59Z"  # a pod without a start time counts as started now (later than any real time)


def priority(pod: Obj) -> int:
    value = (pod.get("spec") or {}).get("priority")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def start_time(pod: Obj) -> str:
    return (pod.get("status") or {}).get("startTime") or _NOW


def importance(pod: Obj) -> tuple[int, str]:
    """Sort key, most important first (MoreImportantPod): higher priority, then the earlier start."""
    return (-priority(pod), start_time(pod))


def terminating_by_preemption(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp")) and any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True" and c.get("reason") == PREEMPTION_REASON
        for c in (pod.get("status") or {}).get("conditions") or [])


def ineligible(pod: Obj, nodes: Mapping[str, NodeInfo], nominated_unresolvable: bool = False) -> str:
    """PodEligibleToPreemptOthers: why the pod may not preempt ("" when it may)."""
    if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
        return "not eligible due to preemptionPolicy=Never."
    nominated = (pod.get("status") or {}).get("nominatedNodeName")
    if nominated and not nominated_unresolvable:
        info = nodes.get(nominated)
        if info is not None:
            own = priority(pod)
            if any(priority(other) < own and terminating_by_preemption(other) for other in info.pods.values()):
                return "not eligible due to a terminating pod on the nominated node."
    return ""


def _selects(pdb: Obj, pod: Obj) -> bool:
    """A budget of the pod's namespace whose selector matches its labels (nil or empty selectors: nothing)."""
    if (pdb.get("metadata") or {}).get("namespace") != pod["metadata"].get("namespace"):
        return False
    selector = (pdb.get("spec") or {}).get("selector")
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return False
    try:
        return label_selector_from_dict(selector).matches(pod["metadata"].get("labels") or {})
    except (SelectorError, AttributeError, TypeError, ValueError):
        return False


def split_by_budgets(pods: list[Obj], pdbs: Iterable[Obj]) -> tuple[list[Obj], list[Obj]]:
    """filterPodsWithPDBViolation: (pods whose eviction would take a budget below zero, the others), in the
    given order. A pod the budget already counts as disrupted does not spend from it again."""
    budgets = [pdb for pdb in pdbs if isinstance(pdb, dict)]
    allowed = [int((pdb.get("status") or {}).get("disruptionsAllowed") or 0) for pdb in budgets]
    violating, others = [], []
    for pod in pods:
        violated = False
        if pod["metadata"].get("labels"):
            for index, pdb in enumerate(budgets):
                if not _selects(pdb, pod):
                    continue
                if pod["metadata"].get("name") in ((pdb.get("status") or {}).get("disruptedPods") or {}):
                    continue
                allowed[index] -= 1
                if allowed[index] < 0:
                    violated = True
        (violating if violated else others).append(pod)
    return violating, others


@dataclass
class Candidate:
    node: str
    victims: list[Obj] = field(default_factory=list)   # most important first
    pdb_violations: int = 0


def _copy(info: NodeInfo) -> NodeInfo:
    return dataclasses.replace(info, pods=dict(info.pods), owners=Counter(info.owners), _charged=dict(info._charged),
                               used_ports=Counter(info.used_ports))


def select_victims(facts: PodFacts, info: NodeInfo, pdbs: Iterable[Obj],
                   reserved: Resources | None = None) -> Candidate | list[str]:
    """SelectVictimsOnNode: the victims on this node, or why preempting there does not help."""
    own = priority(facts.pod)
    potential = sorted((p for p in info.pods.values() if priority(p) < own and counts_on_node(p)), key=importance)
    if not potential:
        return [NO_VICTIMS]
    trial = _copy(info)
    for pod in potential:
        trial.remove_pod(pod["metadata"]["uid"])
    reasons = filter_reasons(facts, trial, reserved)
    if reasons:
        return reasons
    candidate = Candidate(info.name)
    violating, others = split_by_budgets(potential, pdbs)

    def reprieve(pod: Obj) -> bool:
        trial.add_pod(pod)
        if filter_reasons(facts, trial, reserved):
            trial.remove_pod(pod["metadata"]["uid"])
            candidate.victims.append(pod)
            return False
        return True
    for pod in violating:
        if not reprieve(pod):
            candidate.pdb_violations += 1
    for pod in others:
        reprieve(pod)
    if violating and others:
        candidate.victims.sort(key=importance)
    return candidate


def find_candidates(pod: Obj, nodes: Iterable[NodeInfo], failures: Mapping[str, list[str]], pdbs: list[Obj],
                    reserved: Mapping[str, Resources] | None = None) -> tuple[list[Candidate], Counter]:
    """The nodes where preemption makes the pod fit, and (for the message when there are none) per node the
    reason preemption did not help there."""
    facts = pod_facts(pod)
    reserved = reserved or {}
    candidates: list[Candidate] = []
    statuses: Counter[str] = Counter()
    for info in nodes:
        if info.node is None:
            continue
        reasons = failures.get(info.name)
        if reasons is None:
            continue  # the pod fits there (not expected: preemption runs when it fits nowhere)
        if unresolvable(reasons):
            statuses[NOT_HELPFUL] += 1
            continue
        found = select_victims(facts, info, pdbs, reserved.get(info.name))
        if isinstance(found, Candidate):
            if found.victims:
                candidates.append(found)
            continue
        statuses.update(found)
    return candidates, statuses


def _earliest_top_start(candidate: Candidate) -> str:
    top = priority(candidate.victims[0])
    return min(start_time(p) for p in candidate.victims if priority(p) == top)


def pick_candidate(candidates: list[Candidate]) -> Candidate | None:
    """pickOneNodeForPreemption."""
    if not candidates:
        return None
    for candidate in candidates:
        if not candidate.victims:
            return candidate
    scores: list[Any] = [
        lambda c: -c.pdb_violations,
        lambda c: -priority(c.victims[0]),
        lambda c: -sum(priority(p) + _MAX_INT32 + 1 for p in c.victims),
        lambda c: -len(c.victims),
        _earliest_top_start,
    ]
    remaining = list(candidates)
    for score in scores:
        best = max(score(c) for c in remaining)
        remaining = [c for c in remaining if score(c) == best]
        if len(remaining) == 1:
            break
    return remaining[0]


def no_candidate_message(total: int, statuses: Counter) -> str:
    """The dry run's FitError: per node, why preempting there does not help (`find_candidates`)."""
    return nodes_available(total, statuses)


def lower_priority_nominated(pod: Obj, node: str, nominated: Iterable[Obj]) -> list[Obj]:
    """Pods of lower priority nominated to the node: preemption clears their nomination."""
    own = priority(pod)
    return [other for other in nominated if (other.get("status") or {}).get("nominatedNodeName") == node
            and priority(other) < own and other["metadata"].get("uid") != pod["metadata"].get("uid")]
