"""Node podCIDRs in the write path (upstream's node-ipam controller, done here at the write so a Node is
never stored without its subnet): a created Node gets the next free subnet of the cluster CIDR, or has the
subnets it asks for checked and claimed in the shared store; an update that sets podCIDRs is checked against
the cluster CIDR and the other nodes'; a deleted Node's subnets are freed. Runs after NodeRestriction, so a
node asking for a podCIDR of its own is refused before anything is allocated."""
from __future__ import annotations

import asyncio
import copy
import logging
from typing import TYPE_CHECKING, Any

from apiserver import errors
from apiserver.admission.chain import CREATE, DELETE, UPDATE, Attributes, Step
from apiserver.allocation.claims import ClaimConflict
from apiserver.allocation.pod_cidrs import CIDRAllocator, CIDRExhausted, SharedCIDRAllocator
from apiserver.kinds.base import Obj

if TYPE_CHECKING:
    from apiserver.admission.interface import AdmissionAPI

log = logging.getLogger(__name__)


def _spec(obj: Any) -> dict[str, Any]:
    spec = obj.get("spec") if isinstance(obj, dict) else None
    return spec if isinstance(spec, dict) else {}


class NodePodCIDRs:
    name = "NodePodCIDRs"

    def __init__(self, api: "AdmissionAPI", cluster_cidr: str, node_cidr_mask_size: int):
        self.api = api
        self.cidrs = CIDRAllocator(cluster_cidr, node_cidr_mask_size)
        self.lock = asyncio.Lock()
        # claimed in the shared store: unique across every server on one etcd (allocation/pod_cidrs.py)
        self.shared = SharedCIDRAllocator(self.cidrs, api.storage, lambda name: api.nodes.key("", name),
                                          self.stored_pod_cidrs)

    async def stored_pod_cidrs(self) -> list[tuple[str, str]]:
        """(node, podCIDR) of every stored Node."""
        nodes, _ = await self.api.nodes.list()
        return [(node["metadata"]["name"], cidr) for node in nodes for cidr in _spec(node).get("podCIDRs") or []]

    async def rebuild(self) -> None:
        """The in-memory view from the stored Nodes (at start)."""
        for name, cidr in await self.stored_pod_cidrs():
            try:
                inside = self.cidrs.occupy(cidr, name)
            except ValueError:
                inside = False
            if not inside:
                log.warning("node podCIDR outside the cluster CIDR node=%s cidr=%s", name, cidr)

    def problems(self, node_name: str, cidrs: list[Any]) -> list[errors.FieldError]:
        """A requested podCIDR (an admin's: nodes may not set theirs, NodeRestriction) must lie in the cluster
        CIDR and overlap no other node's, or the node routes would send one node's pod traffic to another.
        Values that are not CIDRs are left to the kind's validation."""
        found = []
        for index, cidr in enumerate(cidrs):
            try:
                why = self.cidrs.conflict(cidr, node_name)
            except (ValueError, TypeError):
                continue
            if why:
                found.append(errors.invalid(f"spec.podCIDRs[{index}]", cidr, why))
        return found

    def occupy(self, node: Obj) -> None:
        for cidr in _spec(node).get("podCIDRs") or []:
            self.cidrs.occupy(cidr, node["metadata"]["name"])

    async def start(self, attributes: Attributes) -> Step | None:
        if not attributes.is_("", "nodes", attributes.subresource):
            return None
        if attributes.operation == CREATE:
            return _NodeCreate(self, attributes.dry_run)
        if attributes.operation == UPDATE:
            return _NodeUpdate(self, attributes.name)
        if attributes.operation == DELETE:
            return _NodeDelete(self, attributes.name)
        return None


