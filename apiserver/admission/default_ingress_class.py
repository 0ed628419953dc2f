"""DefaultIngressClass admission (upstream's plugin of that name): an Ingress created without
`spec.ingressClassName` and without the legacy `kubernetes.io/ingress.class` annotation gets the IngressClass
annotated `ingressclass.kubernetes.io/is-default-class: "true"`; with several such classes the newest one
(latest creationTimestamp, then the first name), as upstream since 1.28. Updates are left alone."""
from __future__ import annotations

from typing import TYPE_CHECKING

from apiserver.admission.chain import CREATE, Attributes, Step
from apiserver.informer import StorageCache
from apiserver.kinds.base import Obj
from apiserver.kinds.networking import INGRESS_CLASS_ANNOTATION, INGRESS_CLASS_INFO, INGRESS_INFO

if TYPE_CHECKING:
    from apiserver.admission.interface import AdmissionAPI

IS_DEFAULT_CLASS = "ingressclass.kubernetes.io/is-default-class"


def default_class(classes: list[Obj]) -> Obj | None:
    """getDefaultClass: the newest class marked default (ties: the smallest name)."""
    defaults = [c for c in classes if ((c.get("metadata") or {}).get("annotations") or {}).get(IS_DEFAULT_CLASS)
                == "true"]
    if not defaults:
        return None
    defaults.sort(key=lambda c: c["metadata"]["name"])
    # RFC 3339 UTC timestamps of one width sort as text; the newest first, stable on the name order.
    defaults.sort(key=lambda c: c["metadata"].get("creationTimestamp") or "", reverse=True)
    return defaults[0]


class DefaultIngressClass:
    name = "DefaultIngressClass"

    def __init__(self, api: "AdmissionAPI"):
        self.api = api
        self._classes: StorageCache | None = None

    @property
    def classes(self) -> StorageCache:
        if self._classes is None:
            self._classes = StorageCache(self.api.registry(INGRESS_CLASS_INFO.group, INGRESS_CLASS_INFO.plural))
        return self._classes

    async def start(self, attributes: Attributes) -> Step | None:
        if attributes.operation == CREATE and attributes.is_(INGRESS_INFO.group, INGRESS_INFO.plural):
            return _DefaultClass(self)
        return None


class _DefaultClass(Step):
    def __init__(self, plugin: DefaultIngressClass):
        self.plugin = plugin

    async def admit(self, obj: Obj, old: Obj | None) -> Obj:
        spec = obj.get("spec")
        if not isinstance(spec, dict) or spec.get("ingressClassName") is not None:
            return obj
        if INGRESS_CLASS_ANNOTATION in ((obj.get("metadata") or {}).get("annotations") or {}):
            return obj
        chosen = default_class(await self.plugin.classes.items(""))
        if chosen is not None:
            spec["ingressClassName"] = chosen["metadata"]["name"]
        return obj
