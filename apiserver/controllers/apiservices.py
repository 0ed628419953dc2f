"""APIServices: a Local APIService (no `spec.service`) for every group-version this server serves, built-in or
from CRDs (upstream's autoregister and CRD registration controllers), removed when the group-version goes; and
the Available condition of every APIService (upstream's availability controller). Local ones are Available
(reason Local); one backed by a Service is not: aggregation is not implemented, so nothing is proxied to it (reason
ServiceNotFound / MissingEndpoints when the Service or its endpoints are missing, else
AggregationNotSupported)."""
from __future__ import annotations

import asyncio
import logging

from apiserver import errors
from apiserver.api import API
from apiserver.crd.definition import set_condition
from apiserver.kinds.base import Obj
from apiserver.registry import DeleteOptions
from shipmate.timeutil import rfc3339

log = logging.getLogger(__name__)

GROUP = "apiregistration.k8s.io"
SYNC_INTERVAL = 5.0
AUTO_LABEL = "kube-aggregator.kubernetes.io/automanaged"


def _priority(group: str) -> tuple[int, int]:
    """(groupPriorityMinimum, versionPriority) for local group-versions: built-ins high, CRDs 1000/100."""
    return (18000, 15) if not group or "." not in group or group.endswith(".k8s.io") else (1000, 100)


class APIServiceController:
    def __init__(self, api: API):
        self.api = api
        self.registry = api.registry(GROUP, "apiservices")

    async def run(self) -> None:
        while True:
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - retried on the next pass
                log.exception("apiservice sync failed")
            await asyncio.sleep(SYNC_INTERVAL)

    async def sync(self) -> None:
        await self.api.custom_resources.refresh()
        served = {(info.group, info.version) for info in self.api.resources()}
        items, _ = await self.registry.list()
        stored = {item["metadata"]["name"]: item for item in items}
        for group, version in served:
            name = f"{version}.{group}"
            if name not in stored:
                minimum, priority = _priority(group)
                body = {"metadata": {"name": name, "labels": {AUTO_LABEL: "onstart" if "." not in group
                                                              or group.endswith(".k8s.io") or not group else "true"}},
                        "spec": {"group": group, "version": version, "groupPriorityMinimum": minimum,
                                 "versionPriority": priority}}
                try:
                    stored[name] = await self.api.create(self.registry, "", body)
                except errors.APIError as exc:
                    if exc.code != 409:
                        raise
        for name, item in list(stored.items()):
            spec = item.get("spec") or {}
            local = spec.get("service") is None
            if local and (item["metadata"].get("labels") or {}).get(AUTO_LABEL) and \
                    (spec.get("group", ""), spec.get("version")) not in served:
                try:
                    await self.api.delete(self.registry, "", name, DeleteOptions())
                except errors.APIError as exc:
                    if exc.code != 404:
                        raise
                continue
            await self._set_available(item, await self._availability(item))

    async def _availability(self, item: Obj) -> Obj:
        service = (item.get("spec") or {}).get("service")
        if service is None:
            return {"type": "Available", "status": "True", "reason": "Local",
                    "message": "Local APIServices are always available"}
        namespace, name = service.get("namespace", ""), service.get("name", "")
        try:
            await self.api.services.get(namespace, name)
        except errors.APIError:
            return {"type": "Available", "status": "False", "reason": "ServiceNotFound",
                    "message": f'service/{name} in "{namespace}" is not present'}
        slices, _ = await self.api.endpoint_slices.list(namespace)
        ready = [e for s in slices if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == name
                 for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready", True)]
        if not ready:
            return {"type": "Available", "status": "False", "reason": "MissingEndpoints",
                    "message": f'endpoints for service/{name} in "{namespace}" have no addresses'}
        return {"type": "Available", "status": "False", "reason": "AggregationNotSupported",
                "message": "this server does not proxy requests to extension API servers"}

    async def _set_available(self, item: Obj, condition: Obj) -> None:
        current = next((c for c in (item.get("status") or {}).get("conditions") or []
                        if c.get("type") == "Available"), None)
        if current and all(current.get(k) == condition.get(k) for k in ("status", "reason", "message")):
            return
        updated = {**item, "status": {**(item.get("status") or {})}}
        set_condition(updated, condition, rfc3339(self.api.clock()))
        try:
            await self.api.update(self.registry, "", item["metadata"]["name"], updated, "status")
        except errors.APIError as exc:
            if exc.code not in (404, 409):
                raise