class _NodeCreate(Step):
    """Held under the allocator's lock: the subnet is picked or claimed, the Node stored, and on any failure
    the claim given back."""

    def __init__(self, plugin: NodePodCIDRs, dry_run: bool):
        self.plugin, self.dry_run = plugin, dry_run
        self.allocated: str | None = None
        self.claimed: list[str] = []
        self.node_name = ""

    async def __aenter__(self) -> "_NodeCreate":
        await self.plugin.lock.acquire()
        return self

    async def __aexit__(self, kind: Any, error: Any, traceback: Any) -> None:
        try:
            if error is not None:
                await asyncio.shield(self._give_back())
        finally:
            self.plugin.lock.release()

    async def admit(self, obj: Obj, old: Obj | None) -> Obj:
        self.node_name = str((obj.get("metadata") or {}).get("name") or "")
        spec = _spec(obj)
        requested = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
        if requested:
            if isinstance(requested, list):  # else the kind refuses the wrong type
                await self._claim(requested)
            return obj
        if self.dry_run:
            return obj
        try:
            self.allocated = await self.plugin.shared.allocate(self.node_name)
        except CIDRExhausted as exc:
            log.error("podCIDR allocation failed node=%s error=%s", self.node_name, exc)
            return obj
        obj = copy.deepcopy(obj)
        obj.setdefault("spec", {}).update({"podCIDR": self.allocated, "podCIDRs": [self.allocated]})
        return obj

    async def _claim(self, requested: list[Any]) -> None:
        """Checked as an update setting them is, and claimed in the shared store like an allocated one, so no
        other node gets it (nor this one twice)."""
        problems = self.plugin.problems(self.node_name, requested)
        if problems:
            raise errors.invalid_object("", "Node", self.node_name, problems)
        if self.dry_run:
            return
        try:
            for cidr in requested:
                await self.plugin.shared.claims.claim(str(cidr), self.node_name, "")
                self.claimed.append(str(cidr))
        except ClaimConflict as conflict:
            raise errors.invalid_object("", "Node", self.node_name, [errors.invalid(
                "spec.podCIDRs", requested, f'podCIDR {conflict.value} is already allocated to node '
                                            f'"{conflict.holder}"')]) from None

    async def committed(self, obj: Obj | None) -> None:
        if obj is None:
            return
        if self.allocated:
            log.info("assigned podCIDR node=%s cidr=%s", self.node_name, self.allocated)
        self.plugin.occupy(obj)
        self.allocated, self.claimed = None, []

    async def _give_back(self) -> None:
        if self.allocated:
            await self.plugin.shared.release(self.allocated, self.node_name)
        for cidr in self.claimed:  # not marked used in memory yet
            try:
                await self.plugin.shared.claims.release(cidr, self.node_name, "")
            except Exception as exc:  # noqa: BLE001 - a leaked claim turns stale and is taken over later
                log.warning("podCIDR claim not released node=%s cidr=%s error=%r", self.node_name, cidr, exc)


class _NodeUpdate(Step):
    def __init__(self, plugin: NodePodCIDRs, name: str):
        self.plugin, self.name = plugin, name

    async def validate(self, obj: Obj | None, old: Obj | None) -> None:
        """podCIDRs set now must fit the cluster CIDR and no other node's (they only change from empty: Node
        validation)."""
        if obj is None or old is None:
            return
        new_cidrs = _spec(obj).get("podCIDRs") or []
        if new_cidrs != (_spec(old).get("podCIDRs") or []):
            problems = self.plugin.problems(self.name, new_cidrs)
            if problems:
                raise errors.invalid_object("", "Node", self.name, problems)

    async def committed(self, obj: Obj | None) -> None:
        if obj is not None:
            self.plugin.occupy(obj)


class _NodeDelete(Step):
    def __init__(self, plugin: NodePodCIDRs, name: str):
        self.plugin, self.name = plugin, name

    async def committed(self, obj: Obj | None) -> None:
        """`obj`: the Node removed from storage (None while finalizers or a grace period keep it)."""
        for cidr in _spec(obj).get("podCIDRs") or []:
            await self.plugin.shared.release(cidr, self.name)
