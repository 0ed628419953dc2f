"""LimitRanger admission (upstream's plugin of that name; the rules are `limit_rules.py`).

Pod creates get the defaults of their namespace's LimitRanges (mutating), then pods and PersistentVolumeClaims
(create and update) are held to their min/max/ratio constraints (validating): the first range refusing
answers 403 `pods "p" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, ...]`. Pod updates
are left alone (their resources cannot change there) but a `pods/resize` is held to the constraints (no
defaults: upstream's LimitRanger validates resizes); other subresources and objects already being deleted are
left alone.

The ranges come from a watched cache; a namespace the cache has none for is listed from storage and that
answer kept for 30 s (upstream's live lookup for a lagging informer).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from apiserver import errors
from apiserver.admission import limit_rules as rules
from apiserver.admission.chain import CREATE, UPDATE, Attributes, Step
from apiserver.informer import StorageCache
from apiserver.kinds.base import Obj
from apiserver.kinds.limitranges import LIMIT_RANGE_INFO
from apiserver.registry import Registry
from shipmate.qos import compute_qos_class

if TYPE_CHECKING:
    from apiserver.admission.interface import AdmissionAPI

LIVE_LOOKUP_TTL = 30.0


class LimitRanger:
    name = "LimitRanger"

    def __init__(self, api: "AdmissionAPI", monotonic: Callable[[], float] = time.monotonic):
        self.api = api
        self.monotonic = monotonic
        self._cache: StorageCache | None = None
        self._live: dict[str, tuple[float, list[Obj]]] = {}  # namespace -> (expiry, ranges listed)

    @property
    def registry(self) -> Registry:
        return self.api.registry(LIMIT_RANGE_INFO.group, LIMIT_RANGE_INFO.plural)

    @property
    def cache(self) -> StorageCache:
        if self._cache is None:
            self._cache = StorageCache(self.registry)
        return self._cache

    async def start(self, attributes: Attributes) -> Step | None:
        if attributes.is_("", "pods", "resize") and attributes.operation == UPDATE:
            return _Limits(self, attributes, mutate=False, pod=True)
        if attributes.subresource:
            return None
        if attributes.is_("", "pods") and attributes.operation == CREATE:
            return _Limits(self, attributes, mutate=True)
        if attributes.is_("", "persistentvolumeclaims") and attributes.operation in (CREATE, UPDATE):
            return _Limits(self, attributes, mutate=False)
        return None

    async def limit_ranges(self, namespace: str) -> list[Obj]:
        items = await self.cache.items(namespace)
        if items:
            return sorted(items, key=lambda item: item["metadata"]["name"])
        now = self.monotonic()
        cached = self._live.get(namespace)
        if cached is None or cached[0] < now:
            listed, _ = await self.registry.list(namespace)
            cached = (now + LIVE_LOOKUP_TTL, listed)
            self._live[namespace] = cached
            if len(self._live) > 10000:  # upstream's LRU holds 10000 namespaces
                self._live.pop(next(iter(self._live)))
        return cached[1]


class _Limits(Step):
    def __init__(self, plugin: LimitRanger, attributes: Attributes, mutate: bool, pod: bool | None = None):
        self.plugin, self.attributes, self.mutate = plugin, attributes, mutate
        self.pod = mutate if pod is None else pod

    async def admit(self, obj: Obj, old: Obj | None) -> Obj:
        if not self.mutate or _being_deleted(old):
            return obj
        changed = False
        for limit_range in await self.plugin.limit_ranges(self.attributes.namespace):
            changed = rules.mutate_pod(limit_range, obj) or changed
        if changed:  # the QoS class the pod strategy computed before the defaults were added
            spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
            obj.setdefault("status", {})["qosClass"] = compute_qos_class(spec)
        return obj

    async def validate(self, obj: Obj | None, old: Obj | None) -> None:
        if obj is None or _being_deleted(old):
            return
        check = rules.pod_problems if self.pod else rules.claim_problems
        for limit_range in await self.plugin.limit_ranges(self.attributes.namespace):
            problems = check(limit_range, obj)
            if problems:
                meta = obj.get("metadata") or {}
                raise errors.forbidden_error(self.attributes.group, self.attributes.plural,
                                             str(meta.get("name") or meta.get("generateName") or ""),
                                             rules.aggregate(problems))


def _being_deleted(old: Obj | None) -> bool:
    return bool(old and (old.get("metadata") or {}).get("deletionTimestamp"))
