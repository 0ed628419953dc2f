"""hostPath volumes: kubelet's type checks (and the *OrCreate creations), with its messages."""
from __future__ import annotations

import os
import stat

from agent.volumes.errors import VolumeError

# What kubelet's GetFileType calls each kind of file.
_FILE_TYPES = (
    (stat.S_ISDIR, "Directory"), (stat.S_ISREG, "File"), (stat.S_ISSOCK, "Socket"),
    (stat.S_ISCHR, "CharDevice"), (stat.S_ISBLK, "BlockDevice"),
)
# hostPath type → (kubelet's file type, the words its error message uses).
_EXPECTED = {
    "Directory": ("Directory", "directory"), "DirectoryOrCreate": ("Directory", "directory"),
    "File": ("File", "file"), "FileOrCreate": ("File", "file"),
    "Socket": ("Socket", "socket file"), "CharDevice": ("CharDevice", "character device"),
    "BlockDevice": ("BlockDevice", "block device"),
}


def file_type(mode: int) -> str:
    for test, name in _FILE_TYPES:
        if test(mode):
            return name
    return "unknown"


def check_host_path(path: str, path_type: str = "") -> None:
    """Checks (and for DirectoryOrCreate/FileOrCreate creates) the host path; raises VolumeError
    with kubelet's message. An unset type checks nothing (the runtime creates a missing directory)."""
    if not path_type:
        return
    if path_type not in _EXPECTED:
        raise VolumeError(f"{path_type} is an invalid volume type")
    if not os.path.lexists(path):
        try:
            if path_type == "DirectoryOrCreate":
                os.makedirs(path, 0o755, exist_ok=True)
            elif path_type == "FileOrCreate":
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
        except OSError as error:
            raise VolumeError(f"{error.strerror}: {path}") from None
    expected, description = _EXPECTED[path_type]
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise VolumeError(f"hostPath {path} doesn't exist") from None
    except OSError as error:
        raise VolumeError(f"hostPath type check failed, {path} is not a {description}, unable to determine "
                          f"its type: {error.strerror}") from None
    actual = file_type(mode)
    if actual != expected:
        raise VolumeError(f"hostPath type check failed: {path} is not a {description}, it's a {actual}")
