"""What both endpoint controllers share: Service and Pod informers indexed by namespace, and a queue of
Service keys woken by changes of the Service, of the pods it selects (now or before), and of the
controller's own objects."""
from __future__ import annotations

from apiserver.api import API
from apiserver.controllers.endpoint_rules import selects
from apiserver.informer import RegistryInformer, SharedInformers, object_key
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.kinds.base import Obj
from apiserver.registry import Registry


class ServiceBackendsController(KeyedController):
    name = "service-backends"

    def __init__(self, api: API, informers: SharedInformers, owned: Registry):
        super().__init__()
        self.api = api
        self.services = informers.informer(api.services, self._on_service)
        self.pods = informers.informer(api.pods, self._on_pod)
        self.owned = informers.informer(owned, self._on_owned)
        self._services_by_namespace: dict[str, dict[str, Obj]] = {}
        self._pods_by_namespace: dict[str, dict[str, Obj]] = {}
        self._pod_services: dict[str, set[str]] = {}  # pod key -> service keys that selected it

    # what subclasses provide ---------------------------------------------------------------------
    def service_key_of_owned(self, obj: Obj) -> str | None:
        raise NotImplementedError

    async def sync(self, namespace: str, name: str, service: Obj | None, pods: list[Obj]) -> None:
        raise NotImplementedError

    # KeyedController -----------------------------------------------------------------------------
    def informers(self) -> list[RegistryInformer]:
        return [self.services, self.pods, self.owned]

    def all_keys(self) -> set[str]:
        keys = set(self.services.cache)
        keys.update(k for k in map(self.service_key_of_owned, self.owned.cache.values()) if k)
        return keys

    async def sync_key(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        pods = list(self._pods_by_namespace.get(namespace, {}).values())
        await self.sync(namespace, name, self.services.cache.get(key), pods)

    # events --------------------------------------------------------------------------------------
    def _on_service(self, event_type: str, service: Obj, _old: Obj | None) -> None:
        meta = service["metadata"]
        in_namespace = self._services_by_namespace.setdefault(meta["namespace"], {})
        if event_type == "DELETED":
            in_namespace.pop(meta["name"], None)
        else:
            in_namespace[meta["name"]] = service
            service_key = object_key(service)
            # Remember which pods it selects, so a pod relabelled away from it still wakes it.
            for pod in self._pods_by_namespace.get(meta["namespace"], {}).values():
                if selects(service, pod):
                    self._pod_services.setdefault(object_key(pod), set()).add(service_key)
        self.enqueue(object_key(service))

    def _on_pod(self, event_type: str, pod: Obj, _old: Obj | None) -> None:
        meta = pod["metadata"]
        key = object_key(pod)
        in_namespace = self._pods_by_namespace.setdefault(meta["namespace"], {})
        matched: set[str] = set()
        if event_type == "DELETED":
            in_namespace.pop(meta["name"], None)
        else:
            in_namespace[meta["name"]] = pod
            matched = {object_key(s) for s in self._services_by_namespace.get(meta["namespace"], {}).values()
                       if selects(s, pod)}
        previous = self._pod_services.pop(key, set())
        if matched:
            self._pod_services[key] = matched
        for service_key in matched | previous:  # old matches too: a relabelled pod leaves its services
            self.enqueue(service_key)

    def _on_owned(self, event_type: str, obj: Obj, _old: Obj | None) -> None:
        key = self.service_key_of_owned(obj)
        if key:
            self.enqueue(key)
