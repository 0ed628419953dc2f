"""Nodes: cluster-scoped, created by the agent with status; podCIDR set once."""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field

from apiserver import printers
from apiserver.errors import FieldError, forbidden, invalid
from apiserver.kinds.base import Obj, ResourceInfo, Strategy, canonicalize_quantities
from apiserver.tables import TableSpec
from shipmate.quantity import QuantityError, parse_quantity

NODE_INFO = ResourceInfo("", "v1", "Node", "nodes", "node", False, short_names=("no",), subresources=("status",))


def _validate_resources(resources: object, path: str) -> list[FieldError]:
    if not isinstance(resources, dict):
        return []
    errors = []
    for name, value in resources.items():
        try:
            parse_quantity(value)
        except QuantityError:
            errors.append(invalid(f"{path}[{name}]", value, "must be a valid quantity"))
    return errors


CIDR_MESSAGE = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def validate_pod_cidrs(cidrs: list[str]) -> list[FieldError]:
    """Each a CIDR; more than one only as a dual-stack pair (upstream's ValidateNode)."""
    errors, versions = [], []
    for index, value in enumerate(cidrs):
        try:
            versions.append(ipaddress.ip_network(value, strict=False).version)
        except (ValueError, TypeError):
            errors.append(invalid(f"spec.podCIDRs[{index}]", value, CIDR_MESSAGE))
    if not errors and len(cidrs) > 1 and (len(cidrs) > 2 or versions[0] == versions[1]):
        errors.append(invalid("spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family"))
    return errors


NODE_INFO_FIELDS = ("machineID", "systemUUID", "bootID", "kernelVersion", "osImage", "containerRuntimeVersion",
                    "kubeletVersion", "kubeProxyVersion", "operatingSystem", "architecture")


@dataclass
class NodeStrategy(Strategy):
    info: ResourceInfo = NODE_INFO
    has_status: bool = True
    field_labels: tuple[str, ...] = field(default=("metadata.name", "spec.unschedulable"))

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict) and spec.get("podCIDR") and not spec.get("podCIDRs"):
            spec["podCIDRs"] = [spec["podCIDR"]]
        status = obj.get("status")
        if isinstance(status, dict):
            if status.get("capacity") and not status.get("allocatable"):
                status["allocatable"] = dict(status["capacity"])
            for key in ("capacity", "allocatable"):
                canonicalize_quantities(status.get(key))
            info = status.get("nodeInfo")
            if isinstance(info, dict):
                # NodeSystemInfo's string fields have no omitempty: upstream always sends them, "" when unset
                # (kubeProxyVersion is deprecated and no longer set by kubelet, but still sent as "")
                for key in NODE_INFO_FIELDS:
                    info.setdefault(key, "")

    def validate(self, obj: Obj) -> list[FieldError]:
        errors = super().validate(obj)
        status = obj.get("status") or {}
        for key in ("capacity", "allocatable"):
            errors += _validate_resources(status.get(key), f"status.{key}")
        spec = obj.get("spec") or {}
        cidrs = spec.get("podCIDRs") or []
        if spec.get("podCIDR") and cidrs and cidrs[0] != spec["podCIDR"]:
            errors.append(invalid("spec.podCIDRs", cidrs, "first entry must match spec.podCIDR"))
        errors += validate_pod_cidrs(cidrs)
        return errors

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errors = super().validate_update(new, old)
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if old_spec.get("podCIDRs") and new_spec.get("podCIDRs") != old_spec.get("podCIDRs"):
            errors.append(forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'))
        return errors

    def field_values(self, obj: Obj) -> dict[str, str]:
        values = super().field_values(obj)
        values["spec.unschedulable"] = "true" if (obj.get("spec") or {}).get("unschedulable") else "false"
        return values

    def table(self, now: datetime.datetime) -> TableSpec:
        return printers.spec_for(printers.NODE_COLUMNS, printers.node_row, now)
