"""The loop every controller here shares: informers feed a set of dirty keys ("<namespace>/<name>"), a few
workers (never two on one key) sync them, failures retry with backoff, and every key is resynced
periodically (level-triggered: an event only says "look again")."""
from __future__ import annotations

import asyncio
import logging

from apiserver.control_loop_metrics import CONTROL_LOOPS
from apiserver.informer import RegistryInformer
from shipmate.supervisor import stop_tasks

log = logging.getLogger(__name__)

RESYNC_INTERVAL = 60.0
MAX_RETRY_DELAY = 30.0
WORKERS = 5  # kube-controller-manager's --concurrent-*-syncs defaults


class KeyedController:
    name = "controller"
    resync_interval = RESYNC_INTERVAL   # every key is looked at again this often

    def __init__(self) -> None:
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._wake = asyncio.Event()

    # what subclasses provide ---------------------------------------------------------------------
    def informers(self) -> list[RegistryInformer]:
        """The (shared) informers to wait for before the first sync; whoever owns them runs them."""
        raise NotImplementedError

    def all_keys(self) -> set[str]:
        """Every key worth a periodic look."""
        raise NotImplementedError

    async def sync_key(self, key: str) -> None:
        raise NotImplementedError

    # queue and loop ------------------------------------------------------------------------------
    def enqueue(self, key: str) -> None:
        self._dirty.add(key)
        CONTROL_LOOPS.depth.labels(name=self.name).set(len(self._dirty))
        self._wake.set()

    async def run(self) -> None:
        for informer in self.informers():
            await informer.synced.wait()
        tasks = [asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}") for i in range(WORKERS)]
        try:
            while True:
                for key in self.all_keys():
                    self.enqueue(key)
                done, _ = await asyncio.wait(tasks, timeout=self.resync_interval, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a worker only ends by raising: let the root task fail loudly
        finally:
            await stop_tasks(tasks)

    def _next_key(self) -> str | None:
        for key in self._dirty:
            if key not in self._processing:
                self._dirty.discard(key)
                CONTROL_LOOPS.depth.labels(name=self.name).set(len(self._dirty))
                return key
        return None

    async def _worker(self) -> None:
        while True:
            key = self._next_key()
            if key is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._processing.add(key)
            try:
                await self._sync_with_retry(key)
            finally:
                self._processing.discard(key)
                if key in self._dirty:
                    self._wake.set()  # it changed while we synced it: another pass

    async def _sync_with_retry(self, key: str) -> None:
        try:
            with CONTROL_LOOPS.sync(self.name):
                await self.sync_key(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried with backoff; the loop must survive
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            CONTROL_LOOPS.retries.labels(name=self.name).inc()
            delay = min(0.5 * 2 ** (failures - 1), MAX_RETRY_DELAY)
            log.warning("%s sync failed key=%s attempt=%d retry_in=%.1fs error=%s", self.name, key, failures,
                        delay, exc)
            asyncio.get_running_loop().call_later(delay, self.enqueue, key)
        else:
            self._failures.pop(key, None)
