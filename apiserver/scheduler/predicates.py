"""Pure scheduling: pod requests, node filters (with upstream-like reasons) and least-allocated scoring."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

from shipmate.quantity import QuantityError, parse_quantity

Obj = dict[str, Any]
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Resources:
    milli_cpu: int = 0
    memory: int = 0
    pods: int = 0

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(self.milli_cpu + other.milli_cpu, self.memory + other.memory, self.pods + other.pods)

    def __sub__(self, other: "Resources") -> "Resources":
        return Resources(self.milli_cpu - other.milli_cpu, self.memory - other.memory, self.pods - other.pods)


def _quantity(values: dict, name: str) -> tuple[int, int]:
    """(milli value, integer value) of a resource quantity; 0 when absent or malformed."""
    try:
        quantity = parse_quantity(values[name])
    except (KeyError, QuantityError, TypeError):
        return 0, 0
    return quantity.milli_value(), quantity.int_value()


def container_requests(container: Obj) -> Resources:
    resources = container.get("resources") or {}
    requests = dict(resources.get("limits") or {})
    requests.update(resources.get("requests") or {})
    return Resources(_quantity(requests, "cpu")[0], _quantity(requests, "memory")[1], 0)


def pod_requests(pod: Obj) -> Resources:
    """Sum of the app containers, at least the largest init container, plus overhead; one pod slot."""
    spec = pod.get("spec") or {}
    total = Resources()
    for container in spec.get("containers") or []:
        total = total + container_requests(container)
    for container in spec.get("initContainers") or []:
        init = container_requests(container)
        total = Resources(max(total.milli_cpu, init.milli_cpu), max(total.memory, init.memory), 0)
    overhead = spec.get("overhead") or {}
    total = total + Resources(_quantity(overhead, "cpu")[0], _quantity(overhead, "memory")[1], 0)
    return Resources(total.milli_cpu, total.memory, 1)


def node_allocatable(node: Obj) -> Resources:
    status = node.get("status") or {}
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    return Resources(_quantity(allocatable, "cpu")[0], _quantity(allocatable, "memory")[1],
                     _quantity(allocatable, "pods")[1])


def node_ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator", "Equal") == "Exists":
            if not toleration.get("key") or toleration["key"] == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def requested_on_node(pods: Iterable[Obj]) -> Resources:
    total = Resources()
    for pod in pods:
        if (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES:
            total = total + pod_requests(pod)
    return total


def filter_reasons(pod: Obj, node: Obj, pods_on_node: list[Obj]) -> list[str]:
    """Why the pod does not fit the node (empty: it fits). Reason texts follow kube-scheduler's."""
    spec = pod.get("spec") or {}
    if not node_ready(node):
        return ["node(s) were not ready"]
    if (node.get("spec") or {}).get("unschedulable"):
        return ["node(s) were unschedulable"]
    labels = node.get("metadata", {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return ["node(s) didn't match Pod's node affinity/selector"]
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(spec.get("tolerations") or [], taint):
            return [f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"]
    request = pod_requests(pod)
    free = node_allocatable(node) - requested_on_node(pods_on_node)
    reasons = []
    if request.pods > free.pods:
        reasons.append("Too many pods")
    if request.milli_cpu > free.milli_cpu:
        reasons.append("Insufficient cpu")
    if request.memory > free.memory:
        reasons.append("Insufficient memory")
    return reasons


def score(pod: Obj, node: Obj, pods_on_node: list[Obj]) -> float:
    """Least allocated: mean share of CPU and memory left free after placing the pod (0..100)."""
    allocatable = node_allocatable(node)
    used = requested_on_node(pods_on_node) + pod_requests(pod)
    shares = []
    for capacity, requested in ((allocatable.milli_cpu, used.milli_cpu), (allocatable.memory, used.memory)):
        shares.append(0.0 if capacity <= 0 else max(0.0, (capacity - requested) * 100.0 / capacity))
    return sum(shares) / len(shares)


@dataclass(frozen=True)
class Decision:
    node_name: str | None
    message: str = ""


def schedule(pod: Obj, nodes: list[Obj], pods_by_node: dict[str, list[Obj]]) -> Decision:
    """Pick the feasible node with the best score (ties: by name), or explain why none fits."""
    if not nodes:
        return Decision(None, "no nodes available to schedule pods")
    feasible: list[tuple[float, str]] = []
    failures: Counter[str] = Counter()
    for node in nodes:
        name = node["metadata"]["name"]
        on_node = pods_by_node.get(name, [])
        reasons = filter_reasons(pod, node, on_node)
        if reasons:
            failures.update(reasons)
        else:
            feasible.append((-score(pod, node, on_node), name))
    if feasible:
        return Decision(min(feasible)[1])
    details = ", ".join(sorted(f"{count} {reason}" for reason, count in failures.items()))
    return Decision(None, f"0/{len(nodes)} nodes are available: {details}.")
