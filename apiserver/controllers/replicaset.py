"""The ReplicaSet and ReplicationController controllers (one class, two selector flavours): keep
`spec.replicas` active pods matching the selector, owned through a controller reference."""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from apiserver import errors
from apiserver.api import API
from apiserver.controllers.adoption import apply_claim
from apiserver.controllers.expectations import Expectations
from apiserver.controllers.owned_pods import (create_owned_pods, delete_owned_pod_with_events, owner_to_sync,
                                             owners_woken)
from apiserver.controllers.ownership import Claim, Matcher
from apiserver.controllers.writes import modify
from apiserver.controllers.replicaset_rules import (claim_pods, pod_from_template, pods_to_delete, replica_diff,
                                                    replica_status)
from apiserver.informer import RegistryInformer, SharedInformers, object_key
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.kinds.base import Obj
from apiserver.registry import Registry, utc_now
from shipmate.timeutil import rfc3339
from shipmate.selectors import SelectorError, label_selector_from_dict

log = logging.getLogger(__name__)


def label_selector_matcher(owner: Obj) -> Matcher | None:
    """apps/v1 selector; None for an empty or unparseable one (such an owner selects nothing)."""
    selector = (owner.get("spec") or {}).get("selector")
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return None
    try:
        return label_selector_from_dict(selector).matches
    except SelectorError:
        return None


def map_selector_matcher(owner: Obj) -> Matcher | None:
    """core/v1 ReplicationController selector: a map of labels, all of which must match."""
    selector = (owner.get("spec") or {}).get("selector") or {}
    if not selector:
        return None
    return lambda labels: all(labels.get(k) == v for k, v in selector.items())


class ReplicaSetController(KeyedController):
    def __init__(self, api: API, informers: SharedInformers, registry: Registry, component: str,
                 matcher: Callable[[Obj], Matcher | None]):
        super().__init__()
        self.name = component
        self.api = api
        self.registry = registry
        self.kind = registry.info.kind
        self.component = component
        self.matcher = matcher
        self.owners = informers.informer(registry, self._on_owner)
        self.pods = informers.informer(api.pods, self._on_pod)
        self.expectations = Expectations()

    @classmethod
    def for_replica_sets(cls, api: API, informers: SharedInformers) -> "ReplicaSetController":
        return cls(api, informers, api.registry("apps", "replicasets"), "replicaset-controller",
                   label_selector_matcher)

    @classmethod
    def for_replication_controllers(cls, api: API, informers: SharedInformers) -> "ReplicaSetController":
        return cls(api, informers, api.registry("", "replicationcontrollers"), "replication-controller",
                   map_selector_matcher)

    def informers(self) -> list[RegistryInformer]:
        return [self.owners, self.pods]

    def all_keys(self) -> set[str]:
        return set(self.owners.cache)

    # event handlers ------------------------------------------------------------------------------
    def _on_owner(self, _event_type: str, owner: Obj, _old: Obj | None) -> None:
        self.enqueue(object_key(owner))

    def _on_pod(self, event_type: str, pod: Obj, _old: Obj | None) -> None:
        for key in owners_woken(event_type, pod, self.kind, self.owners.cache, self.expectations, self.matcher):
            self.enqueue(key)

    # sync ----------------------------------------------------------------------------------------
    async def sync_key(self, key: str) -> None:
        found = await owner_to_sync(self.registry, key, self.expectations, self.matcher)
        if found is None:
            return
        owner, matches = found
        namespace = key.partition("/")[0]
        pods = [pod for pod in self.pods.cache.values() if pod["metadata"].get("namespace") == namespace]
        claim = claim_pods(owner, matches, pods)
        await apply_claim(self.api.pods, owner, claim, matches, self.component)
        manage_error = None
        if not owner["metadata"].get("deletionTimestamp") and self.expectations.satisfied(key):
            try:
                await self._manage_replicas(key, owner, claim)
            except errors.APIError as exc:
                manage_error = exc.message
        now = utc_now()
        result = replica_status(owner, claim.owned, now, manage_error, rfc3339(now))
        await self._write_status(owner, result.status)
        if result.recheck_in is not None:
            asyncio.get_running_loop().call_later(result.recheck_in + 0.05, self.enqueue, key)
        if manage_error is not None:
            raise RuntimeError(manage_error)

    async def _manage_replicas(self, key: str, owner: Obj, claim: Claim) -> None:
        diff = replica_diff((owner.get("spec") or {}).get("replicas", 0), len(claim.owned))
        if diff > 0:
            await self._create_pods(key, owner, diff)
        elif diff < 0:
            for pod in pods_to_delete(claim.owned, -diff):
                await self._delete_pod(key, owner, pod)

    async def _create_pods(self, key: str, owner: Obj, count: int) -> None:
        await create_owned_pods(self.api, self.pods.cache, self.expectations, key, owner,
                                [pod_from_template(owner) for _ in range(count)], self.component)

    async def _delete_pod(self, key: str, owner: Obj, pod: Obj) -> None:
        await delete_owned_pod_with_events(self.api, self.pods.cache, self.expectations, key, owner, pod,
                                           self.component)

    async def _write_status(self, owner: Obj, status: Obj) -> None:
        if (owner.get("status") or {}) != status:
            await modify(self.registry, owner, lambda current: {**current, "status": status}, subresource="status")
