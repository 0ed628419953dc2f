"""Kernel settings the proxy's rules rely on, applied once at agent start.

A pod reaching a cluster IP whose backend sits on the same bridge gets its reply straight over
the bridge: without `bridge-nf-call-iptables` that reply never meets conntrack, is not reverse-
DNATed, and the client drops it. kube-proxy requires br_netfilter for that reason. This kernel
has it built in (no modprobe needed); where it is missing the proxy falls back to masquerading
all service traffic, which routes replies through the node instead.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

BRIDGE_NF_CALL_IPTABLES = "/proc/sys/net/bridge/bridge-nf-call-iptables"
# DNAT of 127.0.0.1:<nodePort> to a pod needs the kernel to route packets with loopback sources.
ROUTE_LOCALNET = "/proc/sys/net/ipv4/conf/all/route_localnet"


@dataclass(frozen=True)
class HostNetworkSetup:
    bridge_netfilter: bool   # bridged IPv4 traffic passes through iptables
    route_localnet: bool     # NodePorts can answer on 127.0.0.1


def _write_sysctl(path: str, value: str) -> bool:
    """Sets a /proc/sys value; False when the file does not exist (the feature is absent)."""
    try:
        with open(path, "r+", encoding="ascii") as handle:
            if handle.read().strip() != value:
                handle.seek(0)
                handle.write(value + "\n")
        return True
    except FileNotFoundError:
        return False


def prepare_host(bridge_nf_path: str = BRIDGE_NF_CALL_IPTABLES,
                 route_localnet_path: str = ROUTE_LOCALNET) -> HostNetworkSetup:
    bridge_netfilter = _write_sysctl(bridge_nf_path, "1")
    if not bridge_netfilter:
        log.warning("br_netfilter is not loaded (%s missing): masquerading all service traffic instead",
                    bridge_nf_path)
    route_localnet = _write_sysctl(route_localnet_path, "1")
    if not route_localnet:
        log.warning("%s missing: NodePorts will not answer on 127.0.0.1", route_localnet_path)
    return HostNetworkSetup(bridge_netfilter=bridge_netfilter, route_localnet=route_localnet)
