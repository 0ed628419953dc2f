"""In-place pod resize on the node (kubelet's allocation manager and resize actuation, 1.35).

- Allocation: the resources the node granted each container (its `allocatedResources`). A pod's spec
  resources that differ from its allocation are a resize request: admitted when the pod's new requests fit the
  node's allocatable next to the allocations of the node's other pods, else left pending — `Infeasible` when
  they exceed the node's allocatable on their own, `Deferred` when other pods are in the way (retried at every
  sync, so a freed node admits it).
- Actuation (runtime_manager.RuntimeManager.resize): a running container whose runtime resources differ from
  its allocation gets CRI `UpdateContainerResources`, or is restarted when a changed resource's
  `resizePolicy` says `RestartContainer`; containers started later start with their allocation.
- Status: `containerStatuses[].allocatedResources` (requests), `.resources` (what the runtime applied), pod
  conditions `PodResizePending` (Infeasible/Deferred) and `PodResizeInProgress` (allocated, not yet applied;
  reason `Error` when applying failed).

An agent restart keeps allocations: a pod first seen with `allocatedResources` in its status resumes from them.
Pure but for the AllocationManager's in-memory table.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from shipmate.quantity import QuantityError, parse_quantity

Obj = dict[str, Any]
RESOURCES = ("cpu", "memory")
CPU_PERIOD_US = 100_000
INFEASIBLE, DEFERRED = "Infeasible", "Deferred"


def _milli(value: Any) -> int:
    try:
        return parse_quantity(value).milli_value()
    except (QuantityError, TypeError):
        return 0


def _bytes(value: Any) -> int:
    try:
        return parse_quantity(value).int_value()
    except (QuantityError, TypeError):
        return 0


def resizable_containers(pod: Obj) -> list[Obj]:
    """Regular containers and sidecars (restartable init containers): the ones a resize may change."""
    spec = pod.get("spec") or {}
    return [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"] + \
        list(spec.get("containers") or [])


def cpu_memory(resources: Obj | None) -> Obj:
    """{"requests": {...}, "limits": {...}} with only cpu and memory, empty sections left out."""
    result: Obj = {}
    for section in ("requests", "limits"):
        values = {k: v for k, v in ((resources or {}).get(section) or {}).items() if k in RESOURCES}
        if section == "requests":
            # a limit without a request is the request (defaulting), as upstream allocates
            for name, value in ((resources or {}).get("limits") or {}).items():
                if name in RESOURCES:
                    values.setdefault(name, value)
        if values:
            result[section] = values
    return result


def desired_resources(pod: Obj) -> dict[str, Obj]:
    return {c["name"]: cpu_memory(c.get("resources")) for c in resizable_containers(pod)}


def _same(a: Obj, b: Obj) -> bool:
    """Equal quantities (1 == 1000m), section by section."""
    for section in ("requests", "limits"):
        left, right = a.get(section) or {}, b.get(section) or {}
        if set(left) != set(right):
            return False
        for name in left:
            if _milli(left[name]) != _milli(right[name]):
                return False
    return True


def same_allocation(a: dict[str, Obj], b: dict[str, Obj]) -> bool:
    return set(a) == set(b) and all(_same(a[name], b[name]) for name in a)


def pod_requests(allocation: dict[str, Obj]) -> tuple[int, int]:
    """(cpu millicores, memory bytes) a pod's containers request under an allocation."""
    cpu = sum(_milli((r.get("requests") or {}).get("cpu", 0)) for r in allocation.values())
    memory = sum(_bytes((r.get("requests") or {}).get("memory", 0)) for r in allocation.values())
    return cpu, memory


@dataclass(frozen=True)
class Decision:
    admit: bool
    reason: str = ""
    message: str = ""


def admit_resize(requested: tuple[int, int], others: tuple[int, int], allocatable: tuple[int, int]) -> Decision:
    """Whether a pod's new requests fit the node (kubelet's canResizePod): more than the node's allocatable is
    Infeasible, more than what other pods leave is Deferred."""
    names = ("cpu", "memory")
    for index, name in enumerate(names):
        if allocatable[index] and requested[index] > allocatable[index]:
            return Decision(False, INFEASIBLE, f"Node didn't have enough capacity: {name}, requested: "
                            f"{requested[index]}, capacity: {allocatable[index]}")
    for index, name in enumerate(names):
        if allocatable[index] and requested[index] + others[index] > allocatable[index]:
            return Decision(False, DEFERRED, f"Node didn't have enough resource: {name}, requested: "
                            f"{requested[index]}, used: {others[index]}, capacity: {allocatable[index]}")
    return Decision(True)


def restart_policy(container: Obj, resource: str) -> str:
    for policy in container.get("resizePolicy") or []:
        if isinstance(policy, dict) and policy.get("resourceName") == resource:
            return policy.get("restartPolicy") or "NotRequired"
    return "NotRequired"


@dataclass(frozen=True)
class RuntimeResources:
    """What the runtime applied to a running container (CRI ContainerStatus.resources.linux)."""
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    memory_limit: int = 0


