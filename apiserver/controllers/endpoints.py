"""The endpoints controller: one core/v1 Endpoints per Service with a selector, named like it, listing
its ready pods in `addresses` and the others in `notReadyAddresses`; removed with the Service."""
from __future__ import annotations

import copy
import logging

from apiserver import errors
from apiserver.api import API
from apiserver.controllers.endpoint_rules import OVER_CAPACITY_ANNOTATION, desired_endpoints, endpoints_differ, managed
from apiserver.informer import SharedInformers, object_key
from apiserver.kinds.base import Obj
from apiserver.registry import DeleteOptions
from apiserver.controllers.service_backends import ServiceBackendsController

log = logging.getLogger(__name__)


class EndpointsController(ServiceBackendsController):
    name = "endpoints-controller"

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__(api, informers, api.endpoints)

    def service_key_of_owned(self, obj: Obj) -> str | None:
        return object_key(obj)

    async def sync(self, namespace: str, name: str, service: Obj | None, pods: list[Obj]) -> None:
        registry = self.api.endpoints
        try:
            current = await registry.get(namespace, name)
        except errors.APIError as exc:
            if exc.code != 404:
                raise
            current = None
        if service is None:
            if current is not None:
                await self._delete(namespace, name)
            return
        if not managed(service):
            return  # Endpoints of a Service without a selector belong to the user
        desired = desired_endpoints(service, pods)
        if current is None:
            await self.api.create(registry, namespace, desired)
            log.info("endpoints created service=%s/%s subsets=%d", namespace, name, len(desired.get("subsets", [])))
        elif endpoints_differ(current, desired):
            updated = copy.deepcopy(current)
            updated["metadata"]["labels"] = desired["metadata"].get("labels") or {}
            annotations = updated["metadata"].get("annotations") or {}
            annotations.pop(OVER_CAPACITY_ANNOTATION, None)
            annotations.update(desired["metadata"].get("annotations") or {})
            updated["metadata"]["annotations"] = annotations
            updated.pop("subsets", None)
            if desired.get("subsets"):
                updated["subsets"] = desired["subsets"]
            await self.api.update(registry, namespace, name, updated)
            log.info("endpoints updated service=%s/%s subsets=%d", namespace, name, len(desired.get("subsets", [])))

    async def _delete(self, namespace: str, name: str) -> None:
        try:
            await self.api.delete(self.api.endpoints, namespace, name, DeleteOptions())
            log.info("endpoints deleted service=%s/%s", namespace, name)
        except errors.APIError as exc:
            if exc.code != 404:
                raise
