"""The PersistentVolume controller (kube-controller-manager's persistentvolume-binder): binds claims to
volumes, keeps both phases current, starts provisioning and reclaims released volumes.

Claims (upstream's syncUnboundClaim / syncBoundClaim):
- unbound, no volumeName: the best matching volume (pv_rules.find_matching_volume) is bound; none found: a
  WaitForFirstConsumer claim whose pod is not scheduled yet waits (event WaitForFirstConsumer or
  WaitForPodScheduled); a claim with a class is handed to its provisioner (annotations
  `volume.kubernetes.io/storage-provisioner`, event ExternalProvisioning); without a class, event
  FailedBinding. A claim created without a class gets the default one once there is one (retroactive
  default StorageClass assignment).
- unbound with volumeName: bound when that volume is free or reserved for it;
- bound: Lost (events ClaimLost / ClaimMisbound) when its volume is gone or bound elsewhere.
Binding writes the volume (claimRef, `pv.kubernetes.io/bound-by-controller`, phase Bound) then the claim
(volumeName, `pv.kubernetes.io/bind-completed`, phase Bound with the volume's capacity and access modes).

Volumes (syncVolume): no claimRef → Available; the claim gone (checked against storage, not only the cache) →
Released, then reclaimed: Retain keeps it; Delete of a volume from an external provisioner (shipmate.io/
local-path) is the provisioner's; anything else fails (phase Failed, event VolumeFailedDelete, as upstream
without a deleter plugin); Recycle is not supported (VolumeFailedRecycle). A local-path volume still waiting
for its node's directory (phase Pending) is left alone.
"""
from __future__ import annotations

import logging
from typing import Any

from apiserver import errors
from apiserver.api import API
from apiserver.controllers import pv_rules as rules
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.controllers.writes import modify
from apiserver.informer import RegistryInformer, SharedInformers
from apiserver.kinds.base import Obj
from apiserver.kinds.persistentvolumeclaims import STORAGE_CLASS_ANNOTATION, claim_class
from apiserver.kinds.storageclasses import NO_PROVISIONER, default_class
from shipmate import local_path

log = logging.getLogger(__name__)

COMPONENT = "persistentvolume-controller"
CLAIM, VOLUME = "claim:", "volume:"


def external_provisioning_message(provisioner: str) -> str:
    return (f"Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually "
            "by the system administrator. If volume creation is delayed, please verify that the provisioner is "
            "running and correctly registered.")


