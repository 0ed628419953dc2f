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
from apiserver.controllers.ownership import Claim, Matcher, controller_ref, labels_of
from apiserver.controllers.writes import modify, namespace_terminating
from apiserver.controllers.replicaset_rules import (claim_pods, pod_from_template, pods_to_delete, replica_diff,
                                                    replica_status)
from apiserver.informer import Informer, SharedInformers, object_key
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.kinds.base import Obj
from apiserver.registry import DeleteOptions, Registry, utc_now
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

    def informers(self) -> list[Informer]:
        return [self.owners, self.pods]

    def all_keys(self) -> set[str]:
        return set(self.owners.cache)

    # event handlers ------------------------------------------------------------------------------
    def _on_owner(self, _event_type: str, owner: Obj) -> None:
        self.enqueue(object_key(owner))

    def _on_pod(self, event_type: str, pod: Obj) -> None:
        meta = pod["metadata"]
        namespace = meta.get("namespace", "")
        ref = controller_ref(pod)
        if ref is not None:
            if ref.get("kind") == self.kind:
                key = f"{namespace}/{ref.get('name')}"
                self.expectations.observe(key, event_type, meta["name"], meta.get("uid", ""),
                                          bool(meta.get("deletionTimestamp")))
                self.enqueue(key)
            return
        labels = labels_of(pod)
        for key, owner in list(self.owners.cache.items()):
            if owner["metadata"].get("namespace") != namespace:
                continue
            matches = self.matcher(owner)
            if matches is not None and matches(labels):
                self.enqueue(key)  # an orphan it may adopt

    # sync ----------------------------------------------------------------------------------------
    async def sync_key(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        try:
            owner = await self.registry.get(namespace, name)
        except errors.APIError as exc:
            if exc.code == 404:
                self.expectations.forget(key)
                return  # gone: the garbage collector removes its pods
            raise
        matches = self.matcher(owner)
        if matches is None:
            log.warning("%s has an invalid or empty selector key=%s", self.kind, key)
            return
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
        """Slow start as upstream: batches of 1, 2, 4, … so a failing template does not flood the API."""
        namespace = owner["metadata"]["namespace"]
        remaining, batch = count, 1
        while remaining > 0:
            size = min(batch, remaining)
            results = await asyncio.gather(*(self.api.create(self.api.pods, namespace, pod_from_template(owner))
                                             for _ in range(size)), return_exceptions=True)
            failure = None
            for result in results:
                if isinstance(result, errors.APIError):
                    failure = result
                elif isinstance(result, BaseException):
                    raise result
                else:
                    if object_key(result) not in self.pods.cache:
                        self.expectations.expect_create(key, result["metadata"]["name"])
                    await self.api.record_event(owner, "Normal", "SuccessfulCreate",
                                                f"Created pod: {result['metadata']['name']}", self.component)
            if failure is not None:
                if namespace_terminating(failure):
                    return  # the namespace is going away: nothing to create
                await self.api.record_event(owner, "Warning", "FailedCreate", f"Error creating: {failure.message}",
                                            self.component)
                raise failure
            remaining -= size
            batch *= 2

    async def _delete_pod(self, key: str, owner: Obj, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.api.delete(self.api.pods, meta["namespace"], meta["name"],
                                  DeleteOptions(precondition_uid=meta["uid"]))
        except errors.APIError as exc:
            if exc.code in (404, 409):
                return
            await self.api.record_event(owner, "Warning", "FailedDelete", f"Error deleting: {exc.message}",
                                        self.component)
            raise
        cached = self.pods.cache.get(object_key(pod))
        if cached is not None and cached["metadata"].get("uid") == meta["uid"] and \
                not cached["metadata"].get("deletionTimestamp"):
            self.expectations.expect_delete(key, meta["uid"])
        await self.api.record_event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}",
                                    self.component)

    async def _write_status(self, owner: Obj, status: Obj) -> None:
        if (owner.get("status") or {}) != status:
            await modify(self.registry, owner, lambda current: {**current, "status": status}, subresource="status")
