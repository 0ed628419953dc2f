"""Pure scheduling rules, after kube-scheduler's default plugins.

Filters (in upstream's order, the first failing one names the node's reason): NodeUnschedulable,
TaintToleration, NodeAffinity (nodeSelector + required node affinity), NodePorts (hostPorts),
NodeResourcesFit. Not-ready
and unreachable nodes are kept out by the taints the node lifecycle controller puts on them, as
upstream (there is no condition check). Score: LeastAllocated on cpu and memory, 0..10, computed
on "non-zero" requests (a container without requests counts 100m / 200Mi, as upstream), with a
spread tie-break (fewest pods of the same controller or Service on the node).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable, Mapping

from shipmate.pod_resources import non_zero_requests, pod_requests, resize_infeasible, resource_list
from shipmate.node_selectors import node_selector_matches

Obj = dict[str, Any]
TERMINAL_PHASES = ("Succeeded", "Failed")
MAX_NODE_SCORE = 10
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
_UNSCHEDULABLE_TAINT_OBJ = {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
_STATIC_ANSWERS = 256   # kinds of pods whose node-object filter answers a NodeInfo keeps

# Filter reasons (kube-scheduler's texts).
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_TOO_MANY_PODS = "Too many pods"
REASON_CPU = "Insufficient cpu"
REASON_MEMORY = "Insufficient memory"
REASON_PORTS = "node(s) didn't have free ports for the requested pod ports"
# VolumeBinding's (scheduler/volumes.py), all UnschedulableAndUnresolvable.
VOLUME_REASONS = ("node(s) didn't match PersistentVolume's node affinity",
                  "node(s) didn't find available persistent volumes to bind",
                  "node(s) did not have enough free storage",
                  "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)")
# Reasons preemption cannot fix (upstream: UnschedulableAndUnresolvable); the others are resource shortages.
_UNRESOLVABLE_PREFIXES = (REASON_UNSCHEDULABLE, REASON_AFFINITY, "node(s) had untolerated taint", *VOLUME_REASONS)


@dataclass(frozen=True)
class Resources:
    milli_cpu: int = 0
    memory: int = 0
    pods: int = 0

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(self.milli_cpu + other.milli_cpu, self.memory + other.memory, self.pods + other.pods)

    def __sub__(self, other: "Resources") -> "Resources":
        return Resources(self.milli_cpu - other.milli_cpu, self.memory - other.memory, self.pods - other.pods)


def _resources(values: Mapping[str, Fraction], pods: Fraction | int) -> Resources:
    """Millicores and bytes rounded up, as Quantity.MilliValue() / Value()."""
    return Resources(math.ceil(values.get("cpu", 0) * 1000), math.ceil(values.get("memory", 0)), math.ceil(pods))


def requested_resources(pod: Obj, non_zero: bool = False) -> Resources:
    """What the pod takes of a node (shipmate.pod_resources: sidecars, pod-level resources and overhead
    included) and one pod slot. non_zero: the requests scoring reads (a container without a cpu/memory
    request counts upstream's defaults). A resized pod counts the largest of its desired, allocated and actual
    requests (upstream's UseStatusResources)."""
    return _resources(non_zero_requests(pod, use_status=True) if non_zero else pod_requests(pod, use_status=True), 1)


Charge = tuple[Resources, Resources]   # (requests, non-zero requests) of one pod


def _charge_inputs(pod: Obj) -> tuple:
    """Every part of the pod that `requested_resources` reads (shipmate.pod_resources, use_status)."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    return (spec.get("containers"), spec.get("initContainers"), spec.get("resources"), spec.get("overhead"),
            status.get("containerStatuses"), status.get("initContainerStatuses"), resize_infeasible(pod))


class Charges:
    """`requested_resources` of each pod, kept by uid while the parts it reads stay equal.

    A pod's requests are read when it is tried, assumed, then confirmed by the informer (and again on each
    retry), and computing them (exact quantities) costs far more than comparing those parts."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[tuple, Charge]] = {}

    def of(self, pod: Obj) -> Charge:
        uid = pod["metadata"].get("uid")
        inputs = _charge_inputs(pod)
        known = self._known.get(uid) if uid else None
        if known is not None and known[0] == inputs:
            return known[1]
        charge = (requested_resources(pod), requested_resources(pod, non_zero=True))
        if uid:
            self._known[uid] = (inputs, charge)
        return charge

    def forget(self, uid: str) -> None:
        self._known.pop(uid, None)

    def __len__(self) -> int:
        return len(self._known)


def node_allocatable(node: Obj) -> Resources:
    status = node.get("status") or {}
    allocatable = resource_list(status.get("allocatable") or status.get("capacity"))
    return _resources(allocatable, allocatable.get("pods", 0))


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
def matches_node_affinity(spec: Obj, labels: dict[str, str], name: str) -> bool:
    """nodeSelector (every label equal) and requiredDuringSchedulingIgnoredDuringExecution (any term)."""
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    return node_selector_matches(required, labels, name)


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
    used_ports: Counter = field(default_factory=Counter)       # (hostIP, protocol, hostPort) -> pods
    _charged: dict[str, tuple[Resources, Resources]] = field(default_factory=dict)
    # The node-object filters' reasons by PodFacts.constraints: pods alike (a Deployment's) ask the same.
    _static: dict[str, list[str]] = field(default_factory=dict)

    def set_node(self, node: Obj | None) -> None:
        self.node = node
        allocatable = node_allocatable(node) if node else Resources()
        self.alloc_cpu, self.alloc_memory, self.alloc_pods = \
            allocatable.milli_cpu, allocatable.memory, allocatable.pods
        spec = (node or {}).get("spec") or {}
        self.labels = ((node or {}).get("metadata") or {}).get("labels") or {}
        self.unschedulable = bool(spec.get("unschedulable"))
        self.blocking_taints = [t for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")]
        self._static = {}

    def static_reasons(self, facts: "PodFacts") -> list[str]:
        """NodeUnschedulable, TaintToleration and NodeAffinity: they read only the node object and the pod's
        spec, so their answer holds until the node changes."""
        if not facts.constraints:
            return _node_object_reasons(facts, self)
        reasons = self._static.get(facts.constraints)
        if reasons is None:
            if len(self._static) >= _STATIC_ANSWERS:
                self._static.clear()
            reasons = self._static[facts.constraints] = _node_object_reasons(facts, self)
        return reasons

    @property
    def requested(self) -> Resources:
        return Resources(self.req_cpu, self.req_memory, self.req_pods)

    @property
    def non_zero_requested(self) -> Resources:
        return Resources(self.nz_cpu, self.nz_memory, self.req_pods)

    def add_pod(self, pod: Obj, charge: Charge | None = None) -> None:
        """`charge`: the pod's (requests, non-zero requests) when the caller already has them."""
        uid = pod["metadata"]["uid"]
        if uid in self.pods:
            self.remove_pod(uid)
        requests, non_zero = charge or (requested_resources(pod), requested_resources(pod, non_zero=True))
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
        self.used_ports.update(host_ports(pod))

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
        self.used_ports.subtract(host_ports(pod))
        self.used_ports += Counter()       # drops the keys that reached zero


# NodePorts ---------------------------------------------------------------------------------------
def host_ports(pod: Obj) -> list[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) of the pod's containers and sidecars (restartable init containers)
    with a host port; hostIP "" means every address, as upstream's "0.0.0.0"."""
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or ()) + [
        c for c in spec.get("initContainers") or () if isinstance(c, dict) and c.get("restartPolicy") == "Always"]
    found = []
    for container in containers:
        for port in (container.get("ports") or ()) if isinstance(container, dict) else ():
            if isinstance(port, dict) and isinstance(port.get("hostPort"), int) and port["hostPort"] > 0:
                ip = port.get("hostIP") or ""
                found.append(("" if ip in ("0.0.0.0", "::") else ip, port.get("protocol") or "TCP", port["hostPort"]))
    return found


def host_ports_conflict(wanted: Iterable[tuple[str, str, int]], used: Counter) -> bool:
    """Upstream's HostPortInfo.CheckConflict: a wildcard address conflicts with the same protocol and
    port on any address; a specific address with itself and with the wildcard."""
    if not used:
        return False
    for ip, protocol, port in wanted:
        if ip:
            if used.get((ip, protocol, port)) or used.get(("", protocol, port)):
                return True
        elif any(p == protocol and n == port for (_, p, n), count in used.items() if count > 0):
            return True
    return False


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
    host_ports: tuple[tuple[str, str, int], ...] = ()
    constraints: str = ""   # what the node-object filters read of the pod, as a key


def pod_facts(pod: Obj, charge: Charge | None = None) -> PodFacts:
    """`charge`: the pod's (requests, non-zero requests) when the caller already has them."""
    spec = pod.get("spec") or {}
    has_affinity = bool(spec.get("nodeSelector")) or bool(((spec.get("affinity") or {}).get("nodeAffinity") or {})
                                                           .get("requiredDuringSchedulingIgnoredDuringExecution"))
    requests, non_zero = charge or (requested_resources(pod), requested_resources(pod, non_zero=True))
    tolerations = tuple(t for t in spec.get("tolerations") or [] if isinstance(t, dict))
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution")) if has_affinity else None
    return PodFacts(pod, spec, requests, non_zero, tolerations, controller_uid(pod), has_affinity,
                    tuple(host_ports(pod)), repr((tolerations, spec.get("nodeSelector"), required)))


def _node_object_reasons(facts: PodFacts, info: NodeInfo) -> list[str]:
    if info.unschedulable and not tolerated(facts.tolerations, _UNSCHEDULABLE_TAINT_OBJ):
        return [REASON_UNSCHEDULABLE]
    for taint in info.blocking_taints:
        if not tolerated(facts.tolerations, taint):
            return [_taint_reason(taint)]
    if facts.has_affinity and not matches_node_affinity(facts.spec, info.labels, info.name):
        return [REASON_AFFINITY]
    return []


def filter_reasons(facts: PodFacts, info: NodeInfo, reserved: Resources | None = None) -> list[str]:
    """Why the pod does not fit the node (empty: it fits). The first failing plugin decides. `reserved`: what
    pods nominated to the node (by preemption) with at least this pod's priority hold there, as upstream's
    RunFilterPluginsWithNominatedPods adds them."""
    return info.static_reasons(facts) or _placement_reasons(facts, info, reserved)


def _placement_reasons(facts: PodFacts, info: NodeInfo, reserved: Resources | None) -> list[str]:
    """NodePorts and NodeResourcesFit: what the pods on the node leave."""
    if facts.host_ports and host_ports_conflict(facts.host_ports, info.used_ports):
        return [REASON_PORTS]
    requests = facts.requests if reserved is None else facts.requests + reserved
    if (requests.pods + info.req_pods <= info.alloc_pods and requests.milli_cpu + info.req_cpu <= info.alloc_cpu
            and requests.memory + info.req_memory <= info.alloc_memory):
        return []
    reasons = []
    if requests.pods + info.req_pods > info.alloc_pods:
        reasons.append(REASON_TOO_MANY_PODS)
    if facts.requests.milli_cpu and requests.milli_cpu + info.req_cpu > info.alloc_cpu:
        reasons.append(REASON_CPU)
    if facts.requests.memory and requests.memory + info.req_memory > info.alloc_memory:
        reasons.append(REASON_MEMORY)
    return reasons


def unresolvable(reasons: Iterable[str]) -> bool:
    """Whether removing pods from the node cannot help (upstream: UnschedulableAndUnresolvable)."""
    return any(reason.startswith(_UNRESOLVABLE_PREFIXES) for reason in reasons)


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
    # Unschedulable: the failing nodes' reasons and the FitError text without its preemption part, for
    # preemption (scheduler/preemption.py) to start from.
    failures: dict[str, list[str]] = field(default_factory=dict)
    fit_message: str = ""


def nodes_available(total: int, counts: Counter) -> str:
    """FitError's text: `0/N nodes are available: 2 Insufficient cpu, 1 ...` (the reasons sorted as text)."""
    return f"0/{total} nodes are available: " + ", ".join(sorted(
        f"{count} {reason}" for reason, count in counts.items() if count)) + "."


NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NEVER_PREEMPTS = "not eligible due to preemptionPolicy=Never."


def schedule(pod: Obj, nodes: Iterable[NodeInfo], service_selectors: list[dict[str, str]] = (),
             tie_breaker=min, reserved: Mapping[str, Resources] | None = None,
             charge: Charge | None = None) -> Decision:
    """Pick the feasible node with the best score (then the fewest peers; remaining ties by `tie_breaker`
    over node names), or explain why none fits. A pod nominated to a node (`status.nominatedNodeName`, by
    preemption) that fits there goes there. `reserved`: by node, what nominated pods of at least this pod's
    priority hold there. The message's preemption part says what upstream's dry run finds when no node has
    lower-priority pods to remove; the scheduler runs the real one (scheduler/preemption.py). `charge`: the
    pod's (requests, non-zero requests) when the caller already has them."""
    facts = pod_facts(pod, charge)
    selectors = list(service_selectors)
    reserved = reserved or {}
    nominated = (pod.get("status") or {}).get("nominatedNodeName")
    best: tuple[int, int] | None = None
    best_names: list[str] = []
    failures: dict[str, list[str]] = {}
    counts: Counter[str] = Counter()
    preemption: Counter[str] = Counter()
    total = 0
    # Every (pod, node) pair goes through here: the common case (no host ports, nothing reserved, room
    # left) is decided from the cached node-object answer and plain int sums; anything else takes
    # filter_reasons' full path, so the reasons stay those of filter_reasons.
    constraints, spreads = facts.constraints, bool(facts.owner or selectors)
    want_pods, want_cpu, want_memory = facts.requests.pods, facts.requests.milli_cpu, facts.requests.memory
    plain = not facts.host_ports and not reserved
    for info in nodes:
        if info.node is None:
            continue
        total += 1
        reasons = info._static.get(constraints)
        if reasons is None:
            reasons = info.static_reasons(facts)
        if not reasons and not (plain and want_pods + info.req_pods <= info.alloc_pods
                                and want_cpu + info.req_cpu <= info.alloc_cpu
                                and want_memory + info.req_memory <= info.alloc_memory):
            reasons = _placement_reasons(facts, info, reserved.get(info.name))
        if reasons:
            failures[info.name] = reasons
            counts.update(reasons)
            preemption[NOT_HELPFUL if unresolvable(reasons) else NO_VICTIMS] += 1
            continue
        if info.name == nominated:
            return Decision(info.name)
        key = (least_allocated_score(facts, info), -spread_count(facts, info, selectors) if spreads else 0)
        if best is None or key > best:
            best, best_names = key, [info.name]
        elif key == best:
            best_names.append(info.name)
    if best_names:
        return Decision(tie_breaker(best_names))
    if total == 0:
        return Decision(None, "no nodes available to schedule pods")
    fit_message = nodes_available(total, counts)
    if facts.spec.get("preemptionPolicy") == "Never":
        return Decision(None, f"{fit_message} preemption: {NEVER_PREEMPTS}", failures, fit_message)
    return Decision(None, f"{fit_message} preemption: {nodes_available(total, preemption)}", failures, fit_message)
