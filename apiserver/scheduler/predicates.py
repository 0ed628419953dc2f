"""Pure scheduling rules, after kube-scheduler's default plugins.

Filters (in upstream's order, the first failing one names the node's reason): NodeUnschedulable,
TaintToleration, NodeAffinity (nodeSelector + required node affinity), NodeResourcesFit. Not-ready
and unreachable nodes are kept out by the taints the node lifecycle controller puts on them, as
upstream (there is no condition check). Score: LeastAllocated on cpu and memory, 0..10, computed
on "non-zero" requests (a container without requests counts 100m / 200Mi, as upstream), with a
spread tie-break (fewest pods of the same controller or Service on the node).
"""
from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from shipmate.quantity import QuantityError, parse_quantity

Obj = dict[str, Any]
TERMINAL_PHASES = ("Succeeded", "Failed")
MAX_NODE_SCORE = 10
DEFAULT_MILLI_CPU_REQUEST = 100            # upstream's schedutil.DefaultMilliCPURequest
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024  # upstream's schedutil.DefaultMemoryRequest
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
_UNSCHEDULABLE_TAINT_OBJ = {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}

# Filter reasons (kube-scheduler's texts).
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_TOO_MANY_PODS = "Too many pods"
REASON_CPU = "Insufficient cpu"
REASON_MEMORY = "Insufficient memory"
# Reasons preemption cannot fix (upstream: UnschedulableAndUnresolvable); the others are resource shortages.
_UNRESOLVABLE_PREFIXES = (REASON_UNSCHEDULABLE, REASON_AFFINITY, "node(s) had untolerated taint")


@dataclass(frozen=True)
class Resources:
    milli_cpu: int = 0
    memory: int = 0
    pods: int = 0

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(self.milli_cpu + other.milli_cpu, self.memory + other.memory, self.pods + other.pods)

    def __sub__(self, other: "Resources") -> "Resources":
        return Resources(self.milli_cpu - other.milli_cpu, self.memory - other.memory, self.pods - other.pods)


@functools.lru_cache(maxsize=4096)
def _parsed(value: str | int) -> tuple[int, int]:
    try:
        quantity = parse_quantity(value)
    except (QuantityError, TypeError):
        return 0, 0
    return quantity.milli_value(), quantity.int_value()


def _quantity(values: dict, name: str) -> tuple[int, int]:
    """(milli value, integer value) of a resource quantity; 0 when absent or malformed.

    Parsing is memoized: the scheduler sees the same few quantity strings thousands of times."""
    value = values.get(name)
    if value is None or not isinstance(value, (str, int)) or isinstance(value, bool):
        return 0, 0
    return _parsed(value)


def _container_requests(container: Obj, non_zero: bool) -> Resources:
    resources = container.get("resources") or {}
    requests = dict(resources.get("limits") or {})    # a limit without a request defaults the request
    requests.update(resources.get("requests") or {})
    cpu, memory = _quantity(requests, "cpu")[0], _quantity(requests, "memory")[1]
    if non_zero:
        cpu = cpu if "cpu" in requests else DEFAULT_MILLI_CPU_REQUEST
        memory = memory if "memory" in requests else DEFAULT_MEMORY_REQUEST
    return Resources(cpu, memory, 0)


def pod_requests(pod: Obj, non_zero: bool = False) -> Resources:
    """Sum of the app containers, at least the largest init container, plus overhead; one pod slot.

    non_zero: containers without a cpu/memory request count upstream's defaults (used for scoring only).
    """
    spec = pod.get("spec") or {}
    total = Resources()
    for container in spec.get("containers") or []:
        total = total + _container_requests(container, non_zero)
    for container in spec.get("initContainers") or []:
        init = _container_requests(container, non_zero)
        total = Resources(max(total.milli_cpu, init.milli_cpu), max(total.memory, init.memory), 0)
    overhead = spec.get("overhead") or {}
    total = total + Resources(_quantity(overhead, "cpu")[0], _quantity(overhead, "memory")[1], 0)
    return Resources(total.milli_cpu, total.memory, 1)


def node_allocatable(node: Obj) -> Resources:
    status = node.get("status") or {}
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    return Resources(_quantity(allocatable, "cpu")[0], _quantity(allocatable, "memory")[1],
                     _quantity(allocatable, "pods")[1])


