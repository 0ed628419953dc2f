"""A container's volumeMounts → CRI mounts, as kubelet's makeMounts builds them; pure."""
from __future__ import annotations

import json
import posixpath
from typing import Any

from cri.gen import api_pb2

from agent.volumes.errors import VolumeError

_PROPAGATION = {
    None: api_pb2.PROPAGATION_PRIVATE,
    "None": api_pb2.PROPAGATION_PRIVATE,
    "HostToContainer": api_pb2.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": api_pb2.PROPAGATION_BIDIRECTIONAL,
}


class VolumePaths(dict[str, str]):
    """Volume name → host path, as `VolumeManager.ensure` returns it. `read_only` names the volumes
    kubelet always mounts read-only whatever the volumeMount says (configMap, secret, downwardAPI,
    projected)."""

    def __init__(self, paths: dict[str, str] | None = None, read_only: frozenset[str] = frozenset()):
        super().__init__(paths or {})
        self.read_only = read_only


def go_quote(text: str) -> str:
    """Go's %q for the texts kubelet quotes in its messages."""
    return json.dumps(text, ensure_ascii=False)


def sub_path_error(sub_path: str) -> str | None:
    if posixpath.isabs(sub_path):
        return f"error SubPath `{sub_path}` must not be an absolute path"
    if ".." in sub_path.split("/"):
        return f"unable to provision SubPath `{sub_path}`: must not contain '..'"
    return None


def container_mounts(container: dict[str, Any], host_paths: dict[str, str]) -> list[api_pb2.Mount]:
    """CRI mounts for the container's volumeMounts, in spec order. Raises VolumeError for a mount
    naming an unknown volume or carrying a bad subPath (kubelet: CreateContainerConfigError)."""
    read_only_volumes = getattr(host_paths, "read_only", frozenset())
    mounts = []
    for mount in container.get("volumeMounts") or []:
        name = mount.get("name", "")
        if name not in host_paths:
            raise VolumeError(f"cannot find volume {go_quote(name)} to mount into container "
                              f"{go_quote(container.get('name', ''))}")
        host_path = host_paths[name]
        sub_path = mount.get("subPath") or ""
        if mount.get("subPathExpr"):
            raise VolumeError(f"subPathExpr is not supported by this agent (volumeMount {go_quote(name)})")
        if sub_path:
            error = sub_path_error(sub_path)
            if error:
                raise VolumeError(error)
            host_path = posixpath.join(host_path, sub_path)
        propagation = mount.get("mountPropagation")
        if propagation not in _PROPAGATION:
            raise VolumeError(f"invalid mountPropagation {go_quote(str(propagation))} for volume {go_quote(name)}")
        mounts.append(api_pb2.Mount(
            container_path=mount.get("mountPath", ""), host_path=host_path,
            readonly=bool(mount.get("readOnly")) or name in read_only_volumes,
            propagation=_PROPAGATION[propagation]))
    return mounts
