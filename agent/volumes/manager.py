"""Sets up a pod's volumes under `<root-dir>/pods/<uid>/volumes/<plugin>/<name>` as kubelet lays
them out, keeps API data volumes current, and removes them when the pod goes."""
from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from cri.gen import api_pb2

from agent.backoff import Backoff
from agent.container_config import NodeResources
from shipmate import local_path
from shipmate.kubeclient import CONFIG_MAPS, SECRETS, ApiError, KubeClient, NotFound, Resource
from shipmate.pod_resources import container_limits, pod_level_limits, pod_limits
from shipmate.quantity import QuantityError, parse_quantity

from agent.volumes import tmpfs
from agent.volumes.atomic_writer import DATA_DIR, write_payload
from agent.volumes.errors import VolumeError
from agent.volumes.hostpath import check_host_path
from agent.volumes.mounts import VolumePaths, container_mounts
from agent.volumes.subpath import Binder, bind_mount, prepare_sub_paths
from agent.volumes.projection import (Payload, config_map_payload, downward_api_payload,
                                      secret_payload)
from agent.volumes.service_account_token import TokenManager
from agent.volumes.atomic_writer import FileProjection

log = logging.getLogger(__name__)

Obj = dict[str, Any]
RESYNC_PERIOD = 10.0
# A refresh whose payload equals the one last written skips the disk; the files are still compared
# with it this often (as kubelet's sync does), in case something changed them behind our back.
VERIFY_PERIOD = 60.0
# Pods the agent removes lose their directory at once (cleanup); the scan for ones it missed is a
# safety net, and the agent's housekeeping runs every 2 s.
ORPHAN_SCAN_PERIOD = 30.0
# kubelet's plugin directory names.
PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir", "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret", "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
API_DATA_KINDS = ("configMap", "secret", "downwardAPI", "projected")
PERSISTENT_VOLUME_CLAIMS = Resource("v1", "persistentvolumeclaims")
PERSISTENT_VOLUMES = Resource("v1", "persistentvolumes", namespaced=False)


class ClaimNotReady(VolumeError):
    """A persistentVolumeClaim volume whose claim or volume cannot be used yet (kubelet's volume manager
    reports these as `Unable to attach or mount volumes: ...` and keeps the pod waiting)."""
MEMORY_TMPFS_MODE = 0o1777


def volume_kind(volume: Obj) -> str:
    kinds = [key for key in volume if key != "name" and volume[key] is not None]
    return kinds[0] if kinds else "emptyDir"     # a volume with no source is an emptyDir


def memory_volume_size(volume: Obj, pod: Obj, allocatable: int) -> int:
    """tmpfs size of a memory-backed emptyDir, as kubelet's calculateEmptyDirMemorySize: the node's
    allocatable memory, lowered to the pod's memory limit (PodLimits, when every container has one or
    the pod has a pod-level one, as the pod cgroup's) and to the volume's sizeLimit, whichever is smaller."""
    size = allocatable
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    if (containers and all(container_limits(c).get("memory") for c in containers)) or \
            pod_level_limits(spec).get("memory"):
        pod_limit = math.ceil(pod_limits(pod).get("memory", 0))
        if 0 < pod_limit <= size:
            size = pod_limit
    try:
        limit = (volume.get("emptyDir") or {}).get("sizeLimit")
        if limit is not None:
            volume_limit = parse_quantity(limit).int_value()
            if 0 < volume_limit <= size:
                size = volume_limit
    except QuantityError as error:
        raise VolumeError(f"invalid memory size: {error}") from None
    return size


@dataclass
class _MountedPod:
    pod: Obj
    paths: VolumePaths
    api_volumes: list[Obj] = field(default_factory=list)


