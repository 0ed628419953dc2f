"""The garbage collector: deletes objects whose owners are gone (background), deletes the dependents of
an owner deleted in the foreground before letting it go (`foregroundDeletion`), and strips the owner
reference from the dependents of an owner deleted with `orphan`. Informers over every served kind except
Events (metadata-only, as upstream's: the graph needs only owner references, uids, finalizers and the
deletion timestamp) feed an owner graph; a queue of uids is worked with live reads before anything is deleted."""
from __future__ import annotations

import asyncio
import logging

from apiserver import errors
from apiserver.api import API
from apiserver.controllers.gc_rules import (Node, OwnerGraph, OwnerState, decide, without_finalizer,
                                            without_owner_refs)
from apiserver.controllers.writes import modify
from apiserver.deletion_propagation import FOREGROUND_FINALIZER, ORPHAN_FINALIZER
from apiserver.informer import RegistryInformer, SharedInformers
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.kinds.base import Obj
from apiserver.registry import DeleteOptions, Registry

log = logging.getLogger(__name__)

IGNORED_RESOURCES = {("", "events")}  # high churn and never owners: not worth an informer


class GarbageCollector(KeyedController):
    """Keys are object uids."""
    name = "garbage-collector"

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.graph = OwnerGraph()
        self._by_kind: dict[tuple[str, str], Registry] = {}
        self._informers: list[RegistryInformer] = []  # of every kind but the ignored ones
        custom = api.custom_resources
        for (group, plural), registry in api.registries.items():
            if (group, plural) in IGNORED_RESOURCES or custom.owns(group, plural):
                continue
            self._by_kind[(group, registry.info.kind)] = registry
            self._informers.append(informers.informer(registry, self._handler(registry), metadata_only=True))
        # Custom resources come and go with their CRDs: informers of their own, started and stopped here.
        self._custom: dict[str, tuple[Registry, RegistryInformer, asyncio.Task | None]] = {}
        self._running = False
        for registry in custom.served_registries():
            self._add_custom(registry)
        custom.add_listener(self._custom_changed)

    def informers(self) -> list[RegistryInformer]:
        return self._informers

    async def run(self) -> None:
        self._running = True
        for prefix, (registry, informer, task) in list(self._custom.items()):
            if task is None:
                self._custom[prefix] = (registry, informer, asyncio.create_task(
                    informer.run(), name=f"gc-informer-{registry.info.plural}.{registry.info.group}"))
        try:
            await super().run()
        finally:
            self.api.custom_resources.remove_listener(self._custom_changed)
            tasks = [task for _, _, task in self._custom.values() if task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _custom_changed(self, added: list[Registry], removed: list[Registry]) -> None:
        kept = {registry.prefix() for registry in added}
        for registry in removed:
            if registry.prefix() not in kept:
                self._remove_custom(registry)
        for registry in added:
            self._add_custom(registry)

    def _add_custom(self, registry: Registry) -> None:
        self._by_kind[(registry.info.group, registry.info.kind)] = registry
        prefix = registry.prefix()
        if prefix in self._custom:
            existing, informer, task = self._custom[prefix]
            informer.registry = registry
            informer.source.registry = registry  # type: ignore[attr-defined]
            self._custom[prefix] = (registry, informer, task)
            return
        informer = RegistryInformer(registry, self._handler(registry), metadata_only=True)
        task = asyncio.create_task(informer.run(), name=f"gc-informer-{registry.info.plural}.{registry.info.group}") \
            if self._running else None
        self._custom[prefix] = (registry, informer, task)

    def _remove_custom(self, registry: Registry) -> None:
        entry = self._custom.pop(registry.prefix(), None)
        if self._by_kind.get((registry.info.group, registry.info.kind)) is registry or entry is not None:
            self._by_kind.pop((registry.info.group, registry.info.kind), None)
        if entry is None:
            return
        _, informer, task = entry
        if task is not None:
            task.cancel()
        handler = self._handler(registry)
        for obj in list(informer.cache.values()):  # the kind is gone: so are its objects
            handler("DELETED", obj, obj)

    def all_keys(self) -> set[str]:
        return {uid for uid, node in list(self.graph.nodes.items())
                if node.orphaning or node.deleting_dependents or (node.owners and self.graph.needs_owner_check(node))}

    def _handler(self, registry: Registry):
        group, plural = registry.info.group, registry.info.plural

        def on_change(event_type: str, obj: Obj, _old: Obj | None) -> None:
            previous, node = self.graph.observe(event_type, obj, group, plural)
            uid = (obj.get("metadata") or {}).get("uid", "")
            for ref in (previous.owners if previous else []) + (node.owners if node else []):
                owner = self.graph.nodes.get(ref["uid"])
                if owner is not None and owner.deleting_dependents:
                    self.enqueue(owner.uid)  # a foreground deletion may be able to finish
            if node is None:
                for dependent in self.graph.dependents(uid):
                    self.enqueue(dependent.uid)  # background: the owner is gone
                return
            if node.orphaning or node.deleting_dependents:
                self.enqueue(uid)
                if previous is None or not (previous.orphaning or previous.deleting_dependents):
                    for dependent in self.graph.dependents(uid):
                        self.enqueue(dependent.uid)
                return
            if node.owners and (self.graph.needs_owner_check(node) or previous is None
                                or previous.owners != node.owners):
                self.enqueue(uid)
        return on_change

    # processing --------------------------------------------------------------------------------
    async def sync_key(self, uid: str) -> None:
        node = self.graph.nodes.get(uid)
        if node is None:
            return
        registry = self.api.registry(node.group, node.plural)
        try:
            obj = await registry.get(node.namespace, node.name)
        except errors.APIError as exc:
            if exc.code == 404:
                return
            raise
        if obj["metadata"].get("uid") != uid:
            return
        finalizers = obj["metadata"].get("finalizers") or []
        if obj["metadata"].get("deletionTimestamp"):
            if ORPHAN_FINALIZER in finalizers:
                await self._orphan_dependents(registry, obj)
            elif FOREGROUND_FINALIZER in finalizers:
                await self._delete_dependents(registry, obj)
            return
        await self._collect(registry, obj)

    async def _collect(self, registry: Registry, obj: Obj) -> None:
        meta = obj["metadata"]
        owners = [(ref, await self._owner_state(ref, registry.info.namespaced, meta.get("namespace", "")))
                  for ref in meta.get("ownerReferences") or [] if ref.get("uid")]
        decision = decide(owners, tuple(meta.get("finalizers") or ()), bool(self.graph.dependents(meta["uid"])))
        if decision.action == "remove-refs":
            stale = set(decision.remove_owner_uids)
            await modify(registry, obj, lambda current: without_owner_refs(current, stale))
            log.info("garbage collector removed owner references object=%s/%s/%s owners=%s", registry.info.plural,
                     meta.get("namespace", ""), meta["name"], ",".join(sorted(stale)))
        elif decision.action == "delete":
            try:
                await self.api.delete(registry, meta.get("namespace", ""), meta["name"],
                                      DeleteOptions(precondition_uid=meta["uid"],
                                                    propagation_policy=decision.propagation_policy))
            except errors.APIError as exc:
                if exc.code not in (404, 409):
                    raise
                return
            log.info("garbage collector deleted object=%s/%s/%s propagation=%s", registry.info.plural,
                     meta.get("namespace", ""), meta["name"], decision.propagation_policy)

    async def _owner_state(self, ref: Obj, dependent_namespaced: bool, namespace: str) -> OwnerState:
        """The owner as it is now (a live read); an owner of a kind we do not serve counts as solid."""
        api_version = ref.get("apiVersion", "")
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        registry = self._by_kind.get((group, ref.get("kind", "")))
        if registry is None or (registry.info.namespaced and not dependent_namespaced):
            return OwnerState.SOLID
        try:
            owner = await registry.get(namespace if registry.info.namespaced else "", ref.get("name", ""))
        except errors.APIError as exc:
            if exc.code == 404:
                return OwnerState.DANGLING
            raise
        if owner["metadata"].get("uid") != ref.get("uid"):
            return OwnerState.DANGLING
        if owner["metadata"].get("deletionTimestamp") and \
                FOREGROUND_FINALIZER in (owner["metadata"].get("finalizers") or []):
            return OwnerState.WAITING
        return OwnerState.SOLID

    async def _orphan_dependents(self, registry: Registry, owner: Obj) -> None:
        uid = owner["metadata"]["uid"]
        for dependent in self.graph.dependents(uid):
            await self._update_node(dependent, lambda current: without_owner_refs(current, {uid}))
        await modify(registry, owner, lambda current: without_finalizer(current, ORPHAN_FINALIZER))
        log.info("garbage collector orphaned dependents owner=%s/%s/%s", registry.info.plural,
                 owner["metadata"].get("namespace", ""), owner["metadata"]["name"])

    async def _delete_dependents(self, registry: Registry, owner: Obj) -> None:
        uid = owner["metadata"]["uid"]
        if not self.graph.blocking_dependents(uid):
            await modify(registry, owner, lambda current: without_finalizer(current, FOREGROUND_FINALIZER))
            log.info("garbage collector finished foreground deletion owner=%s/%s/%s", registry.info.plural,
                     owner["metadata"].get("namespace", ""), owner["metadata"]["name"])
            return
        for dependent in self.graph.dependents(uid):
            if not dependent.deleting:
                self.enqueue(dependent.uid)

    async def _update_node(self, node: Node, change) -> None:
        registry = self.api.registry(node.group, node.plural)
        await modify(registry, {"metadata": {"uid": node.uid, "namespace": node.namespace, "name": node.name}},
                     change)
