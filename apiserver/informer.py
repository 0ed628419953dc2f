"""In-process informer: list + watch a registry into a cache, relist on 410, call back on every change."""
from __future__ import annotations

import asyncio
import logging
import sys
from typing import Awaitable, Callable

from apiserver.kinds.base import Obj
from apiserver.registry import Registry, WatchEvent
from apiserver.storage.interface import RevisionCompacted, WatchClosed
from shipmate.selectors import FieldSelector, LabelSelector

log = logging.getLogger(__name__)

Handler = Callable[[str, Obj], Awaitable[None] | None]


def object_key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def share_strings(value: object) -> None:
    """Replace, in place, every key and string of a decoded object by its interned equal: each decode makes
    its own copies of "terminationMessagePath", "f:spec", "IfNotPresent", … — about half of a cached pod's
    memory. Equal values, so invisible to every holder of the object (informer objects are never mutated)."""
    if isinstance(value, dict):
        items = list(value.items())
        value.clear()  # re-added in order: assigning to an existing key would keep the dict's own key copy
        for key, item in items:
            if type(item) is str:
                item = sys.intern(item)
            else:
                share_strings(item)
            value[sys.intern(key)] = item
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if type(item) is str:
                value[index] = sys.intern(item)
            else:
                share_strings(item)


class Informer:
    def __init__(self, registry: Registry, on_change: Callable[[str, Obj], None] | None = None):
        self.registry = registry
        self.cache: dict[str, Obj] = {}
        self.synced = asyncio.Event()
        self._handlers: list[Callable[[str, Obj], None]] = [on_change] if on_change else []

    def add_handler(self, on_change: Callable[[str, Obj], None]) -> None:
        """Another consumer of the same cache (handlers added before run() see the initial list)."""
        self._handlers.append(on_change)

    def _apply(self, event: WatchEvent) -> None:
        key = object_key(event.object)
        if event.type == "DELETED":
            self.cache.pop(key, None)
        else:
            share_strings(event.object)
            self.cache[key] = event.object
        for handler in self._handlers:
            handler(event.type, event.object)

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._list_and_watch()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the informer must survive and retry
                log.warning("informer restarting resource=%s error=%r backoff=%.1fs",
                            self.registry.info.plural, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _list_and_watch(self) -> None:
        items, revision = await self.registry.list()
        fresh = {object_key(obj): obj for obj in items}
        for key, obj in list(self.cache.items()):
            if key not in fresh:
                self._apply(WatchEvent("DELETED", obj))
        for obj in items:
            self._apply(WatchEvent("ADDED", obj))
        self.synced.set()
        while True:
            try:
                watch = await self.registry.watch("", LabelSelector(), FieldSelector(), str(revision))
            except RevisionCompacted:
                log.info("informer relisting after compaction resource=%s", self.registry.info.plural)
                return
            try:
                while True:
                    event = await watch.next()
                    if event is None:
                        continue
                    self._apply(event)
                    revision = int(event.object["metadata"]["resourceVersion"])
            except WatchClosed:
                return
            finally:
                watch.stop()


class SharedInformers:
    """One informer per resource for all the controllers that watch it (as client-go's shared informer
    factory): one watch, one cache, one decode per event. Register handlers, then run()."""

    def __init__(self) -> None:
        self._informers: dict[str, Informer] = {}

    def informer(self, registry: Registry, on_change: Callable[[str, Obj], None]) -> Informer:
        key = registry.prefix()
        informer = self._informers.get(key)
        if informer is None:
            informer = self._informers[key] = Informer(registry)
        informer.add_handler(on_change)
        return informer

    async def run(self) -> None:
        tasks = [asyncio.create_task(i.run(), name=f"informer-{i.registry.info.plural}")
                 for i in self._informers.values()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
