"""Generic CRUD + watch for one kind over the key-value storage, driven by the kind's strategy."""
from __future__ import annotations

import asyncio
import copy
import datetime
import logging
import os
import secrets
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from apiserver import errors
from apiserver.decoded_objects import DecodedObjects
from apiserver.read_cache import ReadCache
from apiserver.kinds.base import Obj, Strategy
from apiserver.deletion_propagation import gc_finalizers
from apiserver.fieldcheck import WrongType, check_types, definition_name
from apiserver.openapi_schemas import DEFINITIONS
from shipmate import jsoncodec
from shipmate.timeutil import rfc3339
from apiserver.patch import APPLY_PATCH, PatchError, apply_patch, json_size
from apiserver.apply.request import apply_config, track
from apiserver.storage.interface import (EventType, KeyExists, KeyNotFound, KeyValue, RevisionCompacted,
                                         RevisionMismatch, Storage, StorageEvent, Watch)
from shipmate.selectors import FieldSelector, LabelSelector

log = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_UPDATE_RETRIES = 16
# Validating admission on an update: (new, old) → None, or raises the APIError that refuses it.



class WriteAdmission(Protocol):
    """The admission of one write (apiserver.admission.chain.Admission), as the registry calls it."""

    async def admit(self, obj: Obj, old: Obj | None) -> Obj: ...

    async def validate(self, obj: Obj | None, old: Obj | None) -> None: ...


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class _UidSource:
    """Random (version 4) UUIDs as uuid.uuid4() makes them, from os.urandom read 4 KiB at a time: one
    system call per 256 uids instead of one per create (a call that also hands the GIL to other threads)."""
    _POOL_SIZE = 4096

    def __init__(self) -> None:
        self._pool = b""
        self._offset = 0
        os.register_at_fork(after_in_child=self._forget)  # a forked child must not repeat the parent's uids

    def _forget(self) -> None:
        self._pool, self._offset = b"", 0

    def new(self) -> str:
        if self._offset + 16 > len(self._pool):
            self._pool, self._offset = os.urandom(self._POOL_SIZE), 0
        raw = bytearray(self._pool[self._offset:self._offset + 16])
        self._offset += 16
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        text = raw.hex()
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


new_uid = _UidSource().new


# A patch past these runs off the event loop (its application costs about its size, or its copies').
_HEAVY_PATCH_OPERATIONS = 64
_HEAVY_PATCH_BYTES = 64 * 1024


def is_heavy_patch(patch_type: str, patch: Any) -> bool:
    if patch_type == APPLY_PATCH:
        return False
    if isinstance(patch, list):
        return len(patch) > _HEAVY_PATCH_OPERATIONS or any(
            isinstance(operation, dict) and operation.get("op") == "copy" for operation in patch)
    return json_size(patch, _HEAVY_PATCH_BYTES) > _HEAVY_PATCH_BYTES


def patch_status(exc: PatchError) -> errors.APIError:
    """A patch that cannot be applied, as upstream answers it: 413 past the size limit, 422 for a JSON
    patch that fails (test, copy limit, depth), 415 for an unknown patch type, else 400."""
    if exc.code == 415:
        return errors.unsupported_media_type([])
    if exc.code == 413:
        return errors.APIError(413, "RequestEntityTooLarge", str(exc))
    if exc.code == 422:
        return errors.APIError(422, "Invalid", str(exc))
    return errors.bad_request(str(exc))


