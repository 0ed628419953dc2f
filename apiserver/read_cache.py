"""Client reads served from memory, as upstream's watch cache serves them: one resource's stored objects,
kept current from its storage watch, for the HTTP layer's GETs and LISTs, with upstream's consistent-read
semantics (a read sees every write acknowledged before it began).

On a storage that publishes every write to its watchers before it acknowledges the write (SQLite,
`Storage.publishes_before_ack`), applying the events the watch queued is enough for that. Where the watch
trails the writes (etcd), a LIST first has the store confirm that the resource is unchanged since the
revision the cache reached (`unchanged_since`), and GETs read the store, as upstream's.

A read costs no storage round trip (a thread hop on SQLite, a full range on etcd) and no decoding: an
object's JSON is its stored bytes with `"resourceVersion":"<mod revision>"` inserted as the last field of
the top-level metadata, where registry.decode() puts it, so the JSON is the one decoding and encoding again
gave. An object whose bytes do not allow that (a registry that transforms what it reads, bytes that differ
from their own re-encoding around the metadata) is decoded and encoded instead, once per stored revision.
"""
from __future__ import annotations

import asyncio
import bisect
from typing import Any, Protocol

from apiserver.kinds.base import Obj, ResourceInfo
from apiserver.storage.interface import EventType, KeyValue, QueueWatch, Storage, StorageEvent, Watch
from apiserver.storage.mirror import StorageMirror
from shipmate import jsoncodec
from shipmate.selectors import FieldSelector, LabelSelector, Operator


class Registry(Protocol):
    """What the cache uses of its apiserver.registry.Registry."""
    info: ResourceInfo
    storage: Storage
    serves_stored_bytes: bool

    def prefix(self, namespace: str = "") -> str: ...

    def decode(self, kv: KeyValue) -> Obj: ...

    def matches(self, obj: Obj, labels: LabelSelector, fields: FieldSelector) -> bool: ...


_METADATA_KEY = b'"metadata":'
_CONTAINERS = (dict, list)
_EQUALITY = (Operator.EQUALS, Operator.IN)
# A list waits for the watch up to _CONFIRM_ATTEMPTS × _WATCH_WAITS × _WATCH_WAIT seconds, then reads the store.
_CONFIRM_ATTEMPTS = 3
_WATCH_WAITS = 50
_WATCH_WAIT = 0.002
_MAX_PENDING = 1024


def splice_point(value: bytes, raw: Any, api_version: str, kind: str) -> tuple[int, bool] | None:
    """Where `"resourceVersion":"N"` goes in these stored bytes (`raw`: them decoded) for the object to read
    as registry.decode() makes it: (offset of the top-level metadata's closing brace, whether metadata has
    fields before it); None when the bytes cannot be served spliced (decode() would change more than the
    resourceVersion, or the metadata's extent cannot be proven)."""
    if type(raw) is not dict or raw.get("apiVersion") != api_version or raw.get("kind") != kind:
        return None
    meta = raw.get("metadata")
    if type(meta) is not dict or "resourceVersion" in meta:
        return None
    # Top-level keys before "metadata" whose values are scalars: `"metadata":{` cannot occur inside a string
    # (its quotes would be escaped), so its first occurrence is then the top-level one.
    for key, item in raw.items():
        if key == "metadata":
            break
        if isinstance(item, _CONTAINERS):
            return None
    start = value.find(_METADATA_KEY + b"{")
    if start < 0:
        return None
    start += len(_METADATA_KEY)
    encoded = jsoncodec.dumps(meta)
    if not value.startswith(encoded, start):  # the metadata as orjson writes it: its end is proven
        return None
    return start + len(encoded) - 1, bool(meta)


class CachedObject:
    """One stored revision of an object, with what serving it needs, worked out at its first read: its JSON as
    registry.decode() returns it and its labels. Once prepared, `kv.value` is that JSON (decoding it gives what
    decoding the stored bytes gave), so the cache holds one copy of the object."""
    __slots__ = ("kv", "_labels", "_json")

    def __init__(self, kv: KeyValue):
        self.kv = kv
        self._labels: Any = None
        self._json: bytes | None = None

    def _prepare(self, registry: Registry) -> bytes:
        kv = self.kv
        splice = None
        if registry.serves_stored_bytes:
            raw = jsoncodec.loads(kv.value)
            splice = splice_point(kv.value, raw, registry.info.api_version, registry.info.kind)
        if splice is None:
            obj = registry.decode(kv)
            rendered = jsoncodec.dumps(obj, kept=True)
            labels = obj["metadata"].get("labels")
        else:
            at, more = splice
            stored = memoryview(kv.value)
            rendered = b"".join((stored[:at], b',"resourceVersion":"' if more else b'"resourceVersion":"',
                                 b"%d" % kv.mod_revision, b'"', stored[at:]))
            labels = raw["metadata"].get("labels")
        self.kv = KeyValue(kv.key, rendered, kv.create_revision, kv.mod_revision)
        self._labels, self._json = labels, rendered
        return rendered

    def labels(self, registry: Registry) -> Any:
        if self._json is None:
            self._prepare(registry)
        return self._labels

    def json(self, registry: Registry) -> bytes:
        """The object's JSON as registry.decode() returns it."""
        rendered = self._json
        return rendered if rendered is not None else self._prepare(registry)


