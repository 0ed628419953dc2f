"""The server's resource API: registries per kind plus cross-kind rules (namespaces, bindings, node IPAM).

The HTTP layer, the scheduler and the controllers all go through this one code path.
"""
from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from apiserver import errors
from apiserver.ipam import CIDRAllocator, CIDRExhausted
from apiserver.kinds import all_strategies
from apiserver.kinds.base import Obj, ResourceInfo
from apiserver.timeutil import rfc3339
from apiserver.kinds.pods import binding_target, set_condition
from apiserver.registry import Clock, DeleteOptions, DeleteResult, Registry, encode, utc_now
from apiserver.storage.interface import KeyNotFound, RevisionMismatch, Storage

log = logging.getLogger(__name__)

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")


class API:
    def __init__(self, storage: Storage, cluster_cidr: str = "10.244.0.0/16", node_cidr_mask_size: int = 24,
                 clock: Clock = utc_now):
        self.storage = storage
        self.clock = clock
        self.registries: dict[tuple[str, str], Registry] = {
            (s.info.group, s.info.plural): Registry(s, storage, clock) for s in all_strategies()}
        self.cidrs = CIDRAllocator(cluster_cidr, node_cidr_mask_size)
        self._cidr_lock = asyncio.Lock()
        self.namespaces = self.registry("", "namespaces")
        self.nodes = self.registry("", "nodes")
        self.pods = self.registry("", "pods")
        self.events = self.registry("", "events")

    def registry(self, group: str, plural: str) -> Registry:
        try:
            return self.registries[(group, plural)]
        except KeyError:
            raise errors.not_found(group, plural, "") from None

    def resources(self) -> list[ResourceInfo]:
        return [r.info for r in self.registries.values()]

    async def start(self) -> None:
        """Create the default namespaces and rebuild the podCIDR allocator from stored Nodes."""
        for name in DEFAULT_NAMESPACES:
            try:
                await self.namespaces.create("", {"metadata": {"name": name}})
                log.info("created default namespace namespace=%s", name)
            except errors.APIError as exc:
                if exc.reason != "AlreadyExists":
                    raise
        nodes, _ = await self.nodes.list()
        for node in nodes:
            for cidr in (node.get("spec") or {}).get("podCIDRs") or []:
                if not self.cidrs.occupy(cidr):
                    log.warning("node podCIDR outside the cluster CIDR node=%s cidr=%s", node["metadata"]["name"], cidr)

    # create ----------------------------------------------------------------------------------
    async def _check_namespace(self, registry: Registry, namespace: str) -> None:
        if not registry.info.namespaced:
            return
        try:
            ns = await self.namespaces.get("", namespace)
        except errors.APIError:
            raise errors.not_found("", "namespaces", namespace) from None
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.forbidden_error(registry.info.group, registry.info.plural, "",
                                         f"unable to create new content in namespace {namespace} because it is "
                                         "being terminated")

    async def create(self, registry: Registry, namespace: str, body: Any, dry_run: bool = False) -> Obj:
        await self._check_namespace(registry, namespace)
        if registry is self.nodes:
            return await self._create_node(body, dry_run)
        return await registry.create(namespace, body, dry_run)

    async def _create_node(self, body: Any, dry_run: bool) -> Obj:
        if not isinstance(body, dict):
            return await self.nodes.create("", body, dry_run)
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        if spec.get("podCIDR") or spec.get("podCIDRs") or dry_run:
            return await self.nodes.create("", body, dry_run)
        async with self._cidr_lock:
            try:
                cidr = self.cidrs.allocate()
            except CIDRExhausted as exc:
                log.error("podCIDR allocation failed node=%s error=%s", (body.get("metadata") or {}).get("name"), exc)
                return await self.nodes.create("", body, dry_run)
            body = copy.deepcopy(body)
            body.setdefault("spec", {}).update({"podCIDR": cidr, "podCIDRs": [cidr]})
            try:
                node = await self.nodes.create("", body, dry_run)
            except BaseException:
                self.cidrs.release(cidr)
                raise
        log.info("assigned podCIDR node=%s cidr=%s", node["metadata"]["name"], cidr)
        return node

    # update / patch --------------------------------------------------------------------------
    async def update(self, registry: Registry, namespace: str, name: str, body: Any, subresource: str = "",
                     dry_run: bool = False) -> tuple[Obj, bool]:
        if subresource == "finalize" and registry is self.namespaces:
            return await self.finalize_namespace(name, body, dry_run), False
        obj, created = await registry.update(namespace, name, body, subresource, dry_run)
        return obj, created

    async def finalize_namespace(self, name: str, body: Any, dry_run: bool = False) -> Obj:
        finalizers = ((body or {}).get("spec") or {}).get("finalizers") or []

        def set_finalizers(ns: Obj) -> Obj:
            ns.setdefault("spec", {})["finalizers"] = list(finalizers)
            return ns
        return await self.namespaces.guaranteed_update("", name, set_finalizers, dry_run=dry_run)

    # delete ----------------------------------------------------------------------------------
    async def delete(self, registry: Registry, namespace: str, name: str, options: DeleteOptions) -> DeleteResult:
        if registry is self.namespaces and name in IMMORTAL_NAMESPACES:
            raise errors.forbidden_error("", "namespaces", name, "this namespace may not be deleted")
        result = await registry.delete(namespace, name, options)
        if registry is self.nodes and result.removed and not options.dry_run:
            for cidr in (result.object.get("spec") or {}).get("podCIDRs") or []:
                self.cidrs.release(cidr)
        return result

    # binding ---------------------------------------------------------------------------------
    async def bind(self, namespace: str, name: str, binding: Any, dry_run: bool = False) -> Obj:
        if not isinstance(binding, dict):
            raise errors.bad_request("the body of the request must be a Binding object")
        node_name = binding_target(binding)
        if not node_name:
            raise errors.invalid_object("", "Binding", name, [errors.required("target.name")])
        meta = binding.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request("the name of the object does not match the name on the URL")
        now = rfc3339(self.clock())

        def assign(pod: Obj) -> Obj:
            if pod["metadata"].get("deletionTimestamp"):
                raise errors.conflict("", "pods", name, "pod is being deleted, cannot be assigned to a host")
            if (meta.get("uid") and meta["uid"] != pod["metadata"].get("uid")) or \
                    (meta.get("resourceVersion") and meta["resourceVersion"] != pod["metadata"]["resourceVersion"]):
                raise errors.conflict("", "pods", name, "the object has been modified; please apply your changes "
                                                        "to the latest version and try again")
            current = pod["spec"].get("nodeName")
            if current:
                raise errors.conflict("", "pods", name, f"pod {name} is already assigned to node \"{current}\"")
            pod["spec"]["nodeName"] = node_name
            for key, value in (meta.get("annotations") or {}).items():
                pod["metadata"].setdefault("annotations", {})[key] = value
            set_condition(pod.setdefault("status", {}), {"type": "PodScheduled", "status": "True"}, now)
            return pod

        # Binding writes spec.nodeName, which a regular update forbids: bypass the update strategy.
        registry = self.pods
        for _ in range(16):
            kv = await self.storage.get(registry.key(namespace, name))
            if kv is None:
                raise errors.not_found("", "pods", name)
            pod = assign(registry.decode(kv))
            if dry_run:
                return pod
            try:
                stored = await self.storage.update(kv.key, encode(pod), kv.mod_revision)
            except RevisionMismatch:
                continue
            except KeyNotFound:
                raise errors.not_found("", "pods", name) from None
            return registry.decode(stored)
        raise errors.conflict("", "pods", name, errors.STALE_OBJECT)

    # events ----------------------------------------------------------------------------------
    async def record_event(self, involved: Obj, event_type: str, reason: str, message: str,
                           component: str) -> None:
        """Post a core/v1 Event about an object (best effort: failures are logged)."""
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        now = rfc3339(self.clock())
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": {"kind": involved.get("kind"), "namespace": meta.get("namespace", ""),
                               "name": meta["name"], "uid": meta.get("uid"),
                               "apiVersion": involved.get("apiVersion"),
                               "resourceVersion": meta.get("resourceVersion")},
            "reason": reason, "message": message, "type": event_type,
            "source": {"component": component}, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": component, "reportingInstance": "",
        }
        try:
            await self.events.create(namespace, event)
        except errors.APIError as exc:
            log.warning("event not recorded reason=%s object=%s/%s error=%s", reason, namespace, meta["name"], exc)
