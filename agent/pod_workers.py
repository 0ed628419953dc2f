"""One worker per pod UID with a single pending-update slot (the latest spec wins).

States: SYNCING → TERMINATING → TERMINATED. Once a pod is terminating every update is a kill and
the grace period can only shrink. The work itself (sync, terminate, cleanup) is injected, so the
worker machinery is testable without a runtime.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Awaitable, Callable
from shipmate.supervisor import stop_tasks

log = logging.getLogger(__name__)

Pod = dict[str, Any]
# The periodic resync is a safety net: containerd events, the 1 s relist, probe results and API
# changes sync a pod when something happens (kubelet's 1m would be 2 syncs a second at 110 pods).
RESYNC_INTERVAL = 300.0
FINISHED_MEMORY = 60.0
ERROR_BACKOFF_INITIAL = 0.5
ERROR_BACKOFF_MAX = 30.0


class WorkerState(str, Enum):
    SYNCING = "syncing"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


@dataclass
class PodUpdate:
    pod: Pod
    kill: bool = False              # terminate (API deletion, pod terminal, orphan)
    removed: bool = False           # the pod is gone from the API: clean up and forget it
    grace_seconds: int | None = None


@dataclass
class SyncOutcome:
    retry_in: float | None = None   # sync again after this long (a backoff expires)
    terminal: bool = False          # the pod reached Succeeded/Failed: stop it


@dataclass
class PodHandlers:
    sync: Callable[[Pod], Awaitable[SyncOutcome]]
    terminate: Callable[[Pod, int], Awaitable[None]]          # stop everything (grace seconds)
    cleanup: Callable[[Pod], Awaitable[None]]                 # remove runtime objects, forget state


_VOLATILE_METADATA = ("resourceVersion", "managedFields", "generation")


def needs_sync(old: Pod | None, new: Pod) -> bool:
    """Whether an API update matters to the worker: status-only updates (our own status writes
    echoed back by the watch) do not."""
    if old is None:
        return True

    def relevant(pod: Pod) -> tuple:
        meta = {k: v for k, v in (pod.get("metadata") or {}).items() if k not in _VOLATILE_METADATA}
        return meta, pod.get("spec")
    return relevant(old) != relevant(new)


def grace_period(pod: Pod) -> int:
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    if meta.get("deletionGracePeriodSeconds") is not None:
        return int(meta["deletionGracePeriodSeconds"])
    return int(spec.get("terminationGracePeriodSeconds", 30))


@dataclass
class PodWorker:
    uid: str
    handlers: PodHandlers
    on_exit: Callable[[str], None]
    state: WorkerState = WorkerState.SYNCING
    pod: Pod | None = None
    pending: PodUpdate | None = None
    grace_seconds: int | None = None
    removed: bool = False
    terminated_for_deletion: bool = False
    last_sync_started: float = 0.0
    next_sync_at: float = 0.0
    resync_interval: float = RESYNC_INTERVAL
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    grace_shrunk: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    _error_backoff: float = ERROR_BACKOFF_INITIAL

    def offer(self, update: PodUpdate) -> None:
        if update.kill or update.removed or update.pod.get("metadata", {}).get("deletionTimestamp"):
            grace = update.grace_seconds if update.grace_seconds is not None else grace_period(update.pod)
            if self.grace_seconds is not None and grace < self.grace_seconds:
                self.grace_shrunk.set()
            self.grace_seconds = grace if self.grace_seconds is None else min(self.grace_seconds, grace)
            update.kill = True
        if update.removed:
            self.removed = True
        if self.pending is not None and self.pending.kill:
            update.kill = True
        self.pending = update
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            update, self.pending = self.pending, None
            if update is None:
                continue
            self.pod = update.pod
            try:
                if await self._step(update):
                    return
                self._error_backoff = ERROR_BACKOFF_INITIAL
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad pod never stops the agent
                delay = self._error_backoff
                self._error_backoff = min(self._error_backoff * 2, ERROR_BACKOFF_MAX)
                log.exception("pod worker failed pod=%s uid=%s state=%s retry_in=%.1fs",
                              _name(update.pod), self.uid, self.state.value, delay)
                asyncio.get_running_loop().call_later(delay, self._retry, update)

    def _retry(self, update: PodUpdate) -> None:
        if self.pending is None and (self.task is None or not self.task.done()):
            self.offer(update)

    async def _step(self, update: PodUpdate) -> bool:
        """Handles one update; True when the worker is finished."""
        if self.state is WorkerState.SYNCING and update.kill:
            self.state = WorkerState.TERMINATING
        if self.state is WorkerState.SYNCING:
            self.last_sync_started = time.monotonic()
            outcome = await self.handlers.sync(update.pod)
            self.next_sync_at = time.monotonic() + (outcome.retry_in if outcome.retry_in is not None
                                                    else self.resync_interval)
            if outcome.terminal:
                self.state = WorkerState.TERMINATING
                self.grace_seconds = 0 if self.grace_seconds is None else self.grace_seconds
                self.offer(PodUpdate(update.pod, kill=True, grace_seconds=self.grace_seconds))
            return False
        deleting = bool(update.pod.get("metadata", {}).get("deletionTimestamp")) or update.removed
        if self.state is WorkerState.TERMINATING or (deleting and not self.terminated_for_deletion):
            # A pod already stopped (terminal phase) goes through this once more when it is deleted.
            await self._terminate(update.pod)
            self.state = WorkerState.TERMINATED
            self.terminated_for_deletion = deleting
        if self.state is WorkerState.TERMINATED and self.removed:
            await self.handlers.cleanup(update.pod)
            self.on_exit(self.uid)
            return True
        return False


    async def _terminate(self, pod: Pod) -> None:
        """Runs the kill; a shorter grace period arriving meanwhile restarts it with that period
        (the runtime accepts a second, shorter StopContainer)."""
        while True:
            self.grace_shrunk.clear()
            work = asyncio.ensure_future(self.handlers.terminate(pod, self.grace_seconds or 0))
            shrunk = asyncio.ensure_future(self.grace_shrunk.wait())
            try:
                await asyncio.wait({work, shrunk}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                shrunk.cancel()
                if not work.done():
                    work.cancel()
                await asyncio.gather(work, shrunk, return_exceptions=True)
            if not work.cancelled():
                work.result()
                return
            log.info("grace period shortened, killing again pod=%s uid=%s grace=%ds", _name(pod), self.uid,
                     self.grace_seconds or 0)
            if self.pending is not None:
                pod = self.pending.pod


class PodWorkers:
    def __init__(self, handlers: PodHandlers, resync_interval: float = RESYNC_INTERVAL):
        self.handlers = handlers
        self.resync_interval = resync_interval
        self.workers: dict[str, PodWorker] = {}
        self.finished_at: dict[str, float] = {}     # uid → when its worker finished (cleanup done)

    def update(self, update: PodUpdate) -> None:
        uid = update.pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is None:
            worker = PodWorker(uid, self.handlers, self._forget, resync_interval=self.resync_interval)
            worker.task = asyncio.create_task(worker.run(), name=f"pod-worker-{uid}")
            self.workers[uid] = worker
        worker.offer(update)

    def resync(self, uid: str, observed_at: float = float("inf")) -> None:
        """The runtime changed for this pod (as seen at `observed_at`): look again with the latest
        spec, unless a sync that started after that observation already saw it."""
        worker = self.workers.get(uid)
        if worker is not None and worker.pod is not None and worker.pending is None \
                and worker.state is WorkerState.SYNCING and worker.last_sync_started < observed_at:
            worker.offer(PodUpdate(worker.pod))

    def resync_due(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for worker in list(self.workers.values()):
            if worker.state is WorkerState.SYNCING and worker.pod is not None and worker.next_sync_at <= now \
                    and worker.pending is None:
                worker.next_sync_at = now + self.resync_interval
                worker.offer(PodUpdate(worker.pod))

    def queue_depth(self) -> int:
        """Pods with an update waiting for their worker. Safe from another thread (the metrics scrape):
        tuple() copies the values without letting the loop run in between."""
        return sum(1 for worker in tuple(self.workers.values()) if worker.pending is not None)

    def known(self, uid: str, since: float = float("inf")) -> bool:
        """Whether a worker handles the pod, or finished it after `since` (a runtime listing
        older than that may still show the pod's removed sandbox)."""
        return uid in self.workers or self.finished_at.get(uid, -1.0) >= since

    def _forget(self, uid: str) -> None:
        self.workers.pop(uid, None)
        now = time.monotonic()
        self.finished_at[uid] = now
        for old in [u for u, t in self.finished_at.items() if now - t > FINISHED_MEMORY]:
            del self.finished_at[old]

    async def stop(self) -> None:
        await stop_tasks([w.task for w in self.workers.values() if w.task is not None])


def _name(pod: Pod) -> str:
    meta = pod.get("metadata", {})
    return f"{meta.get('namespace')}/{meta.get('name')}"
