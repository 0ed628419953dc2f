"""Pods: defaulting, validation, spec immutability, graceful deletion, QoS class, columns."""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field
from typing import Any

from apiserver import printers
from apiserver.errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy, canonicalize_quantities
from apiserver.tables import TableSpec
from apiserver.validation import dns1123_label, dns1123_subdomain, is_ip, validate_meta_update
from shipmate.images import default_pull_policy
from shipmate.qos import compute_qos_class
from shipmate.quantity import QuantityError, parse_quantity

POD_INFO = ResourceInfo("", "v1", "Pod", "pods", "pod", True, short_names=("po",), categories=("all",),
                        subresources=("status", "binding", "eviction", "ephemeralcontainers", "resize"),
                        proxied_subresources=("attach", "exec", "log", "portforward"))

_RESTART_POLICIES = ["Always", "Never", "OnFailure"]
_DNS_POLICIES = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
_PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_CONTAINER_LISTS = ("initContainers", "containers")
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
# What an ephemeral container may set (upstream's allowedEphemeralContainerFields); resources only empty.
_EPHEMERAL_FIELDS = frozenset({"name", "image", "command", "args", "workingDir", "env", "envFrom", "volumeMounts",
                               "volumeDevices", "terminationMessagePath", "terminationMessagePolicy",
                               "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty",
                               "targetContainerName", "resources"})


def _default_container(container: Obj) -> None:
    if isinstance(container.get("image"), str) and container.get("image") and not container.get("imagePullPolicy"):
        container["imagePullPolicy"] = default_pull_policy(container["image"])
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    resources = container.setdefault("resources", {})
    if isinstance(resources, dict):
        canonicalize_quantities(resources.get("requests"))
        canonicalize_quantities(resources.get("limits"))
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_name)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            if isinstance(probe.get("httpGet"), dict):
                probe["httpGet"].setdefault("path", "/")
                probe["httpGet"].setdefault("scheme", "HTTP")
            if isinstance(probe.get("grpc"), dict):
                probe["grpc"].setdefault("service", "")   # kubectl describe dereferences it


def _validate_quantities(resources: Obj, path: str) -> list[FieldError]:
    errors = []
    parsed: dict[str, dict] = {"requests": {}, "limits": {}}
    for section in ("requests", "limits"):
        values = resources.get(section) or {}
        if not isinstance(values, dict):
            errors.append(invalid(f"{path}.{section}", values, "must be a map of resource quantities"))
            continue
        for name, value in values.items():
            try:
                quantity = parse_quantity(value)
            except QuantityError:
                errors.append(invalid(f"{path}.{section}[{name}]", value, "must be a valid quantity"))
                continue
            if quantity.value < 0:
                errors.append(invalid(f"{path}.{section}[{name}]", value, "must be greater than or equal to 0"))
            parsed[section][name] = quantity
    for name, request in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if limit is not None and request > limit:
            errors.append(invalid(f"{path}.requests", str(request),
                                  f"must be less than or equal to {name} limit of {limit}"))
    return errors


# Linux stop signals the API accepts (upstream's supportedStopSignalsLinux); Windows nodes take only two.
_LINUX_STOP_SIGNALS = ["SIGABRT", "SIGALRM", "SIGBUS", "SIGCHLD", "SIGCLD", "SIGCONT", "SIGFPE", "SIGHUP", "SIGILL",
                       "SIGINT", "SIGIO", "SIGIOT", "SIGKILL", "SIGPIPE", "SIGPOLL", "SIGPROF", "SIGPWR", "SIGQUIT",
                       "SIGSEGV", "SIGSTKFLT", "SIGSTOP", "SIGSYS", "SIGTERM", "SIGTRAP", "SIGTSTP", "SIGTTIN",
                       "SIGTTOU", "SIGURG", "SIGUSR1", "SIGUSR2", "SIGVTALRM", "SIGWINCH", "SIGXCPU", "SIGXFSZ",
                       "SIGRTMIN", *(f"SIGRTMIN+{i}" for i in range(1, 16)), *(f"SIGRTMAX-{i}" for i in range(14, 0, -1)),
                       "SIGRTMAX"]
_WINDOWS_STOP_SIGNALS = ["SIGKILL", "SIGTERM"]


