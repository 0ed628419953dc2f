"""The agent's service roles (kube-proxy and cluster DNS) built from its config, as root tasks."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from agent.cluster_dns.interface import INTERFACE, remove_dns_link
from agent.cluster_dns.service import ClusterDNS
from agent.config import AgentConfig
from agent.dns import ResolvConf
from agent.netpol.controller import NetworkPolicyController, local_interfaces
from agent.proxy.host import prepare_host
from agent.proxy.proxier import NftProxier, Proxier, cleanup_iptables, cleanup_nftables
from agent.proxy.render import RenderConfig
from agent.proxy.sources import ServiceConsumer, ServiceSources
from netns.iptables import Backend, Iptables, detect_backend
from netns.nftables import Nft, nft_available
from shipmate.kubeclient import KubeClient

log = logging.getLogger(__name__)


def choose_proxy_mode(requested: str, backend: Backend, has_nft: bool) -> str:
    """`--proxy-mode`; by default nftables where the host's iptables is iptables-nft and nftables is installed
    (kube-proxy's nftables mode is GA and what upstream recommends), iptables on legacy hosts."""
    if requested == "nftables" and not has_nft:
        raise RuntimeError("--proxy-mode nftables: the nft command is not installed (apt-get install nftables)")
    if requested:
        return requested
    return "nftables" if has_nft and backend.name == "nft" else "iptables"


async def service_role_tasks(client: KubeClient, cfg: AgentConfig,
                             host_resolv: ResolvConf) -> list[tuple[str, Coroutine[Any, Any, None]]]:
    """(task name, coroutine) for the proxy, the in-agent cluster DNS (with --serve-cluster-dns), the
    informers feeding both, and NetworkPolicy enforcement (unless --disable-network-policy)."""
    setup = await asyncio.to_thread(prepare_host)
    backend = await detect_backend()
    render_config = RenderConfig(cluster_cidr=cfg.cluster_cidr, node_name=cfg.node_name,
                                 masquerade_all=cfg.masquerade_all or not setup.bridge_netfilter,
                                 localhost_node_ports=setup.route_localnet)
    mode = choose_proxy_mode(cfg.proxy_mode, backend, nft_available())
    timing = {"min_sync_period": cfg.iptables_min_sync_period, "sync_period": cfg.iptables_sync_period}
    if mode == "nftables":
        # Rules an agent in iptables mode left would DNAT first (both see the packet): remove them.
        removed = await cleanup_iptables(backends=[backend], proxy_only=True)
        proxier: Proxier = NftProxier(Nft(), render_config, **timing)
    else:
        removed = await cleanup_nftables()
        proxier = Proxier(Iptables(backend), render_config, **timing)
    log.info("proxy starting mode=%s backend=%s cluster_cidr=%s masquerade_all=%s removed=%s", mode, backend.name,
             cfg.cluster_cidr, render_config.masquerade_all, ",".join(removed) or "none")
    consumers: list[ServiceConsumer] = [proxier]
    tasks: list[tuple[str, Coroutine[Any, Any, None]]] = [("proxy", proxier.run())]
    if cfg.serve_cluster_dns:
        dns = ClusterDNS(cfg.cluster_dns, cfg.cluster_domain, host_resolv)
        consumers.append(dns)
        tasks.append(("cluster-dns", dns.run()))
    elif await asyncio.to_thread(remove_dns_link):
        # the DNS runs as pods now (shipmate.addons): the address an earlier agent served is gone
        log.info("removed the in-agent cluster dns link interface=%s", INTERFACE)
    tasks.append(("service-informers", ServiceSources(client, consumers).run()))
    if cfg.network_policy:
        netpol = NetworkPolicyController(client, Iptables(backend), cfg.node_name,
                                         interfaces=lambda: local_interfaces(cfg.ipam_dir))
        tasks.append(("network-policy", netpol.run()))
    return tasks
