"""Replacing a file atomically: readers see the old content or the new, never a part, and never a
moment with looser permissions."""
from __future__ import annotations

import os
import tempfile


def write_atomically(path: str, data: bytes, mode: int, dir_mode: int = 0o755) -> None:
    """Write `data` to `path` through a synced temporary file in the same directory (mode set before
    any byte is written), then rename it over `path`. Missing directories are made with `dir_mode`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, dir_mode, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_if_exists(path: str) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
