"""Container spec → CRI ContainerConfig, as kubelet builds it; pure.

Raises ContainerConfigError for input the agent cannot honour (the status then shows
CreateContainerConfigError, as kubelet does)."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from cri.gen import api_pb2

from agent import labels
from agent.expansion import expand
from agent.sandbox_config import namespace_options
from shipmate.quantity import QuantityError, parse_quantity

# kubelet's defaults for containers that are not privileged (procMount Default).
DEFAULT_MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

MIN_CPU_SHARES = 2
CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ContainerConfigError(ValueError):
    """The container spec cannot be turned into a runtime config (reason CreateContainerConfigError)."""


@dataclass(frozen=True)
class PodContext:
    """Facts about the running pod that env `fieldRef`s can refer to."""
    pod_ip: str = ""
    host_ip: str = ""
    node_name: str = ""


def container_hash(container: dict[str, Any]) -> str:
    """A stable hash of the container spec: a running container whose spec changed (e.g. a new
    image) is replaced. Resources are left out, as kubelet does, so a resize is not a restart."""
    hashed = {k: v for k, v in container.items() if k != "resources"}
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()[:8]


def container_log_path(container_name: str, restart_count: int) -> str:
    """Relative to the sandbox's log directory: <container>/<restart>.log."""
    return f"{container_name}/{restart_count}.log"


def field_ref_value(pod: dict[str, Any], path: str, context: PodContext) -> str:
    meta, spec = pod["metadata"], pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName") or context.node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": context.pod_ip, "status.podIPs": context.pod_ip,
        "status.hostIP": context.host_ip, "status.hostIPs": context.host_ip,
    }
    if path in simple:
        return simple[path]
    match = _SUBSCRIPT.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")


def container_env(pod: dict[str, Any], container: dict[str, Any], context: PodContext) -> list[tuple[str, str]]:
    """Env in spec order; each value may refer to the variables defined before it."""
    defined: dict[str, str] = {}
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" in var and var["valueFrom"] is not None:
            source = var["valueFrom"]
            if "fieldRef" in source:
                defined[name] = field_ref_value(pod, source["fieldRef"]["fieldPath"], context)
            else:
                kind = next(iter(source), "valueFrom")
                raise ContainerConfigError(f"env {name}: {kind} is not supported by this agent")
        else:
            defined[name] = expand(var.get("value") or "", defined)
    if container.get("envFrom"):
        raise ContainerConfigError("envFrom is not supported by this agent")
    return list(defined.items())


def container_config(pod: dict[str, Any], container: dict[str, Any], *, restart_count: int,
                     node_name: str, context: PodContext) -> api_pb2.ContainerConfig:
    meta, spec = pod["metadata"], pod.get("spec", {})
    if container.get("volumeMounts"):
        raise ContainerConfigError("volumeMounts are not supported by this agent yet")
    env = container_env(pod, container, context)
    variables = dict(env)
    annotations = {
        labels.CONTAINER_HASH: container_hash(container),
        labels.CONTAINER_RESTART_COUNT: str(restart_count),
        labels.TERMINATION_MESSAGE_PATH: container.get("terminationMessagePath") or "/dev/termination-log",
        labels.TERMINATION_MESSAGE_POLICY: container.get("terminationMessagePolicy") or "File",
        labels.POD_TERMINATION_GRACE_PERIOD: str(spec.get("terminationGracePeriodSeconds", 30)),
    }
    if container.get("ports"):
        annotations[labels.CONTAINER_PORTS] = json.dumps(container["ports"], separators=(",", ":"))
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=container["name"], attempt=restart_count),
        image=api_pb2.ImageSpec(image=container["image"], user_specified_image=container["image"]),
        command=[expand(word, variables) for word in container.get("command") or []],
        args=[expand(word, variables) for word in container.get("args") or []],
        working_dir=container.get("workingDir") or "",
        envs=[api_pb2.KeyValue(key=k, value=v) for k, v in env],
        labels={labels.CONTAINER_NAME: container["name"], labels.POD_NAME: meta["name"],
                labels.POD_NAMESPACE: meta["namespace"], labels.POD_UID: meta["uid"],
                labels.NODE_NAME: node_name},
        annotations=annotations,
        log_path=container_log_path(container["name"], restart_count),
        stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
        linux=api_pb2.LinuxContainerConfig(resources=container_resources(container),
                                           security_context=_security_context(pod, container)),
    )


def container_resources(container: dict[str, Any]) -> api_pb2.LinuxContainerResources:
    """kubelet's cgroup values: shares from the CPU request (limit when no request), a CFS quota
    from the CPU limit, and the memory limit in bytes."""
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    try:
        cpu_request = requests.get("cpu", limits.get("cpu"))
        milli_request = parse_quantity(cpu_request).milli_value() if cpu_request is not None else 0
        result = api_pb2.LinuxContainerResources(cpu_shares=max(MIN_CPU_SHARES, milli_request * 1024 // 1000))
        if "cpu" in limits:
            milli_limit = parse_quantity(limits["cpu"]).milli_value()
            result.cpu_period = CPU_PERIOD_US
            result.cpu_quota = max(MIN_CPU_QUOTA_US, milli_limit * CPU_PERIOD_US // 1000)
        if "memory" in limits:
            result.memory_limit_in_bytes = parse_quantity(limits["memory"]).int_value()
    except QuantityError as error:
        raise ContainerConfigError(f"invalid resources: {error}") from None
    return result


def _security_context(pod: dict[str, Any], container: dict[str, Any]) -> api_pb2.LinuxContainerSecurityContext:
    pod_security = pod.get("spec", {}).get("securityContext") or {}
    security = container.get("securityContext") or {}
    privileged = bool(security.get("privileged"))
    result = api_pb2.LinuxContainerSecurityContext(
        privileged=privileged,
        namespace_options=namespace_options(pod),
        readonly_rootfs=bool(security.get("readOnlyRootFilesystem")),
        no_new_privs=security.get("allowPrivilegeEscalation") is False,
        masked_paths=[] if privileged else DEFAULT_MASKED_PATHS,
        readonly_paths=[] if privileged else DEFAULT_READONLY_PATHS,
    )
    run_as_user = security.get("runAsUser", pod_security.get("runAsUser"))
    if run_as_user is not None:
        result.run_as_user.value = int(run_as_user)
    run_as_group = security.get("runAsGroup", pod_security.get("runAsGroup"))
    if run_as_group is not None:
        result.run_as_group.value = int(run_as_group)
    capabilities = security.get("capabilities") or {}
    result.capabilities.add_capabilities.extend(capabilities.get("add") or [])
    result.capabilities.drop_capabilities.extend(capabilities.get("drop") or [])
    return result