def _validate_lifecycle(container: Obj, path: str, grace: Any, os_name: str | None) -> list[FieldError]:
    """Sleep actions (0 to the pod's terminationGracePeriodSeconds) and stopSignal (needs spec.os.name, one of
    that OS's signals)."""
    lifecycle = container.get("lifecycle")
    if not isinstance(lifecycle, dict):
        return []
    errors = []
    for hook in ("postStart", "preStop"):
        handler = lifecycle.get(hook)
        sleep = handler.get("sleep") if isinstance(handler, dict) else None
        if isinstance(sleep, dict) and isinstance(grace, int):
            seconds = sleep.get("seconds")
            if not isinstance(seconds, int) or seconds < 0 or seconds > grace:
                errors.append(invalid(f"{path}.lifecycle.{hook}.sleep", seconds,
                                      f"must be non-negative and less than terminationGracePeriodSeconds ({grace})"))
    stop_signal = lifecycle.get("stopSignal")
    if stop_signal is not None:
        where = f"{path}.lifecycle.stopSignal"
        if not os_name:
            errors.append(forbidden(where, "may not be set for containers with empty `spec.os.name`"))
        else:
            supported = _WINDOWS_STOP_SIGNALS if os_name == "windows" else _LINUX_STOP_SIGNALS
            if stop_signal not in supported:
                errors.append(not_supported(where, stop_signal, supported))
    return errors


def _validate_container(container: Any, path: str, seen: set[str]) -> list[FieldError]:
    if not isinstance(container, dict):
        return [invalid(path, container, "must be an object")]
    errors = []
    name = container.get("name")
    if not name:
        errors.append(required(f"{path}.name"))
    else:
        errors += [invalid(f"{path}.name", name, p) for p in dns1123_label(str(name))]
        if name in seen:
            errors.append(duplicate(f"{path}.name", name))
        seen.add(name)
    image = container.get("image")
    if not image or (isinstance(image, str) and not image.strip()):
        errors.append(required(f"{path}.image"))
    policy = container.get("imagePullPolicy")
    if policy and policy not in _PULL_POLICIES:
        errors.append(not_supported(f"{path}.imagePullPolicy", policy, _PULL_POLICIES))
    port_names: set[str] = set()
    for index, port in enumerate(container.get("ports") or []):
        port_path = f"{path}.ports[{index}]"
        if not isinstance(port, dict):
            errors.append(invalid(port_path, port, "must be an object"))
            continue
        number = port.get("containerPort")
        if number is None:
            errors.append(required(f"{port_path}.containerPort"))
        elif not isinstance(number, int) or not 1 <= number <= 65535:
            errors.append(invalid(f"{port_path}.containerPort", number, "must be between 1 and 65535, inclusive"))
        host_port = port.get("hostPort")
        if host_port is not None and (not isinstance(host_port, int) or not 0 <= host_port <= 65535):
            errors.append(invalid(f"{port_path}.hostPort", host_port, "must be between 1 and 65535, inclusive"))
        if port.get("protocol") and port["protocol"] not in _PROTOCOLS:
            errors.append(not_supported(f"{port_path}.protocol", port["protocol"], _PROTOCOLS))
        if port.get("name"):
            if port["name"] in port_names:
                errors.append(duplicate(f"{port_path}.name", port["name"]))
            port_names.add(port["name"])
    env_names = set()
    for index, env in enumerate(container.get("env") or []):
        if not isinstance(env, dict) or not env.get("name"):
            errors.append(required(f"{path}.env[{index}].name"))
        else:
            env_names.add(env["name"])
    errors += _validate_quantities(container.get("resources") or {}, f"{path}.resources")
    return errors


