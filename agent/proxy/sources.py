"""One Services and one EndpointSlices informer for the whole agent, fanned out to their users.

The proxy and the cluster DNS both need every Service and EndpointSlice of the cluster; two
informers each would double the watch traffic and memory, so they share these.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from shipmate.informer import Informer
from shipmate.kubeclient import ENDPOINT_SLICES, SERVICES, KubeClient, ResourceSource

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class ServiceConsumer(Protocol):
    """What a user of the service sources implements; callbacks must not block."""

    def on_service_change(self, kind: str, service: Obj, old: Obj | None) -> None: ...
    def on_endpoint_slice_change(self, kind: str, endpoint_slice: Obj, old: Obj | None) -> None: ...
    def on_services_synced(self) -> None: ...
    def on_endpoint_slices_synced(self) -> None: ...


class ServiceSources:
    def __init__(self, client: KubeClient, consumers: Sequence[ServiceConsumer]):
        self.consumers = list(consumers)
        self.services: Informer[Obj] = Informer(ResourceSource(client, SERVICES), self._service_change)
        self.endpoint_slices: Informer[Obj] = Informer(ResourceSource(client, ENDPOINT_SLICES), self._slice_change)

    def _service_change(self, kind: str, service: Obj, old: Obj | None) -> None:
        for consumer in self.consumers:
            self._call(consumer.on_service_change, kind, service, old)

    def _slice_change(self, kind: str, endpoint_slice: Obj, old: Obj | None) -> None:
        for consumer in self.consumers:
            self._call(consumer.on_endpoint_slice_change, kind, endpoint_slice, old)

    @staticmethod
    def _call(handler: Any, *args: Any) -> None:
        # One consumer's bug must not starve the others of the change.
        try:
            handler(*args)
        except Exception:  # noqa: BLE001
            log.exception("service consumer failed handler=%s", getattr(handler, "__qualname__", handler))

    async def _announce_synced(self, informer: Informer, method: str) -> None:
        await informer.synced.wait()
        log.info("informer synced resource=%s objects=%d", informer.source.name, len(informer.cache))
        for consumer in self.consumers:
            self._call(getattr(consumer, method))

    async def run(self) -> None:
        await asyncio.gather(
            self.services.run(), self.endpoint_slices.run(),
            self._announce_synced(self.services, "on_services_synced"),
            self._announce_synced(self.endpoint_slices, "on_endpoint_slices_synced"))
