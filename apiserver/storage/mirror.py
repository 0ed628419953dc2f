"""A prefix's stored objects mirrored in memory without a task of its own (admission's StorageCache, the HTTP
layer's ReadCache): each read first applies the events the mirror's storage watch queued since the previous
read, and lists again when that watch closed (storage closed, history reset, the watch fell behind)."""
from __future__ import annotations

import asyncio

from apiserver.storage.interface import KeyValue, RevisionCompacted, Storage, StorageEvent, Watch, WatchClosed


class StorageMirror:
    _RELIST_ATTEMPTS = 3

    def __init__(self, storage: Storage, prefix: str):
        self._storage = storage
        self._prefix = prefix
        self._watch: Watch | None = None
        self._relisting = asyncio.Lock()

    async def _catch_up(self) -> None:
        while True:
            if self._watch is None:
                await self._relist()
            try:
                while (event := self._watch.poll()) is not None:
                    self._apply(event)
                return
            except WatchClosed:
                self._watch = None

    async def _relist(self) -> None:
        async with self._relisting:
            if self._watch is not None:
                return
            for attempt in range(self._RELIST_ATTEMPTS):
                kvs, revision = await self._storage.list(self._prefix)
                try:
                    watch = self._storage.watch(self._prefix, revision)
                    break
                except RevisionCompacted:
                    if attempt + 1 == self._RELIST_ATTEMPTS:
                        raise
            self._watching(watch)
            self._reset(kvs, revision)
            self._watch = watch

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()
            self._watch = None

    def _watching(self, watch: Watch) -> None:
        """A new watch, before the objects it follows are loaded (to bound its queue, say)."""

    def _reset(self, kvs: list[KeyValue], revision: int) -> None:
        raise NotImplementedError

    def _apply(self, event: StorageEvent) -> None:
        raise NotImplementedError
