"""The EndpointSlice controller: discovery.k8s.io/v1 slices (at most 100 endpoints each) for every
Service with a selector, labelled and owned as upstream's controller does, removed with the Service
(there is no garbage collector yet, so the controller deletes them itself)."""
from __future__ import annotations

from apiserver.api import API
from apiserver.controllers.endpoint_rules import MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, plan_slices
from apiserver.informer import SharedInformers
from apiserver.kinds.base import Obj
from apiserver.controllers.service_backends import ServiceBackendsController
from apiserver.controllers.slice_tracker import SliceTracker, apply_plan


def service_key_of_slice(obj: Obj, managed_by: str) -> str | None:
    labels = obj["metadata"].get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != managed_by or not labels.get(SERVICE_NAME_LABEL):
        return None
    return f"{obj['metadata']['namespace']}/{labels[SERVICE_NAME_LABEL]}"


class EndpointSliceController(ServiceBackendsController):
    name = "endpointslice-controller"

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__(api, informers, api.endpoint_slices)
        self.tracker = SliceTracker(self.service_key_of_owned)

    def service_key_of_owned(self, obj: Obj) -> str | None:
        return service_key_of_slice(obj, MANAGED_BY)

    def _on_owned(self, event_type: str, obj: Obj, _old: Obj | None) -> None:
        key = self.tracker.observe(event_type, obj)
        if key:
            self.enqueue(key)

    async def sync(self, namespace: str, name: str, service: Obj | None, pods: list[Obj]) -> None:
        key = f"{namespace}/{name}"
        plan = plan_slices(service, pods, self.tracker.slices(key))
        await apply_plan(self.api, self.tracker, key, plan, "endpointslice")