def copy_object(value: Any) -> Any:
    """A deep copy of decoded JSON (dicts, lists, scalars) at a third of copy.deepcopy's cost; anything else
    inside is copied by copy.deepcopy."""
    kind = type(value)
    if kind is dict:
        return {key: copy_object(item) for key, item in value.items()}
    if kind is list:
        return [copy_object(item) for item in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    return copy.deepcopy(value)


def generated_name(prefix: str) -> str:
    """generateName's result: the prefix and five random characters, as upstream."""
    return prefix + "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))


def encode(obj: Obj) -> bytes:
    stored = dict(obj)
    meta = dict(stored.get("metadata") or {})
    meta.pop("resourceVersion", None)
    stored["metadata"] = meta
    return jsoncodec.dumps(stored, kept=True)


@dataclass
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    object: Obj


@dataclass(frozen=True)
class DeleteOptions:
    grace_period_seconds: int | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False
    propagation_policy: str | None = None  # Foreground, Background, Orphan (garbage collection of dependents)
    orphan_dependents: bool | None = None


@dataclass(frozen=True)
class DeleteResult:
    object: Obj
    removed: bool  # False: marked for graceful deletion / waiting on finalizers


def parse_resource_version(value: str | None) -> int:
    if value in (None, ""):
        return 0
    try:
        number = int(value)
    except ValueError:
        raise errors.bad_request(f'invalid resource version "{value}"') from None
    if number < 0:
        raise errors.bad_request(f'invalid resource version "{value}"')
    return number


class Registry:
    # Reads may be served by a ReadCache (apiserver/read_cache.py) where the storage allows it, as the stored
    # bytes with their resourceVersion spliced in: decode() changes nothing else (a subclass whose decode()
    # transforms what it reads turns the latter off).
    serves_cached_reads = True
    serves_stored_bytes = True

    def __init__(self, strategy: Strategy, storage: Storage, clock: Clock = utc_now,
                 decoded: DecodedObjects | None = None):
        self.strategy = strategy
        self.info = strategy.info
        self.storage = storage
        self.clock = clock
        self._decoded = decoded if decoded is not None else DecodedObjects()
        # What decode() depends on besides the stored value: registries of the same scope share decoded objects.
        self._decode_scope = (self.info.api_version, self.info.kind)
        self._subresource_registries: dict[str, Registry] = {}
        self._read_cache: ReadCache | None = None

    def read_cache(self) -> ReadCache | None:
        """This resource's ReadCache for client reads; None where the storage can neither publish writes before
        acknowledging them nor confirm a cache's revision, or this registry does not serve reads from memory."""
        if self._read_cache is None and self.serves_cached_reads and (
                getattr(self.storage, "publishes_before_ack", False) or hasattr(self.storage, "unchanged_since")):
            self._read_cache = ReadCache(self)
        return self._read_cache

    def for_subresource(self, subresource: str) -> "Registry":
        """The registry that writes this subresource: the same objects through the subresource's own strategy
        (a CSR's `approval`, a namespace's `finalize`), else this one."""
        strategy = self.strategy.subresource_strategies().get(subresource)
        if strategy is None:
            return self
        registry = self._subresource_registries.get(subresource)
        if registry is None or registry.storage is not self.storage:
            registry = self._subresource_registries[subresource] = Registry(strategy, self.storage, self.clock,
                                                                            self._decoded)
        return registry

    # keys and encoding -----------------------------------------------------------------------
    # Keys follow upstream's etcd layout: the plural without the group (events.k8s.io shares core events).
    def key(self, namespace: str, name: str) -> str:
        base = f"/registry/{self.info.plural}/"
        return f"{base}{namespace}/{name}" if self.info.namespaced else f"{base}{name}"

    def prefix(self, namespace: str = "") -> str:
        base = f"/registry/{self.info.plural}/"
        return f"{base}{namespace}/" if self.info.namespaced and namespace else base

    def encode(self, obj: Obj) -> bytes:
        """The stored bytes of an object (custom resources store their storage version)."""
        return encode(obj)

    def decode(self, kv: KeyValue) -> Obj:
        obj = jsoncodec.loads(kv.value)
        obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
        obj["apiVersion"], obj["kind"] = self.info.api_version, self.info.kind
        return obj

    def decode_shared(self, kv: KeyValue) -> Obj:
        """decode() memoized for watch fan-out: many watchers see the same event. Callers must not mutate."""
        cache_key = (*self._decode_scope, kv.key, kv.mod_revision)
        obj = self._decoded.get(cache_key)
        if obj is None:
            obj = self.decode(kv)
            self._decoded.put(cache_key, obj, len(kv.value))
        return obj

    def _not_found(self, name: str) -> errors.APIError:
        return errors.not_found(self.info.group, self.info.plural, name)

    def _conflict(self, name: str, why: str = errors.STALE_OBJECT) -> errors.APIError:
        return errors.conflict(self.info.group, self.info.plural, name, why)

    def _invalid(self, name: str, problems: list) -> errors.APIError:
        return errors.invalid_object(self.info.group, self.info.kind, name, problems)

    def field_selector_check(self, selector: FieldSelector) -> None:
        for requirement in selector.requirements:
            if requirement.field not in self.strategy.field_labels:
                raise errors.bad_request(f'field label not supported: {requirement.field}')

    def matches(self, obj: Obj, labels: LabelSelector, fields: FieldSelector) -> bool:
        return labels.matches(obj.get("metadata", {}).get("labels")) and \
            (fields.empty() or fields.matches(self.strategy.field_values(obj)))

    # reads -----------------------------------------------------------------------------------
    async def get(self, namespace: str, name: str) -> Obj:
        kv = await self.storage.get(self.key(namespace, name))
        if kv is None:
            raise self._not_found(name)
        return self.decode(kv)

    async def list(self, namespace: str = "", labels: LabelSelector = LabelSelector(),
                   fields: FieldSelector = FieldSelector()) -> tuple[list[Obj], int]:
        self.field_selector_check(fields)
        kvs, revision = await self.storage.list(self.prefix(namespace))
        items = [obj for obj in map(self.decode, kvs) if self.matches(obj, labels, fields)]
        return items, revision

    # writes ----------------------------------------------------------------------------------
    def decode_body(self, obj: Any) -> Obj:
        """What decoding a request body into this kind checks (upstream's typed decoding, before any admission):
        a JSON object of this apiVersion and kind whose fields have their schema's types, or 400. A copy."""
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version and api_version != self.info.api_version:
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the expected "
                                     f"API version ({self.info.api_version})")
        if kind and kind != self.info.kind:
            raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind "
                                     f"({self.info.kind})")
        obj = copy_object(obj)
        if obj.get("metadata", {}) is None:
            obj["metadata"] = {}  # what Go decodes `metadata: null` into: an empty ObjectMeta
        try:
            check_types(DEFINITIONS, definition_name(self.info.group, self.info.kind), obj)
        except WrongType as wrong:
            raise errors.bad_request(f'{self.info.kind} in version "{self.info.version}" cannot be handled as a '
                                     f"{self.info.kind}: {wrong}") from None
        return obj

    def _validate_body(self, obj: Any, namespace: str, name: str | None = None) -> Obj:
        obj = self.decode_body(obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if self.info.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent "
                                         "on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if name is not None and meta.get("name") and meta["name"] != name:
            raise errors.bad_request("the name of the object "
                                     f"({meta['name']}) does not match the name on the URL ({name})")
        if name is not None:
            meta["name"] = name
        obj["apiVersion"], obj["kind"] = self.info.api_version, self.info.kind
        return obj

    async def create(self, namespace: str, body: Any, dry_run: bool = False,
                     admission: WriteAdmission | None = None) -> Obj:
        """POST. `admission` mutates the defaulted object, then validates it after the kind did; it refuses by
        raising."""
        obj = self._validate_body(body, namespace)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = generated_name(meta["generateName"])
        for field in ("uid", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(field, None)
        meta["uid"] = new_uid()
        now = rfc3339(self.clock())
        meta["creationTimestamp"] = now
        if self.strategy.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        self.strategy.default(obj)
        self.strategy.prepare_for_create(obj)
        if admission is not None:
            obj = await admission.admit(obj, None)
            meta = obj["metadata"]
        track(obj, None, "", now, self.strategy.field_layout())  # metadata.managedFields
        problems = self.strategy.validate(obj) or self.strategy.admit(obj, None)
        if problems:
            raise self._invalid(meta.get("name") or "", problems)
        if admission is not None:
            await admission.validate(obj, None)
        if dry_run:
            return obj
        try:
            kv = await self.storage.create(self.key(namespace, meta["name"]), self.encode(obj))
        except KeyExists:
            raise errors.already_exists(self.info.group, self.info.plural, meta["name"]) from None
        return self.decode(kv)

    async def _prepare_update(self, new: Obj, old: Obj, subresource: str,
                              admission: WriteAdmission | None = None) -> Obj:
        new_meta, old_meta = new["metadata"], old["metadata"]
        if new_meta.get("uid") and new_meta["uid"] != old_meta.get("uid"):
            raise self._conflict(old_meta["name"], f"Precondition failed: UID in precondition: {new_meta['uid']}, "
                                                   f"UID in object meta: {old_meta.get('uid')}")
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if field in old_meta:
                new_meta[field] = old_meta[field]
            else:
                new_meta.pop(field, None)
        new_meta["resourceVersion"] = old_meta.get("resourceVersion")
        if subresource == "status":
            self.strategy.prepare_for_status_update(new, old)
        else:
            self.strategy.prepare_for_update(new, old)
        self.strategy.default(new)
        if admission is not None:
            new = await admission.admit(new, old)
            new_meta = new["metadata"]
        if subresource == "status":
            problems = self.strategy.validate_status_update(new, old)
        else:
            problems = self.strategy.validate_update(new, old) or self.strategy.admit(new, old)
        if problems:
            raise self._invalid(old_meta["name"], problems)
        if admission is not None:
            await admission.validate(new, old)
        track(new, old, subresource, rfc3339(self.clock()), self.strategy.field_layout())  # metadata.managedFields
        if self.strategy.spec_changed(new, old):
            new_meta["generation"] = int(old_meta.get("generation") or 0) + 1
        return new

    async def _store_update(self, namespace: str, name: str, new: Obj, old_revision: int,
                            dry_run: bool) -> Obj:
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not self.strategy.blocks_deletion(new) \
                and not meta.get("deletionGracePeriodSeconds"):
            if dry_run:
                return new
            try:
                kv = await self.storage.delete(self.key(namespace, name), old_revision)
            except RevisionMismatch:
                raise self._conflict(name) from None
            except KeyNotFound:
                raise self._not_found(name) from None
            deleted = self.decode(kv)
            return deleted
        if dry_run:
            return new
        try:
            kv = await self.storage.update(self.key(namespace, name), self.encode(new), old_revision)
        except RevisionMismatch:
            raise self._conflict(name) from None
        except KeyNotFound:
            raise self._not_found(name) from None
        return self.decode(kv)

    async def update(self, namespace: str, name: str, body: Any, subresource: str = "",
                     dry_run: bool = False, admission: WriteAdmission | None = None) -> tuple[Obj, bool]:
        """PUT. Returns (object, created). `admission` runs as in `create`, on (new, old)."""
        new = self._validate_body(body, namespace, name)
        requested_rv = new["metadata"].get("resourceVersion")
        kv = await self.storage.get(self.key(namespace, name))
        if kv is None:
            if self.strategy.allow_create_on_update and not subresource:
                new["metadata"].pop("resourceVersion", None)
                return await self.create(namespace, new, dry_run, admission), True
            raise self._not_found(name)
        old = self.decode(kv)
        if requested_rv and parse_resource_version(requested_rv) != kv.mod_revision:
            raise self._conflict(name)
        new = await self._prepare_update(new, old, subresource, admission)
        if new == old:
            return old, False
        return await self._store_update(namespace, name, new, kv.mod_revision, dry_run), False

    async def guaranteed_update(self, namespace: str, name: str, mutate: Callable[[Obj], Obj],
                                subresource: str = "", dry_run: bool = False,
                                admission: WriteAdmission | None = None, offload: bool = False) -> Obj:
        """Read-modify-write with retries on conflicting concurrent writes (patches, bindings); `admission`
        runs on every attempt, with that attempt's stored object. `offload`: `mutate` may
        take long (a big patch), so it runs in a thread and other requests stay answered meanwhile."""
        for _ in range(_UPDATE_RETRIES):
            kv = await self.storage.get(self.key(namespace, name))
            if kv is None:
                raise self._not_found(name)
            old = self.decode(kv)
            new = await asyncio.to_thread(mutate, copy_object(old)) if offload else mutate(copy_object(old))
            new = self._validate_body(new, namespace, name)
            requested_rv = new["metadata"].get("resourceVersion")
            if requested_rv and requested_rv != old["metadata"]["resourceVersion"]:
                raise self._conflict(name)
            new = await self._prepare_update(new, old, subresource, admission)
            if new == old:
                return old
            try:
                return await self._store_update(namespace, name, new, kv.mod_revision, dry_run)
            except errors.APIError as exc:
                if exc.reason == "Conflict" and not requested_rv and "Precondition" not in exc.message:
                    continue
                raise
        raise self._conflict(name)

    async def patch(self, namespace: str, name: str, patch_type: str, patch: Any, subresource: str = "",
                    dry_run: bool = False, admission: WriteAdmission | None = None) -> Obj:
        def mutate(current: Obj) -> Obj:
            if patch_type == APPLY_PATCH:  # server-side apply
                return apply_config(current, patch, self.info.group, self.info.plural, name, rfc3339(self.clock()),
                                    self.strategy.field_layout())
            try:
                patched = apply_patch(patch_type, current, patch)
            except PatchError as exc:
                raise patch_status(exc) from None
            patched_meta = patched.get("metadata")
            if isinstance(patched_meta, dict) and patched_meta.get("resourceVersion") == \
                    current["metadata"]["resourceVersion"]:
                # An unchanged resourceVersion from the current object is not a precondition.
                patch_meta = patch.get("metadata") if isinstance(patch, dict) else None
                if not (isinstance(patch_meta, dict) and "resourceVersion" in patch_meta):
                    patched_meta.pop("resourceVersion")
            return patched
        return await self.guaranteed_update(namespace, name, mutate, subresource, dry_run, admission,
                                            offload=is_heavy_patch(patch_type, patch))

    async def delete(self, namespace: str, name: str, options: DeleteOptions = DeleteOptions()) -> DeleteResult:
        for _ in range(_UPDATE_RETRIES):
            kv = await self.storage.get(self.key(namespace, name))
            if kv is None:
                raise self._not_found(name)
            current = self.decode(kv)
            meta = current["metadata"]
            if options.precondition_uid and options.precondition_uid != meta.get("uid"):
                raise self._conflict(name, f"Precondition failed: UID in precondition: {options.precondition_uid}, "
                                           f"UID in object meta: {meta.get('uid')}")
            if options.precondition_resource_version and \
                    options.precondition_resource_version != meta["resourceVersion"]:
                raise self._conflict(name, "Precondition failed: ResourceVersion in precondition: "
                                           f"{options.precondition_resource_version}, ResourceVersion in object "
                                           f"meta: {meta['resourceVersion']}")
            self.strategy.check_delete(current)
            if not meta.get("deletionTimestamp"):
                finalizers = gc_finalizers(current, options.propagation_policy, options.orphan_dependents,
                                           self.strategy.orphans_dependents_by_default)
                if finalizers is not None:
                    meta["finalizers"] = finalizers
            grace = self.strategy.graceful_delete_seconds(current, options.grace_period_seconds)
            if grace == 0 and not self.strategy.blocks_deletion(current):
                if options.dry_run:
                    return DeleteResult(current, True)
                try:
                    kv = await self.storage.delete(self.key(namespace, name), kv.mod_revision)
                except (RevisionMismatch, KeyNotFound):
                    continue
                return DeleteResult(self.decode(kv), True)
            existing_grace = meta.get("deletionGracePeriodSeconds")
            if meta.get("deletionTimestamp") and (existing_grace is None or grace >= existing_grace):
                return DeleteResult(current, False)  # already terminating; only a shorter grace changes it
            marked = self._mark_for_deletion(current, grace)
            if options.dry_run:
                return DeleteResult(marked, False)
            try:
                kv = await self.storage.update(self.key(namespace, name), self.encode(marked), kv.mod_revision)
            except (RevisionMismatch, KeyNotFound):
                continue
            return DeleteResult(self.decode(kv), False)
        raise self._conflict(name)

    def _mark_for_deletion(self, obj: Obj, grace: int) -> Obj:
        marked = copy.deepcopy(obj)
        meta = marked["metadata"]
        meta["deletionTimestamp"] = rfc3339(self.clock() + datetime.timedelta(seconds=grace))
        meta["deletionGracePeriodSeconds"] = grace
        if grace > 0 and self.strategy.tracks_generation:
            meta["generation"] = int(meta.get("generation") or 0) + 1
        self.strategy.mark_deleting(marked)
        return marked

    # watch -----------------------------------------------------------------------------------
    async def watch(self, namespace: str, labels: LabelSelector, fields: FieldSelector, resource_version: str,
                    send_initial_events: bool | None = None) -> "ResourceWatch":
        """Upstream semantics: rv ""/"0" (or sendInitialEvents=true) first replays the current objects as
        ADDED, then changes after the list revision; rv=N streams changes after N.

        Raises RevisionCompacted (410 Expired) when N is older than the storage's history.
        """
        self.field_selector_check(fields)
        start = parse_resource_version(resource_version)
        wants_initial = send_initial_events if send_initial_events is not None else start == 0
        initial: list[Obj] = []
        if wants_initial or start == 0:
            items, list_revision = await self.list(namespace, labels, fields)
            start = list_revision
            if wants_initial:
                initial = items
        storage_watch = self.storage.watch(self.prefix(namespace), start)
        return ResourceWatch(self, storage_watch, initial, labels, fields, start, bool(send_initial_events))

    def convert_event(self, event: StorageEvent, labels: LabelSelector, fields: FieldSelector) -> WatchEvent | None:
        """A storage event as seen through selectors: leaving the selection is DELETED, entering is ADDED."""
        obj = self.decode_shared(event.kv)
        if event.type == EventType.DELETE:
            return WatchEvent("DELETED", obj) if self.matches(obj, labels, fields) else None
        now_matches = self.matches(obj, labels, fields)
        if event.prev is None:
            return WatchEvent("ADDED", obj) if now_matches else None
        if labels.empty() and fields.empty():
            return WatchEvent("MODIFIED", obj)
        was_matching = self.matches(self.decode_shared(event.prev), labels, fields)
        if now_matches:
            return WatchEvent("MODIFIED" if was_matching else "ADDED", obj)
        return WatchEvent("DELETED", obj) if was_matching else None

    def bookmark(self, revision: int, initial_events_end: bool = False) -> WatchEvent:
        meta: Obj = {"resourceVersion": str(revision), "creationTimestamp": None}
        if initial_events_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return WatchEvent("BOOKMARK", {"kind": self.info.kind, "apiVersion": self.info.api_version,
                                       "metadata": meta})


class ResourceWatch:
    """One client's watch: initial events, then converted storage events; `next()` returns None on timeout."""

    def __init__(self, registry: Registry, storage_watch: Watch, initial: list[Obj], labels: LabelSelector,
                 fields: FieldSelector, start: int, initial_events_end: bool):
        self.registry = registry
        self._watch = storage_watch
        self._pending = [WatchEvent("ADDED", obj) for obj in initial]
        if initial_events_end:
            self._pending.append(registry.bookmark(start, initial_events_end=True))
        self._labels, self._fields = labels, fields
        self.start_revision = start

    async def next(self, timeout: float | None = None) -> WatchEvent | None:
        """The next event; None after `timeout` seconds without one; WatchClosed when the storage closes."""
        if self._pending:
            return self._pending.pop(0)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            event = await self._watch.next(remaining)
            if event is None:
                return None
            converted = self.registry.convert_event(event, self._labels, self._fields)
            if converted is not None:
                return converted

    def stop(self) -> None:
        self._watch.stop()


def expired_status(exc: RevisionCompacted) -> Obj:
    return errors.gone(f"too old resource version: {exc.requested} ({exc.oldest})").status()
