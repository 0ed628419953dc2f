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
from apiserver.validation import dns1123_label, dns1123_subdomain, is_ip
from shipmate.images import default_pull_policy
from shipmate.qos import compute_qos_class
from shipmate.quantity import QuantityError, parse_quantity

POD_INFO = ResourceInfo("", "v1", "Pod", "pods", "pod", True, short_names=("po",), categories=("all",),
                        subresources=("status", "binding", "eviction"),
                        proxied_subresources=("attach", "exec", "log"))

DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
]
_RESTART_POLICIES = ["Always", "Never", "OnFailure"]
_DNS_POLICIES = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
_PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_CONTAINER_LISTS = ("initContainers", "containers")


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
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        tolerations = spec.setdefault("tolerations", [])
        if isinstance(tolerations, list):
            present = {(t.get("key"), t.get("effect")) for t in tolerations if isinstance(t, dict)}
            for toleration in DEFAULT_TOLERATIONS:
                if (toleration["key"], toleration["effect"]) not in present:
                    tolerations.append(dict(toleration))
        for key in _CONTAINER_LISTS:
            for container in spec.get(key) or []:
                if isinstance(container, dict):
                    _default_container(container)

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
        for key in _CONTAINER_LISTS:
            items = spec.get(key) or []
            if isinstance(items, list):
                for index, container in enumerate(items):
                    errors += _validate_container(container, f"spec.{key}[{index}]", seen)
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
