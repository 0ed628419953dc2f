"""core/v1 Services: upstream's defaulting, validation (same messages) and ClusterIP/NodePort admission."""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any

from apiserver import errors, printers
from apiserver.errors import FieldError, GoLiteral, duplicate, forbidden, invalid, not_supported, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.allocation.service_allocation import AlreadyAllocated, OutOfRange, RangeFull, ServiceAllocator
from apiserver.tables import TableSpec
from apiserver.validation import dns1123_label, dns1123_subdomain, endpoint_ip_problems, is_ip, validate_labels

SERVICE_INFO = ResourceInfo("", "v1", "Service", "services", "service", True, short_names=("svc",),
                            categories=("all",), subresources=("status",))

TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
PROTOCOLS = ["SCTP", "TCP", "UDP"]
AFFINITIES = ["ClientIP", "None"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]
DEFAULT_AFFINITY_TIMEOUT = 10800
PORT_RANGE_MESSAGE = "must be between 1 and 65535, inclusive"
_PORT_NAME_CHARS = re.compile(r"^[-a-z0-9]+$")
_HAS_LETTER = re.compile(r"[a-z]")


def is_headless(spec: Obj) -> bool:
    return spec.get("clusterIP") == "None" or (spec.get("clusterIPs") or [None])[0] == "None"


def port_name_problems(name: str) -> list[str]:
    """upstream's IsValidPortName (IANA_SVC_NAME)."""
    problems = []
    if len(name) > 15:
        problems.append("must be no more than 15 characters")
    if not _PORT_NAME_CHARS.match(name):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _HAS_LETTER.search(name):
        problems.append("must contain at least one letter (a-z)")
    if name.startswith("-") or name.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    if "--" in name:
        problems.append("must not contain consecutive hyphens")
    return problems


def _valid_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _go_service_port(**values: Any) -> GoLiteral:
    """A core.ServicePort as Go's %#v prints it (upstream's duplicate-port message shows it)."""
    protocol, port, node_port = values.get("protocol", ""), values.get("port", 0), values.get("node_port", 0)
    return GoLiteral(f'core.ServicePort{{Name:"", Protocol:"{protocol}", AppProtocol:(*string)(nil), Port:{port}, '
                     f'TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:{node_port}}}')


def _validate_port(port: Any, path: str, require_name: bool, spec_type: str) -> list[FieldError]:
    if not isinstance(port, dict):
        return [invalid(path, port, "must be an object")]
    problems = []
    name = port.get("name") or ""
    if require_name and not name:
        problems.append(required(f"{path}.name"))
    elif name:
        problems += [invalid(f"{path}.name", name, p) for p in dns1123_label(name)]
    if not _valid_port(port.get("port")):
        problems.append(invalid(f"{path}.port", port.get("port"), PORT_RANGE_MESSAGE))
    protocol = port.get("protocol")
    if not protocol:
        problems.append(required(f"{path}.protocol"))
    elif protocol not in PROTOCOLS:
        problems.append(not_supported(f"{path}.protocol", protocol, PROTOCOLS))
    target = port.get("targetPort")
    if isinstance(target, str):
        problems += [invalid(f"{path}.targetPort", target, p) for p in port_name_problems(target)]
    elif not _valid_port(target):
        problems.append(invalid(f"{path}.targetPort", target, PORT_RANGE_MESSAGE))
    node_port = port.get("nodePort")
    if node_port:
        if spec_type == "ClusterIP":
            problems.append(forbidden(f"{path}.nodePort", "may not be used when `type` is 'ClusterIP'"))
        elif not _valid_port(node_port):
            problems.append(invalid(f"{path}.nodePort", node_port, PORT_RANGE_MESSAGE))
    return problems