@dataclass
class PodStrategy(Strategy):
    info: ResourceInfo = POD_INFO
    has_status: bool = True
    field_labels: tuple[str, ...] = field(default=(
        "metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
        "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs",
        "status.nominatedNodeName"))

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("securityContext", {})
        spec.setdefault("enableServiceLinks", True)
        for key in (*_CONTAINER_LISTS, "ephemeralContainers"):
            for container in spec.get(key) or []:
                if isinstance(container, dict):
                    _default_container(container)

    def subresource_strategies(self) -> dict[str, Strategy]:
        return {"ephemeralcontainers": EphemeralContainersStrategy(), "resize": ResizeStrategy()}

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        obj["status"] = {"phase": "Pending", "qosClass": compute_qos_class(spec)}

    def validate(self, obj: Obj) -> list[FieldError]:
        errors = super().validate(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return errors + [required("spec")]
        containers = spec.get("containers")
        if not containers:
            errors.append(required("spec.containers"))
        elif not isinstance(containers, list):
            errors.append(invalid("spec.containers", containers, "must be a list"))
        seen: set[str] = set()
        os_name = (spec.get("os") or {}).get("name") if isinstance(spec.get("os"), dict) else None
        for key in _CONTAINER_LISTS:
            items = spec.get(key) or []
            if isinstance(items, list):
                for index, container in enumerate(items):
                    errors += _validate_container(container, f"spec.{key}[{index}]", seen)
                    if isinstance(container, dict):
                        errors += _validate_lifecycle(container, f"spec.{key}[{index}]",
                                                      spec.get("terminationGracePeriodSeconds"), os_name)
                        errors += validate_resize_policy(container, f"spec.{key}[{index}]",
                                                         spec.get("restartPolicy"))
        if spec.get("ephemeralContainers") and not obj["metadata"].get("resourceVersion"):
            errors.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
        if spec.get("restartPolicy") not in _RESTART_POLICIES:
            errors.append(not_supported("spec.restartPolicy", spec.get("restartPolicy"), _RESTART_POLICIES))
        if spec.get("dnsPolicy") not in _DNS_POLICIES:
            errors.append(not_supported("spec.dnsPolicy", spec.get("dnsPolicy"), _DNS_POLICIES))
        grace = spec.get("terminationGracePeriodSeconds")
        if not isinstance(grace, int) or grace < 0:
            errors.append(invalid("spec.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0"))
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and (not isinstance(deadline, int) or deadline <= 0):
            errors.append(invalid("spec.activeDeadlineSeconds", deadline, "must be between 1 and 2147483647, inclusive"))
        node_name = spec.get("nodeName")
        if node_name:
            errors += [invalid("spec.nodeName", node_name, p) for p in dns1123_subdomain(node_name)]
        volume_names: set[str] = set()
        for index, volume in enumerate(spec.get("volumes") or []):
            name = volume.get("name") if isinstance(volume, dict) else None
            if not name:
                errors.append(required(f"spec.volumes[{index}].name"))
            elif name in volume_names:
                errors.append(duplicate(f"spec.volumes[{index}].name", name))
            else:
                volume_names.add(name)
        return errors

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errors = super().validate_update(new, old)
        if _mutable_view(new.get("spec") or {}, old.get("spec") or {}) != old.get("spec"):
            errors.append(forbidden("spec", "pod updates may not change fields other than "
                                    "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                                    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                                    "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
                                    "it was previously negative)"))
        return errors

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errors = super().validate_update(new, old)
        status = new.get("status") or {}
        phase = status.get("phase")
        if phase and phase not in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            errors.append(not_supported("status.phase", phase, ["Failed", "Pending", "Running", "Succeeded", "Unknown"]))
        for key in ("podIPs", "hostIPs"):
            for index, entry in enumerate(status.get(key) or []):
                address = entry.get("ip") if isinstance(entry, dict) else entry
                if not is_ip(address):
                    errors.append(invalid(f"status.{key}[{index}].ip", address, "must be a valid IP address"))
        for key in ("podIP", "hostIP"):
            if status.get(key) and not is_ip(status[key]):
                errors.append(invalid(f"status.{key}", status[key], "must be a valid IP address"))
        return errors

    def field_values(self, obj: Obj) -> dict[str, str]:
        values = super().field_values(obj)
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        ips = [ip.get("ip", "") for ip in status.get("podIPs") or []]
        values.update({
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.restartPolicy": spec.get("restartPolicy", ""),
            "spec.schedulerName": spec.get("schedulerName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "spec.hostNetwork": "true" if spec.get("hostNetwork") else "false",
            "status.phase": status.get("phase", ""),
            "status.podIP": status.get("podIP", ""),
            "status.podIPs": ",".join(ips),
            "status.nominatedNodeName": status.get("nominatedNodeName", ""),
        })
        return values

    def graceful_delete_seconds(self, obj: Obj, requested: int | None) -> int:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        grace = requested if requested is not None else spec.get("terminationGracePeriodSeconds", 30)
        return 1 if grace < 0 else grace

    def table(self, now: datetime.datetime) -> TableSpec:
        return printers.spec_for(printers.POD_COLUMNS, printers.pod_row, now)




def _mutable_view(new_spec: Obj, old_spec: Obj) -> Obj:
    """new_spec with the fields an update may change copied from old_spec, for comparison."""
    view = copy.deepcopy(new_spec)
    for key in _CONTAINER_LISTS:
        new_list, old_list = view.get(key) or [], old_spec.get(key) or []
        if len(new_list) == len(old_list):
            for new_c, old_c in zip(new_list, old_list):
                if isinstance(new_c, dict) and isinstance(old_c, dict) and "image" in old_c:
                    new_c["image"] = old_c["image"]
                    if "imagePullPolicy" in old_c:
                        new_c["imagePullPolicy"] = old_c["imagePullPolicy"]
    for key in ("activeDeadlineSeconds", "terminationGracePeriodSeconds"):
        if key in old_spec:
            view[key] = old_spec[key]
        else:
            view.pop(key, None)
    old_tolerations = old_spec.get("tolerations") or []
    new_tolerations = view.get("tolerations") or []
    if all(t in new_tolerations for t in old_tolerations):
        if "tolerations" in old_spec:
            view["tolerations"] = old_spec["tolerations"]
        else:
            view.pop("tolerations", None)
    return view


def binding_target(binding: Obj) -> str:
    target = binding.get("target") or {}
    return target.get("name", "")


def set_condition(status: Obj, condition: Obj, now: str) -> bool:
    """Insert or update a condition by type; lastTransitionTime changes only with status. Returns changed."""
    conditions = status.setdefault("conditions", [])
    for existing in conditions:
        if existing.get("type") == condition["type"]:
            updated = dict(existing)
            updated.update(condition)
            if existing.get("status") != condition.get("status"):
                updated["lastTransitionTime"] = now
            if updated == existing:
                return False
            existing.clear()
            existing.update(updated)
            return True
    conditions.append({"lastProbeTime": None, "lastTransitionTime": now, **condition})
    return True


def _validate_ephemeral_containers(spec: Obj, pod: Obj) -> list[FieldError]:
    """upstream's validateEphemeralContainers: names unique across the pod, images set, only the allowed
    fields, a target among the pod's containers or init containers, no subPath mounts."""
    errors: list[FieldError] = []
    ephemeral = spec.get("ephemeralContainers") or []
    if not isinstance(ephemeral, list):
        return [invalid("spec.ephemeralContainers", ephemeral, "must be a list")]
    others = {c.get("name") for key in _CONTAINER_LISTS for c in spec.get(key) or [] if isinstance(c, dict)}
    seen: set[str] = set()
    for index, container in enumerate(ephemeral):
        path = f"spec.ephemeralContainers[{index}]"
        if not isinstance(container, dict):
            errors.append(invalid(path, container, "must be an object"))
            continue
        name = container.get("name")
        if name and name in others:
            errors.append(duplicate(f"{path}.name", name))
        errors += _validate_container(container, path, seen)
        for key in sorted(set(container) - _EPHEMERAL_FIELDS):
            errors.append(forbidden(f"{path}.{key}", "cannot be set for an Ephemeral Container"))
        if container.get("resources"):
            errors.append(forbidden(f"{path}.resources", "cannot be set for an Ephemeral Container"))
        target = container.get("targetContainerName")
        if target and target not in others:
            errors.append(FieldError("FieldValueNotFound", f"{path}.targetContainerName", "", target))
        for mount_index, mount in enumerate(container.get("volumeMounts") or []):
            if isinstance(mount, dict) and mount.get("subPath"):
                errors.append(forbidden(f"{path}.volumeMounts[{mount_index}].subPath",
                                        "cannot be set for an Ephemeral Container"))
    return errors


@dataclass
class EphemeralContainersStrategy(PodStrategy):
    """`pods/ephemeralcontainers` (kubectl debug): only spec.ephemeralContainers changes, entries are only ever
    added (upstream's podEphemeralContainersStrategy and ValidatePodEphemeralContainersUpdate)."""

    def subresource_strategies(self) -> dict[str, Strategy]:
        return {}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        ephemeral = (new.get("spec") or {}).get("ephemeralContainers") if isinstance(new.get("spec"), dict) else None
        meta = new.get("metadata") or {}
        kept = copy.deepcopy(old)
        kept["metadata"].update({key: meta[key] for key in ("name", "namespace", "resourceVersion", "uid")
                                 if key in meta})
        if ephemeral:
            kept.setdefault("spec", {})["ephemeralContainers"] = ephemeral
        else:
            kept.get("spec", {}).pop("ephemeralContainers", None)
        new.clear()
        new.update(kept)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errors = validate_meta_update(new, old)
        if MIRROR_POD_ANNOTATION in ((new.get("metadata") or {}).get("annotations") or {}):
            errors.append(forbidden(f"metadata.annotations[{MIRROR_POD_ANNOTATION}]",
                                    "cannot update ephemeral containers on static pods"))
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        errors += _validate_ephemeral_containers(spec, new)
        current = {c.get("name"): c for c in spec.get("ephemeralContainers") or [] if isinstance(c, dict)}
        for previous in old_spec.get("ephemeralContainers") or []:
            name = previous.get("name")
            if name not in current:
                errors.append(forbidden("spec.ephemeralContainers",
                                        f"existing ephemeral containers \"{name}\" may not be removed\n"))
            elif current[name] != previous:
                errors.append(forbidden(f"spec.ephemeralContainers[{name}]",
                                        f"existing ephemeral containers \"{name}\" may not be changed\n"))
        return errors


# --------------------------------------------------------------------------- pods/resize
RESIZE_RESOURCES = ("cpu", "memory")
RESIZE_POLICIES = ["NotRequired", "RestartContainer"]


def _drop_non_resize_updates(new_containers: Any, old_containers: list) -> Any:
    """Only resources and resizePolicy of each container come from the request (upstream's
    dropNonResizeUpdates); added, removed, reordered or renamed containers are left for validation to refuse."""
    if not isinstance(new_containers, list) or len(new_containers) != len(old_containers):
        return new_containers
    merged = copy.deepcopy(old_containers)
    for new, old in zip(new_containers, merged):
        if not isinstance(new, dict) or new.get("name") != old.get("name"):
            return new_containers
        for key in ("resources", "resizePolicy"):
            if key in new:
                old[key] = new[key]
            else:
                old.pop(key, None)
    return merged


def _resize_container_errors(new: Obj, old: Obj, path: str, sidecar_or_regular: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    new_resources, old_resources = new.get("resources") or {}, old.get("resources") or {}
    if not sidecar_or_regular:
        if new_resources != old_resources:
            errors.append(forbidden(f"{path}.resources", "resize is not supported for non-restartable init "
                                    "containers"))
        return errors
    for section, word in (("limits", "limits"), ("requests", "requests")):
        old_values, new_values = old_resources.get(section) or {}, new_resources.get(section) or {}
        for name in RESIZE_RESOURCES:
            if name in old_values and name not in new_values:
                errors.append(forbidden(f"{path}.resources.{section}[{name}]", f"resource {word} cannot be removed"))
    return errors


def validate_resize_policy(container: Obj, path: str, pod_restart_policy: Any) -> list[FieldError]:
    """upstream's validateResizePolicy: cpu or memory once each, NotRequired or RestartContainer, and only
    NotRequired in a pod that never restarts containers."""
    errors: list[FieldError] = []
    policies = container.get("resizePolicy")
    if policies is None:
        return errors
    if not isinstance(policies, list):
        return [invalid(f"{path}.resizePolicy", policies, "must be a list")]
    seen: set[str] = set()
    for index, policy in enumerate(policies):
        where = f"{path}.resizePolicy[{index}]"
        if not isinstance(policy, dict):
            errors.append(invalid(where, policy, "must be an object"))
            continue
        name, restart = policy.get("resourceName"), policy.get("restartPolicy")
        if name in seen:
            errors.append(duplicate(f"{where}.resourceName", name))
        elif name not in RESIZE_RESOURCES:
            errors.append(not_supported(f"{where}.resourceName", name, list(RESIZE_RESOURCES)))
        seen.add(name)
        if restart not in RESIZE_POLICIES:
            errors.append(not_supported(f"{where}.restartPolicy", restart, RESIZE_POLICIES) if restart
                          else required(f"{where}.restartPolicy"))
        elif restart != "NotRequired" and pod_restart_policy == "Never" and container.get("restartPolicy") != "Always":
            errors.append(invalid(f"{where}.restartPolicy", restart,
                                  "must be 'NotRequired' when `restartPolicy` is 'Never'"))
    return errors


def _without_cpu_memory(container: Obj) -> Obj:
    view = copy.deepcopy(container)
    resources = view.get("resources") or {}
    for section in ("requests", "limits"):
        values = resources.get(section)
        if isinstance(values, dict):
            for name in RESIZE_RESOURCES:
                values.pop(name, None)
            if not values:
                resources.pop(section, None)
    view["resources"] = resources
    view.pop("resizePolicy", None)
    return view


@dataclass
class ResizeStrategy(PodStrategy):
    """`pods/resize` (in-place pod resize, GA in 1.35): only the containers' (and sidecars') cpu/memory
    resources and resizePolicy change; the pod's generation moves, so the node's status.observedGeneration
    tells when it acted (upstream's podResizeStrategy and ValidatePodResize)."""

    def subresource_strategies(self) -> dict[str, Strategy]:
        return {}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        new_spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
        old_spec = old.get("spec") or {}
        meta = new.get("metadata") or {}
        kept = copy.deepcopy(old)
        kept["metadata"].update({key: meta[key] for key in ("name", "namespace", "resourceVersion", "uid")
                                 if key in meta})
        spec = kept.setdefault("spec", {})
        for key in _CONTAINER_LISTS:
            if key in new_spec or key in old_spec:
                merged = _drop_non_resize_updates(new_spec.get(key), old_spec.get(key) or [])
                if merged is None:
                    spec.pop(key, None)
                else:
                    spec[key] = merged
        new.clear()
        new.update(kept)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errors = validate_meta_update(new, old)
        annotations = (old.get("metadata") or {}).get("annotations") or {}
        if MIRROR_POD_ANNOTATION in annotations:
            return [forbidden("", "static pods cannot be resized")]
        old_spec, spec = old.get("spec") or {}, new.get("spec") or {}
        if (old_spec.get("os") or {}).get("name") == "windows":
            return [forbidden("", "windows pods cannot be resized")]
        errors += PodStrategy.validate(self, new)
        old_qos = (old.get("status") or {}).get("qosClass") or compute_qos_class(old_spec)
        if compute_qos_class(spec) != old_qos:
            errors.append(invalid("spec", old_qos, "Pod QOS Class may not change as a result of resizing"))
        for key in _CONTAINER_LISTS:
            new_list, old_list = spec.get(key) or [], old_spec.get(key) or []
            if not isinstance(new_list, list) or len(new_list) != len(old_list):
                errors.append(forbidden(f"spec.{key}", "containers may not be added or removed"))
                return errors
            for index, (container, previous) in enumerate(zip(new_list, old_list)):
                if not isinstance(container, dict) or container.get("name") != previous.get("name"):
                    errors.append(forbidden(f"spec.{key}[{index}].name", "containers may not be renamed or "
                                            "reordered"))
                    continue
                resizable = key == "containers" or previous.get("restartPolicy") == "Always"
                errors += _resize_container_errors(container, previous, f"spec.{key}[{index}]", resizable)
        view = copy.deepcopy(spec)
        old_view = copy.deepcopy(old_spec)
        for key in _CONTAINER_LISTS:
            if isinstance(view.get(key), list):
                view[key] = [_without_cpu_memory(c) if isinstance(c, dict) else c for c in view[key]]
            if isinstance(old_view.get(key), list):
                old_view[key] = [_without_cpu_memory(c) for c in old_view[key]]
        if view != old_view:
            errors.append(forbidden("spec", "only cpu and memory resources are mutable"))
        return errors