class PersistentVolumeController(KeyedController):
    name = COMPONENT

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.volumes_registry = api.registry("", "persistentvolumes")
        self.claims_registry = api.registry("", "persistentvolumeclaims")
        self.volumes = informers.informer(self.volumes_registry, self._on_volume)
        self.claims = informers.informer(self.claims_registry, self._on_claim)
        self.classes = informers.informer(api.registry("storage.k8s.io", "storageclasses"), self._on_class)
        self.pods = informers.informer(api.pods, self._on_pod)
        self._reported: dict[str, tuple[str, str]] = {}   # claim/volume uid → last (reason, message) posted

    def informers(self) -> list[RegistryInformer]:
        return [self.volumes, self.claims, self.classes, self.pods]

    def all_keys(self) -> set[str]:
        return {CLAIM + k for k in self.claims.cache} | {VOLUME + v["metadata"]["name"]
                                                         for v in self.volumes.cache.values()}

    # event handlers ------------------------------------------------------------------------------
    def _on_volume(self, event_type: str, volume: Obj, _old: Obj | None) -> None:
        self.enqueue(VOLUME + volume["metadata"]["name"])
        ref = (volume.get("spec") or {}).get("claimRef")
        if isinstance(ref, dict):
            self.enqueue(CLAIM + rules.claim_ref_key(ref))
        if event_type == "DELETED":
            self._reported.pop(volume["metadata"].get("uid", ""), None)
            for key, claim in list(self.claims.cache.items()):
                if (claim.get("spec") or {}).get("volumeName") == volume["metadata"]["name"]:
                    self.enqueue(CLAIM + key)
        elif not (volume.get("spec") or {}).get("claimRef"):
            self._unbound_claims_again()

    def _on_claim(self, event_type: str, claim: Obj, _old: Obj | None) -> None:
        self.enqueue(CLAIM + rules.claim_key(claim))
        name = (claim.get("spec") or {}).get("volumeName")
        if name:
            self.enqueue(VOLUME + name)
        if event_type == "DELETED":
            self._reported.pop(claim["metadata"].get("uid", ""), None)
            for volume in list(self.volumes.cache.values()):
                ref = (volume.get("spec") or {}).get("claimRef") or {}
                if rules.claim_ref_key(ref) == rules.claim_key(claim):
                    self.enqueue(VOLUME + volume["metadata"]["name"])

    def _on_class(self, _event_type: str, _class: Obj, _old: Obj | None) -> None:
        self._unbound_claims_again()

    def _on_pod(self, _event_type: str, pod: Obj, old: Obj | None) -> None:
        """A pod using a waiting claim was created or scheduled: its WaitForFirstConsumer event changes."""
        if old is not None and bool((old.get("spec") or {}).get("nodeName")) == \
                bool((pod.get("spec") or {}).get("nodeName")):
            return
        namespace = pod["metadata"].get("namespace", "")
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            source = volume.get("persistentVolumeClaim") if isinstance(volume, dict) else None
            if isinstance(source, dict) and source.get("claimName"):
                self.enqueue(f"{CLAIM}{namespace}/{source['claimName']}")

    def _unbound_claims_again(self) -> None:
        for key, claim in list(self.claims.cache.items()):
            if (claim.get("status") or {}).get("phase") != "Bound":
                self.enqueue(CLAIM + key)

    # sync ----------------------------------------------------------------------------------------
    async def sync_key(self, key: str) -> None:
        if key.startswith(CLAIM):
            namespace, _, name = key[len(CLAIM):].partition("/")
            claim = await self._get(self.claims_registry, namespace, name)
            if claim is not None:
                await self.sync_claim(claim)
        else:
            volume = await self._get(self.volumes_registry, "", key[len(VOLUME):])
            if volume is not None:
                await self.sync_volume(volume)

    @staticmethod
    async def _get(registry: Any, namespace: str, name: str) -> Obj | None:
        try:
            return await registry.get(namespace, name)
        except errors.APIError as exc:
            if exc.code == 404:
                return None
            raise

    def _classes(self) -> dict[str, Obj]:
        return {c["metadata"]["name"]: c for c in self.classes.cache.values()}

    async def _event(self, obj: Obj, event_type: str, reason: str, message: str) -> None:
        """Posted once per change of (reason, message) for the object (upstream repeats them every sync)."""
        uid = obj["metadata"].get("uid", "")
        if self._reported.get(uid) == (reason, message):
            return
        self._reported[uid] = (reason, message)
        await self.api.record_event(obj, event_type, reason, message, COMPONENT)

    async def sync_claim(self, claim: Obj) -> None:
        if rules.annotations(claim).get(rules.ANN_BIND_COMPLETED):
            await self._sync_bound_claim(claim)
        else:
            await self._sync_unbound_claim(claim)

    async def _sync_unbound_claim(self, claim: Obj) -> None:
        spec = claim.get("spec") or {}
        classes = self._classes()
        volume_name = spec.get("volumeName") or ""
        if not volume_name:
            if await self._assign_default_class(claim, classes):
                return                                   # the update comes back as an event
            delay = rules.is_delay_binding(claim, classes)
            volume = rules.find_matching_volume(claim, list(self.volumes.cache.values()), delay)
            if volume is not None:
                await self._bind(volume, claim)
                return
            class_name = claim_class(claim)
            if delay and not rules.annotations(claim).get(rules.ANN_SELECTED_NODE):
                await self._wait_for_consumer(claim)
            elif class_name:
                await self._provision(claim, classes.get(class_name), class_name)
            else:
                await self._event(claim, "Normal", "FailedBinding",
                                  "no persistent volumes available for this claim and no storage class is set")
            await self._claim_phase(claim, "Pending")
            return
        volume = self.volumes.cache.get(f"/{volume_name}")
        if volume is None or not rules.usable(volume):
            await self._claim_phase(claim, "Pending")
            return
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref is None or rules.is_bound_to_claim(volume, claim):
            await self._bind(volume, claim)
        else:
            await self._claim_phase(claim, "Pending")

    async def _assign_default_class(self, claim: Obj, classes: dict[str, Obj]) -> bool:
        """RetroactiveDefaultStorageClass: a claim created without a class (field unset, no beta annotation)
        gets the default class once one exists."""
        if (claim.get("spec") or {}).get("storageClassName") is not None or \
                STORAGE_CLASS_ANNOTATION in rules.annotations(claim):
            return False
        default = default_class(list(classes.values()))
        if default is None:
            return False

        def assign(current: Obj) -> Obj:
            spec = current.setdefault("spec", {})
            if spec.get("storageClassName") is None and not spec.get("volumeName"):
                spec["storageClassName"] = default["metadata"]["name"]
            return current
        await modify(self.claims_registry, claim, assign)
        log.info("default storage class assigned claim=%s class=%s", rules.claim_key(claim),
                 default["metadata"]["name"])
        return True

    async def _wait_for_consumer(self, claim: Obj) -> None:
        """emitEventForUnboundDelayBindingClaim."""
        namespace, name = claim["metadata"].get("namespace", ""), claim["metadata"]["name"]
        waiting = sorted(p["metadata"]["name"] for p in self.pods.cache.values()
                         if p["metadata"].get("namespace") == namespace and not (p.get("spec") or {}).get("nodeName")
                         and any(isinstance(v, dict) and (v.get("persistentVolumeClaim") or {}).get("claimName") == name
                                 for v in (p.get("spec") or {}).get("volumes") or []))
        if not waiting:
            await self._event(claim, "Normal", "WaitForFirstConsumer",
                              "waiting for first consumer to be created before binding")
        elif len(waiting) == 1:
            await self._event(claim, "Normal", "WaitForPodScheduled", f"waiting for pod {waiting[0]} to be scheduled")
        else:
            await self._event(claim, "Normal", "WaitForPodScheduled",
                              f"waiting for pods {','.join(waiting)} to be scheduled")

    async def _provision(self, claim: Obj, storage_class: Obj | None, class_name: str) -> None:
        """provisionClaim: external provisioners (all of ours) are told through the claim's annotations."""
        if storage_class is None:
            await self._event(claim, "Warning", "ProvisioningFailed",
                              f'storageclass.storage.k8s.io "{class_name}" not found')
            return
        provisioner = storage_class.get("provisioner", "")
        if provisioner == NO_PROVISIONER or provisioner.startswith("kubernetes.io/"):
            await self._event(claim, "Warning", "ProvisioningFailed", "no volume plugin matched name: " + provisioner)
            return
        annotations = rules.annotations(claim)
        if annotations.get(rules.ANN_STORAGE_PROVISIONER) != provisioner or \
                annotations.get(rules.ANN_BETA_STORAGE_PROVISIONER) != provisioner:
            def mark(current: Obj) -> Obj:
                meta = current["metadata"]
                meta["annotations"] = {**(meta.get("annotations") or {}), rules.ANN_STORAGE_PROVISIONER: provisioner,
                                       rules.ANN_BETA_STORAGE_PROVISIONER: provisioner}
                return current
            await modify(self.claims_registry, claim, mark)
        await self._event(claim, "Normal", "ExternalProvisioning", external_provisioning_message(provisioner))

    async def _sync_bound_claim(self, claim: Obj) -> None:
        volume_name = (claim.get("spec") or {}).get("volumeName") or ""
        if not volume_name:
            await self._claim_phase(claim, "Lost", ("Warning", "ClaimLost", "Bound claim has lost reference to "
                                                    "PersistentVolume. Data on the volume is lost!"))
            return
        volume = self.volumes.cache.get(f"/{volume_name}") or await self._get(self.volumes_registry, "", volume_name)
        if volume is None:
            await self._claim_phase(claim, "Lost", ("Warning", "ClaimLost", "Bound claim has lost its "
                                                    "PersistentVolume. Data on the volume is lost!"))
            return
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref is None or ref.get("uid") == claim["metadata"].get("uid"):
            await self._bind(volume, claim)
        else:
            await self._claim_phase(claim, "Lost", ("Warning", "ClaimMisbound", "Two claims are bound to the same "
                                                    "volume, this one is bound incorrectly"))

    async def sync_volume(self, volume: Obj) -> None:
        if local_path.awaiting_node(volume) or (local_path.is_local_path(volume)
                                                and volume["metadata"].get("deletionTimestamp")):
            return          # its node reports the directory made or removed (shipmate/local_path.py)
        spec = volume.get("spec") or {}
        ref = spec.get("claimRef")
        if not isinstance(ref, dict) or not ref.get("uid"):
            await self._volume_phase(volume, "Available")
            return
        key = rules.claim_ref_key(ref)
        claim = self.claims.cache.get(key)
        if claim is None:   # maybe not in our cache yet (created a moment ago): ask storage
            claim = await self._get(self.claims_registry, ref.get("namespace", ""), ref.get("name", ""))
        if claim is not None and claim["metadata"].get("uid") != ref.get("uid"):
            claim = None
        if claim is None:
            phase = (volume.get("status") or {}).get("phase")
            if phase not in ("Released", "Failed"):
                log.info("volume released volume=%s claim=%s policy=%s", volume["metadata"]["name"], key,
                         spec.get("persistentVolumeReclaimPolicy"))
                volume = await self._volume_phase(volume, "Released") or volume
            await self._reclaim(volume)
            return
        claimed = (claim.get("spec") or {}).get("volumeName") or ""
        if not claimed:
            self.enqueue(CLAIM + key)                 # the claim's sync completes the binding
        elif claimed == volume["metadata"]["name"]:
            await self._volume_phase(volume, "Bound")
        elif rules.annotations(volume).get(rules.ANN_DYNAMICALLY_PROVISIONED) and \
                spec.get("persistentVolumeReclaimPolicy") == "Delete":
            if (volume.get("status") or {}).get("phase") not in ("Released", "Failed"):
                volume = await self._volume_phase(volume, "Released") or volume
            await self._reclaim(volume)
        elif rules.annotations(volume).get(rules.ANN_BOUND_BY_CONTROLLER):
            await self._unbind(volume)

    async def _reclaim(self, volume: Obj) -> None:
        policy = (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy")
        if policy == "Retain":
            return
        if policy == "Recycle":
            await self._event(volume, "Warning", "VolumeFailedRecycle", "No recycler plugin found for the volume!")
            await self._volume_phase(volume, "Failed", "No recycler plugin found for the volume!")
            return
        provisioner = rules.annotations(volume).get(rules.ANN_DYNAMICALLY_PROVISIONED) or \
            rules.annotations(volume).get(rules.ANN_MIGRATED_PROVISIONED) or ""
        if provisioner and not provisioner.startswith("kubernetes.io/"):
            return                                     # an external provisioner deletes it
        message = (f'error getting deleter volume plugin for volume "{volume["metadata"]["name"]}": '
                   "no deletable volume plugin matched")
        await self._event(volume, "Warning", "VolumeFailedDelete", message)
        await self._volume_phase(volume, "Failed", message)

    # writes --------------------------------------------------------------------------------------
    async def _bind(self, volume: Obj, claim: Obj) -> None:
        """bind(): volume first (claimRef, phase Bound), then the claim (volumeName, phase Bound)."""
        meta = claim["metadata"]
        ref = {"kind": "PersistentVolumeClaim", "namespace": meta["namespace"], "name": meta["name"],
               "uid": meta["uid"], "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion", "")}

        def bind_volume(current: Obj) -> Obj:
            spec = current.setdefault("spec", {})
            old = spec.get("claimRef") or {}
            if old.get("uid") and old["uid"] != meta["uid"]:
                raise errors.conflict("", "persistentvolumes", current["metadata"]["name"],
                                      "the volume is bound to another claim")
            if not old or not rules.is_bound_to_claim(current, claim):   # chosen by the controller
                current["metadata"].setdefault("annotations", {})[rules.ANN_BOUND_BY_CONTROLLER] = "yes"
            spec["claimRef"] = {**old, **ref}
            return current
        current = volume
        if ((volume.get("spec") or {}).get("claimRef") or {}).get("uid") != meta["uid"]:
            current = await modify(self.volumes_registry, volume, bind_volume)
            if current is None:
                return
        current = await self._volume_phase(current, "Bound") or current
        volume_name = volume["metadata"]["name"]

        def bind_claim(stored: Obj) -> Obj:
            spec = stored.setdefault("spec", {})
            annotations = stored["metadata"].setdefault("annotations", {})
            if spec.get("volumeName") != volume_name:
                spec["volumeName"] = volume_name
                annotations[rules.ANN_BOUND_BY_CONTROLLER] = "yes"
            annotations[rules.ANN_BIND_COMPLETED] = "yes"
            return stored
        bound = await modify(self.claims_registry, claim, bind_claim)
        if bound is None:
            return
        volume_spec = current.get("spec") or {}

        def bound_status(stored: Obj) -> Obj:
            status = dict(stored.get("status") or {})
            status.update(phase="Bound", accessModes=list(volume_spec.get("accessModes") or []),
                          capacity=dict(volume_spec.get("capacity") or {}))
            stored["status"] = status
            return stored
        status = bound.get("status") or {}
        if status.get("phase") != "Bound" or status.get("accessModes") != volume_spec.get("accessModes") or \
                status.get("capacity") is None:
            await modify(self.claims_registry, bound, bound_status, subresource="status")
            log.info("claim bound claim=%s volume=%s", rules.claim_key(claim), volume_name)

    async def _unbind(self, volume: Obj) -> None:
        def unbind(current: Obj) -> Obj:
            current.setdefault("spec", {}).pop("claimRef", None)
            (current["metadata"].get("annotations") or {}).pop(rules.ANN_BOUND_BY_CONTROLLER, None)
            return current
        unbound = await modify(self.volumes_registry, volume, unbind)
        if unbound is not None:
            await self._volume_phase(unbound, "Available")

    async def _volume_phase(self, volume: Obj, phase: str, message: str = "") -> Obj | None:
        status = volume.get("status") or {}
        if status.get("phase") == phase and (status.get("message") or "") == message:
            return volume

        def set_phase(current: Obj) -> Obj:
            current_status = dict(current.get("status") or {})
            if current_status.get("phase") != phase:
                current_status.pop("reason", None)
            current_status["phase"] = phase
            if message:
                current_status["message"] = message
            else:
                current_status.pop("message", None)
            current["status"] = current_status
            return current
        return await modify(self.volumes_registry, volume, set_phase, subresource="status")

    async def _claim_phase(self, claim: Obj, phase: str, event: tuple[str, str, str] | None = None) -> None:
        if (claim.get("status") or {}).get("phase") != phase:
            def set_phase(current: Obj) -> Obj:
                status = dict(current.get("status") or {})
                status["phase"] = phase
                if phase != "Bound":
                    status.pop("accessModes", None)
                    status.pop("capacity", None)
                current["status"] = status
                return current
            await modify(self.claims_registry, claim, set_phase, subresource="status")
        if event is not None:
            await self._event(claim, *event)
