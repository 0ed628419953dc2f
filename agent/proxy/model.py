"""The proxy's typed view of Services and EndpointSlices, built by pure functions from API JSON.

One `ServicePort` per (service, port); its chain names are computed once here, as upstream does,
because rendering 10k services must not re-hash on every sync.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import NamedTuple

from agent.proxy import chains

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800
SUPPORTED_PROTOCOLS = ("TCP", "UDP", "SCTP")


class InvalidObject(ValueError):
    """A Service or EndpointSlice the proxy cannot program (the message says why)."""


class ServicePortName(NamedTuple):
    """Identity of a service port. A tuple, not a dataclass: it is hashed on every map access."""
    namespace: str
    name: str
    port: str
    protocol: str

    @property
    def service(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def __str__(self) -> str:
        # Upstream ServicePortName.String(): "ns/name" or "ns/name:port" (protocol not included).
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port}" if self.port else base


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: ServicePortName
    type: str
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    # status.loadBalancer.ingress IPs (ours come from the server's ServiceLB controller), as kube-proxy's
    # LoadBalancerVIPs: answered on every node, straight to the endpoints.
    load_balancer_ips: tuple[str, ...] = ()
    session_affinity_seconds: int = 0  # 0: no ClientIP affinity
    external_policy_local: bool = False
    internal_policy_local: bool = False
    # Derived, computed once per object:
    name_string: str = field(init=False, compare=False)
    protocol: str = field(init=False, compare=False)  # lowercase, as in rules ("tcp")
    cluster_chain: str = field(init=False, compare=False)
    local_chain: str = field(init=False, compare=False)
    external_chain: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        text = str(self.name)
        protocol = self.name.protocol.lower()
        object.__setattr__(self, "name_string", text)
        object.__setattr__(self, "protocol", protocol)
        object.__setattr__(self, "cluster_chain", chains.cluster_policy_chain(text, protocol))
        object.__setattr__(self, "local_chain", chains.local_policy_chain(text, protocol))
        object.__setattr__(self, "external_chain", chains.external_chain(text, protocol))

    @property
    def externally_accessible(self) -> bool:
        return self.node_port != 0 or bool(self.external_ips) or bool(self.load_balancer_ips)


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = ""

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


def service_ports(service: dict) -> list[ServicePort]:
    """The proxiable ports of a v1 Service; [] for headless and ExternalName services."""
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    namespace, name = meta.get("namespace") or "default", meta.get("name")
    if not name:
        raise InvalidObject("service without metadata.name")
    service_type = spec.get("type") or "ClusterIP"
    cluster_ip = spec.get("clusterIP") or ""
    if service_type == "ExternalName" or cluster_ip in ("", "None"):
        return []
    if not _is_ipv4(cluster_ip):
        return []  # this proxier programs the IPv4 family only
    affinity_seconds = 0
    if spec.get("sessionAffinity") == "ClientIP":
        client_ip = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        affinity_seconds = int(client_ip.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT_SECONDS)
    external_local = (spec.get("externalTrafficPolicy") == "Local"
                      and service_type in ("NodePort", "LoadBalancer"))
    internal_local = spec.get("internalTrafficPolicy") == "Local"
    external_ips = tuple(ip for ip in spec.get("externalIPs") or () if _is_ipv4(ip))
    load_balancer_ips: tuple[str, ...] = ()
    if service_type == "LoadBalancer":
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
        # ipMode Proxy: the load balancer delivers to the node, not to the VIP (upstream skips those).
        load_balancer_ips = tuple(dict.fromkeys(
            entry["ip"] for entry in ingress if isinstance(entry, dict) and _is_ipv4(entry.get("ip") or "")
            and entry.get("ipMode", "VIP") != "Proxy"))
    result = []
    for port in spec.get("ports") or ():
        protocol = port.get("protocol") or "TCP"
        if protocol not in SUPPORTED_PROTOCOLS:
            raise InvalidObject(f"service {namespace}/{name}: unsupported protocol {protocol!r}")
        if not isinstance(port.get("port"), int):
            raise InvalidObject(f"service {namespace}/{name}: port without a number: {port!r}")
        node_port = (port.get("nodePort") or 0) if service_type in ("NodePort", "LoadBalancer") else 0
        result.append(ServicePort(
            name=ServicePortName(namespace, name, port.get("name") or "", protocol),
            type=service_type, cluster_ip=cluster_ip, port=port["port"], node_port=node_port,
            external_ips=external_ips, load_balancer_ips=load_balancer_ips, session_affinity_seconds=affinity_seconds,
            external_policy_local=external_local, internal_policy_local=internal_local))
    return result


@dataclass(frozen=True, slots=True)
class SliceEndpoints:
    """One EndpointSlice reduced to what the proxy needs: endpoints per (port name, protocol)."""
    namespace: str
    service: str
    name: str
    by_port: dict[tuple[str, str], tuple[Endpoint, ...]]


def slice_endpoints(endpoint_slice: dict) -> SliceEndpoints | None:
    """Parse a discovery.k8s.io/v1 EndpointSlice; None when it is not for an IPv4 Service."""
    meta = endpoint_slice.get("metadata") or {}
    namespace, name = meta.get("namespace") or "default", meta.get("name")
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not name:
        raise InvalidObject("endpointslice without metadata.name")
    if not service or endpoint_slice.get("addressType", "IPv4") != "IPv4":
        return None
    by_port: dict[tuple[str, str], tuple[Endpoint, ...]] = {}
    for port in endpoint_slice.get("ports") or ():
        number = port.get("port")
        if not isinstance(number, int):
            continue  # upstream skips ports without a number
        endpoints = []
        for entry in endpoint_slice.get("endpoints") or ():
            conditions = entry.get("conditions") or {}
            # Unknown readiness counts as ready (discovery/v1 API docs); serving defaults to ready.
            ready = conditions.get("ready") is not False
            serving = conditions.get("serving", ready) is not False
            terminating = conditions.get("terminating") is True
            addresses = entry.get("addresses") or ()
            if not addresses:
                continue
            # Upstream uses only the first address of an endpoint.
            endpoints.append(Endpoint(ip=addresses[0], port=number, ready=ready, serving=serving,
                                      terminating=terminating, node_name=entry.get("nodeName") or ""))
        by_port[(port.get("name") or "", port.get("protocol") or "TCP")] = tuple(endpoints)
    return SliceEndpoints(namespace, service, name, by_port)


def _is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False
