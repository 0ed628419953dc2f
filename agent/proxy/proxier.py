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

from agent.netpol import render as netpol_render
from agent.proxy import chains, conntrack, render
from agent.proxy import nft as nft_render
from netns import hostport
from agent.proxy.changes import EndpointMap, EndpointsChangeTracker, PortMap, ServiceChangeTracker
from agent.proxy.render import ProxyState, RenderConfig
from agent.proxy.runner import BoundedFrequencyRunner
from netns.iptables import Backend, Iptables, installed_backends
from netns.nftables import Nft, nft_available

log = logging.getLogger(__name__)


def is_our_chain(table: str, chain: str) -> bool:
    """The chains `cleanup_iptables` removes: everything the proxy creates, in any table, and the
    hostPort (nat) and NetworkPolicy (filter) chains."""
    if table == "nat" and chain in (hostport.DNAT_CHAIN, hostport.MASQ_CHAIN):
        return True
    if table == "filter" and netpol_render.is_our_chain(chain):
        return True
    return is_proxy_chain(table, chain)


def is_proxy_chain(table: str, chain: str) -> bool:
    """The proxy's own chains (not the hostPort and NetworkPolicy ones)."""
    if chain == chains.CANARY:
        return table in chains.CANARY_TABLES
    if table == "nat":
        return chain in chains.NAT_TOP_CHAINS or chains.is_service_chain(chain)
    if table == "filter":
        return chain in chains.FILTER_TOP_CHAINS
    return table == "mangle" and chain == chains.IPTABLES_HINT


async def cleanup_iptables(netns: str | None = None, backends: Iterable[Backend] | None = None,
                           proxy_only: bool = False) -> list[str]:
    """`shipmate agent --cleanup-iptables`: remove our jumps and chains from every installed
    backend (rules may have been written by an agent that chose the other one); returns what went.
    `proxy_only`: only the proxy's (an agent switching to the nftables mode keeps its hostPort and
    NetworkPolicy chains, which stay on iptables)."""
    removed = []
    jumps = render.JUMPS if proxy_only else (*render.JUMPS, *hostport.JUMPS, *netpol_render.JUMPS)
    for backend in installed_backends() if backends is None else backends:
        removed += (f"{backend.name}:{item}" for item in
                    await Iptables(backend, netns).cleanup(jumps, is_proxy_chain if proxy_only else is_our_chain))
    return removed


class Proxier:
    """Feed it the informer callbacks; `run()` keeps the node's iptables in line with them."""

    mode = "iptables"

    def __init__(self, iptables: Iptables | None, config: RenderConfig, *, min_sync_period: float = 1.0,
                 sync_period: float = 30.0, full_sync_period: float = 3600.0, burst: int = 2,
                 netns: str | None = None):
        self.iptables = iptables
        self.netns = iptables.netns if iptables is not None else netns
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

    # The same, in the shape of an informer's handler `(kind, obj, old)` (agent.proxy.sources).
    def on_service_change(self, kind: str, service: dict, old: dict | None) -> None:
        if kind == "DELETED":
            self.on_service_update(old or service, None)
        else:
            self.on_service_update(old, service)

    def on_endpoint_slice_change(self, kind: str, endpoint_slice: dict, _old: dict | None) -> None:
        self.on_endpoint_slice_update(endpoint_slice, deleted=kind == "DELETED")

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
        large = self._is_large(current)
        # Crossing the large-cluster threshold changes the text of every endpoint chain.
        full = (self._need_full_sync or large != self._applied_large
                or started - self._last_full_sync > self.full_sync_period)
        try:
            if not full and not changed:
                if await self._rules_intact():
                    return True
                log.warning("proxy canary missing (rules flushed by someone else): full sync mode=%s", self.mode)
                self._rules_lost()
                full = True
            if full:
                await self._full_sync(current)
                self._need_full_sync = False
                self._last_full_sync = time.monotonic()
            else:
                await self._partial_sync(current, changed, large)
        except Exception as error:  # any failure leaves the kernel state unknown: resync fully
            self._need_full_sync = True
            log.error("proxy sync failed full=%s changed=%d error=%s", full, len(changed), error)
            return False
        stale_flows = conntrack.stale_udp_flows(self._applied, current, changed)
        self._applied, self._applied_large = current, large
        if stale_flows:
            await conntrack.clear_flows(stale_flows, self.netns)
        log.info("proxy sync done full=%s services=%d changed=%d elapsed=%.3fs", full,
                 len(current.services), len(changed), time.monotonic() - started)
        return True

    def _is_large(self, state: ProxyState) -> bool:
        return render.is_large_cluster(state)

    def _rules_lost(self) -> None:
        self._known_chains = None

    async def _partial_sync(self, current: ProxyState, changed: set, large: bool) -> None:
        ruleset = render.render_partial(self._applied, current, changed, self.config, large)
        await self.iptables.restore_all(ruleset.transactions)
        if self._known_chains is not None:
            self._known_chains = (self._known_chains - ruleset.deleted) | ruleset.written

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