def validate_service_spec(spec: Any) -> list[FieldError]:
    if not isinstance(spec, dict):
        return [required("spec")]
    problems: list[FieldError] = []
    spec_type = spec.get("type")
    if spec_type not in TYPES:
        problems.append(not_supported("spec.type", spec_type, TYPES))
    ports = spec.get("ports") or []
    if not isinstance(ports, list):
        return problems + [invalid("spec.ports", ports, "must be a list")]
    if not ports and not is_headless(spec) and spec_type != "ExternalName":
        problems.append(required("spec.ports"))
    names: set[str] = set()
    for index, port in enumerate(ports):
        path = f"spec.ports[{index}]"
        problems += _validate_port(port, path, len(ports) > 1, spec_type)
        name = port.get("name") if isinstance(port, dict) else None
        if name:
            if name in names:
                problems.append(duplicate(f"{path}.name", name))
            names.add(name)
    seen_ports: set[tuple[Any, Any]] = set()
    seen_node_ports: set[tuple[Any, Any]] = set()
    for index, port in enumerate(p for p in ports if isinstance(p, dict)):
        key = (port.get("protocol"), port.get("port"))
        if key in seen_ports:
            problems.append(duplicate(f"spec.ports[{index}]", _go_service_port(protocol=key[0], port=key[1])))
        seen_ports.add(key)
        if port.get("nodePort"):
            node_key = (port.get("protocol"), port["nodePort"])
            if node_key in seen_node_ports:
                problems.append(duplicate(f"spec.ports[{index}].nodePort", port["nodePort"]))
            seen_node_ports.add(node_key)
    problems += validate_labels(spec.get("selector"), "spec.selector")
    problems += _validate_cluster_ips(spec, spec_type)
    affinity = spec.get("sessionAffinity")
    if affinity not in AFFINITIES:
        problems.append(not_supported("spec.sessionAffinity", affinity, AFFINITIES))
    elif affinity == "ClientIP":
        timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
        if not isinstance(timeout, int) or not 0 < timeout <= 86400:
            problems.append(invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                                    "must be greater than 0 and less than 86400"))
    elif spec.get("sessionAffinityConfig"):
        problems.append(invalid("spec.sessionAffinityConfig", "{}",
                                f"must not be set when session affinity is {affinity}"))
    external_policy = spec.get("externalTrafficPolicy")
    if spec_type in NODE_PORT_TYPES:
        if external_policy not in TRAFFIC_POLICIES:
            problems.append(not_supported("spec.externalTrafficPolicy", external_policy, TRAFFIC_POLICIES))
    elif external_policy:
        problems.append(invalid("spec.externalTrafficPolicy", external_policy,
                                "may only be set for externally-accessible services"))
    internal_policy = spec.get("internalTrafficPolicy")
    if spec_type != "ExternalName" and internal_policy not in TRAFFIC_POLICIES:
        problems.append(not_supported("spec.internalTrafficPolicy", internal_policy, TRAFFIC_POLICIES))
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in FAMILY_POLICIES:
        problems.append(not_supported("spec.ipFamilyPolicy", policy, FAMILY_POLICIES))
    for index, family in enumerate(spec.get("ipFamilies") or []):
        if family not in ("IPv4", "IPv6"):
            problems.append(not_supported(f"spec.ipFamilies[{index}]", family, ["IPv4", "IPv6"]))
    for index, address in enumerate(spec.get("externalIPs") or []):
        if not is_ip(address):
            problems.append(invalid(f"spec.externalIPs[{index}]", address,
                                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
        else:
            problems += [invalid(f"spec.externalIPs[{index}]", address, p) for p in endpoint_ip_problems(address)]
    return problems


EXTERNAL_IPS_DENIED = "Use of external IPs is denied by admission control"


def new_external_ips(new: Obj, old: Obj | None) -> bool:
    """Whether a write adds externalIPs the Service did not have (upstream's DenyServiceExternalIPs lets an
    update keep or drop existing ones)."""
    ips = (new.get("spec") or {}).get("externalIPs") or []
    held = set((old.get("spec") or {}).get("externalIPs") or []) if old else set()
    return any(ip not in held for ip in ips)




def _validate_cluster_ips(spec: Obj, spec_type: str) -> list[FieldError]:
    problems = []
    cluster_ip, cluster_ips = spec.get("clusterIP") or "", spec.get("clusterIPs") or []
    if spec_type == "ExternalName":
        if cluster_ip:
            problems.append(forbidden("spec.clusterIP", "may not be set for ExternalName services"))
        if cluster_ips:
            problems.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if spec.get("ipFamilies"):
            problems.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy"):
            problems.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
        name = spec.get("externalName") or ""
        if not name:
            problems.append(required("spec.externalName"))
        else:
            problems += [invalid("spec.externalName", name, p) for p in dns1123_subdomain(name.rstrip("."))]
        return problems
    if cluster_ips and cluster_ip != cluster_ips[0]:
        problems.append(invalid("spec.clusterIPs", cluster_ips, "first value must match `clusterIP`"))
    for index, address in enumerate(cluster_ips):
        if address == "None":
            if index > 0 or len(cluster_ips) > 1:
                problems.append(invalid(f"spec.clusterIPs[{index}]", address,
                                        "must be empty when the first value is 'None'"))
        elif not is_ip(address):
            problems.append(invalid(f"spec.clusterIPs[{index}]", address,
                                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    if is_headless(spec) and spec_type in NODE_PORT_TYPES:
        problems.append(invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {spec_type} services"))
    return problems


def _drop_if_unchanged(new: Obj, old: Obj, key: str) -> None:
    if key in new and new.get(key) == old.get(key):
        del new[key]


@dataclass
class ServiceStrategy(Strategy):
    info: ResourceInfo = SERVICE_INFO
    has_status: bool = True
    tracks_generation: bool = False
    field_labels: tuple[str, ...] = field(default=("metadata.name", "metadata.namespace", "spec.clusterIP",
                                                   "spec.type"))
    allocator: ServiceAllocator = field(default_factory=ServiceAllocator)
    # --allow-service-external-ips: off, as upstream's DenyServiceExternalIPs admission (CVE-2020-8554: an
    # externalIP lets any Service owner intercept the cluster's traffic to that address).
    allow_external_ips: bool = False

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec_type = spec.setdefault("type", "ClusterIP") or "ClusterIP"
        spec["type"] = spec_type
        if not spec.get("sessionAffinity"):
            spec["sessionAffinity"] = "None"
        if spec["sessionAffinity"] == "ClientIP" and not spec.get("sessionAffinityConfig"):
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": DEFAULT_AFFINITY_TIMEOUT}}
        for port in spec.get("ports") or []:
            if not isinstance(port, dict):
                continue
            if not port.get("protocol"):
                port["protocol"] = "TCP"
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port")
            if not port.get("nodePort"):
                port.pop("nodePort", None)
        if spec_type == "ExternalName":
            return
        if spec_type in NODE_PORT_TYPES and not spec.get("externalTrafficPolicy"):
            spec["externalTrafficPolicy"] = "Cluster"
        if spec_type == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
            spec["allocateLoadBalancerNodePorts"] = True
        if not spec.get("internalTrafficPolicy"):
            spec["internalTrafficPolicy"] = "Cluster"
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        elif spec.get("clusterIPs") and not spec.get("clusterIP"):
            spec["clusterIP"] = spec["clusterIPs"][0]
        if not spec.get("ipFamilyPolicy"):
            # Headless services without a selector take every family the cluster has.
            headless_no_selector = is_headless(spec) and not spec.get("selector")
            spec["ipFamilyPolicy"] = "RequireDualStack" if headless_no_selector else "SingleStack"
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = [self.allocator.ips.family]

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        new_spec, old_spec = new.get("spec"), old.get("spec") or {}
        if not isinstance(new_spec, dict):
            return
        new_type = new_spec.get("type") or "ClusterIP"
        # A client that omits allocated values (PUT without clusterIP/nodePort) keeps them, as upstream.
        if new_type != "ExternalName" and not new_spec.get("clusterIP") and not new_spec.get("clusterIPs") \
                and old_spec.get("clusterIPs"):
            new_spec["clusterIP"], new_spec["clusterIPs"] = old_spec.get("clusterIP"), list(old_spec["clusterIPs"])
        elif new_spec.get("clusterIP") != old_spec.get("clusterIP") and \
                new_spec.get("clusterIPs") == old_spec.get("clusterIPs") and new_spec.get("clusterIP"):
            new_spec["clusterIPs"] = [new_spec["clusterIP"], *(new_spec.get("clusterIPs") or [])[1:]]
        old_node_ports = {(p.get("port"), p.get("protocol") or "TCP"): p.get("nodePort")
                          for p in old_spec.get("ports") or [] if isinstance(p, dict) and p.get("nodePort")}
        for port in new_spec.get("ports") or []:
            if not isinstance(port, dict):
                continue
            key = (port.get("port"), port.get("protocol") or "TCP")
            if new_type in NODE_PORT_TYPES and not port.get("nodePort") and key in old_node_ports:
                port["nodePort"] = old_node_ports[key]
            elif new_type not in NODE_PORT_TYPES and port.get("nodePort") and \
                    port.get("nodePort") == old_node_ports.get(key):
                del port["nodePort"]  # type changed away from NodePort: the allocation goes with it
        if new_type not in NODE_PORT_TYPES:
            _drop_if_unchanged(new_spec, old_spec, "externalTrafficPolicy")
        if new_type != "LoadBalancer":
            _drop_if_unchanged(new_spec, old_spec, "allocateLoadBalancerNodePorts")
        if not (new_type == "LoadBalancer" and new_spec.get("externalTrafficPolicy") == "Local"):
            _drop_if_unchanged(new_spec, old_spec, "healthCheckNodePort")
        if new_type == "ExternalName":
            for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
                _drop_if_unchanged(new_spec, old_spec, key)

    def validate(self, obj: Obj) -> list[FieldError]:
        return super().validate(obj) + validate_service_spec(obj.get("spec"))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        problems = super().validate_update(new, old)
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        old_ips, new_ips = old_spec.get("clusterIPs") or [], new_spec.get("clusterIPs") or []
        involves_external_name = "ExternalName" in (new_spec.get("type"), old_spec.get("type"))
        if old_ips and new_ips and old_ips[0] != new_ips[0] and not involves_external_name:
            problems.append(invalid("spec.clusterIPs[0]", new_ips[0], "may not change once set"))
        return problems

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        problems = super().validate_status_update(new, old)
        ingress = ((new.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if ingress and (new.get("spec") or {}).get("type") != "LoadBalancer":
            problems.append(forbidden("status.loadBalancer.ingress",
                                      "may only be used when `spec.type` is 'LoadBalancer'"))
        for index, entry in enumerate(ingress):
            if isinstance(entry, dict) and entry.get("ip") and not is_ip(entry["ip"]):
                problems.append(invalid(f"status.loadBalancer.ingress[{index}].ip", entry["ip"],
                                        "must be a valid IP address"))
        return problems

    def admit(self, new: Obj, old: Obj | None) -> list[FieldError]:
        spec = new.get("spec") or {}
        meta = new.get("metadata") or {}
        if not self.allow_external_ips and new_external_ips(new, old):
            raise errors.forbidden_error("", "services", meta.get("name") or "", EXTERNAL_IPS_DENIED)
        owner = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        if spec.get("type") == "ExternalName":
            return []
        return self._admit_cluster_ips(spec, owner) or self._admit_node_ports(spec, owner)

    def _admit_cluster_ips(self, spec: Obj, owner: str) -> list[FieldError]:
        ips = self.allocator.ips
        problems = []
        for index, family in enumerate(spec.get("ipFamilies") or []):
            if family != ips.family:
                problems.append(invalid(f"spec.ipFamilies[{index}]", family, "not configured on this cluster"))
        if spec.get("ipFamilyPolicy") == "RequireDualStack" and not is_headless(spec):
            problems.append(invalid("spec.ipFamilyPolicy", "RequireDualStack",
                                    "this cluster is not configured for dual-stack services"))
        if problems or is_headless(spec):
            return problems
        requested = spec.get("clusterIPs") or []
        if not requested:
            try:
                address = ips.address(ips.range.allocate(owner))
            except RangeFull:
                return [invalid("spec.clusterIPs", [], "failed to allocate a serviceIP: range is full")]
            spec["clusterIP"], spec["clusterIPs"] = address, [address]
            return []
        if len(requested) > 1:
            return [invalid("spec.clusterIPs", requested, "this cluster is not configured for dual-stack services")]
        address = requested[0]
        offset = ips.offset(address)
        try:
            if offset is None or not ips.range.contains(offset):
                raise OutOfRange(address)
            ips.range.claim(offset, owner)
        except OutOfRange:
            return [invalid("spec.clusterIPs", requested, f"failed to allocate IP {address}: the provided IP "
                            f"({address}) is not in the valid range. The range of valid IPs is {ips.network}")]
        except AlreadyAllocated:
            return [invalid("spec.clusterIPs", requested,
                            f"failed to allocate IP {address}: provided IP is already allocated")]
        return []

    def _claim_node_port(self, value: int, owner: str, path: str) -> list[FieldError]:
        node_ports = self.allocator.node_ports
        try:
            node_ports.range.claim(value, owner)
        except OutOfRange:
            return [invalid(path, value, "provided port is not in the valid range. The range of valid ports is "
                                         f"{node_ports}")]
        except AlreadyAllocated:
            return [invalid(path, value, "provided port is already allocated")]
        return []

    def _allocate_node_port(self, owner: str, path: str) -> tuple[int, list[FieldError]]:
        try:
            return self.allocator.node_ports.range.allocate(owner), []
        except RangeFull:
            return 0, [invalid(path, 0, "failed to allocate a nodePort: range is full")]

    def _admit_node_ports(self, spec: Obj, owner: str) -> list[FieldError]:
        spec_type = spec.get("type")
        wants = spec_type == "NodePort" or (spec_type == "LoadBalancer"
                                            and spec.get("allocateLoadBalancerNodePorts") is not False)
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        problems: list[FieldError] = []
        for index, port in enumerate(ports):
            if port.get("nodePort"):
                problems += self._claim_node_port(port["nodePort"], owner, f"spec.ports[{index}].nodePort")
        if problems or not wants:
            return problems
        by_port_number: dict[Any, int] = {p["port"]: p["nodePort"] for p in ports if p.get("nodePort")}
        for index, port in enumerate(ports):
            if port.get("nodePort"):
                continue
            # Ports that differ only by protocol share one node port, as upstream allocates them.
            value = by_port_number.get(port.get("port"))
            if value is None:
                value, problems = self._allocate_node_port(owner, f"spec.ports[{index}].nodePort")
                if problems:
                    return problems
                by_port_number[port.get("port")] = value
            port["nodePort"] = value
        if spec_type == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
            if spec.get("healthCheckNodePort"):
                return self._claim_node_port(spec["healthCheckNodePort"], owner, "spec.healthCheckNodePort")
            value, problems = self._allocate_node_port(owner, "spec.healthCheckNodePort")
            if not problems:
                spec["healthCheckNodePort"] = value
        return problems

    def field_values(self, obj: Obj) -> dict[str, str]:
        values = super().field_values(obj)
        spec = obj.get("spec") or {}
        values.update({"spec.clusterIP": spec.get("clusterIP", ""), "spec.type": spec.get("type", "")})
        return values

    def table(self, now: datetime.datetime) -> TableSpec:
        return printers.spec_for(printers.SERVICE_COLUMNS, printers.service_row, now)
