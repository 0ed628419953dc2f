"""The EndpointSlice mirroring controller: the Endpoints of a Service without a selector (written by a
user or another controller) mirrored into slices managed by `endpointslicemirroring-controller.k8s.io`,
owned by the Endpoints, so that the proxy and DNS, which read only slices, see them too."""
from __future__ import annotations

from apiserver.api import API
from apiserver.controllers.endpoint_rules import MIRRORING_MANAGED_BY, plan_mirrored_slices
from apiserver.controllers.endpointslice import service_key_of_slice
from apiserver.informer import RegistryInformer, SharedInformers, object_key
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.kinds.base import Obj
from apiserver.controllers.slice_tracker import SliceTracker, apply_plan


class EndpointSliceMirroringController(KeyedController):
    name = "endpointslice-mirroring-controller"

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.tracker = SliceTracker(lambda obj: service_key_of_slice(obj, MIRRORING_MANAGED_BY))
        self.services = informers.informer(api.services, lambda _type, obj, _old: self.enqueue(object_key(obj)))
        self.endpoints = informers.informer(api.endpoints, lambda _type, obj, _old: self.enqueue(object_key(obj)))
        self.slices = informers.informer(api.endpoint_slices, self._on_slice)

    def _on_slice(self, event_type: str, obj: Obj, _old: Obj | None) -> None:
        key = self.tracker.observe(event_type, obj)
        if key:
            self.enqueue(key)

    def informers(self) -> list[RegistryInformer]:
        return [self.services, self.endpoints, self.slices]

    def all_keys(self) -> set[str]:
        keys = set(self.endpoints.cache)
        keys.update(k for k in map(self.tracker.key_of, self.slices.cache.values()) if k)
        return keys

    async def sync_key(self, key: str) -> None:
        plan = plan_mirrored_slices(self.services.cache.get(key), self.endpoints.cache.get(key),
                                    self.tracker.slices(key))
        await apply_plan(self.api, self.tracker, key, plan, "mirrored endpointslice")
