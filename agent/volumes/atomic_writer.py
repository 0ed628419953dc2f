"""kubelet's atomic writer: a volume's files live in a hidden timestamped directory; `..data` links
to it and every visible top-level name links into `..data`, so an update is one rename of a
symlink and readers never see a half-written set of files.

    <dir>/key         -> ..data/key
    <dir>/..data      -> ..2026_11_26_01_40_00.123456789
    <dir>/..2026_…/key   (the real file)

The planning half (validation, which paths to prune) is pure; `write_payload` applies it.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
import time
from dataclasses import dataclass

from agent.volumes.errors import VolumeError

DATA_DIR = "..data"
NEW_DATA_DIR = "..data_tmp"
MAX_FILE_NAME = 255
MAX_PATH = 4096


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int


def validate_path(path: str) -> None:
    if not path:
        raise VolumeError(f'invalid path: must not be empty: "{path}"')
    if posixpath.isabs(path):
        raise VolumeError(f"invalid path: must be relative path: {path}")
    if len(path) > MAX_PATH:
        raise VolumeError(f"invalid path: must be less than or equal to {MAX_PATH} characters")
    items = path.split("/")
    for item in items:
        if item == "..":
            raise VolumeError(f"invalid path: must not contain '..': {path}")
        if len(item) > MAX_FILE_NAME:
            raise VolumeError(f"invalid path: filenames must be less than or equal to {MAX_FILE_NAME} characters")
    if items[0].startswith("..") and len(items[0]) > 2:
        raise VolumeError(f"invalid path: must not start with '..': {path}")


def clean_payload(payload: dict[str, FileProjection]) -> dict[str, FileProjection]:
    """Validated payload keyed by normalised paths."""
    cleaned = {}
    for path, projection in payload.items():
        validate_path(path)
        cleaned[posixpath.normpath(path)] = projection
    return cleaned


def paths_to_remove(old_paths: set[str], payload: dict[str, FileProjection]) -> set[str]:
    """Paths of the previous version that the new payload no longer has (a directory still holding
    a new file is kept)."""
    kept = set()
    for path in payload:
        while path:
            kept.add(path)
            path = posixpath.dirname(path)
    return old_paths - kept


def top_level_names(payload: dict[str, FileProjection]) -> set[str]:
    return {path.split("/", 1)[0] for path in payload}


def _walk(root: str) -> set[str]:
    found = set()
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(directory, name), root))
    return found


def _unchanged(payload: dict[str, FileProjection], old_dir: str) -> bool:
    for path, projection in payload.items():
        full = os.path.join(old_dir, path)
        try:
            if os.lstat(full).st_mode & 0o7777 != projection.mode:
                return False
            with open(full, "rb") as handle:
                if handle.read() != projection.data:
                    return False
        except OSError:
            return False
    return True


def write_payload(target_dir: str, payload: dict[str, FileProjection]) -> bool:
    """Projects the payload into target_dir atomically; False when it was already there. Blocking:
    run it in a thread."""
    payload = clean_payload(payload)
    data_link = os.path.join(target_dir, DATA_DIR)
    try:
        old_name = os.readlink(data_link)
    except FileNotFoundError:
        old_name = ""
    old_dir = os.path.join(target_dir, old_name) if old_name else ""
    removed: set[str] = set()
    if old_dir:
        removed = paths_to_remove(_walk(old_dir), payload)
        if not removed and _unchanged(payload, old_dir):
            return False

    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    new_dir = tempfile.mkdtemp(prefix=stamp, dir=target_dir)
    try:
        os.chmod(new_dir, 0o755)
        for path, projection in payload.items():
            full = os.path.join(new_dir, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as handle:
                handle.write(projection.data)
            os.chmod(full, projection.mode)
        for name in top_level_names(payload):
            visible = os.path.join(target_dir, name)
            if not os.path.islink(visible):
                os.symlink(os.path.join(DATA_DIR, name), visible)
        new_link = os.path.join(target_dir, NEW_DATA_DIR)
        if os.path.lexists(new_link):
            os.remove(new_link)
        os.symlink(os.path.basename(new_dir), new_link)
        os.rename(new_link, data_link)
    except OSError:
        shutil.rmtree(new_dir, ignore_errors=True)
        raise
    for path in removed:
        if "/" not in path:             # only the top-level links live in target_dir itself
            try:
                os.remove(os.path.join(target_dir, path))
            except FileNotFoundError:
                pass
    if old_dir:
        shutil.rmtree(old_dir, ignore_errors=True)
    return True
