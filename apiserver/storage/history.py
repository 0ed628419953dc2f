"""The bounded event history and watcher fan-out a storage backend serves `watch()` from.

Like upstream's watch cache: events are kept in revision order up to `size`; a watch may start at
or after `compacted_revision` (the revision just before the oldest kept event) and gets the kept
events after its start, then live ones. Watchers are grouped by the resource their prefix names
(`/registry/<resource>/...`), so an event is offered only to its resource's watchers and to those
with a wider prefix, not to every watcher of the server.
"""
from __future__ import annotations

import collections

from apiserver.storage.interface import QueueWatch, RevisionCompacted, StorageEvent


def _resource_prefix(key: str) -> str:
    """`/registry/<resource>/` for a key or prefix that names a resource, else "" (wider prefixes)."""
    parts = key.split("/", 3)
    return f"/registry/{parts[2]}/" if len(parts) == 4 and parts[0] == "" and parts[1] == "registry" else ""


# The history's bound in bytes (values and previous values), beside its bound in events: a client allowed to
# rewrite a 1 MiB object could otherwise make 10000 events hold ~20 GB.
MAX_HISTORY_BYTES = 256 * 1024 * 1024


def _event_bytes(event: StorageEvent) -> int:
    return len(event.kv.value) + (len(event.prev.value) if event.prev is not None else 0)


class WatchHistory:
    def __init__(self, size: int, revision: int = 0, max_bytes: int = MAX_HISTORY_BYTES):
        self._events: collections.deque[StorageEvent] = collections.deque()
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._watchers: dict[str, set[QueueWatch]] = {}  # resource prefix ("" = wider) -> its watchers
        self.revision = revision
        self.compacted_revision = revision

    def publish(self, event: StorageEvent) -> None:
        self._events.append(event)
        self._bytes += _event_bytes(event)
        while len(self._events) > self._size or (self._bytes > self._max_bytes and len(self._events) > 1):
            dropped = self._events.popleft()
            self._bytes -= _event_bytes(dropped)
            self.compacted_revision = dropped.revision
        self.revision = max(self.revision, event.revision)
        for group in (_resource_prefix(event.kv.key), ""):
            for watcher in list(self._watchers.get(group, ())):
                watcher.offer(event)

    def watch(self, prefix: str, from_revision: int) -> QueueWatch:
        if from_revision < self.compacted_revision:
            raise RevisionCompacted(from_revision, self.compacted_revision)
        group = _resource_prefix(prefix)
        watcher = QueueWatch(prefix, from_revision, lambda stopped: self._forget(group, stopped))
        for event in self._events:
            watcher.offer(event)
        self._watchers.setdefault(group, set()).add(watcher)
        return watcher

    def _forget(self, group: str, watcher: QueueWatch) -> None:
        watchers = self._watchers.get(group)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[group]

    def reset(self, revision: int) -> None:
        """Forget everything (a gap in the event stream): watchers close and resume or relist from `revision`."""
        self._events.clear()
        self._bytes = 0
        self.revision = self.compacted_revision = revision
        self.close_watchers()

    def close_watchers(self) -> None:
        for watcher in [w for watchers in self._watchers.values() for w in watchers]:
            watcher.stop()
