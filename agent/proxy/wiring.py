"""The agent's service roles (kube-proxy and cluster DNS) built from its config, as root tasks."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from agent.cluster_dns.service import ClusterDNS
from agent.config import AgentConfig
from agent.dns import ResolvConf
from agent.proxy.host import prepare_host
from agent.proxy.proxier import Proxier
from agent.proxy.render import RenderConfig
from agent.proxy.sources import ServiceConsumer, ServiceSources
from netns.iptables import Iptables, detect_backend
from shipmate.kubeclient import KubeClient

log = logging.getLogger(__name__)


async def service_role_tasks(client: KubeClient, cfg: AgentConfig,
                             host_resolv: ResolvConf) -> list[tuple[str, Coroutine[Any, Any, None]]]:
    """(task name, coroutine) for the proxy, the cluster DNS (unless --cluster-dns is empty) and
    the informers feeding both."""
    setup = await asyncio.to_thread(prepare_host)
    backend = await detect_backend()
    render_config = RenderConfig(cluster_cidr=cfg.cluster_cidr, node_name=cfg.node_name,
                                 masquerade_all=cfg.masquerade_all or not setup.bridge_netfilter,
                                 localhost_node_ports=setup.route_localnet)
    proxier = Proxier(Iptables(backend), render_config, min_sync_period=cfg.iptables_min_sync_period,
                      sync_period=cfg.iptables_sync_period)
    log.info("proxy starting backend=%s cluster_cidr=%s masquerade_all=%s", backend.name, cfg.cluster_cidr,
             render_config.masquerade_all)
    consumers: list[ServiceConsumer] = [proxier]
    tasks: list[tuple[str, Coroutine[Any, Any, None]]] = [("proxy", proxier.run())]
    if cfg.cluster_dns:
        dns = ClusterDNS(cfg.cluster_dns, cfg.cluster_domain, host_resolv)
        consumers.append(dns)
        tasks.append(("cluster-dns", dns.run()))
    tasks.append(("service-informers", ServiceSources(client, consumers).run()))
    return tasks
