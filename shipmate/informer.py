"""The informer both daemons use: list a resource, then watch it from the list's resourceVersion, into a
cache keyed "<namespace>/<name>" ("/<name>" when cluster-scoped), calling handlers on every change
(upstream's reflector and shared informer).

A `Source` lists and watches one resource: in process over a registry in the API server
(apiserver/informer.py), over HTTP in the agent (shipmate/kubeclient.py). A watch that ends is resumed from
the last resourceVersion seen (bookmarks included); one the source answers with 410 Expired is replaced by a
relist, whose differences reach the handlers as ordinary changes; any other failure, and a watch that ends
at once without an event (upstream's "very short watch"), is retried after an exponential backoff.

Handlers are called as `handler(event_type, obj, old)` on the event loop: `event_type` is ADDED, MODIFIED or
DELETED; `obj` is the object now (for DELETED its last state); `old` what the cache held before (None when
it held nothing). A relist reports every listed object, as MODIFIED when it was cached already (upstream's
Replace: level-triggered consumers take it as a resync). Handlers must not block, and must not mutate what
they are given: cached objects are shared.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from typing import Any, AsyncIterator, Callable, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

Obj = dict[str, Any]
T = TypeVar("T")
Handler = Callable[[str, T, T | None], None]

ADDED, MODIFIED, DELETED, BOOKMARK = "ADDED", "MODIFIED", "DELETED", "BOOKMARK"
MIN_WATCH_SECONDS = 1.0   # a watch ending sooner without an event counts as a failure (backoff)


class Expired(Exception):
    """The resourceVersion a watch asked for is older than the source's history (410 Expired): relist."""


class Event(Protocol):
    @property
    def type(self) -> str: ...      # ADDED, MODIFIED, DELETED, BOOKMARK

    @property
    def object(self) -> Obj: ...


class Source(Protocol):
    """One resource's list and watch."""

    @property
    def name(self) -> str: ...      # what the logs call the resource

    async def list(self) -> tuple[list[Obj], str]:
        """The objects and the resourceVersion of the list."""

    def watch(self, resource_version: str) -> AsyncIterator[Event]:
        """The changes after `resource_version`, until the stream ends; raises Expired when that version
        is no longer in the source's history."""


def object_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def _resource_version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _identity(obj: Obj) -> Any:
    return obj


class Informer(Generic[T]):
    """list+watch of one source into `cache`. `transform` turns each listed or watched object into what the
    cache keeps and handlers get (a slimmer record, or the object with its strings shared)."""

    def __init__(self, source: Source, on_change: Handler | None = None, *,
                 transform: Callable[[Obj], T] = _identity, min_backoff: float = 0.2, max_backoff: float = 10.0):
        self.source = source
        self.cache: dict[str, T] = {}
        self.synced = asyncio.Event()         # set once the first list is in the cache
        self.resource_version = ""            # where the next watch starts
        self.min_backoff, self.max_backoff = min_backoff, max_backoff
        self._transform = transform
        self._handlers: list[Handler] = [on_change] if on_change else []

    def add_handler(self, on_change: Handler) -> None:
        """Another consumer of the same cache (handlers added before run() see the first list)."""
        self._handlers.append(on_change)

    async def run(self) -> None:
        backoff = self.min_backoff
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                if await self._watch():
                    backoff = self.min_backoff
                    continue
                log.warning("watch ended at once resource=%s rv=%s retry_in=%.1fs", self.source.name,
                            self.resource_version, backoff)
            except Expired:
                log.info("watch expired, relisting resource=%s rv=%s", self.source.name, self.resource_version)
                need_list = True
                continue
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the informer must survive anything
                log.warning("list/watch failed resource=%s error=%r retry_in=%.1fs", self.source.name, error,
                            backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _relist(self) -> None:
        items, resource_version = await self.source.list()
        listed = {object_key(item): item for item in items}
        for key in [key for key in self.cache if key not in listed]:
            old = self.cache.pop(key)
            self._notify(DELETED, old, old)
        for key, item in listed.items():
            self._store(key, item)
        self.resource_version = resource_version
        self.synced.set()

    async def _watch(self) -> bool:
        """One watch until it ends; whether it was a healthy one (events, or long enough)."""
        loop = asyncio.get_running_loop()
        started, events = loop.time(), 0
        async with aclosing(self.source.watch(self.resource_version)) as stream:
            async for event in stream:
                events += 1
                obj = event.object
                if event.type == DELETED:
                    key = object_key(obj)
                    old = self.cache.pop(key, None)
                    self._notify(DELETED, self._transform(obj), old)
                elif event.type in (ADDED, MODIFIED):
                    self._store(object_key(obj), obj)
                elif event.type != BOOKMARK:
                    raise RuntimeError(f"unexpected watch event {event.type!r}: {obj!r}")
                self.resource_version = _resource_version(obj) or self.resource_version
        return events > 0 or loop.time() - started >= MIN_WATCH_SECONDS

    def _store(self, key: str, raw: Obj) -> None:
        obj = self._transform(raw)
        old = self.cache.get(key)
        self.cache[key] = obj
        self._notify(ADDED if old is None else MODIFIED, obj, old)

    def _notify(self, event_type: str, obj: T, old: T | None) -> None:
        for handler in self._handlers:
            try:
                handler(event_type, obj, old)
            except Exception:  # noqa: BLE001 - one consumer's bug must not stop the others' changes
                log.exception("informer handler failed resource=%s handler=%s", self.source.name,
                              getattr(handler, "__qualname__", handler))
