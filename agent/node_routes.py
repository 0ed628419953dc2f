"""Cross-node pod network, host-gw style: a route to every other Node's podCIDR via its InternalIP,
and masquerade for pod traffic leaving the cluster CIDR.

`desired_routes` and `masquerade_rules` are pure. `RouteTable` applies routes with pyroute2 in the
main table, tagged with our own route protocol number so we only ever list, replace or delete our
routes. `NodeRoutes` is the level-triggered loop a Node informer pokes: it recomputes from the whole
Node list, and resyncs periodically so a route someone deleted comes back.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from netns.iptables import Iptables, JumpRule, detect_backend

log = logging.getLogger(__name__)

Obj = dict[str, Any]
# Routing protocol numbers above RTPROT_STATIC (4) belong to routing daemons; 153 is not in
# iproute2's rt_protos list. `ip route show proto 153` shows our routes.
ROUTE_PROTOCOL = 153
MASQUERADE_CHAIN = "SHIPMATE-POSTROUTING"
MASQUERADE_JUMP = JumpRule("nat", "POSTROUTING",
                           ("-m", "comment", "--comment", "shipmate pod traffic leaving the cluster",
                            "-j", MASQUERADE_CHAIN))
RESYNC_PERIOD = 30.0
RETRY_INITIAL, RETRY_MAX = 0.5, 30.0


# ---------------------------------------------------------------- pure

def _ipv4_pod_cidr(node: Obj) -> ipaddress.IPv4Network | None:
    spec = node.get("spec") or {}
    for cidr in [*(spec.get("podCIDRs") or []), spec.get("podCIDR") or ""]:
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            continue
        if network.version == 4:
            return network
    return None


def _internal_ipv4(node: Obj) -> ipaddress.IPv4Address | None:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") != "InternalIP":
            continue
        try:
            ip = ipaddress.ip_address(address.get("address", ""))
        except ValueError:
            continue
        if ip.version == 4:
            return ip
    return None


def desired_routes(nodes: Iterable[Obj], own_node: str, cluster_cidr: str) -> dict[str, str]:
    """podCIDR → gateway (the owning node's InternalIP) for every other node that has both.

    A route sends pod traffic to the node that claims the subnet, so a claim is only believed when the
    server could have made it: inside the cluster CIDR, overlapping neither our podCIDR nor another
    node's. Anything else is logged and not routed: a podCIDR over the Service range, the node network or
    another node's pods would hand that traffic to whoever wrote it. Two nodes overlapping each other both
    lose their route (we cannot tell which claim is the real one), independent of list order.
    """
    cluster = ipaddress.ip_network(cluster_cidr, strict=False)
    own_cidr: ipaddress.IPv4Network | None = None
    candidates: list[tuple[str, ipaddress.IPv4Network, ipaddress.IPv4Address]] = []
    for node in nodes:
        name = (node.get("metadata") or {}).get("name", "")
        cidr = _ipv4_pod_cidr(node)
        if name == own_node:
            own_cidr = cidr
            continue
        gateway = _internal_ipv4(node)
        if cidr is not None and gateway is not None:
            candidates.append((name, cidr, gateway))
    candidates.sort(key=lambda c: c[0])
    plausible = []
    for name, cidr, gateway in candidates:
        if cluster.version != cidr.version or not cidr.subnet_of(cluster):  # type: ignore[arg-type]
            log.warning("node podCIDR outside the cluster CIDR; not routed node=%s pod_cidr=%s cluster_cidr=%s",
                        name, cidr, cluster)
        elif own_cidr is not None and cidr.overlaps(own_cidr):
            log.warning("node podCIDR overlaps ours; not routed node=%s pod_cidr=%s", name, cidr)
        else:
            plausible.append((name, cidr, gateway))
    routes: dict[str, str] = {}
    for name, cidr, gateway in plausible:
        others = [other for other, other_cidr, _ in plausible if other != name and cidr.overlaps(other_cidr)]
        if others:
            log.warning("node podCIDR overlaps another node's; not routed node=%s pod_cidr=%s other=%s",
                        name, cidr, ",".join(others))
            continue
        routes[str(cidr)] = str(gateway)
    return routes


@dataclass(frozen=True)
class RouteDiff:
    replace: dict[str, str]     # destination → gateway, missing or pointing elsewhere
    delete: list[str]           # destinations we own that no node wants any more


def route_diff(desired: dict[str, str], observed: dict[str, str]) -> RouteDiff:
    replace = {dst: gw for dst, gw in desired.items() if observed.get(dst) != gw}
    return RouteDiff(replace, sorted(dst for dst in observed if dst not in desired))


def masquerade_rules(cluster_cidr: str) -> str:
    """iptables-restore text (nat table, --noflush): our chain, declared (hence flushed) and refilled.

    Pod-to-pod traffic inside the cluster CIDR keeps its source address; pod traffic to anywhere
    else (other hosts, the internet) is masqueraded to the node's address. Multicast is left alone.
    """
    cidr = str(ipaddress.IPv4Network(cluster_cidr))
    return "\n".join([
        "*nat",
        f":{MASQUERADE_CHAIN} - [0:0]",
        f"-A {MASQUERADE_CHAIN} -s {cidr} -d {cidr} -m comment --comment \"pod to pod: no NAT\" -j RETURN",
        f"-A {MASQUERADE_CHAIN} -s {cidr} -d 224.0.0.0/4 -j RETURN",
        f"-A {MASQUERADE_CHAIN} -s {cidr} -m comment --comment \"pod to outside the cluster\" -j MASQUERADE --random-fully",
        "COMMIT",
        "",
    ])


def jump_rule_text(jump: JumpRule) -> str:
    """The jump appended to a built-in chain, as one restore transaction."""
    spec = " ".join(f'"{part}"' if " " in part else part for part in jump.spec)
    return f"*{jump.table}\n-A {jump.chain} {spec}\nCOMMIT\n"


# ---------------------------------------------------------------- applying

class RouteTable:
    """Our routes in the main table of the current (or a named) network namespace. Blocking
    (netlink): call from a thread."""

    def __init__(self, netns: str | None = None, protocol: int = ROUTE_PROTOCOL):
        self.netns = netns
        self.protocol = protocol

    def _ipr(self) -> Any:
        from netns.rtnl import IPRoute
        return IPRoute(netns=self.netns) if self.netns else IPRoute()

    def observed(self) -> dict[str, str]:
        with self._ipr() as ipr:
            found = {}
            for route in ipr.get_routes(family=2, table=254, proto=self.protocol):
                dst = route.get_attr("RTA_DST")
                gateway = route.get_attr("RTA_GATEWAY")
                if dst is not None and gateway is not None:
                    found[f"{dst}/{route['dst_len']}"] = gateway
            return found

    def apply(self, diff: RouteDiff) -> list[str]:
        """Applies the diff; returns one message per route that failed (the rest still applied)."""
        errors = []
        with self._ipr() as ipr:
            for dst, gateway in sorted(diff.replace.items()):
                try:
                    ipr.route("replace", dst=dst, gateway=gateway, proto=self.protocol, table=254)
                except Exception as error:  # noqa: BLE001 - NetlinkError: e.g. gateway not on a link
                    errors.append(f"replace {dst} via {gateway}: {error}")
            for dst in diff.delete:
                try:
                    ipr.route("del", dst=dst, proto=self.protocol, table=254)
                except Exception as error:  # noqa: BLE001
                    errors.append(f"delete {dst}: {error}")
        return errors


class NodeRoutes:
    """Keeps routes to the other nodes' podCIDRs and the masquerade chain in place."""

    def __init__(self, node_name: str, cluster_cidr: str, nodes: Callable[[], Iterable[Obj]],
                 routes: RouteTable | None = None, iptables: Iptables | None = None, netns: str | None = None):
        self.node_name = node_name
        self.cluster_cidr = cluster_cidr
        self.nodes = nodes
        self.netns = netns
        self.routes = routes or RouteTable(netns)
        self.iptables = iptables
        self.wake = asyncio.Event()
        self.masquerade_synced_at: float | None = None

    def on_node_change(self, _change: str, _node: Obj, _old: Obj | None) -> None:
        self.wake.set()

    async def sync_routes(self) -> dict[str, str]:
        desired = desired_routes(list(self.nodes()), self.node_name, self.cluster_cidr)
        observed = await asyncio.to_thread(self.routes.observed)
        diff = route_diff(desired, observed)
        if diff.replace or diff.delete:
            errors = await asyncio.to_thread(self.routes.apply, diff)
            for dst, gateway in sorted(diff.replace.items()):
                log.info("node route set node=%s pod_cidr=%s via=%s", self.node_name, dst, gateway)
            for dst in diff.delete:
                log.info("node route removed node=%s pod_cidr=%s", self.node_name, dst)
            if errors:
                raise RuntimeError("; ".join(errors))
        return desired

    async def sync_masquerade(self) -> None:
        if self.iptables is None:
            self.iptables = Iptables(await detect_backend(self.netns), self.netns)
        await self.iptables.restore(masquerade_rules(self.cluster_cidr))
        for jump in await self.iptables.missing_jumps([MASQUERADE_JUMP]):
            await self.iptables.restore(jump_rule_text(jump))
        if self.masquerade_synced_at is None:
            log.info("pod masquerade in place node=%s cluster_cidr=%s chain=%s", self.node_name,
                     self.cluster_cidr, MASQUERADE_CHAIN)
        self.masquerade_synced_at = time.monotonic()

    def masquerade_due(self) -> bool:
        """The chain is rewritten at start and every RESYNC_PERIOD, not on every Node change."""
        return self.masquerade_synced_at is None or time.monotonic() - self.masquerade_synced_at >= RESYNC_PERIOD

    async def run(self, synced: asyncio.Event | None = None) -> None:
        """Level-triggered: every wake-up or RESYNC_PERIOD recomputes everything; a failing part
        (routes or masquerade) is retried with backoff without holding up the other."""
        if synced is not None:
            await synced.wait()
        delay = RETRY_INITIAL
        while True:
            self.wake.clear()
            failed = False
            steps = [("routes", self.sync_routes)]
            if self.masquerade_due():
                steps.insert(0, ("masquerade", self.sync_masquerade))
            for what, step in steps:
                try:
                    await step()
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # noqa: BLE001 - keep reconciling; say why and back off
                    failed = True
                    log.warning("node %s sync failed node=%s error=%s retry_in=%.1fs", what, self.node_name,
                                error, delay)
            if failed:
                timeout, delay = delay, min(delay * 2, RETRY_MAX)
            else:
                timeout, delay = RESYNC_PERIOD, RETRY_INITIAL
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
