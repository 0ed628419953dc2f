"""The NetworkPolicy loop: informers (pods of the whole cluster, namespaces, policies) → a level-triggered
sync that renders the whole filter state from the caches and applies it as one iptables-restore
transaction, only when the text (or the position of our jumps) changed.

Syncs are rate-limited by the proxy's bounded-frequency runner (at most `burst` in a row, then one
per `min_sync_period`), happen every `sync_period` without a change (a flushed chain comes back: 30 s, as
kube-proxy's iptables resync; each one lists two chains with iptables, child processes the agent pays for), and
a failed one is retried with an exponential backoff. A change reaches the kernel within
min_sync_period + one restore (≈0.3 s + 30 ms here), inside upstream's expectations and our 1 s bound.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from agent.netpol import render
from agent.netpol.policy import Cluster, Pod, evaluate, pod_record
from agent.proxy.runner import BoundedFrequencyRunner
from netns.cni_spec import host_veth_name
from netns.iptables import Iptables
from netns.ipam import IPAMStore
from shipmate.informer import Informer
from shipmate.kubeclient import NAMESPACES, NETWORK_POLICIES, PODS, KubeClient, ResourceSource

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NETWORK_NAME = "shipmate"
MIN_BACKOFF, MAX_BACKOFF = 0.5, 30.0
SYNC_PERIOD = 30.0


def _namespace_labels(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _policy_spec(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    return {"metadata": {"namespace": meta.get("namespace"), "name": meta.get("name")}, "spec": obj.get("spec") or {}}


def local_interfaces(ipam_dir: str, network: str = NETWORK_NAME) -> list[render.Interface]:
    """The host-side veth and address of every sandbox our CNI attached (the IPAM store is the truth)."""
    interfaces = []
    for address, owner in IPAMStore(ipam_dir, network).allocations().items():
        if owner is not None:
            interfaces.append(render.Interface(host_veth_name(owner.container_id, owner.ifname), str(address)))
    return interfaces


class NetworkPolicyController:
    def __init__(self, client: KubeClient | None, iptables: Iptables, node_name: str, *,
                 interfaces: Callable[[], Iterable[render.Interface]] = list,
                 min_sync_period: float = 0.3, sync_period: float = SYNC_PERIOD, burst: int = 3):
        self.iptables = iptables
        self.node_name = node_name
        self._interfaces = interfaces
        self.pods: Informer[Pod | None] | None = None
        self.namespaces: Informer[dict[str, str]] | None = None
        self.policies: Informer[Obj] | None = None
        if client is not None:
            self.pods = Informer(ResourceSource(client, PODS), self._on_change, transform=pod_record)
            self.namespaces = Informer(ResourceSource(client, NAMESPACES), self._on_change,
                                       transform=_namespace_labels)
            self.policies = Informer(ResourceSource(client, NETWORK_POLICIES), self._on_change,
                                     transform=_policy_spec)
        self.runner = BoundedFrequencyRunner("netpol-sync", self.sync, min_interval=min_sync_period,
                                             max_interval=sync_period, burst=burst, retry_interval=sync_period)
        self._applied: str | None = None       # the last text applied (without stale deletes and jump fixes)
        self._known_chains: set[str] | None = None
        self._failures = 0
        self.last_sync: float = 0.0            # monotonic time of the last successful apply

    def _on_change(self, kind: str, obj: Any, old: Any) -> None:
        if kind == "MODIFIED" and obj == old:
            return             # nothing policies look at changed (the slim records are equal)
        if self.synced:
            self.runner.run()

    @property
    def synced(self) -> bool:
        return all(i is None or i.synced.is_set() for i in (self.pods, self.namespaces, self.policies))

    async def run(self) -> None:
        informers = [i for i in (self.pods, self.namespaces, self.policies) if i is not None]

        async def first_sync() -> None:
            await asyncio.gather(*(i.synced.wait() for i in informers))
            log.info("network policy informers synced pods=%d namespaces=%d policies=%d",
                     *(len(i.cache) for i in informers))
            self.runner.run()

        await asyncio.gather(*(i.run() for i in informers), first_sync(), self.runner.loop())

    def snapshot(self) -> tuple[list[Pod], dict[str, dict[str, str]], list[Obj]]:
        """The caches as lists, taken on the event loop (the informers mutate them there)."""
        assert self.pods is not None and self.namespaces is not None and self.policies is not None
        return ([p for p in self.pods.cache.values() if p is not None],
                {key.strip("/"): labels for key, labels in self.namespaces.cache.items()},
                list(self.policies.cache.values()))

    def desired(self, pods: list[Pod], namespaces: dict[str, dict[str, str]],
                policies: list[Obj]) -> tuple[list, list[render.Interface]]:
        """(per-pod rules, interfaces): the pure part of a sync (plus reading the IPAM store)."""
        cluster = Cluster(pods, namespaces, policies)
        local = [p for p in cluster.pods if p.node == self.node_name]
        owners = {p.ip: p.key for p in local}
        interfaces = [render.Interface(i.name, i.ip, owners.get(i.ip, "")) for i in self._interfaces()]
        return evaluate(cluster, local), interfaces

    async def sync(self) -> bool:
        if not self.synced:
            return True
        started = time.monotonic()
        try:
            pod_rules, interfaces = await asyncio.to_thread(self.desired, *self.snapshot())
            applied = await self.apply(pod_rules, interfaces)
        except Exception as error:  # noqa: BLE001 - the kernel state is unknown: rewrite everything next time
            self._applied = None
            self._failures += 1
            delay = min(MAX_BACKOFF, MIN_BACKOFF * 2 ** (self._failures - 1))
            log.error("network policy sync failed error=%s retry_in=%.1fs", error, delay)
            self.runner.retry_after(delay)
            return True
        self._failures = 0
        if applied:
            self.last_sync = time.monotonic()
            log.info("network policy sync done isolated_pods=%d interfaces=%d elapsed=%.3fs",
                     len(pod_rules), len(interfaces), time.monotonic() - started)
        return True

    async def apply(self, pod_rules: list, interfaces: list[render.Interface]) -> bool:
        """Applies the rendered state unless the kernel holds it already; True when a restore ran."""
        core = render.render(pod_rules, interfaces)
        listing = {chain: await self.iptables.rules("filter", chain) for chain in ("FORWARD", "INPUT")}
        fixes = render.jump_fixes(listing)
        if self._known_chains is None:
            self._known_chains = {c for c in await self.iptables.chain_names("filter") if render.is_our_chain(c)}
        stale = self._known_chains - core.chains
        if core.text == self._applied and not fixes and not stale:
            return False
        # One transaction: the state, plus deleting chains no longer written and putting our jumps first.
        ruleset = render.render(pod_rules, interfaces, stale, fixes) if fixes or stale else core
        await self.iptables.restore(ruleset.text)
        self._applied = core.text
        self._known_chains = set(core.chains)
        return True
