"""The one writer of pod status: versioned per UID, no-op updates skipped, PATCH to pods/status,
and deletion of terminated pods (UID precondition, gracePeriodSeconds=0).

A change is written at once by the pod's own writer (one at a time per pod, so an older status never
lands last), not behind other pods' writes; the run loop retries failures with backoff and re-sends
what the API does not show (level-triggered)."""
from __future__ import annotations

import asyncio
import copy
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

from shipmate.kubeclient import PODS, Conflict, KubeClient, NotFound

log = logging.getLogger(__name__)

Obj = dict[str, Any]
RECONCILE_INTERVAL = 10.0
RETRY_INITIAL = 0.2
RETRY_MAX = 10.0


@dataclass
class _Entry:
    namespace: str
    name: str
    status: Obj
    version: int
    written_version: int = 0
    delete_requested: bool = False
    deleted: bool = False


@dataclass
class StatusManager:
    client: KubeClient
    # The API's current copy of a pod by UID (the informer's store): skips writes the API already
    # shows, writes for a pod that is gone (or whose name now belongs to a new UID), and drives the
    # periodic reconcile. Without it every change is written. For a static pod it answers the pod's
    # mirror pod, whose UID the write then carries (as kubelet's status manager translates it).
    api_pod: Callable[[str], Obj | None] | None = None
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _dirty: set[str] = field(default_factory=set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _writers: dict[str, asyncio.Task[bool]] = field(default_factory=dict)     # uid → its write in flight
    _again: set[str] = field(default_factory=set)       # changed while its writer was writing
    _running: bool = False
    _backing_off: bool = False

    def cached_status(self, uid: str) -> Obj | None:
        entry = self._entries.get(uid)
        return copy.deepcopy(entry.status) if entry else None

    def set_status(self, pod: Obj, status: Obj) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        entry = self._entries.get(uid)
        if entry is not None and entry.status == status:
            return
        version = entry.version + 1 if entry else 1
        new = _Entry(meta["namespace"], meta["name"], copy.deepcopy(status), version)
        if entry is not None:
            new.written_version, new.delete_requested, new.deleted = \
                entry.written_version, entry.delete_requested, entry.deleted
        self._entries[uid] = new
        current = self.api_pod(uid) if entry is None and self.api_pod is not None else None
        if current is not None and _status_contains(current.get("status") or {}, status):
            new.written_version = version     # e.g. after an agent restart: the API already has it
            return
        self._due(uid)

    def request_deletion(self, pod: Obj) -> None:
        """The pod is terminated and has a deletionTimestamp: delete the API object."""
        meta = pod["metadata"]
        entry = self._entries.get(meta["uid"])
        if entry is None:
            entry = _Entry(meta["namespace"], meta["name"], {}, 0)
            self._entries[meta["uid"]] = entry
        if not entry.deleted:
            entry.delete_requested = True
            self._due(meta["uid"])

    def refresh(self, uid: str) -> None:
        """The pod's API object changed identity (e.g. a mirror pod was created): write again."""
        entry = self._entries.get(uid)
        if entry is not None and entry.status and not entry.deleted:
            entry.written_version = 0
            self._due(uid)

    def forget(self, uid: str) -> None:
        self._entries.pop(uid, None)
        self._dirty.discard(uid)

    def _due(self, uid: str) -> None:
        """The pod has something to write: its writer starts now, unless the run loop is not running
        yet or is backing off after failed writes (then the loop writes it)."""
        if self._running and not self._backing_off:
            self._writer(uid)
        else:
            self._dirty.add(uid)
            self._wake.set()

    def _writer(self, uid: str) -> asyncio.Task[bool]:
        task = self._writers.get(uid)
        if task is not None:
            self._again.add(uid)
            return task
        task = asyncio.create_task(self._write_while_changed(uid))
        self._writers[uid] = task
        task.add_done_callback(partial(self._writer_done, uid))
        return task

    async def _write_while_changed(self, uid: str) -> bool:
        while True:
            self._again.discard(uid)
            if not await self._write(uid):
                return False
            if uid not in self._again:
                return True

    def _writer_done(self, uid: str, task: asyncio.Task[bool]) -> None:
        if self._writers.get(uid) is task:
            del self._writers[uid]
        if not task.cancelled() and not task.result():
            self._dirty.add(uid)
            self._wake.set()

    async def run(self) -> None:
        delay = RETRY_INITIAL
        last_reconcile = time.monotonic()
        self._running = True
        try:
            while True:
                try:
                    await asyncio.wait_for(self._wake.wait(), RECONCILE_INTERVAL)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
                if time.monotonic() - last_reconcile >= RECONCILE_INTERVAL:
                    self._mark_drifted()
                    last_reconcile = time.monotonic()
                uids, self._dirty = list(self._dirty), set()
                results = await asyncio.gather(*(self._writer(uid) for uid in uids))
                if all(results):
                    delay = RETRY_INITIAL
                    continue
                # the failed ones are dirty again (_writer_done)
                log.info("status writes will be retried pods=%d retry_in=%.1fs", results.count(False), delay)
                self._backing_off = True
                await asyncio.sleep(delay)
                self._backing_off = False
                delay = min(delay * 2, RETRY_MAX)
                self._wake.set()
        finally:
            self._running = False
            writers = list(self._writers.values())
            for task in writers:
                task.cancel()
            await asyncio.gather(*writers, return_exceptions=True)

    def _mark_drifted(self) -> None:
        """Level-triggered safety net: re-send statuses the API does not show."""
        if self.api_pod is None:
            return
        for uid, entry in self._entries.items():
            if entry.deleted or not entry.status:
                continue
            current = self.api_pod(uid)
            if current is not None and not _status_contains(current.get("status") or {}, entry.status):
                entry.written_version = 0
                self._dirty.add(uid)

    async def _write(self, uid: str) -> bool:
        entry = self._entries.get(uid)
        if entry is None or entry.deleted:
            return True
        try:
            target = self.api_pod(uid) if self.api_pod is not None else None
            gone = self.api_pod is not None and target is None
            if entry.status and entry.written_version != entry.version and not gone:
                version = entry.version
                api_uid = target["metadata"].get("uid", uid) if target is not None else uid
                started = time.monotonic()
                await self.client.patch(PODS, entry.name, {"metadata": {"uid": api_uid}, "status": entry.status},
                                        entry.namespace, subresource="status")
                entry.written_version = version
                log.debug("status written pod=%s/%s version=%d took=%.3fs", entry.namespace, entry.name, version,
                          time.monotonic() - started)
            if entry.delete_requested:
                await self.client.delete(PODS, entry.name, entry.namespace, grace_period_seconds=0, uid=uid)
                entry.deleted = True
                log.info("pod deleted pod=%s/%s uid=%s", entry.namespace, entry.name, uid)
            return True
        except NotFound:
            entry.deleted = True
            return True
        except Conflict as error:
            # A UID precondition failed: the name now belongs to another pod; ours is gone.
            log.info("pod replaced pod=%s/%s uid=%s: %s", entry.namespace, entry.name, uid, error.message)
            entry.deleted = True
            return True
        except Exception as error:  # noqa: BLE001 - API down, timeouts: retried with backoff
            log.warning("status write failed pod=%s/%s uid=%s error=%r", entry.namespace, entry.name, uid, error)
            return False


def _status_contains(api: Any, ours: Any) -> bool:
    """Whether the API shows what we wrote. A null field of ours is one the API may leave out, at any depth:
    a strategic merge patch's null deletes the field (conditions' `lastProbeTime: null`), and comparing
    with plain equality re-sent every pod's status each reconcile (no-op patches, 7/s at 110 pods)."""
    if isinstance(ours, dict):
        return isinstance(api, dict) and all(
            _status_contains(api[key], value) if key in api else value is None for key, value in ours.items())
    if isinstance(ours, list):
        return isinstance(api, list) and len(api) == len(ours) and all(map(_status_contains, api, ours))
    return api == ours
