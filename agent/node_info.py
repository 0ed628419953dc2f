"""The Node object the agent registers and its status: host facts (read once) → API objects (pure)."""
from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass, field
from typing import Any

import psutil

from agent.node_pressure import (DEFAULT_EVICTION_HARD, MEMORY_AVAILABLE, NODEFS_AVAILABLE, Threshold,
                                 parse_thresholds)

Obj = dict[str, Any]

KUBELET_VERSION = "v1.35.0-shipmate.0.1.0"
KUBELET_PORT = 10250

_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
                  "s390x": "s390x", "riscv64": "riscv64"}


@dataclass
class NodeFacts:
    name: str
    hostname: str
    internal_ip: str
    cpus: int
    memory_ki: int
    ephemeral_storage_ki: int
    max_pods: int
    machine_id: str = ""
    system_uuid: str = ""
    boot_id: str = ""
    kernel_version: str = ""
    os_image: str = ""
    architecture: str = "amd64"
    runtime_version: str = ""           # "containerd://1.6.20..."
    root_dir: str = "/"                 # the filesystem of nodefs (kubelet's root dir)
    kubelet_port: int = KUBELET_PORT    # the node server's port (--node-server-port)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)   # kept on the Node (e.g. the local-path dir)


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def os_image(os_release: str) -> str:
    values = {}
    for line in os_release.splitlines():
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values.get("PRETTY_NAME") or values.get("NAME") or "Linux"


