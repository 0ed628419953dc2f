"""The server's half of the built-in `shipmate.io/local-path` provisioner (the exchange with the agents is
described in shipmate/local_path.py): it creates the PersistentVolume of a claim handed to it (the claim's
`volume.kubernetes.io/storage-provisioner`) on the node the scheduler selected, reports what the node said
as events on the claim (Provisioning, ProvisioningSucceeded, ProvisioningFailed), deletes the volume object
once its node removed the directory, and resizes: a bound claim whose request grew beyond its volume (the
class allowing expansion) has the volume's and the claim's recorded size raised, if the node's allocatable
ephemeral storage holds every local-path volume on it (the directory itself has no size limit).

It never touches a node's disk: the directory is made and removed by the agent that owns the node."""
from __future__ import annotations

import logging
from fractions import Fraction

from apiserver import errors
from apiserver.api import API
from apiserver.controllers import pv_rules as rules
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.controllers.volume_protection import without_finalizer
from apiserver.controllers.writes import modify
from apiserver.informer import RegistryInformer, SharedInformers
from apiserver.kinds.base import Obj
from apiserver.kinds.persistentvolumeclaims import claim_class, storage_request
from apiserver.registry import DeleteOptions
from shipmate import local_path
from shipmate.pod_resources import resource_list
from shipmate.quantity import QuantityFormat, format_quantity

log = logging.getLogger(__name__)

COMPONENT = local_path.PROVISIONER
CLAIM, VOLUME = "claim:", "volume:"
NO_NODE = "configuration error, no node was specified"


def node_storage(node: Obj | None) -> Fraction | None:
    """The node's allocatable ephemeral storage (None: it reports none)."""
    status = (node or {}).get("status") or {}
    values = resource_list(status.get("allocatable") or status.get("capacity"))
    return values.get("ephemeral-storage")


def _format(size: Fraction) -> str:
    return format_quantity(size, QuantityFormat.BINARY_SI)


