"""The DaemonSet controller: one pod per eligible node (pinned by node affinity, placed by the default
scheduler, as upstream since 1.12), ControllerRevisions of its templates, RollingUpdate (maxUnavailable /
maxSurge) and OnDelete, status. Decisions are in daemonset_rules.py; revisions in revisions.py."""
from __future__ import annotations

import asyncio
import logging
import time

from apiserver import errors
from apiserver.api import API
from apiserver.controllers import daemonset_rules as rules
from apiserver.controllers.adoption import apply_claim
from apiserver.controllers.expectations import Expectations
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.controllers.owned_pods import (create_owned_pods, delete_owned_pod_with_events, owner_to_sync,
                                             owners_woken)
from apiserver.controllers.ownership import claim, controller_ref
from apiserver.controllers.replicaset import label_selector_matcher
from apiserver.controllers.revision_rules import REVISION_HASH_LABEL, daemonset_revision
from apiserver.controllers.revisions import RevisionHistory
from apiserver.controllers.writes import modify, namespace_terminating
from apiserver.informer import RegistryInformer, SharedInformers, object_key
from apiserver.kinds.base import Obj
from apiserver.registry import utc_now

log = logging.getLogger(__name__)

COMPONENT = "daemonset-controller"
FAILED_BACKOFF_MAX = 900.0  # upstream's failedPodsBackoff: 1 s doubling to 15 min