class NftProxier(Proxier):
    """The same trackers and sync decisions, programmed as nftables: one table of our own
    (agent.proxy.nft), one `nft -f` transaction per sync; a partial sync touches only the changed
    service ports' elements and chains."""

    mode = "nftables"

    def __init__(self, nft: Nft, config: RenderConfig, **kwargs):
        super().__init__(None, config, netns=nft.netns, **kwargs)
        self.nft = nft
        self._hairpin = nft_render.HairpinRefs()
        self._picks: frozenset[str] = frozenset()
        self._render_cache = nft_render.RenderCache()   # only the full render thread touches it
        self.last_text = ""          # the last transaction applied (tests, benchmarks)
        self.last_by_netlink = False  # ... and whether it went as a netlink element batch
        self.last_bulk_elements = 0   # elements the last full sync sent as a netlink batch after its rules
        self.last_changes: tuple | None = None   # ... its element changes, when it had only those
        self.last_rendered = 0        # service ports the last full sync rendered again (the rest: its cache)

    def _is_large(self, state: ProxyState) -> bool:
        return False      # the iptables mode's comments and chain text: nothing here depends on it

    def _rules_lost(self) -> None:
        self._hairpin = nft_render.HairpinRefs()
        self._picks = frozenset()

    async def _full_sync(self, state: ProxyState) -> None:
        # A table made from nothing (agent start on a fresh node, rules flushed) has no traffic to keep whole
        # between two transactions: its bulk (endpoint maps, hairpin set: most of the elements at scale) goes
        # as a netlink batch right after the rules, encoded while libnftables parses them. A table that
        # exists is replaced in one transaction.
        bulk = self.nft.elements_by_netlink and not await self.nft.has_table("ip", nft_render.TABLE)
        ruleset = await asyncio.to_thread(nft_render.render_full, state, self.config, bulk, self._render_cache)
        if ruleset.bulk:
            encoding = asyncio.ensure_future(asyncio.to_thread(nft_render.element_changes, {}, ruleset.bulk))
            try:
                await self.nft.apply(ruleset.text)
            finally:
                changes = await encoding
            # `text` is what apply_elements would run without netlink; `bulk` is only chosen with it.
            await self.nft.apply_elements("ip", nft_render.TABLE, changes or (), "")
        else:
            await self.nft.apply(ruleset.text)
        self.last_rendered = self._render_cache.rendered
        self.last_bulk_elements = sum(len(items) for items in (ruleset.bulk or {}).values())
        self._hairpin, self._picks = ruleset.hairpin, ruleset.picks
        self.last_text, self.last_by_netlink = ruleset.text, False

    async def _partial_sync(self, current: ProxyState, changed: set, large: bool) -> None:
        ruleset = nft_render.render_partial(self._applied, current, changed, self.config, self._hairpin,
                                            self._picks)
        self.last_by_netlink = ruleset.element_changes is not None and self.nft.elements_by_netlink
        self.last_changes = ruleset.element_changes
        if ruleset.element_changes is not None:
            await self.nft.apply_elements("ip", nft_render.TABLE, ruleset.element_changes, ruleset.text)
        else:
            await self.nft.apply(ruleset.text)
        self._hairpin, self._picks = ruleset.hairpin.commit(), ruleset.picks
        self.last_text = ruleset.text

    async def _rules_intact(self) -> bool:
        # The table's canary: its `services` chain (one netlink GET by name: cheap at any size).
        return await self.nft.has_chain("ip", nft_render.TABLE, "services")


async def cleanup_nftables(netns: str | None = None) -> list[str]:
    """Remove the nftables mode's table; returns what went."""
    if not nft_available():
        return []
    return [f"nftables:ip/{nft_render.TABLE}"] if await Nft(netns).delete_table("ip", nft_render.TABLE) else []
