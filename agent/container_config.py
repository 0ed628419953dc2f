"""Container spec → CRI ContainerConfig, as kubelet builds it; pure.

Raises ContainerConfigError for input the agent cannot honour (the status then shows
CreateContainerConfigError, as kubelet does)."""
from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import psutil

from cri.gen import api_pb2

from agent import labels
from agent.expansion import expand
from agent.sandbox_config import namespace_options
from agent.seccomp import DEFAULT_SECCOMP_ROOT, InvalidProfile, seccomp_profile
from shipmate.qos import pod_qos_class
from shipmate.quantity import QuantityError, parse_quantity

Obj = dict[str, Any]

# kubelet's defaults for containers (procMount Default).
DEFAULT_MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

MIN_CPU_SHARES = 2
CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000
# kubelet's QoS OOM score adjustments (pkg/kubelet/qos/policy.go).
GUARANTEED_OOM_SCORE_ADJ = -997
BEST_EFFORT_OOM_SCORE_ADJ = 1000
EVICTION_HARD_MEMORY = 100 * 1024 * 1024

_SUBSCRIPT = re.compile(r"^(metadata\.(?:labels|annotations))\['(.+)'\]$")


class ContainerConfigError(ValueError):
    """The container spec cannot be turned into a runtime config (reason CreateContainerConfigError)."""


@dataclass(frozen=True)
class NodeResources:
    """What a container without limits may use (downward API defaults) and the memory capacity
    the burstable OOM score is computed against."""
    allocatable_cpu_milli: int = 0
    allocatable_memory: int = 0
    memory_capacity: int = 0

    @classmethod
    def of_this_machine(cls) -> "NodeResources":
        memory = psutil.virtual_memory().total
        return cls((psutil.cpu_count() or 1) * 1000, max(memory - EVICTION_HARD_MEMORY, 0), memory)


@dataclass(frozen=True)
class PodContext:
    """Facts about the running pod that env `fieldRef`s and resources refer to."""
    pod_ips: tuple[str, ...] = ()
    host_ips: tuple[str, ...] = ()
    node_name: str = ""
    node: NodeResources = NodeResources()

    @property
    def pod_ip(self) -> str:
        return self.pod_ips[0] if self.pod_ips else ""


@dataclass(frozen=True)
class EnvSources:
    """The configMaps and secrets env/envFrom refer to, by name (None: not found), and the
    services whose variables the container gets (`kubernetes` in default, and the pod's
    namespace's when enableServiceLinks)."""
    config_maps: dict[str, Obj | None] = field(default_factory=dict)
    secrets: dict[str, Obj | None] = field(default_factory=dict)
    services: tuple[Obj, ...] = ()


@dataclass(frozen=True)
class ImageUser:
    """The user an image runs as (CRI Image.uid / Image.username)."""
    uid: int | None = None
    username: str = ""

    @classmethod
    def of(cls, image: api_pb2.Image | None) -> "ImageUser":
        """kubelet's getImageUser: the image's uid, else its user name; an image that names no user
        (or that the runtime does not know) runs as root."""
        if image is not None and image.HasField("uid"):
            return cls(uid=image.uid.value)
        if image is not None and image.username:
            return cls(username=image.username)
        return cls(uid=0)


def pod_format(pod: Obj) -> str:
    """kubelet's format.Pod: name_namespace(uid)."""
    meta = pod.get("metadata", {})
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def container_hash(container: Obj) -> str:
    """A stable hash of the container spec: a running container whose spec changed (e.g. a new
    image) is replaced. Resources are left out, as kubelet does, so a resize is not a restart."""
    hashed = {k: v for k, v in container.items() if k != "resources"}
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()[:8]


def container_log_path(container_name: str, restart_count: int) -> str:
    """Relative to the sandbox's log directory: <container>/<restart>.log."""
    return f"{container_name}/{restart_count}.log"