class VolumeManager:
    def __init__(self, root_dir: str, client: KubeClient, resync_period: float = RESYNC_PERIOD,
                 node_resources: NodeResources | None = None, sub_path_binder: Binder = bind_mount,
                 node: Any = None, verify_period: float = VERIFY_PERIOD, clock: Any = time.monotonic,
                 orphan_scan_period: float = ORPHAN_SCAN_PERIOD):
        self.root_dir = root_dir
        self.node = node or (lambda: {})       # this node's Node object (name, labels): PV node affinity
        self.sub_path_binder = sub_path_binder
        self.node_resources = node_resources or NodeResources.of_this_machine()
        self.client = client
        self.tokens = TokenManager(client)  # serviceAccountToken sources of projected volumes
        self.resync_period = resync_period
        self._mounted: dict[str, _MountedPod] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self._retry = Backoff(initial=1.0, maximum=30.0)
        # During one refresh pass, each configMap/secret is read once however many pods mount it.
        self._pass_cache: dict[tuple[str, str, str], Obj | None] | None = None
        self.verify_period = verify_period
        self.clock = clock
        # pod uid → volume path → (the payload last written or found there, when the disk last agreed)
        self._written: dict[str, dict[str, tuple[Payload, float]]] = {}
        self.orphan_scan_period = orphan_scan_period
        self._scanned_at: float | None = None

    def pod_dir(self, uid: str) -> str:
        return os.path.join(self.root_dir, "pods", uid)

    def volume_dir(self, uid: str, kind: str, name: str) -> str:
        return os.path.join(self.pod_dir(uid), "volumes", PLUGIN_DIRS[kind], name)

    def paths(self, uid: str) -> VolumePaths:
        """The host paths of the pod's volumes as the last successful `ensure` set them up."""
        mounted = self._mounted.get(uid)
        return mounted.paths if mounted is not None else VolumePaths()

    async def mounts_for(self, pod: Obj, container: Obj) -> list[api_pb2.Mount]:
        """The container's CRI mounts, its subPaths prepared (created, checked to stay inside their
        volume, and bind-mounted from a no-follow fd: the runtime mounts that bind). Raises
        VolumeError (kubelet: CreateContainerConfigError)."""
        uid = pod["metadata"]["uid"]
        paths = self.paths(uid)
        mounts = container_mounts(container, paths)
        kinds = {v.get("name", ""): volume_kind(v) for v in (pod.get("spec") or {}).get("volumes") or []}
        bound = await asyncio.to_thread(prepare_sub_paths, self.pod_dir(uid), container, paths, kinds,
                                        self.sub_path_binder)
        for index, host_path in bound.items():
            mounts[index].host_path = host_path
        return mounts

    # ------------------------------------------------------------------ set up
    async def ensure(self, pod: Obj) -> VolumePaths:
        """Every volume of the pod set up; volume name → host path. Raises VolumeError with
        kubelet's FailedMount message for the first volume that cannot be set up, and `retry_in`,
        the backoff before the next attempt (1 s doubling to 30 s)."""
        uid = pod["metadata"]["uid"]
        try:
            paths = await self._ensure(pod)
        except VolumeError as error:
            error.retry_in = self._retry.failed(uid)
            raise
        self._retry.reset(uid)
        return paths

    async def _ensure(self, pod: Obj) -> VolumePaths:
        uid = pod["metadata"]["uid"]
        mounted = self._mounted.get(uid)
        if mounted is not None:
            mounted.pod = pod                  # the refresh uses the newest labels/annotations
            return mounted.paths
        paths: dict[str, str] = {}
        read_only, api_volumes = set(), []
        volumes = (pod.get("spec") or {}).get("volumes") or []
        claims = {}
        for volume in volumes:        # claims first: kubelet waits for them before setting anything up
            if volume_kind(volume) == "persistentVolumeClaim":
                try:
                    claims[volume.get("name", "")] = await self._claim_path(pod, volume)
                except ClaimNotReady as error:
                    names = "[" + " ".join(v.get("name", "") for v in volumes
                                           if volume_kind(v) == "persistentVolumeClaim") + "]"
                    raise VolumeError(f"Unable to attach or mount volumes: unmounted volumes={names}, "
                                      f"unattached volumes={names}, failed to process volumes=[{volume.get('name', '')}]"
                                      f": {error}") from None
                except (VolumeError, OSError, ApiError) as error:
                    raise VolumeError(f'MountVolume.SetUp failed for volume "{volume.get("name", "")}" : '
                                      f'{error}') from None
        for volume in volumes:
            name = volume.get("name", "")
            try:
                paths[name] = claims[name] if name in claims else await self._set_up(pod, volume)
            except (VolumeError, OSError, ApiError) as error:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {error}') from None
            if volume_kind(volume) in API_DATA_KINDS:
                read_only.add(name)
                api_volumes.append(volume)
            elif name in claims and (volume.get("persistentVolumeClaim") or {}).get("readOnly"):
                read_only.add(name)
        result = VolumePaths(paths, frozenset(read_only))
        self._mounted[uid] = _MountedPod(pod, result, api_volumes)
        return result

    async def _claim_path(self, pod: Obj, volume: Obj) -> str:
        """The host path of a persistentVolumeClaim volume: the claim must be bound (and not being deleted), its
        PersistentVolume bound to it, reachable from this node (node affinity) and a hostPath or local volume.
        ClaimNotReady while the claim or volume is not there yet, VolumeError when it can never work here."""
        namespace = pod["metadata"].get("namespace", "")
        claim_name = (volume.get("persistentVolumeClaim") or {}).get("claimName", "")
        where = f"error processing PVC {namespace}/{claim_name}"
        try:
            claim = await self.client.get(PERSISTENT_VOLUME_CLAIMS, claim_name, namespace)
        except ApiError as error:
            raise ClaimNotReady(f"{where}: failed to fetch PVC {namespace}/{claim_name} from API server. "
                                f"err={error}") from None
        spec, status = claim.get("spec") or {}, claim.get("status") or {}
        if claim["metadata"].get("deletionTimestamp"):
            raise ClaimNotReady(f"{where}: can't start pod because PVC {namespace}/{claim_name} is being deleted")
        volume_name = spec.get("volumeName") or ""
        if status.get("phase") != "Bound" or not volume_name:
            raise ClaimNotReady(f'{where}: PVC {namespace}/{claim_name} has non-bound phase '
                                f'("{status.get("phase", "")}") or empty pvc.Spec.VolumeName ("{volume_name}")')
        try:
            pv = await self.client.get(PERSISTENT_VOLUMES, volume_name)
        except ApiError as error:
            raise ClaimNotReady(f'{where}: failed to fetch PV "{volume_name}" from API server. err={error}') from None
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if not ref:
            raise ClaimNotReady(f'{where}: found PV object "{volume_name}" but it has a nil pv.Spec.ClaimRef '
                                "indicating it is not yet bound to the claim")
        if ref.get("uid") != claim["metadata"].get("uid"):
            raise ClaimNotReady(f'{where}: found PV object "{volume_name}" but its pv.Spec.ClaimRef.UID '
                                f'("{ref.get("uid", "")}") does not point to claim.UID '
                                f'("{claim["metadata"].get("uid", "")}")')
        node = self.node() or {}
        node_name = (node.get("metadata") or {}).get("name", "")
        labels = (node.get("metadata") or {}).get("labels") or {}
        if node_name and not local_path.node_affinity_matches(pv, labels, node_name):
            raise VolumeError(f'MountVolume.NodeAffinity check failed for volume "{volume_name}" : '
                              "no matching NodeSelectorTerms")
        pv_spec = pv.get("spec") or {}
        if isinstance(pv_spec.get("hostPath"), dict):
            source = pv_spec["hostPath"]
            await asyncio.to_thread(check_host_path, source.get("path", ""), source.get("type") or "")
            return source.get("path", "")
        if isinstance(pv_spec.get("local"), dict):
            path = pv_spec["local"].get("path", "")
            if not await asyncio.to_thread(os.path.exists, path):
                raise VolumeError(f'path "{path}" does not exist')
            return path
        kinds = ", ".join(k for k in pv_spec if k in ("nfs", "csi", "iscsi", "rbd", "cephfs", "fc", "glusterfs",
                                                      "awsElasticBlockStore", "gcePersistentDisk", "azureDisk",
                                                      "azureFile", "cinder", "vsphereVolume", "flexVolume"))
        raise VolumeError(f"persistent volume type {kinds or 'unknown'} is not supported by this agent")

    async def _set_up(self, pod: Obj, volume: Obj) -> str:
        kind, uid, name = volume_kind(volume), pod["metadata"]["uid"], volume["name"]
        if kind == "hostPath":
            source = volume["hostPath"]
            await asyncio.to_thread(check_host_path, source.get("path", ""), source.get("type") or "")
            return source.get("path", "")
        if kind not in PLUGIN_DIRS:
            raise VolumeError(f"volume type {kind} is not supported by this agent")
        path = self.volume_dir(uid, kind, name)
        if kind == "emptyDir":
            medium = (volume.get("emptyDir") or {}).get("medium") or ""
            if medium not in ("", "Memory"):
                raise VolumeError(f"emptyDir medium {medium} is not supported by this agent")
            size = memory_volume_size(volume, pod, self.node_resources.allocatable_memory) \
                if medium == "Memory" else None
            await asyncio.to_thread(_make_empty_dir, path, medium == "Memory", size)
            return path
        # Secrets and tokens live in memory only: a tmpfs sized like a memory-backed emptyDir without sizeLimit.
        in_memory = kind == "secret" or (kind == "projected" and _holds_credentials(volume))
        secret_size = memory_volume_size({}, pod, self.node_resources.allocatable_memory) if in_memory else None
        fresh = not os.path.lexists(os.path.join(path, DATA_DIR))
        await asyncio.to_thread(_make_empty_dir, path, in_memory, secret_size)
        try:
            await self._project(pod, volume, path, initial=True)
        except BaseException:
            if in_memory and fresh:  # as kubelet's secret volume: a failed first set-up leaves no tmpfs behind
                await asyncio.to_thread(_remove_volume_dir, path)
            raise
        return path

    async def _project(self, pod: Obj, volume: Obj, path: str, initial: bool) -> bool:
        """Writes the volume's current payload; when the API objects cannot be read and the volume
        already holds data, the old data stays (as kubelet keeps a mounted volume)."""
        try:
            payload = await self._payload(pod, volume)
        except (VolumeError, ApiError, OSError, asyncio.TimeoutError):
            if initial and not os.path.lexists(os.path.join(path, DATA_DIR)):
                raise
            if initial:
                log.warning("volume data not refreshed, keeping what is there pod=%s volume=%s",
                            _name(pod), volume["name"], exc_info=True)
                return False
            raise
        uid = pod["metadata"]["uid"]
        known = self._written.get(uid, {}).get(path)
        now = self.clock()
        if not initial and known is not None and known[0] == payload and now - known[1] < self.verify_period:
            return False
        changed = await asyncio.to_thread(write_payload, path, payload)
        if uid in self._mounted or initial:
            self._written.setdefault(uid, {})[path] = (payload, now)
        return changed

    async def _payload(self, pod: Obj, volume: Obj) -> Payload:
        kind = volume_kind(volume)
        if kind == "projected":
            projected = volume["projected"] or {}
            payload: Payload = {}
            for source in projected.get("sources") or []:
                payload.update(await self._source_payload(pod, source, projected.get("defaultMode")))
            return payload
        return await self._source_payload(pod, {kind: volume[kind]}, None)

    async def _source_payload(self, pod: Obj, source: Obj, default_mode: int | None) -> Payload:
        namespace = pod["metadata"].get("namespace", "")
        if source.get("configMap") is not None:
            spec = source["configMap"]
            obj = await self._get(CONFIG_MAPS, "configmap", spec, namespace)
            return config_map_payload(spec, obj, default_mode)
        if source.get("secret") is not None:
            spec = source["secret"]
            obj = await self._get(SECRETS, "secret", dict(spec, name=spec.get("secretName") or spec.get("name")),
                                  namespace)
            return secret_payload(spec, obj, default_mode)
        if source.get("downwardAPI") is not None:
            return downward_api_payload(source["downwardAPI"], pod, default_mode, self.node_resources)
        if source.get("serviceAccountToken") is not None:
            projection = source["serviceAccountToken"]
            token = await self.tokens.token(pod, projection)
            mode = default_mode if default_mode is not None else 0o644
            return {projection.get("path") or "token": FileProjection(token.encode(), int(mode))}
        kinds = ", ".join(k for k in source if source[k] is not None)
        raise VolumeError(f"projected source {kinds or '(empty)'} is not supported by this agent")

    async def _get(self, resource: Any, what: str, spec: Obj, namespace: str) -> Obj | None:
        name = spec.get("name") or ""
        key = (resource.plural, namespace, name)
        if self._pass_cache is not None and key in self._pass_cache:
            obj = self._pass_cache[key]
        else:
            try:
                obj = await self.client.get(resource, name, namespace)
            except NotFound:
                obj = None
            if self._pass_cache is not None:
                self._pass_cache[key] = obj
        if obj is None and not spec.get("optional"):
            raise VolumeError(f'{what} "{name}" not found')
        return obj

    # ------------------------------------------------------------------ keep current
    async def run(self) -> None:
        """Every resync period, rewrites API data volumes whose objects changed (kubelet's
        periodic remount of configMap/secret/downwardAPI/projected volumes)."""
        while True:
            await asyncio.sleep(self.resync_period)
            self._pass_cache = {}
            try:
                await self._refresh_all()
            finally:
                self._pass_cache = None

    async def _refresh_all(self) -> None:
        for uid, mounted in list(self._mounted.items()):
            for volume in mounted.api_volumes:
                path = self.volume_dir(uid, volume_kind(volume), volume["name"])
                try:
                    if await self._project(mounted.pod, volume, path, initial=False):
                        log.info("volume updated pod=%s volume=%s", _name(mounted.pod), volume["name"])
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # noqa: BLE001 - keep refreshing the others
                    log.warning("volume refresh failed pod=%s volume=%s error=%s", _name(mounted.pod),
                                volume["name"], error)

    # ------------------------------------------------------------------ tear down
    async def cleanup(self, pod_uid: str) -> None:
        """Unmounts the pod's tmpfs volumes and deletes its directory."""
        self._mounted.pop(pod_uid, None)
        self._written.pop(pod_uid, None)
        self.tokens.forget(pod_uid)
        self._retry.reset(pod_uid)
        if await asyncio.to_thread(_remove_pod_dir, self.pod_dir(pod_uid)):
            log.info("pod volumes removed uid=%s", pod_uid)

    def housekeep(self, live_uids: set[str]) -> None:
        """Removes the directories of pods not in live_uids (a removal the agent missed). Runs in
        the background; a pass still running, or one less than `orphan_scan_period` ago, makes this
        call a no-op."""
        now = self.clock()
        if self._scanned_at is not None and now - self._scanned_at < self.orphan_scan_period:
            return
        if self._housekeeping is None or self._housekeeping.done():
            self._scanned_at = now
            self._housekeeping = asyncio.create_task(self._remove_orphans(set(live_uids)),
                                                     name="volume-housekeeping")

    async def _remove_orphans(self, live_uids: set[str]) -> None:
        try:
            on_disk = await asyncio.to_thread(_list_dir, os.path.join(self.root_dir, "pods"))
            for uid in set(on_disk) | set(self._mounted):
                if uid not in live_uids:
                    log.info("removing volumes of orphaned pod uid=%s", uid)
                    await self.cleanup(uid)
        except Exception:  # noqa: BLE001 - the next pass tries again
            log.exception("volume housekeeping failed")


def _holds_credentials(volume: Obj) -> bool:
    sources = (volume.get("projected") or {}).get("sources") or []
    return any(isinstance(s, dict) and (s.get("secret") is not None or s.get("serviceAccountToken") is not None)
               for s in sources)


def _make_empty_dir(path: str, memory: bool, size: int | None) -> None:
    os.makedirs(path, 0o750, exist_ok=True)
    if memory:
        tmpfs.mount_tmpfs(path, size, MEMORY_TMPFS_MODE)
    else:
        os.chmod(path, 0o777)


def _remove_volume_dir(path: str) -> None:
    for point in tmpfs.mount_points(os.path.realpath(path)):
        tmpfs.unmount(point)
    shutil.rmtree(path, ignore_errors=True)


def _remove_pod_dir(path: str) -> bool:
    if not os.path.isdir(path):
        return False
    # tmpfs volumes and subPath binds: a bind must go before rmtree, or rmtree empties its source.
    for point in tmpfs.mount_points(os.path.realpath(path)):
        tmpfs.unmount(point)
    shutil.rmtree(path)
    return True


def _list_dir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _name(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"
