"""Netlink appliers (pyroute2) for the pod network: bridge, veth pair, addresses, routes.

Work inside a pod's network namespace runs on a short-lived thread that `setns(2)`s itself into
it: the netns is per thread, so the rest of the process (the agent's event loop, other requests)
stays in the node's namespace and nothing forks. pyroute2 0.9's own `IPRoute(netns=...)` forks a
child to create each socket, which is slower and unsafe in the threaded, gRPC-using agent.
"""
from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from netns.rtnl import IPRoute, NetlinkError

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
BRIDGE_PORT_MODE_HAIRPIN = 1
IP_FORWARD_PATH = "/proc/sys/net/ipv4/ip_forward"
MAIN_TABLE = 254

_libc = ctypes.CDLL(None, use_errno=True)


def run_in_netns(netns_path: str, work: Callable[[], T]) -> T:
    """Runs `work` on a fresh thread that has joined the network namespace at `netns_path`.

    The thread ends afterwards, so no thread is ever left behind in a foreign namespace.
    """
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    outcome: dict[str, object] = {}

    def body() -> None:
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({netns_path}): {os.strerror(err)}")
            outcome["value"] = work()
        except BaseException as e:  # handed to the caller's thread
            outcome["error"] = e

    try:
        thread = threading.Thread(target=body, name=f"netns:{os.path.basename(netns_path)}")
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def enable_ip_forward() -> None:
    """The node routes between the bridge and its uplink, as a CNI gateway bridge requires."""
    with open(IP_FORWARD_PATH, "r+", encoding="ascii") as f:
        if f.read().strip() != "1":
            f.seek(0)
            f.write("1\n")


def _lookup(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def link_mac(ipr: IPRoute, index: int) -> str:
    return ipr.link("get", index=index)[0].get_attr("IFLA_ADDRESS")


def ensure_bridge(ipr: IPRoute, name: str, gateway: ipaddress.IPv4Interface, mac: str,
                  mtu: int | None) -> int:
    """Creates the bridge if missing (racing ADDs are fine), with the gateway address, up."""
    index = _lookup(ipr, name)
    if index is None:
        spec: dict[str, object] = {"ifname": name, "kind": "bridge", "address": mac}
        if mtu:
            spec["mtu"] = mtu
        try:
            ipr.link("add", **spec)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise
        index = _lookup(ipr, name)
        if index is None:
            raise RuntimeError(f"bridge {name} vanished right after creation")
    _add_address(ipr, index, gateway)
    ipr.link("set", index=index, state="up")
    return index


def _add_address(ipr: IPRoute, index: int, address: ipaddress.IPv4Interface) -> None:
    """Adds the address with its broadcast; an address already there (a repeated ADD) is fine."""
    try:
        ipr.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen,
                 broadcast=str(address.network.broadcast_address))
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise


def delete_link(ipr: IPRoute, name: str) -> bool:
    """Deletes a link by name; a missing link is not an error. Deleting one veth end removes both."""
    index = _lookup(ipr, name)
    if index is None:
        return False
    try:
        ipr.link("del", index=index)
    except NetlinkError as e:
        if e.code not in (errno.ENODEV, errno.ENOENT):
            raise
        return False
    return True


def _delete_pod_link(ifname: str) -> None:
    with IPRoute() as ipr:
        delete_link(ipr, ifname)


def create_veth(ipr: IPRoute, host_name: str, pod_ifname: str, netns_path: str, pod_mac: str,
                mtu: int | None) -> int:
    """Creates the pair with the pod end born inside the sandbox netns under its final name.

    A leftover pair of an earlier ADD for the same container is replaced.
    """
    delete_link(ipr, host_name)
    peer: dict[str, object] = {"ifname": pod_ifname, "address": pod_mac}
    spec: dict[str, object] = {"ifname": host_name, "kind": "veth"}
    if mtu:
        peer["mtu"] = mtu
        spec["mtu"] = mtu
    for attempt in range(2):
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ipr.link("add", **spec, peer={**peer, "net_ns_fd": fd})
            break
        except NetlinkError as e:
            if e.code != errno.EEXIST or attempt:
                raise
            # The sandbox already has an interface of that name (a half-done earlier ADD).
            run_in_netns(netns_path, lambda: _delete_pod_link(pod_ifname))
        finally:
            os.close(fd)
    index = _lookup(ipr, host_name)
    if index is None:
        raise RuntimeError(f"veth {host_name} vanished right after creation")
    return index


