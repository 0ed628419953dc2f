"""The node-local address the cluster DNS listens on, on its own link in the host netns (pyroute2).

Pods reach it through their default route (the bridge gateway), so no route is needed: an
address on any local link is delivered locally. The link is a `dummy`; kernels built without
the dummy driver (this project's CI kernel) get a bridge with no ports instead, which is equally
inert: always up, carrying nothing but the address.
"""
from __future__ import annotations

import errno
import logging

from netns.rtnl import IPRoute, NetlinkError

log = logging.getLogger(__name__)

INTERFACE = "shipmate-dns"
LINK_KINDS = ("dummy", "bridge")


def ensure_dns_address(address: str, interface: str = INTERFACE) -> str:
    """Creates `interface` if missing, with `address`/32, up; returns the link kind. Idempotent."""
    with IPRoute() as ipr:
        kind = _ensure_link(ipr, interface)
        index = ipr.link_lookup(ifname=interface)[0]
        try:
            ipr.addr("add", index=index, address=address, prefixlen=32)
        except NetlinkError as error:
            if error.code != errno.EEXIST:
                raise
        ipr.link("set", index=index, state="up")
        return kind


def _ensure_link(ipr: IPRoute, interface: str) -> str:
    found = ipr.link_lookup(ifname=interface)
    if found:
        info = ipr.link("get", index=found[0])[0].get_attr("IFLA_LINKINFO")
        return info.get_attr("IFLA_INFO_KIND") if info is not None else "unknown"
    for kind in LINK_KINDS:
        try:
            ipr.link("add", ifname=interface, kind=kind)
            return kind
        except NetlinkError as error:
            if error.code == errno.EEXIST:
                return kind
            if error.code not in (errno.EOPNOTSUPP, errno.ENOENT, errno.EINVAL):
                raise
            log.info("link kind unavailable kind=%s interface=%s error=%s", kind, interface, error)
    raise RuntimeError(f"cannot create {interface}: the kernel supports none of {', '.join(LINK_KINDS)}")


def remove_dns_link(interface: str = INTERFACE) -> bool:
    """Deletes `interface` (left by an agent that served DNS itself); True if there was one."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=interface)
        if not found:
            return False
        ipr.link("del", index=found[0])
        return True
