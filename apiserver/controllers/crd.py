"""CustomResourceDefinition status and deletion: upstream's naming, establishing and finalizer controllers
(apiextensions-apiserver) in one keyed loop.

- Naming: the requested names a CRD may have (plural, singular, short names, kind, list kind: not held by
  another CRD of the group) go to `status.acceptedNames`; NamesAccepted True (NoConflicts) or False with the
  conflict (`"foo" is already in use`). One sync at a time, reading its own writes (a mutation cache), so two
  CRDs asking for one name never both get it. A CRD that goes away requeues the others of its group.
- Establishing: once the names are accepted, Established turns True (InitialNamesAccepted); the served set
  (apiserver/custom_resources.py) serves a CRD from then on, and discovery lists it.
- Finalizer: a deleted CRD (Terminating, finalizer `customresourcecleanup.apiextensions.k8s.io`) has its
  custom objects deleted (as upstream's storage DeleteCollection: no admission, objects with finalizers wait
  for them), then loses the finalizer once none is left (conditions InstanceDeletionInProgress →
  InstanceDeletionCompleted; NeverEstablished when it was never served).
"""
from __future__ import annotations

import asyncio
import logging

from apiserver import errors
from apiserver.api import API
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.crd import definition
from apiserver.crd.names import accept_names
from apiserver.informer import RegistryInformer, SharedInformers
from apiserver.kinds.base import Obj
from apiserver.registry import DeleteOptions
from shipmate.timeutil import rfc3339

log = logging.getLogger(__name__)

INSTANCE_RECHECK_SECONDS = 1.0


