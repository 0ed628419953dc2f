"""subPath mounts prepared before a container starts, as kubelet's doBindSubPath: a missing subPath
directory of an emptyDir, hostPath or persistentVolumeClaim volume is created, the subPath must resolve inside its volume,
and what the runtime mounts is not the subPath but a bind mount of it under
`<pod-dir>/volume-subpaths/<volume>/<container>/<mount index>`, made from an fd opened without
following symlinks. A container that swaps a symlink into its volume after the check therefore
cannot get a host directory mounted (CVE-2017-1002101). Blocking: run it in a thread."""
from __future__ import annotations

import logging
import os
import posixpath
import stat
from typing import Any, Callable

from agent.volumes import safe_path, tmpfs
from agent.volumes.errors import VolumeError
from agent.volumes.mounts import go_quote

log = logging.getLogger(__name__)

CREATABLE_KINDS = ("emptyDir", "hostPath", "persistentVolumeClaim")
SUBPATH_DIR = "volume-subpaths"          # kubelet's containerSubPathDirectoryName

# fd, target → the host path the runtime mounts (the real one bind-mounts fd on target).
Binder = Callable[[int, str], str]


def bind_mount(fd: int, target: str) -> str:
    safe_path.bind_fd(fd, target)
    return target


def within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def resolve_sub_path(volume: str, sub_path: str) -> tuple[str, str]:
    """(real volume path, the subPath relative to it with its symlinks resolved); VolumeError when
    it resolves outside the volume. Symlinks that stay inside are allowed, as upstream does."""
    real_volume = os.path.realpath(volume)
    real_full = os.path.realpath(posixpath.join(volume, sub_path))
    if not within(real_full, real_volume):
        raise VolumeError(f"subpath {go_quote(real_full)} not within volume path {go_quote(real_volume)}")
    return real_volume, os.path.relpath(real_full, real_volume)


def _prepare_target(target: str, source_is_dir: bool) -> bool:
    """Creates the bind target like its source; True when a bind is already there (a restart
    keeps what the first start checked and mounted, as kubelet)."""
    if os.path.lexists(target):
        if tmpfs.is_mount_point(target):
            return True
        if stat.S_ISLNK(os.lstat(target).st_mode):
            os.unlink(target)
    os.makedirs(os.path.dirname(target), 0o750, exist_ok=True)
    if source_is_dir:
        os.makedirs(target, 0o750, exist_ok=True)
    elif not os.path.lexists(target):
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640))
    return False


def bind_sub_path(pod_dir: str, container_name: str, index: int, volume_name: str, volume: str, sub_path: str,
                  create: bool, binder: Binder = bind_mount) -> str:
    """The host path to hand the runtime for one subPath volumeMount. Raises VolumeError or OSError."""
    real_volume, relative = resolve_sub_path(volume, sub_path)
    root = safe_path.open_root(real_volume)
    try:
        if create:
            safe_path.make_dirs_beneath(root, relative, stat.S_IMODE(os.fstat(root).st_mode))
        fd = safe_path.open_beneath(root, relative)
    finally:
        os.close(root)
    try:
        target = os.path.join(os.path.realpath(pod_dir), SUBPATH_DIR, volume_name, container_name, str(index))
        if _prepare_target(target, stat.S_ISDIR(os.fstat(fd).st_mode)):
            return target
        return binder(fd, target)
    finally:
        os.close(fd)


def prepare_sub_paths(pod_dir: str, container: dict[str, Any], paths: dict[str, str], kinds: dict[str, str],
                      binder: Binder = bind_mount) -> dict[int, str]:
    """volumeMount index → the host path the runtime mounts, for each subPath mount. VolumeError
    with kubelet's words; the details (host paths) go to the log only, as kubelet keeps them
    from the user."""
    bound: dict[int, str] = {}
    name = container.get("name", "")
    for index, mount in enumerate(container.get("volumeMounts") or []):
        sub_path, volume_name = mount.get("subPath") or "", mount.get("name", "")
        if not sub_path or volume_name not in paths:
            continue
        try:
            bound[index] = bind_sub_path(pod_dir, name, index, volume_name, paths[volume_name], sub_path,
                                         kinds.get(volume_name) in CREATABLE_KINDS, binder)
        except (VolumeError, OSError) as error:
            log.warning("failed to prepare subPath for volumeMount container=%s volumeMount=%s error=%s",
                        name, volume_name, error)
            raise VolumeError(f"failed to prepare subPath for volumeMount {go_quote(volume_name)} of container "
                              f"{go_quote(name)}") from None
    return bound
