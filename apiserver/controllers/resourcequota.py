"""The ResourceQuota controller: keeps `status.used` current (the recount itself is the admission's,
apiserver/admission/quota.py, under the same per-namespace lock)."""
from __future__ import annotations

import asyncio
import logging

from apiserver.admission.quota import QuotaAdmission
from apiserver.api import API
from apiserver.informer import SharedInformers
from apiserver.kinds.base import Obj

log = logging.getLogger(__name__)

RESYNC_INTERVAL = 10.0


class QuotaController:
    """Keeps status.used current: on quota changes, on pods leaving (deleted, finished), and every 10 s."""

    def __init__(self, api: API, informers: SharedInformers, resync_interval: float = RESYNC_INTERVAL):
        self.api = api
        self.admission: QuotaAdmission = api.quota
        self.resync_interval = resync_interval
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self.quotas = informers.informer(self.admission.quotas, self._on_quota)
        self.pods = informers.informer(api.pods, self._on_pod)

    def _mark(self, namespace: str) -> None:
        self._dirty.add(namespace)
        self._wake.set()

    def _on_quota(self, event_type: str, quota: Obj, _old: Obj | None) -> None:
        status = quota.get("status") or {}
        if event_type != "DELETED" and status.get("hard") != (quota.get("spec") or {}).get("hard"):
            self._mark(quota["metadata"]["namespace"])

    def _has_quota(self, namespace: str) -> bool:
        return any(key.startswith(f"{namespace}/") for key in self.quotas.cache)

    def _on_pod(self, event_type: str, pod: Obj, _old: Obj | None) -> None:
        namespace = pod["metadata"].get("namespace", "")
        leaving = event_type == "DELETED" or pod["metadata"].get("deletionTimestamp") or \
            (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if leaving and self._has_quota(namespace):
            self._mark(namespace)

    async def run(self) -> None:
        """Runs while the shared informers (started by the caller) feed it."""
        await self.quotas.synced.wait()
        await self.pods.synced.wait()
        loop = asyncio.get_running_loop()
        next_resync = loop.time()
        while True:
            if loop.time() >= next_resync:
                self._dirty.update(q["metadata"]["namespace"] for q in self.quotas.cache.values())
                next_resync = loop.time() + self.resync_interval
            dirty, self._dirty = self._dirty, set()
            self._wake.clear()
            for namespace in sorted(dirty):
                try:
                    await self.admission.recalculate(namespace)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - retried on the next resync
                    log.exception("quota recalculation failed namespace=%s", namespace)
                    self._dirty.add(namespace)
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_resync - loop.time()))
            except asyncio.TimeoutError:
                pass