class LocalPathProvisioner(KeyedController):
    name = "local-path-provisioner"

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.volumes_registry = api.registry("", "persistentvolumes")
        self.claims_registry = api.registry("", "persistentvolumeclaims")
        self.volumes = informers.informer(self.volumes_registry, self._on_volume)
        self.claims = informers.informer(self.claims_registry, lambda _t, c, _o: self.enqueue(CLAIM + rules.claim_key(c)))
        self.classes = informers.informer(api.registry("storage.k8s.io", "storageclasses"), lambda *_: None)
        self.nodes = informers.informer(api.nodes, lambda *_: None)
        self._reported: dict[str, tuple[str, str]] = {}
        self._succeeded: set[str] = set()     # volumes whose node just made the directory: event on the claim

    def informers(self) -> list[RegistryInformer]:
        return [self.volumes, self.claims, self.classes, self.nodes]

    def all_keys(self) -> set[str]:
        return {CLAIM + k for k in self.claims.cache} | {
            VOLUME + v["metadata"]["name"] for v in self.volumes.cache.values() if local_path.is_local_path(v)}

    def _on_volume(self, event_type: str, volume: Obj, old: Obj | None) -> None:
        if not local_path.is_local_path(volume):
            return
        self.enqueue(VOLUME + volume["metadata"]["name"])
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if event_type == "MODIFIED" and old is not None and ref:
            was, now = (old.get("status") or {}).get("phase"), (volume.get("status") or {}).get("phase")
            if was == "Pending" and now in ("Available", "Bound"):
                self._succeeded.add(volume["metadata"]["name"])
            self.enqueue(CLAIM + rules.claim_ref_key(ref))

    async def _event(self, obj: Obj, event_type: str, reason: str, message: str) -> None:
        uid = obj["metadata"].get("uid", "")
        if self._reported.get(uid) == (reason, message):
            return
        self._reported[uid] = (reason, message)
        await self.api.record_event(obj, event_type, reason, message, COMPONENT)

    def _class(self, claim: Obj) -> Obj | None:
        return self.classes.cache.get(f"/{claim_class(claim)}")

    # sync ----------------------------------------------------------------------------------------
    async def sync_key(self, key: str) -> None:
        if key.startswith(VOLUME):
            volume = self.volumes.cache.get("/" + key[len(VOLUME):])
            if volume is not None:
                await self._sync_volume(volume)
            return
        claim = self.claims.cache.get(key[len(CLAIM):])
        if claim is None:
            return
        if rules.annotations(claim).get(rules.ANN_STORAGE_PROVISIONER) == local_path.PROVISIONER and \
                not (claim.get("spec") or {}).get("volumeName") and not claim["metadata"].get("deletionTimestamp"):
            await self._provision(claim)
        elif (claim.get("status") or {}).get("phase") == "Bound":
            await self._resize(claim)

    async def _provision(self, claim: Obj) -> None:
        storage_class = self._class(claim)
        if storage_class is None or storage_class.get("provisioner") != local_path.PROVISIONER:
            return
        name = f"pvc-{claim['metadata']['uid']}"
        existing = self.volumes.cache.get(f"/{name}")
        if existing is not None:
            await self._report_volume(claim, existing)
            return
        node_name = rules.annotations(claim).get(rules.ANN_SELECTED_NODE)
        problem = local_path.provision_problem(claim)
        node = self.nodes.cache.get(f"/{node_name}") if node_name else None
        if problem is None and not node_name:
            problem = NO_NODE
        elif problem is None and node is None:
            problem = f'nodes "{node_name}" not found'
        base_dir = rules.annotations(node or {}).get(local_path.DIR_ANNOTATION, "")
        if problem is None and not base_dir:
            problem = (f"node {node_name} does not publish its local-path directory (annotation "
                       f"{local_path.DIR_ANNOTATION}): is its agent running?")
        if problem is not None:
            await self._event(claim, "Warning", "ProvisioningFailed", f"failed to provision volume with StorageClass "
                                                                       f'"{storage_class["metadata"]["name"]}": {problem}')
            return
        await self._event(claim, "Normal", "Provisioning", f'External provisioner is provisioning volume for claim '
                                                           f'"{rules.claim_key(claim)}"')
        volume = local_path.new_volume(claim, storage_class, node_name, base_dir)
        try:
            await self.api.create(self.volumes_registry, "", volume)
        except errors.APIError as exc:
            if exc.reason != "AlreadyExists":
                raise
        log.info("local-path volume created claim=%s volume=%s node=%s path=%s", rules.claim_key(claim), name,
                 node_name, local_path.volume_path(volume))

    async def _report_volume(self, claim: Obj, volume: Obj) -> None:
        status = volume.get("status") or {}
        if status.get("phase") == "Pending" and status.get("reason") == local_path.REASON_PROVISIONING_FAILED:
            await self._event(claim, "Warning", "ProvisioningFailed", f"failed to provision volume with StorageClass "
                                                                       f'"{claim_class(claim)}": '
                                                                       f'{status.get("message", "")}')

    async def _sync_volume(self, volume: Obj) -> None:
        name = volume["metadata"]["name"]
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if name in self._succeeded:
            self._succeeded.discard(name)
            claim = self.claims.cache.get(rules.claim_ref_key(ref))
            if claim is not None and claim["metadata"].get("uid") == ref.get("uid"):
                await self._event(claim, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {name}")
        status = volume.get("status") or {}
        if local_path.awaiting_node(volume):
            claim = self.claims.cache.get(rules.claim_ref_key(ref))
            if claim is not None:
                await self._report_volume(claim, volume)
            return
        removed = status.get("reason") == local_path.REASON_REMOVED
        node = local_path.affinity_node(volume)
        node_gone = node is not None and f"/{node}" not in self.nodes.cache and local_path.wants_removal(volume)
        if node_gone:
            log.warning("local-path volume's node is gone, its directory cannot be removed volume=%s node=%s "
                        "path=%s", name, node, local_path.volume_path(volume))
        if status.get("phase") == "Failed" and status.get("reason") == local_path.REASON_REMOVE_FAILED:
            await self._event(volume, "Warning", "VolumeFailedDelete", status.get("message", ""))
        if not (removed or node_gone):
            return
        if local_path.CLEANUP_FINALIZER in (volume["metadata"].get("finalizers") or []):
            await modify(self.volumes_registry, volume,
                         lambda current: without_finalizer(current, local_path.CLEANUP_FINALIZER))
        if not volume["metadata"].get("deletionTimestamp"):
            try:
                await self.api.delete(self.volumes_registry, "", name, DeleteOptions())
                log.info("local-path volume deleted volume=%s", name)
            except errors.APIError as exc:
                if exc.code != 404:
                    raise

    async def _resize(self, claim: Obj) -> None:
        """The external resizer's part, for a volume that is a directory: the recorded sizes grow."""
        volume = self.volumes.cache.get(f"/{(claim.get('spec') or {}).get('volumeName', '')}")
        if volume is None or not local_path.is_local_path(volume):
            return
        wanted, current = storage_request(claim), rules.capacity(volume)
        recorded = ((claim.get("status") or {}).get("capacity") or {}).get("storage")
        if wanted <= current and recorded == (volume["spec"].get("capacity") or {}).get("storage"):
            return
        storage_class = self._class(claim)
        if storage_class is None or not storage_class.get("allowVolumeExpansion"):
            return
        size = (claim["spec"].get("resources") or {}).get("requests", {}).get("storage")
        if wanted > current:
            node_name = local_path.affinity_node(volume) or ""
            allocatable = node_storage(self.nodes.cache.get(f"/{node_name}"))
            used = rules.local_path_used(self.volumes.cache.values(), node_name)
            if allocatable is not None and used - current + wanted > allocatable:
                await self._event(claim, "Warning", "VolumeResizeFailed",
                                  f"resize volume {volume['metadata']['name']} failed: node {node_name} has "
                                  f"{_format(allocatable)} of ephemeral storage, its local-path volumes would "
                                  f"take {_format(used - current + wanted)}")
                return
            await self._event(claim, "Normal", "Resizing",
                              f"External resizer is resizing volume {volume['metadata']['name']}")

            def grow(stored: Obj) -> Obj:
                stored["spec"]["capacity"] = {**(stored["spec"].get("capacity") or {}), "storage": size}
                return stored
            volume = await modify(self.volumes_registry, volume, grow) or volume
        new_size = (volume["spec"].get("capacity") or {}).get("storage")

        def recorded_size(stored: Obj) -> Obj:
            status = stored.setdefault("status", {})
            status["capacity"] = {**(status.get("capacity") or {}), "storage": new_size}
            status["allocatedResources"] = {**(status.get("allocatedResources") or {}), "storage": new_size}
            return stored
        await modify(self.claims_registry, claim, recorded_size, subresource="status")
        await self._event(claim, "Normal", "VolumeResizeSuccessful", "Resize volume succeeded")
        log.info("local-path volume resized claim=%s volume=%s size=%s", rules.claim_key(claim),
                 volume["metadata"]["name"], new_size)
