"""Node podCIDR allocation: the next free subnet of the cluster CIDR (state rebuilt from Nodes), claimed in
the shared store so several servers on one etcd never give two Nodes one subnet."""
from __future__ import annotations

import ipaddress
import json
import logging
from typing import Awaitable, Callable

from apiserver.allocation.claims import ClaimConflict, Claims, Holder
from apiserver.storage.interface import Storage

log = logging.getLogger(__name__)


class CIDRExhausted(Exception):
    pass


class CIDRAllocator:
    def __init__(self, cluster_cidr: str, mask_size: int):
        self.cluster = ipaddress.ip_network(cluster_cidr, strict=True)
        if mask_size < self.cluster.prefixlen or mask_size > self.cluster.max_prefixlen:
            raise ValueError(f"node CIDR mask size {mask_size} does not fit cluster CIDR {cluster_cidr}")
        self.mask_size = mask_size
        self._used: dict[ipaddress._BaseNetwork, str] = {}  # subnet -> node holding it ("" if unknown)

    def occupy(self, cidr: str, owner: str = "") -> bool:
        """Mark a subnet used (from an existing Node); False if it is outside the cluster CIDR."""
        network = ipaddress.ip_network(cidr, strict=False)
        if network.version != self.cluster.version or not network.subnet_of(self.cluster):  # type: ignore[arg-type]
            return False
        self._used[network] = owner
        return True

    def conflict(self, cidr: str, owner: str) -> str | None:
        """Why `owner` may not hold `cidr` (None: it may): outside the cluster CIDR, or overlapping a subnet
        another node holds. A node only ever gets subnets of the cluster CIDR that nobody else routes."""
        network = ipaddress.ip_network(cidr, strict=False)
        if network.version != self.cluster.version or not network.subnet_of(self.cluster):  # type: ignore[arg-type]
            return f"must be within the cluster CIDR {self.cluster}"
        for used, holder in sorted(self._used.items(), key=lambda item: str(item[0])):
            if holder != owner and used.overlaps(network):
                shown = f'node "{holder}"' if holder else "another node"
                return f"overlaps the podCIDR {used} of {shown}"
        return None

    def release(self, cidr: str) -> None:
        self._used.pop(ipaddress.ip_network(cidr, strict=False), None)

    def allocate(self, owner: str = "") -> str:
        for subnet in self.cluster.subnets(new_prefix=self.mask_size):
            if not any(subnet.overlaps(used) for used in self._used):
                self._used[subnet] = owner
                return str(subnet)
        raise CIDRExhausted(f"no free /{self.mask_size} left in {self.cluster}")

    def reset(self, held: list[tuple[str, str]]) -> None:
        """Forget every claim but these (node, podCIDR) pairs (the Nodes stored now)."""
        self._used.clear()
        for owner, cidr in held:
            try:
                self.occupy(cidr, owner)
            except ValueError:
                log.warning("node podCIDR is not a CIDR node=%s cidr=%s", owner, cidr)


POD_CIDRS = "podcidrs"


class SharedCIDRAllocator:
    """podCIDRs unique across every server on one store: a subnet picked in memory is then claimed in the
    shared store (claims.py) before the Node is written; one another server claimed first is skipped.
    The holder is the node name (the Node has no uid yet when its subnet is picked)."""

    def __init__(self, allocator: CIDRAllocator, storage: Storage, node_key: Callable[[str], str],
                 stored_cidrs: Callable[[], Awaitable[list[tuple[str, str]]]]):
        self.allocator = allocator
        self._node_key = node_key
        self._stored_cidrs = stored_cidrs
        self.claims = Claims(storage, POD_CIDRS, self._holder_is_live)
        self._storage = storage

    async def _holder_is_live(self, holder: Holder, cidr: str) -> bool:
        kv = await self._storage.get(self._node_key(holder.owner))
        if kv is None:
            return False
        spec = json.loads(kv.value).get("spec") or {}
        return cidr in (spec.get("podCIDRs") or [])

    async def allocate(self, node_name: str) -> str:
        """CIDRExhausted when no subnet is free, even after relearning the used ones from the stored Nodes
        (the in-memory view keeps subnets of Nodes another server deleted until then)."""
        for refreshed in (False, True):
            if refreshed:
                self.allocator.reset(await self._stored_cidrs())
            while True:
                try:
                    cidr = self.allocator.allocate(node_name)
                except CIDRExhausted:
                    if refreshed:
                        raise
                    break
                try:
                    await self.claims.claim(cidr, node_name, "")
                    return cidr
                except ClaimConflict as conflict:
                    log.info("podCIDR taken by another server cidr=%s holder=%s", cidr, conflict.holder)
        raise CIDRExhausted(f"no free /{self.allocator.mask_size} left in {self.allocator.cluster}")

    async def release(self, cidr: str, node_name: str) -> None:
        self.allocator.release(cidr)
        try:
            await self.claims.release(cidr, node_name, "")
        except Exception as exc:  # noqa: BLE001 - a leaked claim turns stale and is taken over later
            log.warning("podCIDR claim not released node=%s cidr=%s error=%r", node_name, cidr, exc)
