"""Facts about the host's network both daemons need (the node IP, the server's advertised address)."""
from __future__ import annotations

import socket

import psutil


def default_route_interface(proc_net_route: str = "/proc/net/route") -> str | None:
    """The interface carrying the IPv4 default route, from the kernel's routing table."""
    try:
        with open(proc_net_route) as handle:
            lines = handle.read().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            return fields[0]
    return None


def default_route_address() -> str:
    """The IPv4 address of the default route's interface (127.0.0.1 when there is none)."""
    interface = default_route_interface()
    for address in psutil.net_if_addrs().get(interface or "", []):
        if address.family == socket.AF_INET:
            return address.address
    return "127.0.0.1"
