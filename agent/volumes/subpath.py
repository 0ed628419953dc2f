"""subPath preparation before a container starts: kubelet creates a missing subPath directory in
emptyDir and hostPath volumes, and refuses a subPath that resolves outside its volume (a symlink a
container planted must not expose the host). Blocking: run it in a thread."""
from __future__ import annotations

import os
import posixpath
from typing import Any

from agent.volumes.errors import VolumeError
from agent.volumes.mounts import go_quote

CREATABLE_KINDS = ("emptyDir", "hostPath")


def prepare_sub_paths(container: dict[str, Any], paths: dict[str, str], kinds: dict[str, str]) -> None:
    for mount in container.get("volumeMounts") or []:
        sub_path, name = mount.get("subPath") or "", mount.get("name", "")
        if not sub_path or name not in paths:
            continue
        volume = paths[name]
        full = posixpath.join(volume, sub_path)
        try:
            if not os.path.lexists(full) and kinds.get(name) in CREATABLE_KINDS:
                os.makedirs(full, 0o750, exist_ok=True)
            real_volume, real_full = os.path.realpath(volume), os.path.realpath(full)
        except OSError as error:
            raise VolumeError(f"failed to prepare subPath for volumeMount {go_quote(name)} of container "
                              f"{go_quote(container.get('name', ''))}: {error.strerror}") from None
        if real_full != real_volume and not real_full.startswith(real_volume.rstrip("/") + "/"):
            raise VolumeError(f"subpath {go_quote(real_full)} not within volume path {go_quote(real_volume)}")
        if not os.path.exists(full):
            raise VolumeError(f"failed to prepare subPath for volumeMount {go_quote(name)} of container "
                              f"{go_quote(container.get('name', ''))}: {full} does not exist")