# ---------------------------------------------------------------- env
def _format_map(values: dict[str, str]) -> str:
    """fieldpath.FormatMap: sorted key="value" lines (Go %q quoting)."""
    return "\n".join(f"{key}={json.dumps(values[key], ensure_ascii=False)}" for key in sorted(values))


def field_ref_value(pod: Obj, path: str, context: PodContext) -> str:
    """podFieldSelectorRuntimeValue + fieldpath.ExtractFieldPathAsString."""
    meta, spec = pod["metadata"], pod.get("spec", {})
    pod_ips = list(context.host_ips) if spec.get("hostNetwork") else list(context.pod_ips)
    simple = {
        "metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName") or context.node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ips[0] if pod_ips else "", "status.podIPs": ",".join(pod_ips),
        "status.hostIP": context.host_ips[0] if context.host_ips else "",
        "status.hostIPs": ",".join(context.host_ips),
        "metadata.labels": _format_map(meta.get("labels") or {}),
        "metadata.annotations": _format_map(meta.get("annotations") or {}),
    }
    if path in simple:
        return simple[path]
    match = _SUBSCRIPT.match(path)
    if match:
        return str((meta.get(match.group(1).split(".")[1]) or {}).get(match.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldPath: {path}")


def resource_field_value(container: Obj, selector: Obj, node: NodeResources) -> str:
    """ExtractContainerResourceValue, with limits defaulting to the node's allocatable (kubelet's
    defaultPodLimitsForDownwardAPI); the value is rounded up in units of the divisor."""
    resource = selector.get("resource", "")
    resources = container.get("resources") or {}
    try:
        divisor = parse_quantity(selector.get("divisor") or "1")
        if divisor.value == 0:
            divisor = parse_quantity("1")
        kind, _, name = resource.partition(".")
        values = resources.get(kind) or {}
        if kind not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
            raise ContainerConfigError(f"unsupported container resource : {resource}")
        raw = values.get(name)
        if name == "cpu":
            milli = parse_quantity(raw).milli_value() if raw is not None else (
                node.allocatable_cpu_milli if kind == "limits" else 0)
            return str(math.ceil(milli / divisor.milli_value()))
        if name == "memory":
            amount = parse_quantity(raw).int_value() if raw is not None else (
                node.allocatable_memory if kind == "limits" else 0)
        else:
            amount = parse_quantity(raw).int_value() if raw is not None else 0
        return str(math.ceil(amount / divisor.int_value()))
    except QuantityError as error:
        raise ContainerConfigError(f"invalid resourceFieldRef {resource}: {error}") from None


def _env_name(name: str) -> str:
    return name.replace("-", "_").upper()


def service_env(services: Sequence[Obj], namespace: str, enable_service_links: bool) -> dict[str, str]:
    """kubelet's getServiceEnvVarMap + envvars.FromServices: `<NAME>_SERVICE_HOST/_PORT[_<PORT>]`
    and the Docker-link variables, for services with a cluster IP."""
    chosen: dict[str, Obj] = {}
    for service in services:
        meta, spec = service.get("metadata", {}), service.get("spec", {})
        if spec.get("clusterIP") in (None, "", "None") or not spec.get("ports"):
            continue
        name = meta.get("name", "")
        if meta.get("namespace") == "default" and name == "kubernetes":
            chosen.setdefault(name, service)
        elif meta.get("namespace") == namespace and enable_service_links:
            chosen[name] = service
    result: dict[str, str] = {}
    for name in sorted(chosen):
        spec = chosen[name]["spec"]
        ip, ports, prefix = spec["clusterIP"], spec["ports"], _env_name(name)
        result[f"{prefix}_SERVICE_HOST"] = ip
        result[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                result[f"{prefix}_SERVICE_PORT_{_env_name(port['name'])}"] = str(port["port"])
        for index, port in enumerate(ports):
            protocol = port.get("protocol") or "TCP"
            host_port = f"[{ip}]:{port['port']}" if ":" in ip else f"{ip}:{port['port']}"
            url = f"{protocol.lower()}://{host_port}"
            if index == 0:
                result[f"{prefix}_PORT"] = url
            port_prefix = f"{prefix}_PORT_{port['port']}_{protocol.upper()}"
            result[port_prefix] = url
            result[f"{port_prefix}_PROTO"] = protocol.lower()
            result[f"{port_prefix}_PORT"] = str(port["port"])
            result[f"{port_prefix}_ADDR"] = ip
    return result


def _source_data(obj: Obj, secret: bool) -> dict[str, str]:
    if not secret:
        return dict(obj.get("data") or {})
    return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (obj.get("data") or {}).items()}


def container_env(pod: Obj, container: Obj, context: PodContext,
                  sources: EnvSources = EnvSources()) -> list[tuple[str, str]]:
    """kubelet's makeEnvironmentVariables: envFrom first, then env (which overrides it); each env
    value may refer to the variables defined before it and to the service variables, which come
    last unless defined."""
    namespace = pod["metadata"].get("namespace", "")
    services = service_env(sources.services, namespace, pod.get("spec", {}).get("enableServiceLinks", True) is not False)
    defined: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        for kind, secret in (("configMapRef", False), ("secretRef", True)):
            ref = source.get(kind)
            if not ref:
                continue
            name = ref.get("name", "")
            obj = (sources.secrets if secret else sources.config_maps).get(name)
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{"secret" if secret else "configmap"} "{name}" not found')
            for key, value in _source_data(obj, secret).items():
                defined[(source.get("prefix") or "") + key] = value
    for var in container.get("env") or []:
        name = var["name"]
        value_from = var.get("valueFrom")
        if var.get("value"):
            defined[name] = expand(var["value"], {**services, **defined})
        elif value_from:
            value = _env_value_from(pod, container, value_from, context, sources, namespace)
            if value is None:
                continue
            defined[name] = value
        else:
            defined[name] = ""
    return list(defined.items()) + [(k, v) for k, v in services.items() if k not in defined]


def _env_value_from(pod: Obj, container: Obj, value_from: Obj, context: PodContext, sources: EnvSources,
                    namespace: str) -> str | None:
    """One env valueFrom; None when an optional source or key is missing (the variable is unset)."""
    if value_from.get("fieldRef"):
        return field_ref_value(pod, value_from["fieldRef"].get("fieldPath", ""), context)
    if value_from.get("resourceFieldRef"):
        selector = value_from["resourceFieldRef"]
        target = container
        if selector.get("containerName"):
            spec = pod.get("spec", {})
            target = next((c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                           if c["name"] == selector["containerName"]), container)
        return resource_field_value(target, selector, context.node)
    for kind, secret, label in (("configMapKeyRef", False, "ConfigMap"), ("secretKeyRef", True, "Secret")):
        ref = value_from.get(kind)
        if not ref:
            continue
        name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
        obj = (sources.secrets if secret else sources.config_maps).get(name)
        if obj is None:
            if optional:
                return None
            raise ContainerConfigError(f'{"secret" if secret else "configmap"} "{name}" not found')
        data = _source_data(obj, secret)
        if key not in data:
            if optional:
                return None
            raise ContainerConfigError(f"couldn't find key {key} in {label} {namespace}/{name}")
        return data[key]
    kind = next(iter(value_from), "valueFrom")
    raise ContainerConfigError(f"env valueFrom {kind} is not supported by this agent")


# ---------------------------------------------------------------- security
def effective_security(pod: Obj, container: Obj) -> Obj:
    """DetermineEffectiveSecurityContext: the container's fields over the pod's (the fields both have)."""
    pod_security = pod.get("spec", {}).get("securityContext") or {}
    result = {k: pod_security[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot", "seLinuxOptions",
                                           "seccompProfile", "appArmorProfile") if k in pod_security}
    result.update(container.get("securityContext") or {})
    return result


def verify_run_as_non_root(pod: Obj, container: Obj, image: ImageUser) -> None:
    """kubelet's verifyRunAsNonRoot (numeric users only)."""
    security = effective_security(pod, container)
    if not security.get("runAsNonRoot"):
        return
    name = container["name"]
    if security.get("runAsUser") is not None:
        if int(security["runAsUser"]) == 0:
            raise ContainerConfigError(
                f'container\'s runAsUser breaks non-root policy (pod: "{pod_format(pod)}", container: {name})')
        return
    if image.uid == 0:
        raise ContainerConfigError(
            f'container has runAsNonRoot and image will run as root (pod: "{pod_format(pod)}", container: {name})')
    if image.uid is None and image.username:
        raise ContainerConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({image.username}), cannot verify user "
            f'is non-root (pod: "{pod_format(pod)}", container: {name})')


def _security_context(pod: Obj, container: Obj, seccomp_root: str) -> api_pb2.LinuxContainerSecurityContext:
    security = effective_security(pod, container)
    pod_security = pod.get("spec", {}).get("securityContext") or {}
    unmasked = security.get("procMount") == "Unmasked"
    result = api_pb2.LinuxContainerSecurityContext(
        privileged=bool(security.get("privileged")),
        namespace_options=namespace_options(pod),
        readonly_rootfs=bool(security.get("readOnlyRootFilesystem")),
        no_new_privs=security.get("allowPrivilegeEscalation") is False,
        masked_paths=[] if unmasked else DEFAULT_MASKED_PATHS,
        readonly_paths=[] if unmasked else DEFAULT_READONLY_PATHS,
    )
    if security.get("runAsUser") is not None:
        result.run_as_user.value = int(security["runAsUser"])
    if security.get("runAsGroup") is not None:
        result.run_as_group.value = int(security["runAsGroup"])
    if pod_security.get("fsGroup") is not None:
        result.supplemental_groups.append(int(pod_security["fsGroup"]))
    result.supplemental_groups.extend(int(g) for g in pod_security.get("supplementalGroups") or [])
    capabilities = security.get("capabilities") or {}
    result.capabilities.add_capabilities.extend(capabilities.get("add") or [])
    result.capabilities.drop_capabilities.extend(capabilities.get("drop") or [])
    try:
        result.seccomp.CopyFrom(seccomp_profile(security.get("seccompProfile"), seccomp_root))
    except InvalidProfile as error:
        raise ContainerConfigError(str(error)) from None
    return result


# ---------------------------------------------------------------- resources
def _quantity(value: Any, what: str) -> Any:
    try:
        return parse_quantity(value)
    except QuantityError as error:
        raise ContainerConfigError(f"invalid {what}: {error}") from None


def oom_score_adj(pod: Obj, container: Obj, memory_capacity: int) -> int:
    """kubelet's GetContainerOOMScoreAdjust."""
    qos = pod_qos_class(pod)
    if qos == "Guaranteed":
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == "BestEffort":
        return BEST_EFFORT_OOM_SCORE_ADJ
    resources = container.get("resources") or {}
    raw = (resources.get("requests") or {}).get("memory", (resources.get("limits") or {}).get("memory"))
    request = _quantity(raw, "memory request").int_value() if raw is not None else 0
    adjust = 1000 - (1000 * request) // memory_capacity if memory_capacity > 0 else 1000
    if adjust < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    if adjust == BEST_EFFORT_OOM_SCORE_ADJ:
        return adjust - 1
    return adjust


def container_resources(container: Obj, oom_score: int = 0) -> api_pb2.LinuxContainerResources:
    """kubelet's cgroup values: shares from the CPU request (limit when no request), a CFS quota
    from the CPU limit (period always 100 ms), and the memory limit in bytes."""
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    cpu_request = requests.get("cpu", limits.get("cpu"))
    milli_request = _quantity(cpu_request, "cpu request").milli_value() if cpu_request is not None else 0
    result = api_pb2.LinuxContainerResources(
        cpu_shares=max(MIN_CPU_SHARES, milli_request * 1024 // 1000), cpu_period=CPU_PERIOD_US,
        oom_score_adj=oom_score)
    if "cpu" in limits:
        milli_limit = _quantity(limits["cpu"], "cpu limit").milli_value()
        if milli_limit:
            result.cpu_quota = max(MIN_CPU_QUOTA_US, milli_limit * CPU_PERIOD_US // 1000)
    if "memory" in limits:
        result.memory_limit_in_bytes = _quantity(limits["memory"], "memory limit").int_value()
    return result


# ---------------------------------------------------------------- the config
def container_config(pod: Obj, container: Obj, *, restart_count: int, node_name: str, context: PodContext,
                     sources: EnvSources = EnvSources(),
                     mounts: Sequence[api_pb2.Mount] = (),
                     seccomp_root: str = DEFAULT_SECCOMP_ROOT, target_id: str = "") -> api_pb2.ContainerConfig:
    """`mounts`: the container's volume mounts (agent.volumes.container_mounts); `seccomp_root`:
    `<root-dir>/seccomp`, where Localhost seccomp profiles live; `target_id`: the running container whose PID
    namespace an ephemeral container joins (its targetContainerName)."""
    meta, spec = pod["metadata"], pod.get("spec", {})
    if container.get("volumeMounts") and not mounts:
        raise ContainerConfigError(f"volumes of container {container['name']} are not set up")
    env = container_env(pod, container, context, sources)
    variables = dict(env)
    annotations = {
        labels.CONTAINER_HASH: container_hash(container),
        labels.CONTAINER_RESTART_COUNT: str(restart_count),
        labels.TERMINATION_MESSAGE_PATH: container.get("terminationMessagePath") or "/dev/termination-log",
        labels.TERMINATION_MESSAGE_POLICY: container.get("terminationMessagePolicy") or "File",
        labels.POD_TERMINATION_GRACE_PERIOD: str(spec.get("terminationGracePeriodSeconds", 30)),
    }
    if meta.get("deletionGracePeriodSeconds") is not None:
        annotations[labels.POD_DELETION_GRACE_PERIOD] = str(meta["deletionGracePeriodSeconds"])
    if container.get("ports"):
        annotations[labels.CONTAINER_PORTS] = json.dumps(container["ports"], separators=(",", ":"))
    pre_stop = (container.get("lifecycle") or {}).get("preStop")
    if pre_stop:
        annotations[labels.PRE_STOP_HANDLER] = json.dumps(pre_stop, separators=(",", ":"))
    oom_score = oom_score_adj(pod, container, context.node.memory_capacity)
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=container["name"], attempt=restart_count),
        image=api_pb2.ImageSpec(image=container["image"], user_specified_image=container["image"]),
        command=[expand(word, variables) for word in container.get("command") or []],
        args=[expand(word, variables) for word in container.get("args") or []],
        working_dir=container.get("workingDir") or "",
        envs=[api_pb2.KeyValue(key=k, value=v) for k, v in env],
        mounts=list(mounts),
        labels={labels.CONTAINER_NAME: container["name"], labels.POD_NAME: meta["name"],
                labels.POD_NAMESPACE: meta["namespace"], labels.POD_UID: meta["uid"],
                labels.NODE_NAME: node_name},
        annotations=annotations,
        log_path=container_log_path(container["name"], restart_count),
        stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
        linux=api_pb2.LinuxContainerConfig(resources=container_resources(container, oom_score),
                                           security_context=_security_context(pod, container, seccomp_root)),
    )
    if target_id:
        namespaces = config.linux.security_context.namespace_options
        namespaces.pid, namespaces.target_id = api_pb2.TARGET, target_id
    return config
