"""ClusterDNS: the agent's DNS role. Fed by the shared service informers (agent.proxy.sources);
`run()` puts the listen address on its link and serves until cancelled, retrying with backoff."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from agent.cluster_dns.server import DNS_PORT, DNSServer, Forwarder
from agent.cluster_dns.zone import Zone
from agent.dns import ResolvConf

log = logging.getLogger(__name__)

Obj = dict[str, Any]
RETRY_MIN, RETRY_MAX = 1.0, 30.0


def upstream_servers(host: ResolvConf, listen_address: str) -> list[str]:
    """The host's resolvers, minus our own address (forwarding to ourselves would loop)."""
    return [server for server in host.servers if server != listen_address]


class ClusterDNS:
    def __init__(self, listen_address: str, domain: str, host_resolv: ResolvConf, *,
                 port: int = DNS_PORT, manage_interface: bool = True):
        self.zone = Zone(domain)
        self.listen_address = listen_address
        self.port = port
        self.manage_interface = manage_interface
        self.forwarder = Forwarder(upstream_servers(host_resolv, listen_address))
        self.server: DNSServer | None = None
        self.ready = asyncio.Event()

    # ServiceConsumer (agent.proxy.sources): cheap dictionary updates, never blocking.
    def on_service_change(self, kind: str, service: Obj, _old: Obj | None) -> None:
        if kind == "DELETED":
            meta = service.get("metadata") or {}
            self.zone.delete_service(meta.get("namespace") or "default", meta.get("name") or "")
        else:
            self.zone.set_service(service)

    def on_endpoint_slice_change(self, kind: str, endpoint_slice: Obj, _old: Obj | None) -> None:
        self.zone.set_slice(endpoint_slice, deleted=kind == "DELETED")

    def on_services_synced(self) -> None:
        self.zone.services_synced = True

    def on_endpoint_slices_synced(self) -> None:
        self.zone.slices_synced = True

    async def run(self) -> None:
        delay = RETRY_MIN
        while self.server is None:
            try:
                if self.manage_interface:
                    # pyroute2 only here: the DNS pod (agent.cluster_dns.pod) has no link to manage.
                    from agent.cluster_dns.interface import ensure_dns_address
                    kind = await asyncio.to_thread(ensure_dns_address, self.listen_address)
                    log.info("cluster dns address ready address=%s link_kind=%s", self.listen_address, kind)
                server = DNSServer(self.zone, self.forwarder, self.listen_address, self.port)
                await server.start()
                self.server = server
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - keep trying: pods need DNS eventually
                log.error("cluster dns cannot start address=%s error=%r retry_in=%.0fs",
                          self.listen_address, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
        self.port = self.server.port
        self.ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            await self.server.close()
