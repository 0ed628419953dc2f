"""LoadBalancer Services without a cloud (the role of k3s's ServiceLB): the controller writes
`status.loadBalancer.ingress` = the addresses of the nodes that serve the Service; every agent's proxy
then answers `<that address>:<port>` (agent/proxy: load-balancer IPs are programmed as kube-proxy does
for a cloud's, straight to the Service's endpoints, without klipper-lb's per-node pods).

One writer: this controller, in the server, under the controller-manager leader election (one active
at a time). The agents never write Service status (the node authorizer gives them no such right), so
nodes cannot fight over the field or advertise themselves; the controller sees every Node and
EndpointSlice, which an agent would have to watch anyway to know whether it is the one to answer.

Which nodes (pure: `load_balancer_ingress`):
- Ready nodes, without upstream's `node.kubernetes.io/exclude-from-external-load-balancers` label;
- with `externalTrafficPolicy: Local`, only those with a ready endpoint of the Service (the others
  drop the traffic, as kube-proxy does, so announcing them would black-hole clients); the client
  address is kept there (no masquerade);
- each node's ExternalIP when it has one, else its InternalIP (as k3s).
A Service with `spec.loadBalancerClass` belongs to another implementation and is left alone; a Service
that stopped being a LoadBalancer gets its ingress cleared.
"""
from __future__ import annotations

import ipaddress
import logging
from typing import Any

from apiserver.api import API
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.controllers.writes import modify
from apiserver.informer import RegistryInformer, SharedInformers, object_key
from apiserver.kinds.base import Obj

log = logging.getLogger(__name__)

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def node_ready(node: Obj) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def node_address(node: Obj) -> str | None:
    addresses = (node.get("status") or {}).get("addresses") or ()
    for kind in ("ExternalIP", "InternalIP"):
        for entry in addresses:
            if entry.get("type") == kind and _is_ipv4(entry.get("address") or ""):
                return entry["address"]
    return None


def _is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


def nodes_with_ready_endpoints(slices: list[Obj]) -> set[str]:
    found = set()
    for endpoint_slice in slices:
        for endpoint in endpoint_slice.get("endpoints") or ():
            if (endpoint.get("conditions") or {}).get("ready") is not False and endpoint.get("nodeName"):
                found.add(endpoint["nodeName"])
    return found


def load_balancer_ingress(service: Obj, nodes: list[Obj], slices: list[Obj]) -> list[dict[str, Any]] | None:
    """The ingress the Service should show; None when it is not ours to manage."""
    spec = service.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return []
    if spec.get("loadBalancerClass"):
        return None
    candidates = [n for n in nodes if node_ready(n) and EXCLUDE_LABEL not in ((n.get("metadata") or {}).get("labels") or {})]
    if spec.get("externalTrafficPolicy") == "Local":
        serving = nodes_with_ready_endpoints(slices)
        candidates = [n for n in candidates if n["metadata"]["name"] in serving]
    addresses = {address for address in map(node_address, candidates) if address}
    return [{"ip": ip, "ipMode": "VIP"} for ip in sorted(addresses, key=ipaddress.IPv4Address)]


class ServiceLBController(KeyedController):
    name = "service-lb-controller"

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.services = informers.informer(api.services, self._on_service)
        self.nodes = informers.informer(api.nodes, self._on_node)
        self.slices = informers.informer(api.endpoint_slices, self._on_slice)

    def informers(self) -> list[RegistryInformer]:
        return [self.services, self.nodes, self.slices]

    def all_keys(self) -> set[str]:
        return {key for key, service in self.services.cache.items() if self._interesting(service)}

    @staticmethod
    def _interesting(service: Obj) -> bool:
        return ((service.get("spec") or {}).get("type") == "LoadBalancer"
                or bool(((service.get("status") or {}).get("loadBalancer") or {}).get("ingress")))

    def _on_service(self, event_type: str, service: Obj, _old: Obj | None) -> None:
        if event_type != "DELETED" and self._interesting(service):
            self.enqueue(object_key(service))

    def _on_node(self, event_type: str, node: Obj, old: Obj | None) -> None:
        if old is not None and event_type == "MODIFIED" and (node_ready(node), node_address(node), _labels(node)) == (
                node_ready(old), node_address(old), _labels(old)):
            return           # heartbeats
        for key in self.all_keys():
            self.enqueue(key)

    def _on_slice(self, _event_type: str, endpoint_slice: Obj, _old: Obj | None) -> None:
        meta = endpoint_slice.get("metadata") or {}
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        key = f"{meta.get('namespace')}/{service}"
        if service and key in self.services.cache and self._interesting(self.services.cache[key]):
            self.enqueue(key)

    def _slices_of(self, namespace: str, name: str) -> list[Obj]:
        return [s for s in self.slices.cache.values()
                if (s.get("metadata") or {}).get("namespace") == namespace
                and ((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL) == name]

    async def sync_key(self, key: str) -> None:
        service = self.services.cache.get(key)
        if service is None:
            return
        namespace, _, name = key.partition("/")
        desired = load_balancer_ingress(service, list(self.nodes.cache.values()), self._slices_of(namespace, name))
        if desired is None:
            return
        current = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if current == desired:
            return

        def change(stored: Obj) -> Obj:
            status = dict(stored.get("status") or {})
            status["loadBalancer"] = {"ingress": desired} if desired else {}
            return {**stored, "status": status}
        await modify(self.api.services, service, change, subresource="status")
        log.info("load balancer ingress service=%s ips=%s", key, ",".join(e["ip"] for e in desired) or "-")


def _labels(node: Obj) -> dict[str, str]:
    return dict((node.get("metadata") or {}).get("labels") or {})
