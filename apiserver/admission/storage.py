"""The storage admission plugins, as kube-apiserver's:

- DefaultStorageClass: a PersistentVolumeClaim created without a class (no `spec.storageClassName`, no beta
  annotation; an explicit "" means "no class" and stays) gets the default StorageClass — the newest one
  annotated `storageclass.kubernetes.io/is-default-class: "true"`. No default: left without a class.
- StorageObjectInUseProtection: created claims get the `kubernetes.io/pvc-protection` finalizer and volumes
  `kubernetes.io/pv-protection`; the protection controllers (controllers/volume_protection.py) remove them once
  no pod uses the claim / no claim is bound to the volume.
- PersistentVolumeClaimResize: a claim's storage request may only grow when its class (the same before and
  after) has `allowVolumeExpansion: true`; else 403 `only dynamically provisioned pvc can be resized and the
  storageclass that provisions the pvc must support resize`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apiserver import errors
from apiserver.admission.chain import CREATE, UPDATE, Attributes, Step
from apiserver.informer import StorageCache
from apiserver.kinds.base import Obj
from apiserver.kinds.persistentvolumeclaims import STORAGE_CLASS_ANNOTATION, claim_class, storage_request
from apiserver.kinds.storageclasses import default_class

if TYPE_CHECKING:
    from apiserver.admission.interface import AdmissionAPI

PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
PV_PROTECTION_FINALIZER = "kubernetes.io/pv-protection"
RESIZE_FORBIDDEN = ("only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc "
                    "must support resize")


def has_class(claim: Obj) -> bool:
    """PersistentVolumeClaimHasClass: storageClassName set (even to "") or the beta annotation present."""
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    spec = claim.get("spec") if isinstance(claim.get("spec"), dict) else {}
    return STORAGE_CLASS_ANNOTATION in annotations or spec.get("storageClassName") is not None


def with_finalizer(obj: Any, finalizer: str) -> Any:
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        return obj
    finalizers = obj["metadata"].get("finalizers") or []
    if finalizer in finalizers:
        return obj
    return {**obj, "metadata": {**obj["metadata"], "finalizers": [*finalizers, finalizer]}}


class StorageClasses:
    """The StorageClasses as admission reads them (a storage-watch cache, shared by the plugins)."""

    def __init__(self, api: "AdmissionAPI"):
        self._cache: StorageCache | None = None
        self.api = api

    async def all(self) -> list[Obj]:
        if self._cache is None:
            self._cache = StorageCache(self.api.registry("storage.k8s.io", "storageclasses"))
        return await self._cache.items("")

    async def get(self, name: str) -> Obj | None:
        return next((c for c in await self.all() if c["metadata"]["name"] == name), None)


class DefaultStorageClass:
    name = "DefaultStorageClass"

    def __init__(self, classes: StorageClasses):
        self.classes = classes

    async def start(self, attributes: Attributes) -> Step | None:
        if attributes.operation == CREATE and attributes.is_("", "persistentvolumeclaims"):
            return _SetDefaultClass(self.classes)
        return None


class _SetDefaultClass(Step):
    def __init__(self, classes: StorageClasses):
        self.classes = classes

    async def admit(self, obj: Any, old: Any) -> Any:
        if not isinstance(obj, dict) or not isinstance(obj.get("spec"), dict) or has_class(obj):
            return obj
        default = default_class(await self.classes.all())
        if default is None:
            return obj
        return {**obj, "spec": {**obj["spec"], "storageClassName": default["metadata"]["name"]}}


class StorageObjectInUseProtection:
    name = "StorageObjectInUseProtection"

    async def start(self, attributes: Attributes) -> Step | None:
        if attributes.operation != CREATE or attributes.subresource:
            return None
        if attributes.is_("", "persistentvolumeclaims"):
            return _AddFinalizer(PVC_PROTECTION_FINALIZER)
        if attributes.is_("", "persistentvolumes"):
            return _AddFinalizer(PV_PROTECTION_FINALIZER)
        return None


class _AddFinalizer(Step):
    def __init__(self, finalizer: str):
        self.finalizer = finalizer

    async def admit(self, obj: Any, old: Any) -> Any:
        return with_finalizer(obj, self.finalizer)


class PersistentVolumeClaimResize:
    name = "PersistentVolumeClaimResize"

    def __init__(self, classes: StorageClasses):
        self.classes = classes

    async def start(self, attributes: Attributes) -> Step | None:
        if attributes.operation == UPDATE and attributes.is_("", "persistentvolumeclaims"):
            return _CheckResize(self, attributes)
        return None

    async def allows(self, claim: Obj, old: Obj) -> bool:
        """allowResize: the class did not change and allows expansion."""
        name = claim_class(claim)
        if not name or claim_class(old) != name:
            return False
        storage_class = await self.classes.get(name)
        return bool(storage_class and storage_class.get("allowVolumeExpansion"))


class _CheckResize(Step):
    def __init__(self, plugin: PersistentVolumeClaimResize, attributes: Attributes):
        self.plugin, self.attributes = plugin, attributes

    async def validate(self, obj: Obj | None, old: Obj | None) -> None:
        if obj is None or old is None or storage_request(obj) <= storage_request(old):
            return
        if not await self.plugin.allows(obj, old):
            raise errors.forbidden_error("", "persistentvolumeclaims", self.attributes.name, RESIZE_FORBIDDEN)
