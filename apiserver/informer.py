"""The shared informer (shipmate.informer) fed in process from a registry, the controllers' shared informers,
and the admission plugins' read-through storage cache."""
from __future__ import annotations

import asyncio
import sys
from typing import AsyncIterator

from apiserver.kinds.base import Obj
from apiserver.registry import Registry, WatchEvent
from apiserver.storage.interface import EventType, KeyValue, RevisionCompacted, StorageEvent, WatchClosed
from apiserver.storage.mirror import StorageMirror
from shipmate import informer as shared
from shipmate.informer import Expired, Handler, object_key
from shipmate.selectors import FieldSelector, LabelSelector
from shipmate.supervisor import stop_tasks

__all__ = ["RegistryInformer", "RegistrySource", "SharedInformers", "StorageCache", "object_key",
           "partial_object_metadata", "share_strings"]

_intern = sys.intern


def share_strings(value: object) -> None:
    """Replace, in place, every key and string of a decoded object by its interned equal: each decode makes
    its own copies of "terminationMessagePath", "f:spec", "IfNotPresent", … — about half of a cached pod's
    memory. Equal values, so invisible to every holder of the object (informer objects are never mutated).
    Runs on every event of every informer: scalars other than strings are not descended into."""
    if type(value) is dict:
        items = list(value.items())
        value.clear()  # re-added in order: assigning to an existing key would keep the dict's own key copy
        for key, item in items:
            kind = type(item)
            if kind is str:
                item = _intern(item)
            elif kind is dict or kind is list:
                share_strings(item)
            value[_intern(key)] = item
    elif type(value) is list:
        for index, item in enumerate(value):
            kind = type(item)
            if kind is str:
                value[index] = _intern(item)
            elif kind is dict or kind is list:
                share_strings(item)


def partial_object_metadata(obj: Obj) -> Obj:
    """What a metadata-only informer keeps of an object (upstream's PartialObjectMetadata, as the garbage
    collector's informers watch): apiVersion, kind and metadata, without managedFields (read by no control
    loop). A new object: the decoded event is shared with other watchers."""
    meta = obj.get("metadata") or {}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
            "metadata": {key: value for key, value in meta.items() if key != "managedFields"}}


class RegistrySource:
    """A registry's objects (all namespaces) listed and watched in process: an informer's source."""

    def __init__(self, registry: Registry):
        self.registry = registry

    @property
    def name(self) -> str:
        return self.registry.info.plural

    async def list(self) -> tuple[list[Obj], str]:
        items, revision = await self.registry.list()
        return items, str(revision)

    async def watch(self, resource_version: str) -> AsyncIterator[WatchEvent]:
        try:
            watch = await self.registry.watch("", LabelSelector(), FieldSelector(), resource_version)
        except RevisionCompacted as compacted:
            raise Expired(str(compacted)) from compacted
        try:
            while True:
                event = await watch.next()
                if event is not None:
                    yield event
        except WatchClosed:  # storage closed, history reset, or the watch fell behind: resumed or relisted
            return
        finally:
            watch.stop()


class RegistryInformer(shared.Informer[Obj]):
    """The shared informer over a registry. Cached objects share their strings (share_strings); a
    metadata-only informer caches and hands out partial_object_metadata() of each object."""

    def __init__(self, registry: Registry, on_change: Handler[Obj] | None = None, metadata_only: bool = False):
        super().__init__(RegistrySource(registry), on_change, transform=self._cached_form)
        self.registry = registry
        self.metadata_only = metadata_only

    def _cached_form(self, obj: Obj) -> Obj:
        if self.metadata_only:
            obj = partial_object_metadata(obj)
        share_strings(obj)
        return obj



class SharedInformers:
    """One informer per resource for all the controllers that watch it (as client-go's shared informer
    factory): one watch, one cache, one decode per event. Register handlers, then run(). A resource only
    metadata consumers asked for (the garbage collector, on every kind) gets a metadata-only informer; one
    that any consumer wants whole is cached whole, and its metadata consumers see whole objects."""

    def __init__(self) -> None:
        self._informers: dict[str, RegistryInformer] = {}

    def informer(self, registry: Registry, on_change: Handler[Obj],
                 metadata_only: bool = False) -> RegistryInformer:
        key = registry.prefix()
        informer = self._informers.get(key)
        if informer is None:
            informer = self._informers[key] = RegistryInformer(registry, metadata_only=metadata_only)
        informer.metadata_only = informer.metadata_only and metadata_only
        informer.add_handler(on_change)
        return informer

    async def run(self) -> None:
        tasks = [asyncio.create_task(i.run(), name=f"informer-{i.source.name}")
                 for i in self._informers.values()]
        try:
            await asyncio.gather(*tasks)
        finally:
            await stop_tasks(tasks)


class StorageCache(StorageMirror):
    """A registry's objects by namespace and name for admission checks, current without a task of its own:
    each read first applies the events its storage watch queued since the previous read (or relists when
    that watch closed). A backend queues a write's event before it acknowledges the write (SQLite), or when
    its watch stream delivers it (etcd), so on SQLite a read sees every write this server acknowledged, and
    on etcd it trails the watch stream as upstream's informer-fed admission plugins do. Objects are shared:
    callers must not mutate them."""

    def __init__(self, registry: Registry):
        super().__init__(registry.storage, registry.prefix())
        self.registry = registry
        self._objects: dict[str, dict[str, Obj]] = {}  # namespace ("" when cluster-scoped) -> name -> object

    async def get(self, namespace: str, name: str) -> Obj | None:
        await self._catch_up()
        return self._objects.get(namespace, {}).get(name)

    async def items(self, namespace: str) -> list[Obj]:
        await self._catch_up()
        return list(self._objects.get(namespace, {}).values())

    def _reset(self, kvs: list[KeyValue], revision: int) -> None:
        self._objects = {}
        for kv in kvs:
            namespace, name = self._names(kv.key)
            self._objects.setdefault(namespace, {})[name] = self.registry.decode(kv)

    def _names(self, key: str) -> tuple[str, str]:
        namespace, _, name = key[len(self._prefix):].rpartition("/")
        return namespace, name

    def _apply(self, event: StorageEvent) -> None:
        namespace, name = self._names(event.kv.key)
        if event.type == EventType.DELETE:
            objects = self._objects.get(namespace, {})
            objects.pop(name, None)
            if not objects:
                self._objects.pop(namespace, None)
        else:
            self._objects.setdefault(namespace, {})[name] = self.registry.decode(event.kv)
