"""Node lifecycle controller (kube-controller-manager's nodelifecycle + taint eviction, in the server).

Every --node-monitor-period: a node whose Lease (kube-node-lease/<node>) renewTime and Ready
heartbeat have not changed for --node-monitor-grace-period gets its conditions set `Unknown`
("Kubelet stopped posting node status."), its pods `Ready=False`. Taints follow the conditions, as
upstream's TaintNodesByCondition: NoSchedule (no timeAdded) `node.kubernetes.io/not-ready` for
Ready=False, `unreachable` for Ready=Unknown, `memory-pressure` / `disk-pressure` / `pid-pressure` /
`network-unavailable` for those conditions True, `unschedulable` for spec.unschedulable; and, for
taint-based eviction, NoExecute `not-ready` / `unreachable` with timeAdded. The kubelet reports the
conditions only: NodeRestriction refuses a node changing its own taints.
Pods on a node with NoExecute taints are deleted (gracefully) once they stop tolerating them:
at once without a matching toleration, after its tolerationSeconds otherwise.

The DefaultTolerationSeconds admission that gives pods their not-ready/unreachable NoExecute
tolerations is apiserver/admission/default_tolerations.py.
Freshness is judged by when *this* controller saw the lease or heartbeat change (its own clock),
as upstream does, so clock skew between nodes and the server does not matter.
"""
from __future__ import annotations

import asyncio
import copy
import datetime
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from apiserver import errors
from apiserver.admission.default_tolerations import NOT_READY_TAINT, UNREACHABLE_TAINT
from apiserver.informer import SharedInformers
from apiserver.kinds.base import Obj
from apiserver.kinds.pods import set_condition
from apiserver.registry import DeleteOptions
from apiserver.scheduler.predicates import tolerates
from shipmate.timeutil import parse_rfc3339, rfc3339

if TYPE_CHECKING:
    from apiserver.api import API

log = logging.getLogger(__name__)

COMPONENT = "node-controller"
LEASE_NAMESPACE = "kube-node-lease"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
# TaintNodesByCondition: (condition type, status) → the NoSchedule taint it puts on the node.
CONDITION_TAINTS = {("Ready", "False"): NOT_READY_TAINT, ("Ready", "Unknown"): UNREACHABLE_TAINT,
                    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
                    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
                    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
                    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable"}
NO_EXECUTE_TAINTS = {"False": NOT_READY_TAINT, "Unknown": UNREACHABLE_TAINT}   # by Ready status
MANAGED_NO_SCHEDULE_KEYS = frozenset({*CONDITION_TAINTS.values(), UNSCHEDULABLE_TAINT})
MANAGED_NO_EXECUTE_KEYS = frozenset(NO_EXECUTE_TAINTS.values())
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


@dataclass(frozen=True)
class LifecycleConfig:
    monitor_period: float = 5.0
    grace_period: float = 40.0
    pod_eviction_timeout: float = 300.0


# --- pure decisions ----------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeHealth:
    """What proved the node alive last, and when (controller clock, seconds)."""
    probe_time: float
    lease_renew: str | None
    heartbeat: str | None


def _ready(node: Obj) -> Obj | None:
    return next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)


def observe(previous: NodeHealth | None, node: Obj, lease: Obj | None, now: float) -> NodeHealth:
    """A changed lease renewTime or Ready heartbeat (or a first sighting) is a sign of life."""
    renew = ((lease or {}).get("spec") or {}).get("renewTime")
    heartbeat = (_ready(node) or {}).get("lastHeartbeatTime")
    if previous is None or renew != previous.lease_renew or heartbeat != previous.heartbeat:
        return NodeHealth(now, renew, heartbeat)
    return previous


def is_stale(health: NodeHealth, now: float, grace_period: float) -> bool:
    return now - health.probe_time > grace_period


def unknown_conditions(node: Obj, now: str) -> list[Obj] | None:
    """The node's conditions once the kubelet stopped posting (None: already all Unknown)."""
    conditions = copy.deepcopy((node.get("status") or {}).get("conditions") or [])
    created = (node.get("metadata") or {}).get("creationTimestamp") or now
    changed = False
    for kind in NODE_CONDITIONS:
        current = next((c for c in conditions if c.get("type") == kind), None)
        if current is None:
            conditions.append({"type": kind, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                               "message": "Kubelet never posted node status.", "lastHeartbeatTime": created,
                               "lastTransitionTime": now})
            changed = True
        elif current.get("status") != "Unknown":
            current.update({"status": "Unknown", "reason": "NodeStatusUnknown",
                            "message": "Kubelet stopped posting node status.", "lastTransitionTime": now})
            changed = True
    return conditions if changed else None


def no_schedule_taint_keys(node: Obj) -> list[str]:
    """TaintNodesByCondition: the NoSchedule taint keys the node's conditions and spec.unschedulable call for."""
    keys = []
    for condition in (node.get("status") or {}).get("conditions") or []:
        key = CONDITION_TAINTS.get((condition.get("type"), condition.get("status")))
        if key is not None and key not in keys:
            keys.append(key)
    if (node.get("spec") or {}).get("unschedulable"):
        keys.append(UNSCHEDULABLE_TAINT)
    return keys


