"""The proxy loop: informer callbacks → change trackers → bounded-frequency syncs → iptables.

The first sync (once Services and EndpointSlices have both been listed) and every sync after a
failure or after `full_sync_period` is full; every other sync renders only the service ports
that changed and applies them in one `--noflush` transaction.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from agent.proxy import chains, conntrack, render
from agent.proxy.changes import EndpointMap, EndpointsChangeTracker, PortMap, ServiceChangeTracker
from agent.proxy.render import ProxyState, RenderConfig
from agent.proxy.runner import BoundedFrequencyRunner
from netns.iptables import Backend, Iptables, installed_backends

log = logging.getLogger(__name__)


def is_our_chain(table: str, chain: str) -> bool:
    """The chains `cleanup_iptables` removes: everything the proxy creates, in any table."""
    if chain == chains.CANARY:
        return table in chains.CANARY_TABLES
    if table == "nat":
        return chain in chains.NAT_TOP_CHAINS or chains.is_service_chain(chain)
    if table == "filter":
        return chain in chains.FILTER_TOP_CHAINS
    return table == "mangle" and chain == chains.IPTABLES_HINT


async def cleanup_iptables(netns: str | None = None, backends: Iterable[Backend] | None = None) -> list[str]:
    """`shipmate agent --cleanup-iptables`: remove our jumps and chains from every installed
    backend (rules may have been written by an agent that chose the other one); returns what went."""
    removed = []
    for backend in installed_backends() if backends is None else backends:
        removed += (f"{backend.name}:{item}" for item in
                    await Iptables(backend, netns).cleanup(render.JUMPS, is_our_chain))
    return removed


class Proxier:
    """Feed it the informer callbacks; `run()` keeps the node's iptables in line with them."""

    def __init__(self, iptables: Iptables, config: RenderConfig, *, min_sync_period: float = 1.0,
                 sync_period: float = 30.0, full_sync_period: float = 3600.0, burst: int = 2):
        self.iptables = iptables
        self.config = config
        self.full_sync_period = full_sync_period
        self._services_tracker = ServiceChangeTracker()
        self._endpoints_tracker = EndpointsChangeTracker()
        self._services: PortMap = {}
        self._endpoints: EndpointMap = {}
        self._applied = ProxyState({}, {})
        self._applied_large = False
        self._services_synced = False
        self._slices_synced = False
        self._need_full_sync = True
        self._last_full_sync = 0.0
        self._known_chains: set[str] | None = None  # our service chains in the kernel, if known
        self.runner = BoundedFrequencyRunner("proxy-sync", self.sync, min_interval=min_sync_period,
                                             max_interval=sync_period, burst=burst,
                                             retry_interval=sync_period)

    # Informer callbacks: record and poke, never block.
    def on_service_add(self, service: dict) -> None:
        self.on_service_update(None, service)

    def on_service_update(self, previous: dict | None, service: dict | None) -> None:
        if self._services_tracker.update(previous, service) and self.initialized:
            self.runner.run()

    def on_service_delete(self, service: dict) -> None:
        self.on_service_update(service, None)

    def on_endpoint_slice_add(self, endpoint_slice: dict) -> None:
        self.on_endpoint_slice_update(endpoint_slice)

    def on_endpoint_slice_update(self, endpoint_slice: dict, deleted: bool = False) -> None:
        if self._endpoints_tracker.update(endpoint_slice, deleted) and self.initialized:
            self.runner.run()

    def on_endpoint_slice_delete(self, endpoint_slice: dict) -> None:
        self.on_endpoint_slice_update(endpoint_slice, deleted=True)

    # The same, in the shape of an informer's `on_change(kind, old, new)` (agent.proxy.sources).
    def on_service_change(self, kind: str, old: dict | None, new: dict | None) -> None:
        if kind == "DELETED":
            self.on_service_update(old or new, None)
        else:
            self.on_service_update(old, new)

    def on_endpoint_slice_change(self, kind: str, old: dict | None, new: dict | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.on_endpoint_slice_update(obj, deleted=kind == "DELETED")

    def on_services_synced(self) -> None:
        self._services_synced = True
        self.runner.run()

    def on_endpoint_slices_synced(self) -> None:
        self._slices_synced = True
        self.runner.run()

    @property
    def initialized(self) -> bool:
        # Programming half a picture after a restart would drop live services: wait for both lists.
        return self._services_synced and self._slices_synced

    @property
    def applied_state(self) -> ProxyState:
        """What the last successful sync programmed."""
        return self._applied

    async def run(self) -> None:
        await self.runner.loop()

    async def sync(self) -> bool:
        """One sync; False (and the next sync full) when applying failed."""
        if not self.initialized:
            return True
        started = time.monotonic()
        changed = self._services_tracker.apply(self._services)
        changed |= self._endpoints_tracker.apply(self._endpoints)
        current = ProxyState(dict(self._services), dict(self._endpoints))
        large = render.is_large_cluster(current)
        # Crossing the large-cluster threshold changes the text of every endpoint chain.
        full = (self._need_full_sync or large != self._applied_large
                or started - self._last_full_sync > self.full_sync_period)
        try:
            if not full and not changed:
                if await self._rules_intact():
                    return True
                log.warning("proxy canary chain missing (rules flushed by someone else): full sync")
                self._known_chains = None
                full = True
            if full:
                await self._full_sync(current)
            else:
                ruleset = render.render_partial(self._applied, current, changed, self.config, large)
                await self.iptables.restore_all(ruleset.transactions)
                if self._known_chains is not None:
                    self._known_chains = (self._known_chains - ruleset.deleted) | ruleset.written
        except Exception as error:  # any failure leaves the kernel state unknown: resync fully
            self._need_full_sync = True
            log.error("proxy sync failed full=%s changed=%d error=%s", full, len(changed), error)
            return False
        stale_flows = conntrack.stale_udp_flows(self._applied, current, changed)
        self._applied, self._applied_large = current, large
        if stale_flows:
            await conntrack.clear_flows(stale_flows, self.iptables.netns)
        log.info("proxy sync done full=%s services=%d changed=%d elapsed=%.3fs", full,
                 len(current.services), len(changed), time.monotonic() - started)
        return True

    async def _rules_intact(self) -> bool:
        found = await asyncio.gather(*(self.iptables.chain_exists(table, chains.CANARY)
                                       for table in chains.CANARY_TABLES))
        return all(found)

    async def _full_sync(self, state: ProxyState) -> None:
        if self._known_chains is None:
            # After a restart, chains of services deleted meanwhile are only known to the kernel.
            # Listing costs seconds on a big nft table, hence only once.
            self._known_chains = {c for c in await self.iptables.chain_names("nat") if chains.is_service_chain(c)}
        # Checked before the restore: at start the tables are small, and the jumps then go in
        # the same transaction that switches KUBE-SERVICES.
        missing_jumps = await self.iptables.missing_jumps(render.JUMPS)
        ruleset = await asyncio.to_thread(render.render_full, state, self.config, frozenset(self._known_chains),
                                          self.iptables.backend.full_sync_chunk, missing_jumps)
        await self.iptables.restore_all(ruleset.transactions)
        self._known_chains = set(ruleset.written)
        self._need_full_sync = False
        self._last_full_sync = time.monotonic()
