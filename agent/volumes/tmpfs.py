"""tmpfs mounts for memory-backed emptyDirs and secret volumes (libc mount/umount2; blocking)."""
from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_MNT_DETACH = 2
_MS_NOSUID, _MS_NODEV = 2, 4


def mount_points(under: str) -> list[str]:
    """Mount points at or below `under`, deepest first (from /proc/self/mountinfo)."""
    prefix = under.rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            point = line.split()[4].replace("\\040", " ")
            if point == under.rstrip("/") or point.startswith(prefix):
                found.append(point)
    return sorted(set(found), key=len, reverse=True)


def is_mount_point(path: str) -> bool:
    return path.rstrip("/") in mount_points(path)


def mount_tmpfs(path: str, size_bytes: int | None = None, mode: int = 0o777) -> None:
    """Mounts a tmpfs on path unless one is already there (the agent restarted)."""
    if is_mount_point(path):
        return
    options = f"mode={mode:o}" + (f",size={size_bytes}" if size_bytes else "")
    if _libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", _MS_NOSUID | _MS_NODEV, options.encode()) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount tmpfs on {path}: {os.strerror(errno)}")


def unmount(path: str) -> None:
    """Lazily unmounts path (a container may still hold it while it is being removed)."""
    if _libc.umount2(os.fsencode(path), _MNT_DETACH) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unmount {path}: {os.strerror(errno)}")