def _managed(taint: Obj) -> bool:
    effect, key = taint.get("effect"), taint.get("key")
    return (effect == "NoSchedule" and key in MANAGED_NO_SCHEDULE_KEYS) or \
        (effect == "NoExecute" and key in MANAGED_NO_EXECUTE_KEYS)


def desired_taints(node: Obj, now: str) -> list[Obj]:
    """The node's taints with ours set from its conditions and spec.unschedulable (others kept; ours
    already present keep their value and timeAdded). NoSchedule taints carry no timeAdded, as upstream
    leaves it unset for them; the NoExecute ones (taint-based eviction) do."""
    current = list((node.get("spec") or {}).get("taints") or [])
    wanted = [(key, "NoSchedule") for key in no_schedule_taint_keys(node)]
    no_execute = NO_EXECUTE_TAINTS.get((_ready(node) or {}).get("status"))
    if no_execute is not None:
        wanted.append((no_execute, "NoExecute"))
    result = [t for t in current if not _managed(t) or (t.get("key"), t.get("effect")) in wanted]
    present = {(t.get("key"), t.get("effect")) for t in result}
    for key, effect in wanted:
        if (key, effect) not in present:
            taint: Obj = {"key": key, "effect": effect}
            if effect == "NoExecute":
                taint["timeAdded"] = now
            result.append(taint)
    return result


def eviction_time(pod: Obj, taints: list[Obj]) -> datetime.datetime | None:
    """When the pod must leave a node with these taints (None: never). Upstream's taint manager:
    an untolerated NoExecute taint evicts at once; otherwise the smallest tolerationSeconds counted
    from the taint's timeAdded; tolerations without tolerationSeconds tolerate forever."""
    tolerations = [t for t in (pod.get("spec") or {}).get("tolerations") or [] if isinstance(t, dict)]
    due: datetime.datetime | None = None
    for taint in taints:
        if taint.get("effect") != "NoExecute":
            continue
        matching = [t for t in tolerations if tolerates(t, taint)]
        added = parse_rfc3339(taint.get("timeAdded")) or datetime.datetime.fromtimestamp(0, datetime.timezone.utc)
        if not matching:
            return added
        bounded = [t["tolerationSeconds"] for t in matching if isinstance(t.get("tolerationSeconds"), int)]
        if len(bounded) < len(matching):
            continue    # one toleration without a bound tolerates this taint forever
        moment = added + datetime.timedelta(seconds=max(0, min(bounded)))
        due = moment if due is None or moment < due else due
    return due


