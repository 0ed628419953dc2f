"""The storage object in-use protection controllers (kube-controller-manager's pvc-protection and
pv-protection): a deleted claim keeps its `kubernetes.io/pvc-protection` finalizer (kubectl shows it
Terminating) while a scheduled pod that has not finished uses it; a deleted volume keeps
`kubernetes.io/pv-protection` while it is Bound. The finalizers themselves are added by the
StorageObjectInUseProtection admission (admission/storage.py)."""
from __future__ import annotations

import logging

from apiserver.admission.storage import PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER
from apiserver.api import API
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.controllers.writes import modify
from apiserver.informer import RegistryInformer, SharedInformers, object_key
from apiserver.kinds.base import Obj
from apiserver.scheduler.predicates import TERMINAL_PHASES

log = logging.getLogger(__name__)


def claim_names(pod: Obj) -> set[str]:
    return {v["persistentVolumeClaim"]["claimName"] for v in (pod.get("spec") or {}).get("volumes") or []
            if isinstance(v, dict) and isinstance(v.get("persistentVolumeClaim"), dict)
            and v["persistentVolumeClaim"].get("claimName")}


def pod_uses_claim(pod: Obj, claim_name: str) -> bool:
    """podUsesPVC: only scheduled pods count (the kubelet never starts a pod whose claim is being deleted),
    and finished pods hold nothing."""
    return bool((pod.get("spec") or {}).get("nodeName")) and \
        (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES and claim_name in claim_names(pod)


def without_finalizer(obj: Obj, finalizer: str) -> Obj:
    meta = obj["metadata"]
    meta["finalizers"] = [f for f in meta.get("finalizers") or [] if f != finalizer]
    if not meta["finalizers"]:
        del meta["finalizers"]
    return obj


class PVCProtectionController(KeyedController):
    name = "persistentvolumeclaim-protection-controller"

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.registry = api.registry("", "persistentvolumeclaims")
        self.claims = informers.informer(self.registry, lambda _t, claim, _o: self._claim_changed(claim))
        self.pods = informers.informer(api.pods, self._on_pod)

    def informers(self) -> list[RegistryInformer]:
        return [self.claims, self.pods]

    def all_keys(self) -> set[str]:
        return {key for key, claim in self.claims.cache.items() if claim["metadata"].get("deletionTimestamp")}

    def _claim_changed(self, claim: Obj) -> None:
        if claim["metadata"].get("deletionTimestamp"):
            self.enqueue(object_key(claim))

    def _on_pod(self, event_type: str, pod: Obj, old: Obj | None) -> None:
        namespace = pod["metadata"].get("namespace", "")
        for name in claim_names(pod) | (claim_names(old) if old else set()):
            key = f"{namespace}/{name}"
            if key in self.claims.cache:
                self.enqueue(key)

    async def sync_key(self, key: str) -> None:
        claim = self.claims.cache.get(key)
        if claim is None or not claim["metadata"].get("deletionTimestamp") or \
                PVC_PROTECTION_FINALIZER not in (claim["metadata"].get("finalizers") or []):
            return
        namespace, name = claim["metadata"].get("namespace", ""), claim["metadata"]["name"]
        if any(pod_uses_claim(p, name) for p in self.pods.cache.values() if p["metadata"].get("namespace") == namespace):
            return
        # The cache may trail a pod scheduled a moment ago: ask storage before letting the claim go.
        pods, _ = await self.api.pods.list(namespace)
        if any(pod_uses_claim(p, name) for p in pods):
            return
        await modify(self.registry, claim, lambda current: without_finalizer(current, PVC_PROTECTION_FINALIZER))
        log.info("claim no longer in use, protection removed claim=%s", key)


class PVProtectionController(KeyedController):
    name = "persistentvolume-protection-controller"

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.registry = api.registry("", "persistentvolumes")
        self.volumes = informers.informer(self.registry, lambda _t, volume, _o: self._volume_changed(volume))

    def informers(self) -> list[RegistryInformer]:
        return [self.volumes]

    def all_keys(self) -> set[str]:
        return {key for key, volume in self.volumes.cache.items() if volume["metadata"].get("deletionTimestamp")}

    def _volume_changed(self, volume: Obj) -> None:
        if volume["metadata"].get("deletionTimestamp"):
            self.enqueue(object_key(volume))

    async def sync_key(self, key: str) -> None:
        volume = self.volumes.cache.get(key)
        if volume is None or not volume["metadata"].get("deletionTimestamp") or \
                PV_PROTECTION_FINALIZER not in (volume["metadata"].get("finalizers") or []):
            return
        if (volume.get("status") or {}).get("phase") == "Bound":
            return
        await modify(self.registry, volume, lambda current: without_finalizer(current, PV_PROTECTION_FINALIZER))
        log.info("volume no longer bound, protection removed volume=%s", volume["metadata"]["name"])
