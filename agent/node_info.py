"""The Node object the agent registers and its status: host facts (read once) → API objects (pure)."""
from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass, field
from typing import Any

import psutil

Obj = dict[str, Any]

KUBELET_VERSION = "v1.35.0-shipmate.0.1.0"
KUBELET_PORT = 10250
# Allocatable = capacity minus kubelet's default hard eviction thresholds (no kube/system reserved):
# memory.available<100Mi and nodefs.available<10%.
MEMORY_EVICTION_RESERVE_KI = 100 * 1024
EPHEMERAL_STORAGE_EVICTION_FRACTION = 0.10

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
    labels: dict[str, str] = field(default_factory=dict)


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
        labels={"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch})


def capacity(facts: NodeFacts) -> dict[str, str]:
    return {"cpu": str(facts.cpus), "memory": f"{facts.memory_ki}Ki", "pods": str(facts.max_pods),
            "ephemeral-storage": f"{facts.ephemeral_storage_ki}Ki"}


def allocatable(facts: NodeFacts) -> dict[str, str]:
    memory = max(0, facts.memory_ki - MEMORY_EVICTION_RESERVE_KI)
    storage_bytes = int(facts.ephemeral_storage_ki * 1024 * (1 - EPHEMERAL_STORAGE_EVICTION_FRACTION))
    return {"cpu": str(facts.cpus), "memory": f"{memory}Ki", "pods": str(facts.max_pods),
            "ephemeral-storage": str(storage_bytes)}


@dataclass(frozen=True)
class RuntimeHealth:
    """Ready when the runtime answers with RuntimeReady and NetworkReady true; else why not."""
    ready: bool
    message: str = ""


def node_conditions(health: RuntimeHealth, previous: list[Obj], now: str) -> list[Obj]:
    ready = ({"type": "Ready", "status": "True", "reason": "KubeletReady",
              "message": "kubelet is posting ready status"} if health.ready else
             {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": health.message})
    conditions = [
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
         "message": "kubelet has sufficient memory available"},
        {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
         "message": "kubelet has no disk pressure"},
        {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
         "message": "kubelet has sufficient PID available"},
        ready,
    ]
    before = {c.get("type"): c for c in previous}
    for condition in conditions:
        old = before.get(condition["type"])
        condition["lastHeartbeatTime"] = now
        condition["lastTransitionTime"] = (old["lastTransitionTime"]
                                           if old and old.get("status") == condition["status"]
                                           and old.get("lastTransitionTime") else now)
    return conditions


def node_status(facts: NodeFacts, health: RuntimeHealth, previous_conditions: list[Obj], now: str) -> Obj:
    return {
        "capacity": capacity(facts),
        "allocatable": allocatable(facts),
        "conditions": node_conditions(health, previous_conditions, now),
        "addresses": [{"type": "InternalIP", "address": facts.internal_ip},
                      {"type": "Hostname", "address": facts.hostname}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        "nodeInfo": {
            "machineID": facts.machine_id, "systemUUID": facts.system_uuid, "bootID": facts.boot_id,
            "kernelVersion": facts.kernel_version, "osImage": facts.os_image,
            "containerRuntimeVersion": facts.runtime_version, "kubeletVersion": KUBELET_VERSION,
            "operatingSystem": "linux", "architecture": facts.architecture,
        },
    }


def node_object(facts: NodeFacts, health: RuntimeHealth, now: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": facts.name, "labels": dict(facts.labels),
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {},
            "status": node_status(facts, health, [], now)}


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