# --- the controller ----------------------------------------------------------------------------
class NodeLifecycleController:
    def __init__(self, api: "API", informers: SharedInformers, config: LifecycleConfig = LifecycleConfig(),
                 monotonic: Callable[[], float] = time.monotonic):
        self.api = api
        self.config = config
        self.monotonic = monotonic
        self.health: dict[str, NodeHealth] = {}
        self._wake = asyncio.Event()
        self._changed: set[str] = set()   # nodes whose taints to re-check before the next full pass
        self.nodes = informers.informer(api.nodes, self._on_node)
        self.leases = informers.informer(api.registry("coordination.k8s.io", "leases"),
                                         lambda _type, _lease, _old: None)
        self.pods = informers.informer(api.pods, lambda _type, _pod, _old: None)

    def _on_node(self, event_type: str, node: Obj, _old: Obj | None) -> None:
        if event_type != "DELETED":
            self._changed.add(node["metadata"]["name"])
            self._wake.set()

    async def run(self) -> None:
        """Runs while the shared informers (started by the caller) feed it: a full pass every monitor
        period (or sooner for a pending eviction), the taints of a changed node at once."""
        for informer in (self.nodes, self.leases, self.pods):
            await informer.synced.wait()
        backoff = self.config.monitor_period
        loop = asyncio.get_running_loop()
        next_pass = loop.time()
        next_eviction: float | None = None
        while True:
            self._wake.clear()
            if loop.time() < next_pass:
                changed, self._changed = self._changed, set()
                try:
                    wait = await self.sync_changed(changed)
                    if wait is not None:
                        next_pass = min(next_pass, loop.time() + max(0.05, wait))
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the next full pass repairs it
                    log.exception("node taint sync failed")
                try:
                    await asyncio.wait_for(self._wake.wait(), max(0.0, next_pass - loop.time()))
                except asyncio.TimeoutError:
                    pass
                continue
            self._changed.clear()
            try:
                next_eviction = await self.monitor()
                backoff = self.config.monitor_period
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop survives
                log.exception("node lifecycle pass failed retry_in=%.1fs", backoff)
                next_eviction, backoff = None, min(backoff * 2, 60.0)
            next_pass = loop.time() + (backoff if next_eviction is None else max(0.05, min(backoff, next_eviction)))

    async def sync_changed(self, names: set[str]) -> float | None:
        """Taints (and evictions they start) of nodes that just changed, between full passes; returns
        seconds until the next pending eviction among them (None: none)."""
        stamp = rfc3339(self.api.clock())
        next_eviction: float | None = None
        for name in sorted(names):
            node = self.nodes.cache.get(f"/{name}")
            if node is None:
                continue
            wait = await self._evict(await self._sync_taints(node, stamp), self.api.clock())
            if wait is not None:
                next_eviction = wait if next_eviction is None else min(next_eviction, wait)
        return next_eviction

    async def monitor(self) -> float | None:
        """One pass over every node; returns seconds until the next pending eviction (None: none)."""
        now = self.monotonic()
        wall = self.api.clock()
        stamp = rfc3339(wall)
        names = set()
        next_eviction: float | None = None
        for node in list(self.nodes.cache.values()):
            name = node["metadata"]["name"]
            names.add(name)
            lease = self.leases.cache.get(f"{LEASE_NAMESPACE}/{name}")
            self.health[name] = health = observe(self.health.get(name), node, lease, now)
            if is_stale(health, now, self.config.grace_period):
                node = await self._mark_unknown(node, stamp)
            node = await self._sync_taints(node, stamp)
            wait = await self._evict(node, wall)
            if wait is not None:
                next_eviction = wait if next_eviction is None else min(next_eviction, wait)
        for gone in set(self.health) - names:
            del self.health[gone]
        return next_eviction

    def _pods_on(self, name: str) -> list[Obj]:
        return [p for p in self.pods.cache.values() if (p.get("spec") or {}).get("nodeName") == name]

    async def _mark_unknown(self, node: Obj, stamp: str) -> Obj:
        name = node["metadata"]["name"]
        if unknown_conditions(node, stamp) is None:
            return node
        was_ready = (_ready(node) or {}).get("status") == "True"

        def mark(current: Obj) -> Obj:
            conditions = unknown_conditions(current, stamp)
            if conditions is not None:
                current.setdefault("status", {})["conditions"] = conditions
            return current
        try:
            node = await self.api.nodes.guaranteed_update("", name, mark, subresource="status")
        except errors.APIError as exc:
            log.info("could not mark node unknown node=%s error=%s", name, exc)
            return node
        log.info("node stopped posting status node=%s grace=%.0fs", name, self.config.grace_period)
        if was_ready:
            await self.api.record_event(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady",
                                        COMPONENT)
            await self._mark_pods_not_ready(name, stamp)
        return node

    async def _mark_pods_not_ready(self, node_name: str, stamp: str) -> None:
        for pod in self._pods_on(node_name):
            meta = pod["metadata"]
            if not any(c.get("type") == "Ready" and c.get("status") != "False"
                       for c in (pod.get("status") or {}).get("conditions") or []):
                continue

            def not_ready(current: Obj) -> Obj:
                for condition in (current.get("status") or {}).get("conditions") or []:
                    if condition.get("type") == "Ready":
                        set_condition(current["status"], {**condition, "status": "False"}, stamp)
                return current
            try:
                await self.api.pods.guaranteed_update(meta["namespace"], meta["name"], not_ready, subresource="status")
            except errors.APIError as exc:
                log.info("could not mark pod not ready pod=%s/%s error=%s", meta["namespace"], meta["name"], exc)
                continue
            await self.api.record_event(pod, "Warning", "NodeNotReady", "Node is not ready", COMPONENT)

    async def _sync_taints(self, node: Obj, stamp: str) -> Obj:
        name = node["metadata"]["name"]
        if desired_taints(node, stamp) == ((node.get("spec") or {}).get("taints") or []):
            return node

        def retaint(current: Obj) -> Obj:
            taints = desired_taints(current, stamp)
            spec = current.setdefault("spec", {})
            if taints:
                spec["taints"] = taints
            else:
                spec.pop("taints", None)
            return current
        try:
            updated = await self.api.nodes.guaranteed_update("", name, retaint)
        except errors.APIError as exc:
            log.info("could not update node taints node=%s error=%s", name, exc)
            return node
        log.info("node taints set node=%s taints=%s", name,
                 ",".join(f"{t['key']}:{t['effect']}" for t in (updated.get("spec") or {}).get("taints") or []) or "none")
        return updated

    async def _evict(self, node: Obj, wall: datetime.datetime) -> float | None:
        taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]
        if not taints:
            return None
        next_due: float | None = None
        for pod in self._pods_on(node["metadata"]["name"]):
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            due = eviction_time(pod, taints)
            if due is None:
                continue
            wait = (due - wall).total_seconds()
            if wait > 0:
                next_due = wait if next_due is None else min(next_due, wait)
                continue
            try:
                await self.api.delete(self.api.pods, meta["namespace"], meta["name"],
                                      DeleteOptions(precondition_uid=meta.get("uid")))
            except errors.APIError as exc:
                if exc.code != 404:
                    log.info("eviction failed pod=%s/%s error=%s", meta["namespace"], meta["name"], exc)
                continue
            log.info("evicted pod=%s/%s node=%s", meta["namespace"], meta["name"], node["metadata"]["name"])
            await self.api.record_event(pod, "Normal", "TaintManagerEviction",
                                        f"Marking for deletion Pod {meta['namespace']}/{meta['name']}", COMPONENT)
        return next_due
