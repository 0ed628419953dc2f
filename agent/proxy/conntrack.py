"""Stale UDP conntrack entries after a sync, as kube-proxy clears them.

UDP has no connection to end: a flow DNATed to an endpoint that has gone keeps being sent there
by its conntrack entry, and a flow that hit a service while it had no endpoint keeps its
un-NATed entry (black-holed) after endpoints appear. After each sync the proxy deletes:
  * flows to a cluster IP / node port that were DNATed to an endpoint no longer used;
  * every flow to a cluster IP / node port of a UDP service that just got its first endpoint.
`stale_udp_flows` is pure; `clear_flows` runs `conntrack -D` for each filter.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from agent.proxy.model import ServicePortName
from agent.proxy.render import ProxyState, usable_endpoints
from netns.iptables import netns_prefix

log = logging.getLogger(__name__)

Filter = tuple[str, ...]   # `conntrack -D` arguments


def stale_udp_flows(previous: ProxyState, current: ProxyState, changed: Iterable[ServicePortName]) -> list[Filter]:
    filters: list[Filter] = []
    for name in sorted(set(changed)):
        old_sp, new_sp = previous.services.get(name), current.services.get(name)
        sp = old_sp or new_sp
        if sp is None or sp.protocol != "udp":
            continue
        # By ip:port, as upstream: an endpoint whose port changed is stale too; flows match its IP.
        old_eps = {(ep.ip, ep.port) for ep in usable_endpoints(previous.endpoints.get(name, ()))} if old_sp else set()
        new_eps = {(ep.ip, ep.port) for ep in usable_endpoints(current.endpoints.get(name, ()))} if new_sp else set()
        if new_sp is not None and new_eps and not old_eps:
            filters.append(("-p", "udp", "--orig-dst", new_sp.cluster_ip))
            if new_sp.node_port:
                filters.append(("-p", "udp", "--orig-port-dst", str(new_sp.node_port)))
        for ip in sorted({ip for ip, _ in old_eps - new_eps}):
            filters.append(("-p", "udp", "--orig-dst", sp.cluster_ip, "--dst-nat", ip))
            if sp.node_port:
                filters.append(("-p", "udp", "--orig-port-dst", str(sp.node_port), "--dst-nat", ip))
    return list(dict.fromkeys(filters))


async def clear_flows(filters: Iterable[Filter], netns: str | None = None) -> None:
    """`conntrack -D` per filter; "no entry matched" (exit 1 with 0 flows deleted) is success."""
    for flow in filters:
        proc = await asyncio.create_subprocess_exec(
            *netns_prefix(netns), "conntrack", "-D", *flow, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        message = err.decode(errors="replace").strip()
        if proc.returncode != 0 and "0 flow entries have been deleted" not in message:
            log.warning("conntrack -D failed filter=%s rc=%d error=%s", " ".join(flow), proc.returncode, message)
