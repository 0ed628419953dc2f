"""A pod's or container's seccompProfile → the CRI SecurityProfile, as kubelet's getSeccompProfile; pure."""
from __future__ import annotations

import posixpath
from typing import Any

from cri.gen import api_pb2

DEFAULT_SECCOMP_ROOT = "/var/lib/shipmate/agent/seccomp"     # <root-dir>/seccomp


class InvalidProfile(ValueError):
    """A Localhost profile name that is not a path below the seccomp root."""


def seccomp_profile(profile: dict[str, Any] | None, seccomp_root: str = DEFAULT_SECCOMP_ROOT) -> api_pb2.SecurityProfile:
    """RuntimeDefault (the runtime's default filter), Localhost (a file below `seccomp_root`), else
    Unconfined (kubelet's default without --seccomp-default)."""
    kind = (profile or {}).get("type")
    if kind == "RuntimeDefault":
        return api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault)
    if kind == "Localhost":
        name = (profile or {}).get("localhostProfile") or ""
        if not name or posixpath.isabs(name) or ".." in name.split("/"):
            # The API server refuses these; a pod from a manifest file is checked here.
            raise InvalidProfile(f"localhostProfile must be a descending path below the seccomp root: {name!r}")
        return api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Localhost,
                                       localhost_ref=posixpath.join(seccomp_root, name))
    return api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Unconfined)