class DaemonSetController(KeyedController):
    name = COMPONENT

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.registry = api.registry("apps", "daemonsets")
        self.daemonsets = informers.informer(self.registry, self._on_daemonset)
        self.pods = informers.informer(api.pods, self._on_pod)
        self.nodes = informers.informer(api.nodes, self._on_node)
        self.history = RevisionHistory(api, informers, "DaemonSet", self._on_revision)
        self.expectations = Expectations()
        self._failed_backoff: dict[str, tuple[float, float]] = {}  # "<ds key>/<node>" -> (retry at, delay)

    def informers(self) -> list[RegistryInformer]:
        return [self.daemonsets, self.pods, self.nodes, self.history.informer]

    def all_keys(self) -> set[str]:
        return set(self.daemonsets.cache)

    # event handlers ------------------------------------------------------------------------------
    def _on_daemonset(self, _event_type: str, daemonset: Obj, _old: Obj | None) -> None:
        self.enqueue(object_key(daemonset))

    def _on_node(self, _event_type: str, _node: Obj, _old: Obj | None) -> None:
        for key in list(self.daemonsets.cache):
            self.enqueue(key)

    def _on_revision(self, key: str) -> None:
        self.enqueue(key)

    def _on_pod(self, event_type: str, pod: Obj, _old: Obj | None) -> None:
        for key in owners_woken(event_type, pod, "DaemonSet", self.daemonsets.cache, self.expectations,
                                label_selector_matcher):
            self.enqueue(key)

    # sync ----------------------------------------------------------------------------------------
    async def sync_key(self, key: str) -> None:
        found = await owner_to_sync(self.registry, key, self.expectations, label_selector_matcher)
        if found is None:
            return
        daemonset, matches = found
        try:
            await self._sync(key, daemonset, matches)
        except errors.APIError as exc:
            if namespace_terminating(exc):
                return
            raise

    async def _sync(self, key: str, daemonset: Obj, matches) -> None:
        namespace = daemonset["metadata"]["namespace"]
        stored_status = dict(daemonset.get("status") or {})
        listed = [p for p in self.pods.cache.values() if p["metadata"].get("namespace") == namespace]
        claimed = claim(daemonset, matches, listed, lambda pod: True)
        adopted = await apply_claim(self.api.pods, daemonset, claimed, matches, COMPONENT)
        adopted_names = {p["metadata"]["name"] for p in adopted}
        owned = [p for p in claimed.owned if p["metadata"]["name"] not in adopted_names] + adopted
        current, old, _, collisions = await self.history.construct(daemonset, matches, self._daemonset_revision)
        if collisions != int((daemonset.get("status") or {}).get("collisionCount") or 0):
            daemonset.setdefault("status", {})["collisionCount"] = collisions  # kept by the status write below
        hash_value = (current["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL, "")
        now = utc_now()
        nodes = list(self.nodes.cache.values())
        recheck: float | None = None
        if not daemonset["metadata"].get("deletionTimestamp") and self.expectations.satisfied(key):
            plan = rules.manage(daemonset, nodes, self._node_pods(owned), hash_value, now)
            recheck = await self._report_failed(key, daemonset, plan)
            await self._sync_nodes(key, daemonset, plan, hash_value)
            strategy = ((daemonset.get("spec") or {}).get("updateStrategy") or {}).get("type")
            if self.expectations.satisfied(key) and strategy == "RollingUpdate":
                update = rules.rolling_update(daemonset, nodes, self._node_pods(self._owned_now(daemonset)),
                                              hash_value, now)
                await self._sync_nodes(key, daemonset, update, hash_value)
            live = {(p["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL) for p in self._owned_now(daemonset)}
            await self.history.delete(rules.history_to_delete(daemonset, old, live))
        owned_now = self._owned_now(daemonset)
        status = rules.daemonset_status(daemonset, nodes, self._node_pods(owned_now), hash_value, now)
        if stored_status != status:
            await modify(self.registry, daemonset, lambda current_ds: {**current_ds, "status": status},
                         subresource="status")
        wait = rules.seconds_until_available(owned_now, (daemonset.get("spec") or {}).get("minReadySeconds") or 0, now)
        if wait is not None:
            recheck = wait if recheck is None else min(recheck, wait)
        if recheck is not None:
            asyncio.get_running_loop().call_later(recheck + 0.05, self.enqueue, key)

    def _owned_now(self, daemonset: Obj) -> list[Obj]:
        """The DaemonSet's pods as the cache has them now (after this pass's adoptions and writes)."""
        uid = daemonset["metadata"]["uid"]
        namespace = daemonset["metadata"]["namespace"]
        return [p for p in self.pods.cache.values() if p["metadata"].get("namespace") == namespace
                and (ref := controller_ref(p)) is not None and ref.get("uid") == uid]

    @staticmethod
    def _node_pods(pods: list[Obj]) -> dict[str, list[Obj]]:
        """getNodesToDaemonPods: by target node; terminal pods being deleted are left out."""
        by_node: dict[str, list[Obj]] = {}
        for pod in pods:
            terminal = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            if terminal and pod["metadata"].get("deletionTimestamp"):
                continue
            node = rules.target_node(pod)
            if node:
                by_node.setdefault(node, []).append(pod)
        return by_node

    @staticmethod
    def _daemonset_revision(daemonset: Obj, number: int, collisions: int) -> Obj:
        """The revision hashes the template with the collision count (as status.collisionCount would)."""
        status = {**(daemonset.get("status") or {}), "collisionCount": collisions} if collisions else \
            daemonset.get("status") or {}
        return daemonset_revision({**daemonset, "status": status}, number)

    async def _report_failed(self, key: str, daemonset: Obj, plan: rules.Plan) -> float | None:
        """Failed daemon pods are deleted with a FailedDaemonPod event, at most as often as a per-node backoff
        allows (a kubelet refusing the pod would otherwise make the two fight in a hot loop)."""
        recheck = None
        now = time.monotonic()
        for pod, node in plan.failed:
            backoff_key = f"{key}/{node}"
            retry_at, delay = self._failed_backoff.get(backoff_key, (0.0, 0.0))
            if now < retry_at:
                plan.delete = [p for p in plan.delete if p["metadata"]["uid"] != pod["metadata"]["uid"]]
                recheck = retry_at - now if recheck is None else min(recheck, retry_at - now)
                continue
            delay = min(delay * 2 if delay else 1.0, FAILED_BACKOFF_MAX)
            self._failed_backoff[backoff_key] = (now + delay, delay)
            meta = pod["metadata"]
            await self.api.record_event(daemonset, "Warning", "FailedDaemonPod",
                                        f"Found failed daemon pod {meta['namespace']}/{meta['name']} on node {node}, "
                                        "will try to kill it", COMPONENT)
        return recheck

    async def _sync_nodes(self, key: str, daemonset: Obj, plan: rules.Plan, hash_value: str) -> None:
        """syncNodes: deletions, then creations in slow-start batches (1, 2, 4, …)."""
        for pod in plan.delete:
            await self._delete_pod(key, daemonset, pod)
        await create_owned_pods(self.api, self.pods.cache, self.expectations, key, daemonset,
                                [rules.pod_for_node(daemonset, hash_value, node) for node in plan.create_on], COMPONENT)

    async def _delete_pod(self, key: str, daemonset: Obj, pod: Obj) -> None:
        await delete_owned_pod_with_events(self.api, self.pods.cache, self.expectations, key, daemonset, pod,
                                           COMPONENT)
