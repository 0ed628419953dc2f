"""The bounded event history and watcher fan-out a storage backend serves `watch()` from.

Like upstream's watch cache: events are kept in revision order up to `size`; a watch may start at
or after `compacted_revision` (the revision just before the oldest kept event) and gets the kept
events after its start, then live ones.
"""
from __future__ import annotations

import collections

from apiserver.storage.interface import QueueWatch, RevisionCompacted, StorageEvent


class WatchHistory:
    def __init__(self, size: int, revision: int = 0):
        self._events: collections.deque[StorageEvent] = collections.deque()
        self._size = size
        self._watchers: set[QueueWatch] = set()
        self.revision = revision
        self.compacted_revision = revision

    def publish(self, event: StorageEvent) -> None:
        self._events.append(event)
        if len(self._events) > self._size:
            self.compacted_revision = self._events.popleft().revision
        self.revision = max(self.revision, event.revision)
        for watcher in list(self._watchers):
            watcher.offer(event)

    def watch(self, prefix: str, from_revision: int) -> QueueWatch:
        if from_revision < self.compacted_revision:
            raise RevisionCompacted(from_revision, self.compacted_revision)
        watcher = QueueWatch(prefix, from_revision, self._watchers.discard)
        for event in self._events:
            watcher.offer(event)
        self._watchers.add(watcher)
        return watcher

    def reset(self, revision: int) -> None:
        """Forget everything (a gap in the event stream): watchers close and resume or relist from `revision`."""
        self._events.clear()
        self.revision = self.compacted_revision = revision
        self.close_watchers()

    def close_watchers(self) -> None:
        for watcher in list(self._watchers):
            watcher.stop()