def wanted_runtime(resources: Obj) -> RuntimeResources:
    """kubelet's cgroup values for an allocation (agent.container_config.container_resources' rules)."""
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    request = _milli(requests.get("cpu", limits.get("cpu", 0)))
    quota = 0
    if "cpu" in limits and _milli(limits["cpu"]):
        quota = max(1000, _milli(limits["cpu"]) * CPU_PERIOD_US // 1000)
    return RuntimeResources(max(2, request * 1024 // 1000), quota, CPU_PERIOD_US,
                            _bytes(limits["memory"]) if "memory" in limits else 0)


def changed_resources(wanted: RuntimeResources, actual: RuntimeResources) -> set[str]:
    changed = set()
    if wanted.cpu_shares != actual.cpu_shares or wanted.cpu_quota != (actual.cpu_quota if actual.cpu_quota > 0 else 0):
        changed.add("cpu")
    if wanted.memory_limit != actual.memory_limit:
        changed.add("memory")
    return changed


def resize_action(container: Obj, allocated: Obj, actual: RuntimeResources | None) -> str:
    """"" (nothing), "update" (UpdateContainerResources) or "restart" for a running container."""
    if actual is None:
        return ""
    changed = changed_resources(wanted_runtime(allocated), actual)
    if not changed:
        return ""
    if any(restart_policy(container, name) == "RestartContainer" for name in changed):
        return "restart"
    return "update"


def actual_resources(allocated: Obj, actual: RuntimeResources | None) -> Obj:
    """status.containerStatuses[].resources: the allocation where the runtime applied it, else the runtime's
    figures (cpu from shares and quota, memory limit); the memory request is the allocation's (no cgroup
    value tells it)."""
    result = copy.deepcopy(allocated)
    if actual is None:
        return result
    wanted = wanted_runtime(allocated)
    requests, limits = result.setdefault("requests", {}), result.setdefault("limits", {})
    if actual.cpu_shares and actual.cpu_shares != wanted.cpu_shares:
        requests["cpu"] = f"{actual.cpu_shares * 1000 // 1024}m"
    if actual.cpu_quota != wanted.cpu_quota:
        if actual.cpu_quota > 0 and actual.cpu_period > 0:
            limits["cpu"] = f"{actual.cpu_quota * 1000 // actual.cpu_period}m"
        else:
            limits.pop("cpu", None)
    if actual.memory_limit != wanted.memory_limit:
        if actual.memory_limit > 0:
            limits["memory"] = str(actual.memory_limit)
        else:
            limits.pop("memory", None)
    return {k: v for k, v in result.items() if v}


@dataclass
class ResizeView:
    """What a pod's status says about its resize."""
    allocated: dict[str, Obj] = field(default_factory=dict)
    pending: tuple[str, str] | None = None        # (Infeasible|Deferred, message)
    in_progress: bool = False
    error: str = ""


def allocation_from_status(pod: Obj) -> dict[str, Obj] | None:
    """The allocation an earlier run of the agent recorded in the pod's status (None when there is none)."""
    status = pod.get("status") or {}
    entries = {s.get("name"): s for key in ("initContainerStatuses", "containerStatuses")
               for s in status.get(key) or [] if isinstance(s, dict)}
    if not any(e.get("allocatedResources") for e in entries.values()):
        return None
    result = {}
    for container in resizable_containers(pod):
        entry = entries.get(container["name"]) or {}
        requests = {k: v for k, v in (entry.get("allocatedResources") or {}).items() if k in RESOURCES}
        limits = {k: v for k, v in (((entry.get("resources") or {}).get("limits")) or {}).items() if k in RESOURCES}
        if not requests and not limits:
            result[container["name"]] = cpu_memory(container.get("resources"))
            continue
        result[container["name"]] = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    return result


def with_allocation(pod: Obj, allocation: dict[str, Obj]) -> Obj:
    """The pod as the runtime should run it: each resizable container's cpu/memory from its allocation."""
    result = copy.deepcopy(pod)
    for container in resizable_containers(result):
        allocated = allocation.get(container["name"])
        if allocated is None:
            continue
        resources = container.setdefault("resources", {})
        for section in ("requests", "limits"):
            values = {k: v for k, v in (resources.get(section) or {}).items() if k not in RESOURCES}
            values.update((allocated.get(section) or {}))
            if values:
                resources[section] = values
            else:
                resources.pop(section, None)
    return result


class AllocationManager:
    def __init__(self, allocatable: Callable[[], tuple[int, int]], pods: Callable[[], Iterable[Obj]]) -> None:
        self.allocatable, self.pods = allocatable, pods
        self.allocations: dict[str, dict[str, Obj]] = {}
        self.pending: dict[str, tuple[str, str]] = {}

    def allocation(self, pod: Obj) -> dict[str, Obj]:
        uid = pod["metadata"]["uid"]
        if uid not in self.allocations:
            self.allocations[uid] = allocation_from_status(pod) or desired_resources(pod)
        return self.allocations[uid]

    def _others(self, uid: str) -> tuple[int, int]:
        cpu = memory = 0
        for other in self.pods():
            meta = other.get("metadata") or {}
            if meta.get("uid") == uid or (other.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            allocation = self.allocations.get(meta.get("uid", "")) or desired_resources(other)
            used = pod_requests(allocation)
            cpu, memory = cpu + used[0], memory + used[1]
        return cpu, memory

    def sync(self, pod: Obj) -> ResizeView:
        """Admits a pending resize when it fits; returns the pod's allocation and pending state."""
        uid = pod["metadata"]["uid"]
        allocation = self.allocation(pod)
        desired = desired_resources(pod)
        if same_allocation(allocation, desired):
            self.pending.pop(uid, None)
            return ResizeView(allocation)
        decision = admit_resize(pod_requests(desired), self._others(uid), self.allocatable())
        if decision.admit:
            self.allocations[uid] = desired
            self.pending.pop(uid, None)
            return ResizeView(desired)
        self.pending[uid] = (decision.reason, decision.message)
        return ResizeView(allocation, pending=(decision.reason, decision.message))

    def forget(self, uid: str) -> None:
        self.allocations.pop(uid, None)
        self.pending.pop(uid, None)
