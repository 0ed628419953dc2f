"""core/v1 Endpoints and discovery.k8s.io/v1 EndpointSlices: shapes, defaulting and validation as upstream."""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Any

from apiserver import printers
from apiserver.auth.context import current_user
from apiserver.errors import FieldError, invalid, not_supported, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.kinds.services import PORT_RANGE_MESSAGE, PROTOCOLS
from apiserver.tables import TableSpec
from apiserver.validation import dns1123_label, dns1123_subdomain, endpoint_ip_problems

ENDPOINTS_INFO = ResourceInfo("", "v1", "Endpoints", "endpoints", "endpoints", True, short_names=("ep",),
                              deprecation="v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 "
                                          "EndpointSlice")
ENDPOINTSLICE_INFO = ResourceInfo("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True)

ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
MAX_SLICE_ENDPOINTS = 1000
MAX_SLICE_PORTS = 20000
IP_MESSAGE = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def _ip_version(value: Any) -> int | None:
    try:
        return ipaddress.ip_address(value).version
    except ValueError:
        return None


def _special_ip_problems(obj: Obj, path: str, ip: str) -> list[FieldError]:
    """Loopback, link-local, multicast-local and unspecified backends are refused (upstream's
    ValidateEndpointIP), but for the server's own `default/kubernetes` endpoints: a server advertising a
    loopback address (a single-host setup) still lists itself there, as only it can write them."""
    meta = obj.get("metadata") or {}
    if current_user() is None and meta.get("namespace") == "default" and meta.get("name") == "kubernetes":
        return []
    return [invalid(path, ip, problem) for problem in endpoint_ip_problems(ip)]


def _default_ports(ports: Any) -> None:
    for port in ports or []:
        if isinstance(port, dict) and not port.get("protocol"):
            port["protocol"] = "TCP"


def _validate_port(port: Any, path: str, require_name: bool) -> list[FieldError]:
    if not isinstance(port, dict):
        return [invalid(path, port, "must be an object")]
    problems = []
    name = port.get("name") or ""
    if require_name and not name:
        problems.append(required(f"{path}.name"))
    elif name:
        problems += [invalid(f"{path}.name", name, p) for p in dns1123_label(name)]
    number = port.get("port")
    if number is not None and (not isinstance(number, int) or not 1 <= number <= 65535):
        problems.append(invalid(f"{path}.port", number, PORT_RANGE_MESSAGE))
    if port.get("protocol") not in PROTOCOLS:
        problems.append(not_supported(f"{path}.protocol", port.get("protocol"), PROTOCOLS))
    return problems


@dataclass
class EndpointsStrategy(Strategy):
    info: ResourceInfo = ENDPOINTS_INFO
    tracks_generation: bool = False

    def default(self, obj: Obj) -> None:
        for subset in obj.get("subsets") or []:
            if isinstance(subset, dict):
                _default_ports(subset.get("ports"))

    def validate(self, obj: Obj) -> list[FieldError]:
        problems = super().validate(obj)
        subsets = obj.get("subsets") or []
        if not isinstance(subsets, list):
            return problems + [invalid("subsets", subsets, "must be a list")]
        for index, subset in enumerate(subsets):
            path = f"subsets[{index}]"
            if not isinstance(subset, dict):
                problems.append(invalid(path, subset, "must be an object"))
                continue
            addresses, not_ready = subset.get("addresses") or [], subset.get("notReadyAddresses") or []
            if not addresses and not not_ready:
                problems.append(required(path, "must specify `addresses` or `notReadyAddresses`"))
            for key, items in (("addresses", addresses), ("notReadyAddresses", not_ready)):
                for position, address in enumerate(items):
                    ip = address.get("ip") if isinstance(address, dict) else None
                    if _ip_version(ip) is None:
                        problems.append(invalid(f"{path}.{key}[{position}].ip", ip, IP_MESSAGE))
                    else:
                        problems += _special_ip_problems(obj, f"{path}.{key}[{position}].ip", ip)
            ports = subset.get("ports") or []
            for position, port in enumerate(ports):
                problems += _validate_port(port, f"{path}.ports[{position}]", len(ports) > 1)
        return problems

    def table(self, now: datetime.datetime) -> TableSpec:
        return printers.spec_for(printers.ENDPOINTS_COLUMNS, printers.endpoints_row, now)


@dataclass
class EndpointSliceStrategy(Strategy):
    info: ResourceInfo = ENDPOINTSLICE_INFO
    tracks_generation: bool = True  # upstream bumps an EndpointSlice's generation on every change

    def default(self, obj: Obj) -> None:
        _default_ports(obj.get("ports"))
        for endpoint in obj.get("endpoints") or []:
            if isinstance(endpoint, dict) and not isinstance(endpoint.get("conditions"), dict):
                endpoint["conditions"] = {}

    def validate(self, obj: Obj) -> list[FieldError]:
        problems = super().validate(obj)
        address_type = obj.get("addressType")
        if not address_type:
            problems.append(required("addressType"))
        elif address_type not in ADDRESS_TYPES:
            problems.append(not_supported("addressType", address_type, ADDRESS_TYPES))
        endpoints = obj.get("endpoints") or []
        if not isinstance(endpoints, list):
            return problems + [invalid("endpoints", endpoints, "must be a list")]
        if len(endpoints) > MAX_SLICE_ENDPOINTS:
            problems.append(FieldError("FieldValueTooMany", "endpoints", f"must have at most {MAX_SLICE_ENDPOINTS} "
                                       "items"))
        for index, endpoint in enumerate(endpoints):
            path = f"endpoints[{index}]"
            addresses = endpoint.get("addresses") if isinstance(endpoint, dict) else None
            if not addresses:
                problems.append(required(f"{path}.addresses", "must contain at least 1 address"))
                continue
            for position, address in enumerate(addresses):
                address_path = f"{path}.addresses[{position}]"
                address_problems = self._validate_address(address, address_type, address_path)
                if not address_problems and address_type in ("IPv4", "IPv6"):
                    address_problems = _special_ip_problems(obj, address_path, address)
                problems += address_problems
            node_name = endpoint.get("nodeName")
            if node_name:
                problems += [invalid(f"{path}.nodeName", node_name, p) for p in dns1123_subdomain(node_name)]
        ports = obj.get("ports") or []
        names: set[str] = set()
        for index, port in enumerate(ports):
            path = f"ports[{index}]"
            problems += _validate_port(port, path, False)
            name = port.get("name", "") if isinstance(port, dict) else ""
            if name in names:
                problems.append(FieldError("FieldValueDuplicate", f"{path}.name", "", name))
            names.add(name)
        return problems

    @staticmethod
    def _validate_address(address: Any, address_type: Any, path: str) -> list[FieldError]:
        if address_type == "FQDN":
            return [invalid(path, address, p) for p in dns1123_subdomain(str(address))]
        version = _ip_version(address)
        if version is None:
            return [invalid(path, address, IP_MESSAGE)]
        if address_type in ("IPv4", "IPv6") and f"IPv{version}" != address_type:
            return [invalid(path, address, f"must be an {address_type} address")]
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        problems = super().validate_update(new, old)
        if new.get("addressType") != old.get("addressType"):
            problems.append(invalid("addressType", new.get("addressType"), "field is immutable"))
        return problems

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        keys = ("addressType", "endpoints", "ports")
        return any(new.get(k) != old.get(k) for k in keys) or \
            (new.get("metadata") or {}).get("labels") != (old.get("metadata") or {}).get("labels")

    def table(self, now: datetime.datetime) -> TableSpec:
        return printers.spec_for(printers.ENDPOINTSLICE_COLUMNS, printers.endpointslice_row, now)
