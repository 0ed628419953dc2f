"""Service ClusterIPs and NodePorts in the write path (upstream allocates them in the Services' REST storage):
around every Service write, that Service's in-memory claims are set to what storage holds afterwards (claims
made by a failed or dry-run write go away; a deletion frees them), and a write whose value another server
claimed first is retried with the value noted as taken, so a dynamic pick moves on and a requested value
fails as upstream's "provided IP is already allocated"."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from apiserver import errors
from apiserver.admission.chain import CREATE, Attributes, Step
from apiserver.allocation.claims import ClaimConflict
from apiserver.allocation.service_allocation import ServiceAllocator, follow_services
from apiserver.informer import RegistryInformer

if TYPE_CHECKING:
    from apiserver.admission.interface import AdmissionAPI

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8


class ServiceClaims:
    name = "ServiceClaims"

    def __init__(self, api: "AdmissionAPI", allocator: ServiceAllocator):
        self.api = api
        self.allocator = allocator
        self.writes: dict[str, int] = {}  # "<ns>/<name>" -> writes in flight on this server

    def writing(self, owner: str) -> bool:
        return owner in self.writes

    async def start(self, attributes: Attributes) -> Step | None:
        if not attributes.is_("", "services", attributes.subresource) or not attributes.name:
            return None
        return _ServiceWrite(self, attributes.namespace, attributes.name, attributes.operation == CREATE)

    async def rebuild(self) -> None:
        """The in-memory view from the stored Services (at start)."""
        services, _ = await self.api.services.list()
        for service in services:
            meta = service["metadata"]
            conflicts = self.allocator.sync(f"{meta['namespace']}/{meta['name']}", service)
            if conflicts:
                log.warning("service allocations held twice service=%s/%s values=%s", meta["namespace"],
                            meta["name"], ",".join(conflicts))

    async def relearn(self) -> None:
        """The in-memory ClusterIP/NodePort view set to the store's: stored Services and every claim."""
        services, _ = await self.api.services.list()
        claims = await self.api.services.storage.claimed()
        self.allocator.relearn(services, claims, self.writing)

    async def follow(self) -> None:
        """Every server: keep the in-memory view current with other servers' Services."""
        await follow_services(RegistryInformer(self.api.services), self.allocator, self.writing)


class _ServiceWrite(Step):
    def __init__(self, plugin: ServiceClaims, namespace: str, name: str, creating: bool):
        self.plugin, self.namespace, self.name, self.creating = plugin, namespace, name, creating
        self.owner = f"{namespace}/{name}"
        self.attempts = 0
        self.relearned_when_full = False

    async def __aenter__(self) -> "_ServiceWrite":
        self.plugin.writes[self.owner] = self.plugin.writes.get(self.owner, 0) + 1
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        writes = self.plugin.writes
        writes[self.owner] -= 1
        if writes[self.owner]:
            return
        del writes[self.owner]
        services = self.plugin.api.services
        kv = await services.storage.get(services.key(self.namespace, self.name))
        self.plugin.allocator.sync(self.owner, services.decode(kv) if kv else None)

    async def retry(self, error: BaseException) -> bool:
        self.attempts += 1
        if isinstance(error, ClaimConflict):
            if error.holder == self.owner:
                # The name's Service holds the value: a create finds it exists (upstream's storage answers
                # AlreadyExists before allocating), an update raced a same-named Service of another uid.
                if self.creating:
                    raise errors.already_exists("", "services", self.name) from None
                raise errors.conflict("", "services", self.name, errors.STALE_OBJECT) from None
            if self.attempts >= MAX_ATTEMPTS:
                raise errors.conflict("", "services", self.name,
                                      "allocations kept changing under concurrent writers; try again") from None
            log.info("service allocation taken by another server service=%s %s", self.owner, error)
            self.plugin.allocator.note_taken(error.kind, error.value, error.holder, self.owner)
            await self.plugin.relearn()
            return True
        # "range is full" may come from a stale view (values freed on another server): look again once.
        if isinstance(error, errors.APIError) and error.code == 422 and not self.relearned_when_full \
                and self.plugin.allocator.exhausted():
            self.relearned_when_full = True
            await self.plugin.relearn()
            return True
        return False