def attach_to_bridge(ipr: IPRoute, index: int, bridge_index: int, hairpin: bool) -> None:
    ipr.link("set", index=index, master=bridge_index)
    if hairpin:
        # A pod reaching itself through a service VIP leaves and re-enters by the same port.
        ipr.brport("set", index=index, mode=BRIDGE_PORT_MODE_HAIRPIN)
    ipr.link("set", index=index, state="up")


def configure_pod_interface(ifname: str, address: ipaddress.IPv4Interface,
                            gateway: ipaddress.IPv4Address) -> None:
    """Inside the sandbox netns: address, link up, default route via the bridge, lo up."""
    with IPRoute() as ipr:
        index = _lookup(ipr, ifname)
        if index is None:
            raise RuntimeError(f"interface {ifname} missing in the sandbox after creation")
        _add_address(ipr, index, address)
        ipr.link("set", index=index, state="up")
        _loopback_up(ipr)
        ipr.route("replace", dst="0.0.0.0/0", gateway=str(gateway), oif=index)


def _loopback_up(ipr: IPRoute) -> int:
    index = _lookup(ipr, "lo")
    if index is None:
        raise RuntimeError("no loopback interface in the sandbox")
    ipr.link("set", index=index, state="up")
    return index


def loopback_up() -> list[str]:
    """Inside the sandbox netns: brings lo up, returns its addresses (prefix form)."""
    with IPRoute() as ipr:
        index = _loopback_up(ipr)
        return [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.addr("dump", index=index)]


def host_side_problems(ipr: IPRoute, host_name: str, bridge: str, hairpin: bool) -> list[str]:
    """What is wrong with the node side of a pod's attachment (empty when all is well)."""
    index = _lookup(ipr, host_name)
    bridge_index = _lookup(ipr, bridge)
    if bridge_index is None:
        return [f"bridge {bridge} does not exist"]
    if index is None:
        return [f"host veth {host_name} does not exist"]
    link = ipr.link("get", index=index)[0]
    problems = []
    if link.get_attr("IFLA_MASTER") != bridge_index:
        problems.append(f"host veth {host_name} is not attached to {bridge}")
    if not link["flags"] & 1:  # IFF_UP
        problems.append(f"host veth {host_name} is down")
    if hairpin:
        port = ipr.brport("show", index=index)[0].get_attr("IFLA_PROTINFO")
        if port is None or port.get_attr("IFLA_BRPORT_MODE") != BRIDGE_PORT_MODE_HAIRPIN:
            problems.append(f"hairpin mode is off on {host_name}")
    return problems


def pod_side_problems(ifname: str, address: ipaddress.IPv4Interface,
                      gateway: ipaddress.IPv4Address) -> list[str]:
    """Inside the sandbox netns: what is wrong with interface, address, default route, lo."""
    with IPRoute() as ipr:
        index = _lookup(ipr, ifname)
        if index is None:
            return [f"interface {ifname} does not exist in the sandbox"]
        problems = []
        if not ipr.link("get", index=index)[0]["flags"] & 1:
            problems.append(f"interface {ifname} is down")
        addresses = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.addr("dump", index=index)}
        if (str(address.ip), address.network.prefixlen) not in addresses:
            problems.append(f"interface {ifname} lacks address {address}")
        defaults = [r for r in ipr.route("dump", family=2)
                    if r["dst_len"] == 0 and r.get_attr("RTA_TABLE") == MAIN_TABLE]
        if not any(r.get_attr("RTA_GATEWAY") == str(gateway) and r.get_attr("RTA_OIF") == index
                   for r in defaults):
            problems.append(f"no default route via {gateway} on {ifname}")
        lo = _lookup(ipr, "lo")
        if lo is None or not ipr.link("get", index=lo)[0]["flags"] & 1:
            problems.append("loopback is down")
        return problems
