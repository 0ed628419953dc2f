"""The agent's half of the `shipmate.io/local-path` provisioner (the exchange is described in
shipmate/local_path.py): it watches the PersistentVolumes labelled for its node, creates the directory of a
new one, removes the directory of one released with policy Delete, and reports each result in the volume's
status.

Only directories exactly one level below this agent's `--local-path-dir` and named after their volume are
ever created or removed; a volume whose node affinity names another node is ignored, one whose path is
elsewhere (or holds `..`) is refused, and the directory is opened without following symlinks (a symlink
planted where the directory should be is refused, never followed), so a PersistentVolume cannot make the
agent, which runs as root, create or delete anything else on the host."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import posixpath
import shutil
import stat
from typing import Any

from agent.volumes import safe_path, tmpfs
from agent.volumes.errors import VolumeError
from shipmate import local_path
from shipmate.informer import Informer
from shipmate.kubeclient import ApiError, KubeClient, NotFound, Resource, ResourceSource

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PERSISTENT_VOLUMES = Resource("v1", "persistentvolumes", namespaced=False)
RESYNC_PERIOD = 10.0
DIRECTORY_MODE = 0o777       # any pod user may write (as k3s's local-path provisioner makes them)


def _checked(base_dir: str, path: str, volume_name: str) -> str:
    """The directory's name below base_dir, or VolumeError."""
    problem = local_path.directory_problem(path, base_dir, volume_name)
    if problem:
        raise VolumeError(f"refused: {problem}")
    return posixpath.basename(posixpath.normpath(path))


