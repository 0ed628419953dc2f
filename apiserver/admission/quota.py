"""ResourceQuota admission (on create) and the recount the controller (controllers/resourcequota.py)
uses to keep `status.used` current.

Admission and recalculation of one namespace are serialized by a per-namespace lock, and both read
storage (not an informer), so two concurrent creates can never both take the last slot and a
recalculation never overwrites a charge it did not see. Whether a namespace has a ResourceQuota at
all comes from a watched cache (a create there reads no storage and takes no lock), as upstream's
quota admission lists quotas from its informer.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from apiserver import errors
from apiserver.admission.chain import CREATE, UPDATE, Attributes, Step
from apiserver.informer import StorageCache
from apiserver.kinds.base import Obj
from apiserver.kinds.quotas import hard_limits
from apiserver.quota import (COMPUTE_NAMES, LEGACY_COUNT_NAMES, Usage, add, check, format_resource_list,
                             is_storage_name, missing_compute, object_usage, parse_resource_list, total_usage)
from apiserver.registry import Registry

if TYPE_CHECKING:
    from apiserver.admission.interface import AdmissionAPI

_POD_NAMES = ("pods", "count/pods", *COMPUTE_NAMES)


class QuotaAdmission:
    name = "ResourceQuota"

    def __init__(self, api: "AdmissionAPI"):
        self.api = api
        self._locks: dict[str, asyncio.Lock] = {}
        self._quota_cache = StorageCache(self.quotas)

    @property
    def quotas(self) -> Registry:
        return self.api.registry("", "resourcequotas")

    def lock(self, namespace: str) -> asyncio.Lock:
        lock = self._locks.get(namespace)
        if lock is None:
            lock = self._locks[namespace] = asyncio.Lock()
        return lock

    def _registries_for(self, names: set[str]) -> list[Registry]:
        """The kinds whose objects make up the usage of these resource names."""
        wanted: dict[tuple[str, str], Registry] = {}
        for (group, plural), registry in self.api.registries.items():
            if not registry.info.namespaced:
                continue
            count = f"count/{plural}.{group}" if group else f"count/{plural}"
            legacy = group == "" and plural in LEGACY_COUNT_NAMES and plural in names
            pods = group == "" and plural == "pods" and names.intersection(_POD_NAMES)
            services = group == "" and plural == "services" and any(n.startswith("services.") for n in names)
            claims = group == "" and plural == "persistentvolumeclaims" and any(is_storage_name(n) for n in names)
            if count in names or legacy or pods or services or claims:
                wanted[(group, plural)] = registry
        return list(wanted.values())

    async def usage(self, namespace: str, names: set[str]) -> Usage:
        now = self.api.clock()
        usages = []
        for registry in self._registries_for(names):
            items, _ = await registry.list(namespace)
            usages += [object_usage(registry.info.group, registry.info.plural, item, now) for item in items]
        return total_usage(usages, names)

    async def start(self, attributes: Attributes) -> Step | None:
        """Creates of namespaced kinds in a namespace that has a ResourceQuota, updates of claims (a resize
        charges the growth, as upstream's PVC evaluator) and pod resizes (upstream's pod evaluator handles UPDATE
        of pods/resize: the increase is charged): held under the namespace's lock from the check to the charge."""
        resize = attributes.operation == UPDATE and (attributes.is_("", "persistentvolumeclaims")
                                                      or attributes.is_("", "pods", "resize"))
        if not resize and (attributes.operation != CREATE or attributes.subresource
                           or not attributes.registry.info.namespaced):
            return None
        if not await self._quota_cache.items(attributes.namespace):
            return None
        return _QuotaCharge(self, attributes)

    async def _used(self, quota: Obj, namespace: str, hard: Usage) -> Usage:
        """status.used when it covers every hard name (kept exact under the lock), else counted now."""
        status = quota.get("status") or {}
        used = parse_resource_list(status.get("used"))
        if set(hard) <= set(used) and (status.get("hard") or {}) == (quota.get("spec") or {}).get("hard"):
            return used
        return await self.usage(namespace, set(hard))

    async def _write_status(self, quota: Obj, used: Usage) -> None:
        meta = quota["metadata"]
        hard = (quota.get("spec") or {}).get("hard") or {}
        wanted = {"hard": dict(hard), "used": format_resource_list({n: v for n, v in used.items() if n in hard})}

        def set_status(current: Obj) -> Obj:
            current["status"] = {"hard": dict((current.get("spec") or {}).get("hard") or {}),
                                 "used": wanted["used"]}
            return current
        try:
            await self.quotas.guaranteed_update(meta["namespace"], meta["name"], set_status, subresource="status")
        except errors.APIError as exc:
            if exc.code != 404:
                raise

    async def recalculate(self, namespace: str) -> None:
        """Recount the namespace and write every quota's status (hard = spec.hard, used)."""
        async with self.lock(namespace):
            quotas, _ = await self.quotas.list(namespace)
            names = set()
            for quota in quotas:
                names.update(((quota.get("spec") or {}).get("hard") or {}).keys())
            if not quotas:
                return
            usage = await self.usage(namespace, names)
            for quota in quotas:
                hard = (quota.get("spec") or {}).get("hard") or {}
                status = quota.get("status") or {}
                used = format_resource_list({n: v for n, v in usage.items() if n in hard})
                if status.get("hard") != hard or status.get("used") != used:
                    await self._write_status(quota, {n: v for n, v in usage.items() if n in hard})


class _QuotaCharge(Step):
    """One create: checked against every quota of its namespace, charged once stored."""

    def __init__(self, quota: QuotaAdmission, attributes: Attributes):
        self.quota, self.attributes = quota, attributes
        self.charged: list[tuple[Obj, Usage]] = []

    async def __aenter__(self) -> "_QuotaCharge":
        await self.quota.lock(self.attributes.namespace).acquire()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.quota.lock(self.attributes.namespace).release()

    async def validate(self, obj: Obj | None, old: Obj | None) -> None:
        if obj is None:
            return
        group, plural, namespace = self.attributes.group, self.attributes.plural, self.attributes.namespace
        name = str((obj.get("metadata") or {}).get("name") or "")
        quotas, _ = await self.quota.quotas.list(namespace)
        requested = object_usage(group, plural, obj, self.quota.api.clock())
        if old is not None:   # a claim or pod resize: only what grew is charged (the object is counted already)
            before = object_usage(group, plural, old, self.quota.api.clock())
            requested = {n: v - before.get(n, 0) for n, v in requested.items() if v > before.get(n, 0)}
            if not requested:
                return
        self.charged = []
        for quota in quotas:
            hard = hard_limits(quota)
            quota_name = quota["metadata"]["name"]
            if group == "" and plural == "pods" and requested and old is None:
                missing = missing_compute(obj, hard)
                if missing:
                    raise errors.forbidden_error(group, plural, name, f"failed quota: {quota_name}: {missing}")
            relevant = {n: v for n, v in requested.items() if n in hard}
            if not relevant:
                continue
            used = await self.quota._used(quota, namespace, hard)
            exceeded = check(quota_name, hard, used, relevant)
            if exceeded:
                raise errors.forbidden_error(group, plural, name, exceeded)
            self.charged.append((quota, add(used, relevant)))

    async def committed(self, obj: Obj | None) -> None:
        for quota, used in self.charged:
            await self.quota._write_status(quota, used)
