"""What the approver and the signer share: the CertificateSigningRequest informer and a queue of CSR keys."""
from __future__ import annotations

import copy

from apiserver.api import API
from apiserver.informer import RegistryInformer, SharedInformers, object_key
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.kinds.base import Obj
from apiserver.kinds.certificates import CSR_INFO
from apiserver.registry import Registry


class CSRController(KeyedController):
    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.registry: Registry = api.registry(CSR_INFO.group, CSR_INFO.plural)
        self.csrs = informers.informer(self.registry, self._on_csr)

    def informers(self) -> list[RegistryInformer]:
        return [self.csrs]

    def all_keys(self) -> set[str]:
        return set(self.csrs.cache)

    async def sync_key(self, key: str) -> None:
        csr = self.csrs.cache.get(key)
        if csr is not None:
            await self.handle(copy.deepcopy(csr))  # informer objects are shared: never mutate them

    async def handle(self, csr: Obj) -> None:
        raise NotImplementedError

    def _on_csr(self, event_type: str, csr: Obj, _old: Obj | None) -> None:
        if event_type != "DELETED":
            self.enqueue(object_key(csr))