def gather_node_facts(name: str, internal_ip: str, max_pods: int, root_dir: str,
                      runtime_version: str) -> NodeFacts:
    """Reads the host (blocking: call it in a thread)."""
    disk_path = root_dir if os.path.exists(root_dir) else "/"
    arch = _ARCHITECTURES.get(platform.machine(), platform.machine())
    return NodeFacts(
        name=name, hostname=socket.gethostname(), internal_ip=internal_ip,
        cpus=psutil.cpu_count() or 1, memory_ki=psutil.virtual_memory().total // 1024,
        ephemeral_storage_ki=psutil.disk_usage(disk_path).total // 1024, max_pods=max_pods,
        machine_id=_read("/etc/machine-id"), system_uuid=_read("/sys/class/dmi/id/product_uuid").lower(),
        boot_id=_read("/proc/sys/kernel/random/boot_id"), kernel_version=platform.release(),
        os_image=os_image(_read("/etc/os-release")), architecture=arch, runtime_version=runtime_version,
        root_dir=disk_path,
        labels={"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch})


def capacity(facts: NodeFacts) -> dict[str, str]:
    return {"cpu": str(facts.cpus), "memory": f"{facts.memory_ki}Ki", "pods": str(facts.max_pods),
            "ephemeral-storage": f"{facts.ephemeral_storage_ki}Ki"}


def allocatable(facts: NodeFacts, thresholds: list[Threshold] | None = None) -> dict[str, str]:
    """Capacity minus the hard eviction thresholds of memory.available and nodefs.available (no
    kube/system reserved), as kubelet computes it."""
    reserve = {t.signal: t for t in (thresholds if thresholds is not None
                                     else parse_thresholds(DEFAULT_EVICTION_HARD))}

    def minus_threshold(signal: str, capacity_bytes: int) -> int:
        threshold = reserve.get(signal)
        return max(0, capacity_bytes - int(threshold.minimum(capacity_bytes))) if threshold else capacity_bytes
    memory = minus_threshold(MEMORY_AVAILABLE, facts.memory_ki * 1024) // 1024
    storage_bytes = minus_threshold(NODEFS_AVAILABLE, facts.ephemeral_storage_ki * 1024)
    return {"cpu": str(facts.cpus), "memory": f"{memory}Ki", "pods": str(facts.max_pods),
            "ephemeral-storage": str(storage_bytes)}


@dataclass(frozen=True)
class RuntimeHealth:
    """Ready when the runtime answers with RuntimeReady and NetworkReady true; else why not."""
    ready: bool
    message: str = ""


# condition → (status, reason, message, event reason) for False and True, as kubelet's setters.
_PRESSURE_TEXT = {
    "MemoryPressure": {
        False: ("KubeletHasSufficientMemory", "kubelet has sufficient memory available", "NodeHasSufficientMemory"),
        True: ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available",
               "NodeHasInsufficientMemory")},
    "DiskPressure": {
        False: ("KubeletHasNoDiskPressure", "kubelet has no disk pressure", "NodeHasNoDiskPressure"),
        True: ("KubeletHasDiskPressure", "kubelet has disk pressure", "NodeHasDiskPressure")},
    "PIDPressure": {
        False: ("KubeletHasSufficientPID", "kubelet has sufficient PID available", "NodeHasSufficientPID"),
        True: ("KubeletHasInsufficientPID", "kubelet has insufficient PID available", "NodeHasInsufficientPID")},
}


def node_conditions(health: RuntimeHealth, previous: list[Obj], now: str,
                    pressure: frozenset[str] | set[str] = frozenset()) -> list[Obj]:
    ready = ({"type": "Ready", "status": "True", "reason": "KubeletReady",
              "message": "kubelet is posting ready status"} if health.ready else
             {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": health.message})
    conditions = []
    for kind, texts in _PRESSURE_TEXT.items():
        under = kind in pressure
        reason, message, _event = texts[under]
        conditions.append({"type": kind, "status": "True" if under else "False", "reason": reason,
                           "message": message})
    conditions.append(ready)
    before = {c.get("type"): c for c in previous}
    for condition in conditions:
        old = before.get(condition["type"])
        condition["lastHeartbeatTime"] = now
        condition["lastTransitionTime"] = (old["lastTransitionTime"]
                                           if old and old.get("status") == condition["status"]
                                           and old.get("lastTransitionTime") else now)
    return conditions


def condition_events(previous: list[Obj], current: list[Obj]) -> list[str]:
    """Event reasons for conditions whose status changed (or first appeared), as kubelet records
    them: NodeHasSufficientMemory, NodeHasDiskPressure, NodeReady, NodeNotReady…"""
    before = {c.get("type"): c.get("status") for c in previous}
    reasons = []
    for condition in current:
        kind, status = condition["type"], condition["status"]
        if before.get(kind) == status:
            continue
        if kind == "Ready":
            reasons.append("NodeReady" if status == "True" else "NodeNotReady")
        elif kind in _PRESSURE_TEXT:
            reasons.append(_PRESSURE_TEXT[kind][status == "True"][2])
    return reasons


def node_status(facts: NodeFacts, health: RuntimeHealth, previous_conditions: list[Obj], now: str,
                pressure: frozenset[str] | set[str] = frozenset(), thresholds: list[Threshold] | None = None) -> Obj:
    return {
        "capacity": capacity(facts),
        "allocatable": allocatable(facts, thresholds),
        "conditions": node_conditions(health, previous_conditions, now, pressure),
        "addresses": [{"type": "InternalIP", "address": facts.internal_ip},
                      {"type": "Hostname", "address": facts.hostname}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": facts.kubelet_port}},
        "nodeInfo": {
            "machineID": facts.machine_id, "systemUUID": facts.system_uuid, "bootID": facts.boot_id,
            "kernelVersion": facts.kernel_version, "osImage": facts.os_image,
            "containerRuntimeVersion": facts.runtime_version, "kubeletVersion": KUBELET_VERSION,
            "operatingSystem": "linux", "architecture": facts.architecture,
        },
    }


def node_object(facts: NodeFacts, health: RuntimeHealth, now: str,
                pressure: frozenset[str] | set[str] = frozenset(), thresholds: list[Threshold] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": facts.name, "labels": dict(facts.labels),
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0", **facts.annotations}},
            "spec": {},     # taints follow the conditions on the server (the node lifecycle controller)
            "status": node_status(facts, health, [], now, pressure, thresholds)}


def status_changed(old: Obj, new: Obj) -> bool:
    """Whether anything but heartbeat times differs."""
    def strip(status: Obj) -> Obj:
        copy = dict(status)
        copy["conditions"] = [{k: v for k, v in c.items() if k != "lastHeartbeatTime"}
                              for c in status.get("conditions") or []]
        return copy
    return strip(old) != strip(new)


def lease_object(node_name: str, node_uid: str, renew_time: str, duration_seconds: int = 40) -> Obj:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": node_name, "namespace": "kube-node-lease",
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                                              "uid": node_uid}]},
            "spec": {"holderIdentity": node_name, "leaseDurationSeconds": duration_seconds,
                     "renewTime": renew_time}}


def runtime_health(conditions: dict[str, tuple[bool, str, str]] | None, error: str = "") -> RuntimeHealth:
    """From CRI Status conditions (type → (status, reason, message)); None when the call failed."""
    if conditions is None:
        return RuntimeHealth(False, f"container runtime is down: {error}" if error else "container runtime is down")
    for kind, label in (("RuntimeReady", "container runtime not ready"),
                        ("NetworkReady", "container runtime network not ready")):
        status, reason, message = conditions.get(kind, (False, "", f"{kind} condition missing"))
        if not status:
            return RuntimeHealth(False, f"{label}: {kind}=false reason:{reason} message:{message}")
    return RuntimeHealth(True)