def counts_on_node(pod: Obj) -> bool:
    """Whether a bound pod still holds its node's resources (terminal pods do not)."""
    return (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES


# tolerations -----------------------------------------------------------------------------------
def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Upstream's Toleration.ToleratesTaint: effect (empty = all), key (empty + Exists = all), value."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def tolerated(tolerations: Iterable[Obj], taint: Obj) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def _taint_reason(taint: Obj) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"


# node affinity ---------------------------------------------------------------------------------
def _requirement_matches(requirement: Obj, value: str | None) -> bool:
    operator, values = requirement.get("operator"), requirement.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        try:
            actual, bound = int(value), int(values[0])
        except ValueError:
            return False
        return actual > bound if operator == "Gt" else actual < bound
    return False


def _term_matches(term: Obj, labels: dict[str, str], name: str) -> bool:
    """A NodeSelectorTerm: its expressions and fields all hold; an empty term matches nothing."""
    expressions, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not expressions and not fields:
        return False
    for requirement in expressions:
        if not _requirement_matches(requirement, labels.get(requirement.get("key", ""))):
            return False
    for requirement in fields:
        value = name if requirement.get("key") == "metadata.name" else None
        if value is None or not _requirement_matches(requirement, value):
            return False
    return True


def matches_node_affinity(spec: Obj, labels: dict[str, str], name: str) -> bool:
    """nodeSelector (every label equal) and requiredDuringSchedulingIgnoredDuringExecution (any term)."""
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    return any(_term_matches(term, labels, name) for term in required.get("nodeSelectorTerms") or [])


# the node view the filters read ------------------------------------------------------------------
@dataclass
class NodeInfo:
    """A node plus what is placed on it, kept incrementally by the scheduler's cache.

    Sums are plain ints (millicores, bytes, pods): the filters and scores read them for every
    (pod, node) pair, so they stay cheap to read."""
    name: str
    node: Obj | None = None
    alloc_cpu: int = 0
    alloc_memory: int = 0
    alloc_pods: int = 0
    req_cpu: int = 0
    req_memory: int = 0
    req_pods: int = 0
    nz_cpu: int = 0
    nz_memory: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    blocking_taints: list[Obj] = field(default_factory=list)   # NoSchedule / NoExecute
    pods: dict[str, Obj] = field(default_factory=dict)         # uid -> pod
    owners: Counter = field(default_factory=Counter)           # controller uid -> pods on this node
    _charged: dict[str, tuple[Resources, Resources]] = field(default_factory=dict)

    def set_node(self, node: Obj | None) -> None:
        self.node = node
        allocatable = node_allocatable(node) if node else Resources()
        self.alloc_cpu, self.alloc_memory, self.alloc_pods = \
            allocatable.milli_cpu, allocatable.memory, allocatable.pods
        spec = (node or {}).get("spec") or {}
        self.labels = ((node or {}).get("metadata") or {}).get("labels") or {}
        self.unschedulable = bool(spec.get("unschedulable"))
        self.blocking_taints = [t for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")]

    @property
    def requested(self) -> Resources:
        return Resources(self.req_cpu, self.req_memory, self.req_pods)

    @property
    def non_zero_requested(self) -> Resources:
        return Resources(self.nz_cpu, self.nz_memory, self.req_pods)

    def add_pod(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self.pods:
            self.remove_pod(uid)
        requests, non_zero = pod_requests(pod), pod_requests(pod, non_zero=True)
        self.pods[uid] = pod
        self._charged[uid] = (requests, non_zero)
        self.req_cpu += requests.milli_cpu
        self.req_memory += requests.memory
        self.req_pods += requests.pods
        self.nz_cpu += non_zero.milli_cpu
        self.nz_memory += non_zero.memory
        owner = controller_uid(pod)
        if owner:
            self.owners[owner] += 1

    def remove_pod(self, uid: str) -> None:
        pod = self.pods.pop(uid, None)
        if pod is None:
            return
        requests, non_zero = self._charged.pop(uid)
        self.req_cpu -= requests.milli_cpu
        self.req_memory -= requests.memory
        self.req_pods -= requests.pods
        self.nz_cpu -= non_zero.milli_cpu
        self.nz_memory -= non_zero.memory
        owner = controller_uid(pod)
        if owner:
            self.owners[owner] -= 1
            if not self.owners[owner]:
                del self.owners[owner]


def node_info(node: Obj, pods: Iterable[Obj] = ()) -> NodeInfo:
    info = NodeInfo(node["metadata"]["name"])
    info.set_node(node)
    for pod in pods:
        if counts_on_node(pod):
            info.add_pod(pod)
    return info


def controller_uid(pod: Obj) -> str:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid") or ""
    return ""


@dataclass(frozen=True)
class PodFacts:
    """What the filters need from the pod, computed once per scheduling attempt."""
    pod: Obj
    spec: Obj
    requests: Resources
    non_zero: Resources
    tolerations: tuple[Obj, ...]
    owner: str
    has_affinity: bool


def pod_facts(pod: Obj) -> PodFacts:
    spec = pod.get("spec") or {}
    has_affinity = bool(spec.get("nodeSelector")) or bool(((spec.get("affinity") or {}).get("nodeAffinity") or {})
                                                           .get("requiredDuringSchedulingIgnoredDuringExecution"))
    return PodFacts(pod, spec, pod_requests(pod), pod_requests(pod, non_zero=True),
                    tuple(t for t in spec.get("tolerations") or [] if isinstance(t, dict)), controller_uid(pod),
                    has_affinity)


def filter_reasons(facts: PodFacts, info: NodeInfo) -> list[str]:
    """Why the pod does not fit the node (empty: it fits). The first failing plugin decides."""
    if info.unschedulable and not tolerated(facts.tolerations, _UNSCHEDULABLE_TAINT_OBJ):
        return [REASON_UNSCHEDULABLE]
    for taint in info.blocking_taints:
        if not tolerated(facts.tolerations, taint):
            return [_taint_reason(taint)]
    if facts.has_affinity and not matches_node_affinity(facts.spec, info.labels, info.name):
        return [REASON_AFFINITY]
    requests = facts.requests
    if (requests.pods + info.req_pods <= info.alloc_pods and requests.milli_cpu + info.req_cpu <= info.alloc_cpu
            and requests.memory + info.req_memory <= info.alloc_memory):
        return []
    reasons = []
    if requests.pods + info.req_pods > info.alloc_pods:
        reasons.append(REASON_TOO_MANY_PODS)
    if requests.milli_cpu and requests.milli_cpu + info.req_cpu > info.alloc_cpu:
        reasons.append(REASON_CPU)
    if requests.memory and requests.memory + info.req_memory > info.alloc_memory:
        reasons.append(REASON_MEMORY)
    return reasons


def least_allocated_score(facts: PodFacts, info: NodeInfo) -> int:
    """0..10: the mean share of cpu and memory left free once the pod is placed (non-zero requests)."""
    total = 0
    capacity, used = info.alloc_cpu, info.nz_cpu + facts.non_zero.milli_cpu
    if capacity > 0 and used <= capacity:
        total += (capacity - used) * MAX_NODE_SCORE // capacity
    capacity, used = info.alloc_memory, info.nz_memory + facts.non_zero.memory
    if capacity > 0 and used <= capacity:
        total += (capacity - used) * MAX_NODE_SCORE // capacity
    return total // 2


def spread_count(facts: PodFacts, info: NodeInfo, service_selectors: list[dict[str, str]]) -> int:
    """Pods on the node sharing the pod's controller or one of the Services selecting it."""
    owner = facts.owner
    count = info.owners.get(owner, 0) if owner else 0
    if service_selectors:
        namespace = facts.pod["metadata"].get("namespace")
        for other in info.pods.values():
            if other["metadata"].get("namespace") != namespace or (owner and controller_uid(other) == owner):
                continue  # other namespace, or already counted through the controller
            labels = other["metadata"].get("labels") or {}
            if any(all(labels.get(k) == v for k, v in selector.items()) for selector in service_selectors):
                count += 1
    return count


@dataclass(frozen=True)
class Decision:
    node_name: str | None
    message: str = ""


def _preemption_summary(total: int, failures: Counter) -> str:
    """We never preempt; the text says what upstream's dry run finds when no lower-priority victims help."""
    return f"0/{total} nodes are available: " + ", ".join(sorted(
        f"{count} {reason}" for reason, count in failures.items() if count)) + "."


def schedule(pod: Obj, nodes: Iterable[NodeInfo], service_selectors: list[dict[str, str]] = (),
             tie_breaker=min) -> Decision:
    """Pick the feasible node with the best score (then the fewest peers; remaining ties by `tie_breaker`
    over node names), or explain why none fits."""
    facts = pod_facts(pod)
    selectors = list(service_selectors)
    best: tuple[int, int] | None = None
    best_names: list[str] = []
    failures: Counter[str] = Counter()
    preemption: Counter[str] = Counter()
    total = 0
    for info in nodes:
        if info.node is None:
            continue
        total += 1
        reasons = filter_reasons(facts, info)
        if reasons:
            failures.update(reasons)
            unresolvable = any(r.startswith(_UNRESOLVABLE_PREFIXES) for r in reasons)
            preemption["Preemption is not helpful for scheduling" if unresolvable
                       else "No preemption victims found for incoming pod"] += 1
            continue
        key = (least_allocated_score(facts, info), -spread_count(facts, info, selectors))
        if best is None or key > best:
            best, best_names = key, [info.name]
        elif key == best:
            best_names.append(info.name)
    if best_names:
        return Decision(tie_breaker(best_names))
    if total == 0:
        return Decision(None, "no nodes available to schedule pods")
    details = ", ".join(sorted(f"{count} {reason}" for reason, count in failures.items()))
    if facts.spec.get("preemptionPolicy") == "Never":
        return Decision(None, f"0/{total} nodes are available: {details}. "
                              "preemption: not eligible due to preemptionPolicy=Never.")
    return Decision(None, f"0/{total} nodes are available: {details}. preemption: "
                          f"{_preemption_summary(total, preemption)}")
