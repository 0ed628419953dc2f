"""The one owner of the set of served custom resources: it follows the stored CustomResourceDefinitions and
keeps the API's registries in step with them, on every server.

A CRD whose names are accepted (NamesAccepted or Established True) is served: a registry per served version
(`versions`, looked up by the HTTP routes) and its storage version's registry in `API.registries` (what the
garbage collector, namespace deletion, quota and metrics walk). Discovery lists Established CRDs only, as
upstream's discovery controller. A CRD whose spec or accepted names change gets new registries; a deleted one
loses them. Listeners (the garbage collector) hear of registries added and removed.

Current without a task of its own for this server's writes: `refresh()` (called by the HTTP layer before it
routes a request, and by discovery) applies the CRD events its storage watch queued since the last call, as
StorageCache does; `run()` also follows them as they come (other servers' writes, listeners).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Callable, Protocol

from apiserver.crd import definition
from apiserver.crd import openapi as crd_openapi
from apiserver.crd.resource import CustomResourceRegistry, registries_for
from apiserver.decoded_objects import DecodedObjects
from apiserver.kinds.base import Obj, ResourceInfo
from apiserver.registry import Registry
from apiserver.registry import Clock
from apiserver.storage.interface import EventType, KeyValue, Storage, StorageEvent, WatchClosed
from apiserver.storage.mirror import StorageMirror


class ServingAPI(Protocol):
    """What the served set reads and writes of the API (apiserver.api.API, which owns this set)."""
    storage: Storage
    clock: Clock
    registries: dict[tuple[str, str], Registry]
    decoded_objects: DecodedObjects              # watch fan-out's decoded objects, shared by all registries

    def registry(self, group: str, plural: str) -> Registry: ...

log = logging.getLogger(__name__)

CRD_PLURAL = "customresourcedefinitions"
Listener = Callable[[list[Registry], list[Registry]], None]  # (added, removed) storage-version registries


@dataclass
class _Served:
    uid: str
    signature: str                       # spec + accepted names: a change rebuilds the registries
    established: bool
    main: CustomResourceRegistry         # the storage version's registry (in API.registries)
    versions: dict[str, CustomResourceRegistry] = field(default_factory=dict)  # served versions


def _signature(crd: Obj) -> str:
    terminating = definition.is_true(crd, "Terminating")
    return json.dumps([crd.get("spec"), definition.accepted_names(crd), terminating], sort_keys=True)


class CustomResources(StorageMirror):
    def __init__(self, api: ServingAPI):
        self.api = api
        super().__init__(api.storage, self.registry.prefix())
        self.crds: dict[str, Obj] = {}          # stored CRDs by name
        self._served: dict[str, _Served] = {}   # by CRD name
        self._listeners: list[Listener] = []

    @property
    def registry(self) -> Registry:
        return self.api.registry(definition.GROUP, CRD_PLURAL)

    # queries ------------------------------------------------------------------------------------------
    def lookup(self, group: str, version: str, plural: str) -> Registry | None:
        for served in self._served.values():
            registry = served.versions.get(version)
            if registry is not None and registry.info.group == group and registry.info.plural == plural:
                return registry
        return None

    def versions_of(self, group: str, plural: str) -> list[str]:
        """The served versions of a custom resource (matchPolicy Equivalent of admission webhooks)."""
        for served in self._served.values():
            if served.main.info.group == group and served.main.info.plural == plural:
                return sorted(served.versions, key=definition.kube_version_key)
        return []

    def owns(self, group: str, plural: str) -> bool:
        return any(s.main.info.group == group and s.main.info.plural == plural for s in self._served.values())

    def discovery(self) -> list[ResourceInfo]:
        """ResourceInfos of every served version of Established CRDs, versions in kube-aware order."""
        infos = []
        for served in self._served.values():
            if served.established:
                infos += [served.versions[v].info for v in sorted(served.versions, key=definition.kube_version_key)]
        return infos

    def openapi(self, group: str, version: str, v2: bool = False) -> tuple[dict[str, str], dict[str, Obj]]:
        """(model name by kind, schemas by model name) of the Established custom resources of a group-version."""
        models: dict[str, str] = {}
        schemas: dict[str, Obj] = {}
        for name, served in self._served.items():
            registry = served.versions.get(version)
            if not served.established or registry is None or registry.info.group != group:
                continue
            found = crd_openapi.kind_schemas(self.crds[name], version, v2)
            models[registry.info.kind] = crd_openapi.model_name(group, version, registry.info.kind)
            schemas.update(found)
        return models, schemas

    def served_registries(self) -> list[Registry]:
        return [s.main for s in self._served.values()]

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # following the CRDs -------------------------------------------------------------------------------
    async def refresh(self) -> None:
        """Apply what the CRD watch queued since the last call (relisting when it closed)."""
        await self._catch_up()

    async def run(self) -> None:
        """Follow CRD changes as they come (every server), so listeners hear of them without requests."""
        while True:
            await self.refresh()
            try:
                event = await self._watch.next(30.0)
            except WatchClosed:
                self._watch = None
                continue
            if event is not None:
                self._apply(event)

    def _reset(self, kvs: list[KeyValue], revision: int) -> None:
        crds = {}
        for kv in kvs:
            crd = self.registry.decode(kv)
            crds[crd["metadata"]["name"]] = crd
        for name in list(self.crds):
            if name not in crds:
                self._forget(name)
        for crd in crds.values():
            self._serve(crd)

    def _apply(self, event: StorageEvent) -> None:
        crd = self.registry.decode(event.kv)
        if event.type == EventType.DELETE:
            self._forget(crd["metadata"]["name"])
        else:
            self._serve(crd)

    def _forget(self, name: str) -> None:
        self.crds.pop(name, None)
        served = self._served.pop(name, None)
        if served is not None:
            self._unregister(served)
            self._notify([], [served.main])
            log.info("custom resource no longer served crd=%s", name)

    def _servable(self, crd: Obj) -> bool:
        names = definition.accepted_names(crd)
        if not names.get("plural") or not names.get("kind"):
            return False
        if not (definition.is_true(crd, "NamesAccepted") or definition.is_true(crd, "Established")):
            return False
        key = (definition.spec_of(crd).get("group"), names.get("plural"))
        builtin = self.api.registries.get(key)
        return builtin is None or isinstance(builtin, CustomResourceRegistry) and \
            builtin.crd_uid == crd["metadata"].get("uid")

    def _serve(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        self.crds[name] = crd
        existing = self._served.get(name)
        if not self._servable(crd):
            if existing is not None:
                self._forget(name)
                self.crds[name] = crd
            return
        signature = _signature(crd)
        established = definition.is_true(crd, "Established")
        uid = crd["metadata"].get("uid", "")
        if existing is not None and existing.uid == uid and existing.signature == signature:
            existing.established = established
            return
        registries = registries_for(crd, self.api.storage, self.api.clock, self.api.decoded_objects)
        stored = definition.storage_version(crd)
        served_versions = set(definition.served_versions(crd))
        served = _Served(uid, signature, established, registries[stored],
                         {v: r for v, r in registries.items() if v in served_versions})
        removed = []
        if existing is not None:
            self._unregister(existing)
            removed = [existing.main]
        self._served[name] = served
        self.api.registries[(served.main.info.group, served.main.info.plural)] = served.main
        self._notify([served.main], removed)
        log.info("custom resource served crd=%s versions=%s storage=%s", name, ",".join(sorted(served.versions)),
                 stored)

    def _unregister(self, served: _Served) -> None:
        key = (served.main.info.group, served.main.info.plural)
        if self.api.registries.get(key) is served.main:
            del self.api.registries[key]

    def _notify(self, added: list[Registry], removed: list[Registry]) -> None:
        for listener in list(self._listeners):
            try:
                listener(added, removed)
            except Exception:  # noqa: BLE001 - a listener's failure must not stop serving
                log.exception("custom resource listener failed")
