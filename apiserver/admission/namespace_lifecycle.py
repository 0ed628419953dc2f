"""NamespaceLifecycle admission (upstream's plugin of that name): nothing is created in a namespace that does
not exist or is being terminated, and the system namespaces cannot be deleted."""
from __future__ import annotations

from typing import TYPE_CHECKING

from apiserver import errors
from apiserver.admission.chain import CREATE, DELETE, Attributes, Step

if TYPE_CHECKING:
    from apiserver.admission.interface import AdmissionAPI

IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")


class NamespaceLifecycle:
    name = "NamespaceLifecycle"

    def __init__(self, api: "AdmissionAPI"):
        self.api = api

    async def start(self, attributes: Attributes) -> Step | None:
        if attributes.operation == DELETE and attributes.is_("", "namespaces") \
                and attributes.name in IMMORTAL_NAMESPACES:
            raise errors.forbidden_error("", "namespaces", attributes.name, "this namespace may not be deleted")
        if attributes.operation == CREATE and attributes.registry.info.namespaced and not attributes.subresource:
            await self._check_namespace(attributes)
        return None

    async def _check_namespace(self, attributes: Attributes) -> None:
        """From a watched cache, as upstream's informer; a namespace the cache has not seen (created through
        another server a moment ago, or absent) is read from storage."""
        namespace = attributes.namespace
        ns = await self.api.namespace_cache.get("", namespace)
        if ns is None:
            try:
                ns = await self.api.namespaces.get("", namespace)
            except errors.APIError:
                raise errors.not_found("", "namespaces", namespace) from None
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.forbidden_error(attributes.group, attributes.plural, "",
                                         f"unable to create new content in namespace {namespace} because it is "
                                         "being terminated")
