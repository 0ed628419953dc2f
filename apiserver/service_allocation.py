"""ClusterIP and NodePort allocation for Services.

State is derived, never stored on its own: at start every stored Service's ClusterIPs and NodePorts are
claimed, and after each write of a Service its owner's claims are set to what storage now holds. One
server process owns the SQLite store, so an in-memory table guarded by the event loop (claims are
synchronous) is consistent under concurrent creates, cannot leak across a crash (nothing to repair),
and survives restarts by construction. An HA/etcd backend would need the claims in storage instead.

Dynamic picks prefer the upper part of a range, keeping the lower "static" band for requested
values, as upstream's ServiceIPStaticSubrange / ServiceNodePortStaticSubrange do.
"""
from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from typing import Any

Owner = str  # "<namespace>/<name>"


class AllocationError(Exception):
    pass


class OutOfRange(AllocationError):
    pass


class AlreadyAllocated(AllocationError):
    pass


class RangeFull(AllocationError):
    pass


@dataclass
class OwnedRange:
    """Integers first..last, each owned by at most one owner."""
    first: int
    last: int
    static_band: int  # values first..first+static_band-1 are picked dynamically only when the rest is full
    reserved: frozenset[int] = frozenset()  # never picked dynamically (may still be requested)
    rng: random.Random = field(default_factory=random.Random)
    _owner_of: dict[int, Owner] = field(default_factory=dict)
    _values_of: dict[Owner, set[int]] = field(default_factory=dict)

    def contains(self, value: int) -> bool:
        return self.first <= value <= self.last

    def owner(self, value: int) -> Owner | None:
        return self._owner_of.get(value)

    def values(self, owner: Owner) -> set[int]:
        return set(self._values_of.get(owner, ()))

    def claim(self, value: int, owner: Owner) -> None:
        if not self.contains(value):
            raise OutOfRange(value)
        current = self._owner_of.get(value)
        if current is not None and current != owner:
            raise AlreadyAllocated(value)
        self._owner_of[value] = owner
        self._values_of.setdefault(owner, set()).add(value)

    def release(self, value: int, owner: Owner) -> None:
        if self._owner_of.get(value) == owner:
            del self._owner_of[value]
            values = self._values_of.get(owner)
            if values is not None:
                values.discard(value)
                if not values:
                    del self._values_of[owner]

    def set_values(self, owner: Owner, values: set[int]) -> list[int]:
        """Make `values` exactly the owner's claims; returns values held by another owner (left alone)."""
        for value in self.values(owner) - values:
            self.release(value, owner)
        conflicts = []
        for value in values:
            try:
                self.claim(value, owner)
            except AlreadyAllocated:
                conflicts.append(value)
            except OutOfRange:
                pass  # e.g. a ClusterIP from before a range change: nothing to track
        return conflicts

    def allocate(self, owner: Owner) -> int:
        static_end = min(self.first + self.static_band, self.last + 1)
        for low, high in ((static_end, self.last), (self.first, static_end - 1)):
            value = self._pick(low, high)
            if value is not None:
                self.claim(value, owner)
                return value
        raise RangeFull()

    def _pick(self, low: int, high: int) -> int | None:
        if low > high:
            return None
        for _ in range(32):  # random probes first: ranges are mostly empty
            value = self.rng.randint(low, high)
            if value not in self._owner_of and value not in self.reserved:
                return value
        start = self.rng.randint(low, high)
        for value in (*range(start, high + 1), *range(low, start)):
            if value not in self._owner_of and value not in self.reserved:
                return value
        return None


def static_band(size: int, divisor: int, low: int, high: int) -> int:
    return min(max(low, size // divisor), high)


class ClusterIPRange:
    """Usable addresses of the service CIDR; the first one is kept for the `kubernetes` Service."""

    def __init__(self, cidr: str, rng: random.Random | None = None):
        self.network = ipaddress.ip_network(cidr, strict=True)
        size = self.network.num_addresses
        # IPv4 keeps the network and broadcast addresses out, as upstream does.
        first, last = (1, size - 2) if self.network.version == 4 else (1, size - 1)
        self.range = OwnedRange(first, last, static_band(size, 16, 16, 256), frozenset({1}),
                                rng or random.Random())

    @property
    def first_ip(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def family(self) -> str:
        return "IPv4" if self.network.version == 4 else "IPv6"

    def offset(self, ip: str) -> int | None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if address.version != self.network.version or address not in self.network:
            return -1
        return int(address) - int(self.network.network_address)

    def address(self, offset: int) -> str:
        return str(self.network.network_address + offset)


class NodePortRange:
    def __init__(self, first: int, last: int, rng: random.Random | None = None):
        size = last - first + 1
        self.first, self.last = first, last
        self.range = OwnedRange(first, last, static_band(size, 32, 16, 128), frozenset(), rng or random.Random())

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


def parse_port_range(text: str) -> tuple[int, int]:
    """`30000-32767` (or a single port) as (first, last)."""
    low, _, high = text.partition("-")
    first, last = int(low), int(high or low)
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"invalid port range {text!r}")
    return first, last


def service_cluster_ips(service: dict[str, Any]) -> list[str]:
    spec = service.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [ip for ip in ips if ip and ip != "None"]


def service_node_ports(service: dict[str, Any]) -> set[int]:
    spec = service.get("spec") or {}
    ports = {p.get("nodePort") for p in spec.get("ports") or [] if isinstance(p, dict)}
    ports.add(spec.get("healthCheckNodePort"))
    return {p for p in ports if isinstance(p, int) and p > 0}


class ServiceAllocator:
    """ClusterIPs and NodePorts of all Services, owned by "<namespace>/<name>"."""

    def __init__(self, cluster_ip_range: str = "10.96.0.0/12", node_port_range: tuple[int, int] = (30000, 32767),
                 rng: random.Random | None = None):
        self.ips = ClusterIPRange(cluster_ip_range, rng)
        self.node_ports = NodePortRange(*node_port_range, rng=rng)

    def sync(self, owner: Owner, service: dict[str, Any] | None) -> list[str]:
        """Set the owner's claims to what a stored Service holds (None: deleted). Returns conflicts found."""
        offsets = set()
        for ip in service_cluster_ips(service) if service else []:
            offset = self.ips.offset(ip)
            if offset is not None and offset >= 0:
                offsets.add(offset)
        conflicts = [self.ips.address(o) for o in self.ips.range.set_values(owner, offsets)]
        ports = service_node_ports(service) if service else set()
        conflicts += [str(p) for p in self.node_ports.range.set_values(owner, ports)]
        return conflicts