def select(registry: Registry, objects: list[CachedObject], labels: LabelSelector,
           fields: FieldSelector) -> list[CachedObject]:
    """The objects the selectors match, in their order."""
    if not fields.empty():
        return [cached for cached in objects if registry.matches(registry.decode(cached.kv), labels, fields)]
    if labels.empty():
        return objects
    equal = [(r.key, r.values) for r in labels.requirements if r.operator in _EQUALITY]
    if len(equal) == len(labels.requirements):  # the common selector (app=x,tier in (a,b)), inlined
        chosen = []
        for cached in objects:
            object_labels = cached.labels(registry)
            if object_labels and all(object_labels.get(key) in values for key, values in equal):
                chosen.append(cached)
        return chosen
    return [cached for cached in objects if labels.matches(cached.labels(registry))]


class ReadCache(StorageMirror):
    """A registry's stored objects (every namespace) by storage key, current as of the last read."""

    def __init__(self, registry: Registry):
        super().__init__(registry.storage, registry.prefix())
        self.registry = registry
        self._objects: dict[str, CachedObject] = {}
        self._sorted: list[str] | None = None  # the keys in order, rebuilt after keys come or go
        self._revision = 0
        self._applied = 0  # events applied, and relists: what changes the objects

    @property
    def serves_gets(self) -> bool:
        """Whether GETs are served from here: where the watch holds every acknowledged write. On etcd a GET
        reads the store, as upstream's (only its lists are served from the watch cache)."""
        return bool(getattr(self.registry.storage, "publishes_before_ack", False))

    async def current(self) -> int:
        """Bring the cache up to date; the revision its objects are the store's state at. Where the watch may
        trail the writes (etcd), the store confirms that no key of the resource changed since the revision
        the cache reached (one keys-only request, as upstream's consistent list from cache asks etcd for its
        revision) or the watch delivers every write up to the store's current revision; else it relists."""
        storage = self.registry.storage
        if self.serves_gets:
            return await self._caught_up()
        for _ in range(_CONFIRM_ATTEMPTS):
            revision = await self._caught_up()
            applied = self._applied
            unchanged, now = await storage.unchanged_since(self._prefix, revision, len(self._objects))
            if unchanged and applied == self._applied:  # no other read applied newer events meanwhile
                return max(revision, now)
            for _ in range(_WATCH_WAITS):  # the watch has yet to deliver the writes up to `now`
                if storage.revision >= now:
                    break
                await asyncio.sleep(_WATCH_WAIT)
            revision = await self._caught_up()
            if revision >= now:  # every write acknowledged before the read is in
                return revision
        self.stop()
        return await self._caught_up()

    async def _caught_up(self) -> int:
        """Apply what the watch queued (relist if it closed); the revision the cache now reflects."""
        await self._catch_up()
        self._revision = max(self._revision, self.registry.storage.revision)
        return self._revision

    def get(self, key: str) -> CachedObject | None:
        return self._objects.get(key)

    def under(self, prefix: str) -> list[CachedObject]:
        """The objects whose keys start with `prefix` (within this resource), in key order."""
        keys = self._sorted
        if keys is None:
            keys = self._sorted = sorted(self._objects)
        if prefix == self._prefix:
            chosen = keys
        else:
            end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            chosen = keys[bisect.bisect_left(keys, prefix):bisect.bisect_left(keys, end)]
        objects = self._objects
        return [objects[key] for key in chosen]

    def select(self, prefix: str, labels: LabelSelector, fields: FieldSelector) -> list[CachedObject]:
        """The objects under `prefix` that the selectors match, in key order."""
        return select(self.registry, self.under(prefix), labels, fields)

    def _watching(self, watch: Watch) -> None:
        if isinstance(watch, QueueWatch):
            # Events queue between reads: past this many the watch closes and the next read relists,
            # so a resource read once and then written at length holds no long queue.
            watch.max_pending, watch.expects_to_fall_behind = _MAX_PENDING, True

    def _reset(self, kvs: list[KeyValue], revision: int) -> None:
        self._objects = {kv.key: CachedObject(kv) for kv in kvs}
        self._applied += 1
        self._sorted = None
        self._revision = revision

    def _apply(self, event: StorageEvent) -> None:
        self._applied += 1
        key = event.kv.key
        if event.type == EventType.DELETE:
            if self._objects.pop(key, None) is not None:
                self._sorted = None
            return
        if key not in self._objects:
            self._sorted = None
        self._objects[key] = CachedObject(event.kv)
