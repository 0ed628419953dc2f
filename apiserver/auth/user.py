"""The authenticated identity of a request, as upstream's user.Info."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SYSTEM_MASTERS = "system:masters"
SYSTEM_NODES = "system:nodes"
AUTHENTICATED = "system:authenticated"
NODE_USER_PREFIX = "system:node:"


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)

    def as_user_info(self) -> dict[str, Any]:
        """authentication.k8s.io/v1 UserInfo as the API writes it (empty fields omitted)."""
        info: dict[str, Any] = {"username": self.name}
        if self.uid:
            info["uid"] = self.uid
        if self.groups:
            info["groups"] = list(self.groups)
        if self.extra:
            info["extra"] = {key: list(values) for key, values in self.extra.items()}
        return info

    @property
    def node_name(self) -> str | None:
        """The node this identity belongs to (user system:node:<name> in group system:nodes), else None."""
        if self.name.startswith(NODE_USER_PREFIX) and SYSTEM_NODES in self.groups:
            return self.name[len(NODE_USER_PREFIX):] or None
        return None
