"""Namespace deletion: delete every namespaced object in a Terminating namespace, then finalize it."""
from __future__ import annotations

import asyncio
import logging

from apiserver import errors
from apiserver.api import API
from apiserver.informer import RegistryInformer
from apiserver.kinds.base import Obj
from apiserver.registry import DeleteOptions

log = logging.getLogger(__name__)

RETRY_INTERVAL = 2.0


class NamespaceController:
    def __init__(self, api: API):
        self.api = api
        self._wake = asyncio.Event()
        self.namespaces = RegistryInformer(api.namespaces, lambda _type, _obj, _old: self._wake.set())

    async def run(self) -> None:
        informer = asyncio.create_task(self.namespaces.run(), name="namespace-informer")
        try:
            await self.namespaces.synced.wait()
            while True:
                self._wake.clear()
                terminating = [ns for ns in self.namespaces.cache.values() if ns["metadata"].get("deletionTimestamp")]
                for namespace in terminating:
                    try:
                        await self.clean(namespace)
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # noqa: BLE001 - retried on the next pass
                        log.exception("namespace cleanup failed namespace=%s", namespace["metadata"]["name"])
                timeout = RETRY_INTERVAL if terminating else None
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            informer.cancel()
            await asyncio.gather(informer, return_exceptions=True)

    async def clean(self, namespace: Obj) -> None:
        name = namespace["metadata"]["name"]
        remaining = 0
        for registry in list(self.api.registries.values()):  # custom resources come and go meanwhile
            if not registry.info.namespaced:
                continue
            items, _ = await registry.list(name)
            remaining += len(items)
            for item in items:
                if item["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    await self.api.delete(registry, name, item["metadata"]["name"], DeleteOptions())
                except errors.APIError as exc:
                    if exc.code != 404:
                        raise
        if remaining == 0 and "kubernetes" in ((namespace.get("spec") or {}).get("finalizers") or []):
            finalizers = [f for f in namespace["spec"]["finalizers"] if f != "kubernetes"]
            await self.api.update(self.api.namespaces, "", name,
                                  {"metadata": {"name": name}, "spec": {"finalizers": finalizers}}, "finalize")
            log.info("namespace finalized namespace=%s", name)