def create_directory(base_dir: str, path: str, volume_name: str) -> bool:
    """Creates the volume's directory (mode 0777) below base_dir; True when it was created, False when it was
    there already. Blocking. VolumeError/OSError when refused or impossible."""
    leaf = _checked(base_dir, path, volume_name)
    os.makedirs(base_dir, 0o755, exist_ok=True)
    root = safe_path.open_root(base_dir)
    try:
        try:
            os.mkdir(leaf, DIRECTORY_MODE, dir_fd=root)
            created = True
        except FileExistsError:
            created = False
            if stat.S_ISLNK(os.lstat(leaf, dir_fd=root).st_mode):
                raise VolumeError(f"refused: {path} is a symlink") from None
        # What is opened is what was checked: no symlink followed (one swapped in meanwhile fails here).
        fd = safe_path.open_beneath(root, leaf, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if created:
                os.fchmod(fd, DIRECTORY_MODE)   # umask aside
        finally:
            os.close(fd)
        return created
    finally:
        os.close(root)


def remove_directory(base_dir: str, path: str, volume_name: str) -> bool:
    """Removes the volume's directory and everything in it; True when removed, False when it was not there.
    A symlink in its place, or a mount point in it, is refused. Blocking."""
    leaf = _checked(base_dir, path, volume_name)
    if not os.path.isdir(base_dir):
        return False
    root = safe_path.open_root(base_dir)
    try:
        try:
            mode = os.lstat(leaf, dir_fd=root).st_mode
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(mode):
            raise VolumeError(f"refused: {path} is a symlink")
        if not stat.S_ISDIR(mode):
            raise VolumeError(f"refused: {path} is not a directory")
        real = os.path.join(os.path.realpath(base_dir), leaf)
        if tmpfs.mount_points(real):
            raise OSError(errno.EBUSY, f"{path} has mounts in it")
        shutil.rmtree(leaf, dir_fd=root)
        return True
    finally:
        os.close(root)


def volume_problem(volume: Obj, node_name: str) -> str | None:
    """Why this agent must leave the volume alone (None: it is one of its local-path volumes)."""
    if not local_path.is_local_path(volume):
        return "not a local-path volume"
    owner = local_path.affinity_node(volume)
    if owner != node_name:
        return f"its node affinity names node {owner!r}, not this node"
    if not isinstance((volume.get("spec") or {}).get("hostPath"), dict):
        return "not a hostPath volume"
    return None


class LocalPathVolumes:
    """Watches this node's local-path PersistentVolumes and acts on them (create, remove, report)."""

    def __init__(self, client: KubeClient, node_name: str, base_dir: str, resync_period: float = RESYNC_PERIOD):
        self.client, self.node_name = client, node_name
        self.base_dir = os.path.normpath(base_dir)    # as published on the Node (symlinks above it are the host's)
        self.resync_period = resync_period
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._reported: dict[str, str] = {}        # volume → last refusal logged (once each)
        self.volumes: Informer[Obj] = Informer(
            ResourceSource(client, PERSISTENT_VOLUMES, label_selector=f"{local_path.NODE_LABEL}={node_name}"),
            self._on_change)

    def _on_change(self, _event: str, volume: Obj, _old: Obj | None) -> None:
        self._dirty.add(volume["metadata"]["name"])
        self._wake.set()

    async def run(self) -> None:
        await asyncio.to_thread(os.makedirs, self.base_dir, 0o755, True)
        watcher = asyncio.create_task(self.volumes.run(), name="local-path-volumes")
        try:
            await self.volumes.synced.wait()
            while True:
                names, self._dirty = self._dirty, set()
                for name in names:
                    volume = self.volumes.cache.get(f"/{name}")
                    if volume is not None:
                        try:
                            await self.sync(volume)
                        except asyncio.CancelledError:
                            raise
                        except Exception as error:  # noqa: BLE001 - the next pass tries again
                            log.warning("local-path volume sync failed volume=%s error=%r", name, error)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.resync_period)
                except asyncio.TimeoutError:   # a failure is retried at least this often
                    self._dirty.update(v["metadata"]["name"] for v in self.volumes.cache.values()
                                       if local_path.awaiting_node(v) or local_path.wants_removal(v))
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def sync(self, volume: Obj) -> None:
        name = volume["metadata"]["name"]
        problem = volume_problem(volume, self.node_name)
        if problem is not None:
            if self._reported.get(name) != problem:
                self._reported[name] = problem
                log.warning("ignoring persistent volume volume=%s reason=%s", name, problem)
            return
        path = local_path.volume_path(volume)
        if local_path.awaiting_node(volume):
            try:
                created = await asyncio.to_thread(create_directory, self.base_dir, path, name)
            except (VolumeError, OSError) as error:
                message = f"creating directory {path} on node {self.node_name}: {error}"
                log.warning("local-path directory not created volume=%s path=%s error=%s", name, path, error)
                await self._report(volume, {"phase": "Pending", "reason": local_path.REASON_PROVISIONING_FAILED,
                                            "message": message})
                return
            log.info("local-path directory ready volume=%s path=%s created=%s", name, path, created)
            await self._report(volume, {"phase": "Available", "reason": None, "message": None})
        elif local_path.wants_removal(volume):
            try:
                removed = await asyncio.to_thread(remove_directory, self.base_dir, path, name)
            except (VolumeError, OSError) as error:
                message = f"removing directory {path} on node {self.node_name}: {error}"
                log.warning("local-path directory not removed volume=%s path=%s error=%s", name, path, error)
                await self._report(volume, {"phase": "Failed", "reason": local_path.REASON_REMOVE_FAILED,
                                            "message": message})
                return
            log.info("local-path directory removed volume=%s path=%s existed=%s", name, path, removed)
            await self._report(volume, {"reason": local_path.REASON_REMOVED, "message": None})

    async def _report(self, volume: Obj, status: Obj) -> None:
        current = volume.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return
        try:
            await self.client.patch(PERSISTENT_VOLUMES, volume["metadata"]["name"], {"status": status},
                                    subresource="status")
        except NotFound:
            pass
        except ApiError as error:
            log.warning("local-path volume status not reported volume=%s error=%s", volume["metadata"]["name"], error)