class CRDController(KeyedController):
    name = "crd-controller"

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.crds = api.registry(definition.GROUP, "customresourcedefinitions")
        self._informer = informers.informer(self.crds, self._on_change)
        self._written: dict[str, Obj] = {}  # our own status writes, newer than the informer until it sees them
        self._naming = asyncio.Lock()

    def informers(self) -> list[RegistryInformer]:
        return [self._informer]

    def all_keys(self) -> set[str]:
        return set(self._informer.cache)

    def _on_change(self, event_type: str, obj: Obj, _old: Obj | None) -> None:
        name = obj["metadata"]["name"]
        self.enqueue(name)
        if event_type == "DELETED":
            group = definition.spec_of(obj).get("group")
            for other in self._current_crds():
                if definition.spec_of(other).get("group") == group:
                    self.enqueue(other["metadata"]["name"])

    def _current_crds(self) -> list[Obj]:
        crds = {}
        for crd in self._informer.cache.values():
            crds[crd["metadata"]["name"]] = crd
        for name, written in list(self._written.items()):
            cached = crds.get(name)
            if cached is None or int(cached["metadata"]["resourceVersion"]) >= \
                    int(written["metadata"]["resourceVersion"]):
                self._written.pop(name, None)
            elif cached["metadata"].get("uid") == written["metadata"].get("uid"):
                crds[name] = written
        return list(crds.values())

    async def sync_key(self, name: str) -> None:
        try:
            crd = await self.crds.get("", name)
        except errors.APIError as exc:
            if exc.code == 404:
                self._written.pop(name, None)
                return
            raise
        if crd["metadata"].get("deletionTimestamp"):
            await self._finalize(crd)
            return
        async with self._naming:
            crd = await self._name(crd)
        if crd is not None and definition.is_true(crd, "NamesAccepted") and \
                not definition.is_true(crd, "Established"):
            await self._establish(crd)

    # naming ------------------------------------------------------------------------------------------
    async def _name(self, crd: Obj) -> Obj | None:
        spec_names = definition.spec_of(crd).get("names") or {}
        accepted = definition.accepted_names(crd)
        if spec_names == accepted and definition.condition(crd, "NamesAccepted") is not None:
            return crd
        others = [c for c in self._current_crds() if c["metadata"]["name"] != crd["metadata"]["name"]]
        names, naming, established = accept_names(crd, others)
        current = definition.condition(crd, "NamesAccepted") or {}
        if names == accepted and all(current.get(k) == naming.get(k) for k in ("status", "reason", "message")):
            return crd
        now = rfc3339(self.api.clock())

        def change(current_crd: Obj) -> Obj:
            current_crd.setdefault("status", {})["acceptedNames"] = names
            definition.set_condition(current_crd, naming, now)
            definition.set_condition(current_crd, established, now)
            return current_crd
        updated = await self._write_status(crd, change)
        if updated is not None:
            log.info("crd names name=%s accepted=%s reason=%s", crd["metadata"]["name"], naming["status"],
                     naming["reason"])
        return updated

    async def _establish(self, crd: Obj) -> None:
        now = rfc3339(self.api.clock())

        def change(current: Obj) -> Obj:
            definition.set_condition(current, {"type": "Established", "status": "True",
                                               "reason": "InitialNamesAccepted",
                                               "message": "the initial names have been accepted"}, now)
            return current
        if await self._write_status(crd, change) is not None:
            log.info("crd established name=%s", crd["metadata"]["name"])

    async def _write_status(self, crd: Obj, change) -> Obj | None:
        meta = crd["metadata"]
        try:
            updated, _ = await self.api.update(self.crds, "", meta["name"],
                                               change({**crd, "metadata": {**meta}}), "status")
        except errors.APIError as exc:
            if exc.code in (404, 409):  # gone, or changed meanwhile: the next event brings it back here
                return None
            raise
        self._written[meta["name"]] = updated
        return updated

    # deletion ----------------------------------------------------------------------------------------
    async def _finalize(self, crd: Obj) -> None:
        if definition.CLEANUP_FINALIZER not in (crd["metadata"].get("finalizers") or []):
            return
        now = rfc3339(self.api.clock())
        if definition.is_true(crd, "Established"):
            remaining = await self._delete_instances(crd)
            if remaining:
                if (definition.condition(crd, "Terminating") or {}).get("reason") != "InstanceDeletionInProgress":
                    await self._write_status(crd, lambda c: self._set_terminating(
                        c, "True", "InstanceDeletionInProgress", "CustomResource deletion is in progress", now))
                asyncio.get_running_loop().call_later(INSTANCE_RECHECK_SECONDS, self.enqueue, crd["metadata"]["name"])
                return
            reason, message = "InstanceDeletionCompleted", "removed all instances"
        else:
            reason, message = "NeverEstablished", "resource was never established"

        def finish(current: Obj) -> Obj:
            self._set_terminating(current, "False", reason, message, now)
            current["metadata"]["finalizers"] = [f for f in current["metadata"].get("finalizers") or []
                                                 if f != definition.CLEANUP_FINALIZER]
            return current
        try:
            await self.crds.guaranteed_update("", crd["metadata"]["name"], lambda c: finish(
                {**c, "metadata": {k: v for k, v in c["metadata"].items() if k != "resourceVersion"}}))
        except errors.APIError as exc:
            if exc.code != 404:
                raise
        log.info("crd finalized name=%s reason=%s", crd["metadata"]["name"], reason)

    @staticmethod
    def _set_terminating(crd: Obj, status: str, reason: str, message: str, now: str) -> Obj:
        definition.set_condition(crd, {"type": "Terminating", "status": status, "reason": reason,
                                       "message": message}, now)
        return crd

    async def _delete_instances(self, crd: Obj) -> int:
        """Delete every custom object of the CRD; how many are still stored (finalizers, graceful)."""
        await self.api.custom_resources.refresh()
        names = definition.accepted_names(crd)
        registry = self.api.registries.get((definition.spec_of(crd).get("group"), names.get("plural")))
        if registry is None:
            return 0
        items, _ = await registry.list()
        for item in items:
            if item["metadata"].get("deletionTimestamp"):
                continue
            try:
                await registry.delete(item["metadata"].get("namespace", ""), item["metadata"]["name"], DeleteOptions())
            except errors.APIError as exc:
                if exc.code != 404:
                    raise
        remaining, _ = await registry.list()
        return len(remaining)
