"""ClusterIP and NodePort allocation for Services.

Two layers. In memory (`ServiceAllocator`), every Service's ClusterIPs and NodePorts, owned by
"<namespace>/<name>": admission picks and checks values there synchronously (claims are made on the event
loop, so concurrent creates in one process never pick one value twice). It is derived state: rebuilt
from the stored Services at start, set to what storage holds after each local write, and kept current
with the other servers' writes by following the Services watch (`follow_services`).

In the shared store (`ClaimingStorage`, claims.py): before a Service is written, each of its values is
claimed by an atomic create of `/shipmate/allocations/serviceips/<ip>` or `.../servicenodeports/<port>`,
so two servers on one etcd can never both store a Service with the same value: the loser's write fails
with ClaimConflict, and `API` retries a dynamic pick or answers 422 for a requested value.

Dynamic picks prefer the upper part of a range, keeping the lower "static" band for requested
values, as upstream's ServiceIPStaticSubrange / ServiceNodePortStaticSubrange do.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from apiserver.allocation.claims import Claims, Holder, claim_key
from apiserver.storage.interface import KeyValue, Storage
from shipmate.informer import Informer

Obj = dict[str, Any]

log = logging.getLogger(__name__)

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

    def owners(self) -> set[Owner]:
        return set(self._values_of)

    def full(self) -> bool:
        taken = len(self._owner_of) + sum(1 for v in self.reserved if v not in self._owner_of and self.contains(v))
        return taken >= self.last - self.first + 1

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

    def exhausted(self) -> bool:
        return self.ips.range.full() or self.node_ports.range.full()

    def relearn(self, services: list[dict[str, Any]], claims: list[tuple[str, str, Owner]],
                keep: Callable[[Owner], bool]) -> None:
        """Set every owner's values to what the store says (its stored Service, plus the claims it holds for
        a write in flight elsewhere); owners for which `keep` is true (local writes in flight) are left."""
        ips: dict[Owner, set[int]] = {}
        ports: dict[Owner, set[int]] = {}
        held = list(claims)
        for service in services:
            owner, _ = _owner_and_uid(service)
            held += [(kind, value, owner) for kind, value in _claimed_values(service)]
        for kind, value, owner in held:
            ips.setdefault(owner, set())
            ports.setdefault(owner, set())
            if kind == SERVICE_IPS:
                offset = self.ips.offset(value)
                if offset is not None and offset >= 0:
                    ips[owner].add(offset)
            elif value.isdigit():
                ports[owner].add(int(value))
        owners = [o for o in self.ips.range.owners() | self.node_ports.range.owners() | set(ips) if not keep(o)]
        for owned, wanted in ((self.ips.range, ips), (self.node_ports.range, ports)):
            for owner in owners:  # releases first, so a value that changed hands is free when claimed below
                owned.set_values(owner, owned.values(owner) & wanted.get(owner, set()))
            for owner in owners:
                owned.set_values(owner, wanted.get(owner, set()))

    def note_taken(self, kind: str, value: str, holder: Owner, picked_by: Owner = "") -> None:
        """Another server holds a value (claimed in the shared store): record it as the holder's, taking it
        from `picked_by` if this server had picked it, so the next pick avoids it."""
        if kind == SERVICE_IPS:
            offset = self.ips.offset(value)
            if offset is None or offset < 0:
                return
            owned: OwnedRange = self.ips.range
        elif value.isdigit():
            offset, owned = int(value), self.node_ports.range
        else:
            return
        if picked_by:
            owned.release(offset, picked_by)
        try:
            owned.claim(offset, holder)
        except AllocationError:
            pass  # held by another owner here too, or outside the range


SERVICE_IPS = "serviceips"
SERVICE_NODE_PORTS = "servicenodeports"


def _owner_and_uid(service: Obj) -> tuple[Owner, str]:
    meta = service.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}", str(meta.get("uid") or "")


def _claimed_values(service: Obj) -> list[tuple[str, str]]:
    """(claim kind, value) for every ClusterIP and NodePort the Service holds."""
    return [*((SERVICE_IPS, ip) for ip in service_cluster_ips(service)),
            *((SERVICE_NODE_PORTS, str(port)) for port in sorted(service_node_ports(service)))]


class ClaimingStorage:
    """The Services registry's storage: each write first claims the Service's values in the shared store
    and, once done, releases the values it no longer holds. Everything else passes through."""

    def __init__(self, inner: Storage, service_key: Callable[[str, str], str]):
        self._inner = inner
        self._service_key = service_key
        self._claims = {kind: Claims(inner, kind, self._holder_is_live) for kind in (SERVICE_IPS, SERVICE_NODE_PORTS)}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def claimed(self) -> list[tuple[str, str, Owner]]:
        """Every claim in the shared store as (kind, value, holder)."""
        found = []
        for kind in (SERVICE_IPS, SERVICE_NODE_PORTS):
            kvs, _ = await self._inner.list(claim_key(kind, ""))
            found += [(kind, kv.key.rsplit("/", 1)[1], Holder.decode(kv.value).owner) for kv in kvs]
        return found

    async def _holder_is_live(self, holder: Holder, value: str) -> bool:
        namespace, _, name = holder.owner.partition("/")
        kv = await self._inner.get(self._service_key(namespace, name))
        if kv is None:
            return False
        service = json.loads(kv.value)
        return _owner_and_uid(service)[1] == holder.uid and any(v == value for _, v in _claimed_values(service))

    async def _claim(self, service: Obj) -> list[tuple[str, str]]:
        owner, uid = _owner_and_uid(service)
        newly: list[tuple[str, str]] = []
        try:
            for kind, value in _claimed_values(service):
                if await self._claims[kind].claim(value, owner, uid):
                    newly.append((kind, value))
        except BaseException:
            await self._release(service, newly)
            raise
        return newly

    async def _release(self, service: Obj, values: list[tuple[str, str]]) -> None:
        owner, uid = _owner_and_uid(service)
        for kind, value in values:
            try:
                await self._claims[kind].release(value, owner, uid)
            except Exception as exc:  # noqa: BLE001 - a leaked claim turns stale and is taken over later
                log.warning("allocation claim not released kind=%s value=%s owner=%s error=%r", kind, value,
                            owner, exc)

    async def _write(self, service: Obj, old: Obj | None, write) -> KeyValue:
        newly = await self._claim(service)
        try:
            kv = await write()
        except BaseException:
            await asyncio.shield(self._release(service, newly))
            raise
        if old is not None:
            kept = set(_claimed_values(service))
            await self._release(old, [v for v in _claimed_values(old) if v not in kept])
        return kv

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._write(json.loads(value), None, lambda: self._inner.create(key, value))

    async def update(self, key: str, value: bytes, expected_revision: int | None) -> KeyValue:
        current = await self._inner.get(key)
        old = json.loads(current.value) if current else None
        return await self._write(json.loads(value), old, lambda: self._inner.update(key, value, expected_revision))

    async def delete(self, key: str, expected_revision: int | None) -> KeyValue:
        kv = await self._inner.delete(key, expected_revision)
        deleted = json.loads(kv.value)
        await self._release(deleted, _claimed_values(deleted))
        return kv


async def follow_services(informer: Informer[Obj], allocator: ServiceAllocator, writing: Callable[[Owner], bool]) -> None:
    """Keep the in-memory claims current with Services written by other servers (a watch on all
    Services); owners with a local write in flight are left to that write, which syncs them itself."""
    def on_change(event_type: str, service: Obj, _old: Obj | None) -> None:
        owner, _ = _owner_and_uid(service)
        if writing(owner):
            return
        conflicts = allocator.sync(owner, None if event_type == "DELETED" else service)
        if conflicts:
            log.warning("service allocations held twice service=%s values=%s", owner, ",".join(conflicts))
    informer.add_handler(on_change)
    await informer.run()
