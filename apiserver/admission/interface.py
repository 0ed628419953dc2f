"""What admission plugins read of the API: `apiserver.api.API` provides it.

The API builds the chain of plugins, so a plugin typed against `API` itself would make api.py and every
plugin import each other; this Protocol is the layer between them.
"""
from __future__ import annotations

from typing import Any, Protocol

from apiserver.informer import StorageCache
from apiserver.registry import Clock, Registry
from apiserver.storage.interface import Storage


class AdmissionAPI(Protocol):
    clock: Clock
    storage: Storage
    registries: dict[tuple[str, str], Registry]
    namespaces: Registry
    namespace_cache: StorageCache
    nodes: Registry
    pods: Registry
    services: Registry
    authorizer: Any  # auth.authorizer.Authorizer once auth.middleware.install ran, else None

    def registry(self, group: str, plural: str) -> Registry: ...
