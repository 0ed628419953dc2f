"""The `kubernetes` Service in `default`: the first ClusterIP, port 443 → the servers' port, with its
Endpoints and EndpointSlice listing every live server's advertised address (from the identity leases of
server_identity.py). Created at start and kept so by every server (upstream's lease endpoint
reconciler), so a deleted or edited one comes back; all servers compute the same objects from the same
leases, so they never undo each other's writes."""
from __future__ import annotations

import asyncio
import datetime
import logging

from apiserver import errors
from apiserver.api import API
from apiserver.kinds.base import Obj
from apiserver.registry import DeleteOptions, Registry
from apiserver.server_identity import RENEW_INTERVAL, ServerAddress, ServerIdentity

log = logging.getLogger(__name__)

NAME = "kubernetes"
NAMESPACE = "default"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def desired_service(cluster_ip: str, port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}}


def endpoint_port(servers: list[ServerAddress]) -> int:
    """The Service's targetPort: the port most servers listen on (lowest on a tie). Every server derives
    the same value from the same identity leases, so two servers never flip it back and forth."""
    counts: dict[int, int] = {}
    for server in servers:
        counts[server.port] = counts.get(server.port, 0) + 1
    return min(counts, key=lambda port: (-counts[port], port))


def desired_endpoints(servers: list[ServerAddress]) -> Obj:
    """One subset per port (upstream servers share one port; ours may differ when several run on a host)."""
    by_port: dict[int, list[str]] = {}
    for server in servers:
        by_port.setdefault(server.port, []).append(server.ip)
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ip} for ip in sorted(set(ips))],
                         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
                        for port, ips in sorted(by_port.items())]}


def desired_endpoint_slice(servers: list[ServerAddress]) -> Obj:
    """The servers listening on the Service's targetPort (a slice has one port list for all endpoints)."""
    port = endpoint_port(servers)
    addresses = sorted({s.ip for s in servers if s.port == port})
    family = "IPv6" if ":" in addresses[0] else "IPv4"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {SERVICE_NAME_LABEL: NAME}},
            "addressType": family,
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in addresses],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}


def _differs(current: Obj, desired: Obj) -> bool:
    """Whether a managed field differs: desired's top-level fields, spec keys and labels."""
    for key, value in desired.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if key == "spec":
            if any(current.get("spec", {}).get(k) != v for k, v in value.items()):
                return True
        elif current.get(key) != value:
            return True
    labels = current["metadata"].get("labels") or {}
    return any(labels.get(k) != v for k, v in desired["metadata"].get("labels", {}).items())


def _merged(current: Obj, desired: Obj) -> Obj:
    merged = {**current, **{k: v for k, v in desired.items() if k not in ("metadata", "spec")}}
    if "spec" in desired:
        merged["spec"] = {**current.get("spec", {}), **desired["spec"]}
    merged["metadata"] = {**current["metadata"],
                          "labels": {**(current["metadata"].get("labels") or {}), **desired["metadata"]["labels"]}}
    return merged


async def _ensure(api: API, registry: Registry, desired: Obj) -> None:
    try:
        current = await registry.get(NAMESPACE, NAME)
    except errors.APIError as exc:
        if exc.code != 404:
            raise
        try:
            await api.create(registry, NAMESPACE, desired)
        except errors.APIError as exc:
            if exc.code != 409:
                raise
            return  # another server created it at the same moment: checked again next pass
        log.info("created resource=%s name=%s/%s", registry.info.plural, NAMESPACE, NAME)
        return
    if _differs(current, desired):
        try:
            await api.update(registry, NAMESPACE, NAME, _merged(current, desired))
        except errors.APIError as exc:
            if exc.code != 409:
                raise
            return  # written by another server meanwhile: checked again next pass
        log.info("repaired resource=%s name=%s/%s", registry.info.plural, NAMESPACE, NAME)


async def _ensure_service(api: API, desired: Obj) -> None:
    try:
        await _ensure(api, api.services, desired)
    except errors.APIError as exc:
        if exc.code != 422:
            raise
        current = await api.services.get(NAMESPACE, NAME)
        if (current.get("spec") or {}).get("clusterIP") == desired["spec"]["clusterIP"]:
            raise  # not a ClusterIP change: nothing a recreate would fix
        # Its ClusterIP changed with the range: recreate it, as upstream does.
        log.warning("recreating the kubernetes service error=%s", exc)
        await api.delete(api.services, NAMESPACE, NAME, DeleteOptions())
        await _ensure(api, api.services, desired)


class KubernetesService:
    """Keeps this server's identity lease and, from every live server's lease, the `kubernetes` Service,
    Endpoints and EndpointSlice (upstream's lease endpoint reconciler). Runs on every server."""

    def __init__(self, api: API, address: str, port: int):
        self.api = api
        self.identity = ServerIdentity(api, ServerAddress(address, port))

    async def reconcile(self) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        await self.identity.renew(now)
        await self._ensure_all(await self.identity.live_servers(now))

    async def _ensure_all(self, servers: list[ServerAddress]) -> None:
        await _ensure_service(self.api, desired_service(self.api.service_allocator.ips.first_ip,
                                                        endpoint_port(servers)))
        await _ensure(self.api, self.api.endpoints, desired_endpoints(servers))
        await _ensure(self.api, self.api.endpoint_slices, desired_endpoint_slice(servers))

    async def withdraw(self) -> None:
        """On shutdown, when other servers remain: delete this server's lease and take it out of the
        Endpoints at once (upstream's RemoveEndpoints), rather than after its lease expires. The last
        server leaves things as they are, so a restart of a single server does not empty them."""
        now = datetime.datetime.now(datetime.timezone.utc)
        others = [s for s in await self.identity.live_servers(now) if s != self.identity.address]
        if others:
            await self.identity.delete()
            await self._ensure_all(others)
            log.info("withdrew from the kubernetes endpoints address=%s:%d", self.identity.address.ip,
                     self.identity.address.port)

    async def run(self) -> None:
        """Reconcile every RENEW_INTERVAL seconds; failures are logged and retried. Withdraws when cancelled."""
        try:
            while True:
                try:
                    await self.reconcile()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - retried on the next pass
                    log.exception("kubernetes service reconcile failed")
                await asyncio.sleep(RENEW_INTERVAL)
        except asyncio.CancelledError:
            try:
                await asyncio.wait_for(self.withdraw(), 3)
            except Exception as exc:  # noqa: BLE001 - the lease then expires on its own
                log.warning("withdrawing from the kubernetes endpoints failed error=%r", exc)
            raise
