"""The key-value storage contract, shaped after etcd v3 so an etcd backend can implement it.

Keys look like `/registry/<resource>/<namespace>/<name>` (cluster-scoped: `/registry/<resource>/<name>`).
Every write bumps one global revision; an object's resourceVersion is the revision of its last
write (`mod_revision`). Watches replay writes after a revision from a bounded history; a revision
older than the history raises `RevisionCompacted` (HTTP 410 Gone).
"""
from __future__ import annotations

import abc
import asyncio
import logging
from dataclasses import dataclass
from enum import Enum

log = logging.getLogger(__name__)


class StorageError(Exception):
    pass


class KeyExists(StorageError):
    def __init__(self, key: str):
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFound(StorageError):
    def __init__(self, key: str):
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionMismatch(StorageError):
    """The key's mod_revision differs from the expected one (optimistic concurrency)."""

    def __init__(self, key: str, expected: int, actual: int):
        super().__init__(f"revision mismatch on {key}: expected {expected}, found {actual}")
        self.key, self.expected, self.actual = key, expected, actual


class RevisionCompacted(StorageError):
    def __init__(self, requested: int, oldest: int):
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested, self.oldest = requested, oldest


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


class EventType(str, Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True)
class StorageEvent:
    type: EventType
    revision: int
    kv: KeyValue  # for DELETE: the key with its last value, mod_revision = deletion revision
    prev: KeyValue | None

    @property
    def created(self) -> bool:
        return self.type == EventType.PUT and self.prev is None


class WatchClosed(Exception):
    pass


class Watch(abc.ABC):
    """A stream of events; `next()` until WatchClosed, `stop()` it. Closed after `stop()` or storage close."""

    @abc.abstractmethod
    async def next(self, timeout: float | None = None) -> StorageEvent | None:
        """The next event, None if `timeout` seconds pass first; WatchClosed once stopped."""

    @abc.abstractmethod
    def poll(self) -> StorageEvent | None:
        """The next event already delivered, without waiting: None if there is none; WatchClosed once stopped."""

    @abc.abstractmethod
    def stop(self) -> None: ...


class Storage(abc.ABC):
    # True when every write is published to watchers before it is acknowledged: a watch polled before a read
    # then holds every write acknowledged before the read began (apiserver/read_cache.py relies on it).
    publishes_before_ack = False

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def create(self, key: str, value: bytes) -> KeyValue:
        """Store a new key; KeyExists if present."""

    @abc.abstractmethod
    async def get(self, key: str) -> KeyValue | None: ...

    @abc.abstractmethod
    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        """All keys under prefix (sorted) and the revision the list is consistent with."""

    @abc.abstractmethod
    async def update(self, key: str, value: bytes, expected_revision: int | None) -> KeyValue:
        """Replace a key's value; KeyNotFound, or RevisionMismatch if expected_revision is stale."""

    @abc.abstractmethod
    async def delete(self, key: str, expected_revision: int | None) -> KeyValue:
        """Remove a key and return its last value; KeyNotFound or RevisionMismatch."""

    @abc.abstractmethod
    def watch(self, prefix: str, from_revision: int) -> Watch:
        """Events under prefix with revision > from_revision; RevisionCompacted if too old."""

    @property
    @abc.abstractmethod
    def revision(self) -> int:
        """The latest revision visible to watchers."""

    @property
    @abc.abstractmethod
    def compacted_revision(self) -> int:
        """Watches must start at or after this revision."""


class QueueWatch(Watch):
    """A watch fed by the storage's fan-out through a queue.

    A watcher that falls `max_pending` events behind is closed (as upstream drops slow watchers):
    its client resumes from the last resourceVersion it saw, or relists if that is too old.
    """

    _STOP = object()
    max_pending = 10000
    expects_to_fall_behind = False  # a watcher read only now and then (apiserver/read_cache.py): not a warning

    def __init__(self, prefix: str, from_revision: int, on_stop):
        self.prefix = prefix
        self.from_revision = from_revision
        self._queue: asyncio.Queue = asyncio.Queue()
        self._on_stop = on_stop
        self._stopped = False

    def offer(self, event: StorageEvent) -> None:
        if not self._stopped and event.revision > self.from_revision and event.kv.key.startswith(self.prefix):
            if self._queue.qsize() >= self.max_pending:
                (log.debug if self.expects_to_fall_behind else log.warning)(
                    "closing a watcher that fell behind prefix=%s pending=%d", self.prefix, self._queue.qsize())
                self.stop()
                return
            self._queue.put_nowait(event)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._on_stop(self)
            self._queue.put_nowait(self._STOP)

    async def next(self, timeout: float | None = None) -> StorageEvent | None:
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        return self._unless_stopped(item)

    def poll(self) -> StorageEvent | None:
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        return self._unless_stopped(item)

    def _unless_stopped(self, item: object) -> StorageEvent:
        if item is self._STOP:
            self._queue.put_nowait(self._STOP)
            raise WatchClosed()
        return item
