"""The server's resource API: registries per kind plus cross-kind rules (namespaces, bindings, node IPAM).

The HTTP layer, the scheduler and the controllers all go through this one code path.
"""
from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import time
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from apiserver import errors
from apiserver.auth import node_restriction
from apiserver.informer import Informer, StorageCache
from apiserver.allocation.claims import ClaimConflict
from apiserver.allocation.pod_cidrs import CIDRAllocator, CIDRExhausted, SharedCIDRAllocator
from apiserver.kinds import all_strategies
from apiserver.kinds.base import Obj, ResourceInfo
from apiserver.kinds.certificates import CSRApprovalStrategy
from apiserver.certificates.admission import admit_approval
from shipmate.timeutil import rfc3339
from apiserver.kinds.pods import binding_target, set_condition
from apiserver.registry import Clock, DeleteOptions, DeleteResult, Registry, encode, generated_name, utc_now
from apiserver.admission.default_tolerations import with_default_tolerations
from apiserver.podsecurity.admission import PodSecurityAdmission
from apiserver.admission.quota import QuotaAdmission
from apiserver.allocation.service_allocation import ClaimingStorage, ServiceAllocator, follow_services
from apiserver.storage.interface import KeyNotFound, RevisionMismatch, Storage

log = logging.getLogger(__name__)

_T = TypeVar("_T")
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")


async def _nothing() -> None:
    return None


class API:
    def __init__(self, storage: Storage, cluster_cidr: str = "10.244.0.0/16", node_cidr_mask_size: int = 24,
                 clock: Clock = utc_now, service_cluster_ip_range: str = "10.96.0.0/12",
                 service_node_port_range: tuple[int, int] = (30000, 32767), allow_service_external_ips: bool = False):
        self.storage = storage
        self.clock = clock
        self.service_allocator = ServiceAllocator(service_cluster_ip_range, service_node_port_range)
        self.registries: dict[tuple[str, str], Registry] = {
            (s.info.group, s.info.plural): Registry(s, storage, clock)
            for s in all_strategies(self.service_allocator)}
        self.cidrs = CIDRAllocator(cluster_cidr, node_cidr_mask_size)
        self._cidr_lock = asyncio.Lock()
        # podCIDRs claimed in the shared store: unique across every server on one etcd (allocation/pod_cidrs.py)
        self.shared_cidrs = SharedCIDRAllocator(self.cidrs, storage, lambda name: self.nodes.key("", name),
                                                self._stored_pod_cidrs)
        self.namespaces = self.registry("", "namespaces")
        self.namespace_cache = StorageCache(self.namespaces)  # NamespaceLifecycle admission reads it
        self.nodes = self.registry("", "nodes")
        self.pods = self.registry("", "pods")
        self.events = self.registry("", "events")
        self.services = self.registry("", "services")
        self.services.strategy.allow_external_ips = allow_service_external_ips  # type: ignore[attr-defined]
        self.services.storage = ClaimingStorage(storage, self.services.key)  # ClusterIPs/NodePorts claimed shared
        self.endpoints = self.registry("", "endpoints")
        self.endpoint_slices = self.registry("discovery.k8s.io", "endpointslices")
        self._service_writes: dict[str, int] = {}  # "<ns>/<name>" -> writes in flight
        self.quota = QuotaAdmission(self)           # ResourceQuota admission (admission/quota.py)
        self.pod_security = PodSecurityAdmission(self)  # PodSecurity admission; `shipmate server` sets its config
        self.default_toleration_seconds = 300       # DefaultTolerationSeconds admission (--pod-eviction-timeout)
        self.pki = None                              # apiserver.pki_bootstrap.ServerPKI, set by `shipmate server`
        self.authorizer = None                       # UnionAuthorizer(Node, RBAC): auth.middleware.install
        # CSR approval subresource: same objects, the approval strategy (only conditions change)
        self.csr_approvals = Registry(CSRApprovalStrategy(), storage, clock)
        self.extra_resources: list[ResourceInfo] = []  # kinds served by routes of their own (reviews): discovery

    def registry(self, group: str, plural: str) -> Registry:
        try:
            return self.registries[(group, plural)]
        except KeyError:
            raise errors.not_found(group, plural, "") from None

    def resources(self) -> list[ResourceInfo]:
        return [r.info for r in self.registries.values()] + self.extra_resources

    async def start(self) -> None:
        """Create the default namespaces and rebuild the podCIDR allocator from stored Nodes."""
        for name in DEFAULT_NAMESPACES:
            try:
                await self.namespaces.create("", {"metadata": {"name": name}})
                log.info("created default namespace namespace=%s", name)
            except errors.APIError as exc:
                if exc.reason != "AlreadyExists":
                    raise
        services, _ = await self.services.list()
        for service in services:
            meta = service["metadata"]
            conflicts = self.service_allocator.sync(f"{meta['namespace']}/{meta['name']}", service)
            if conflicts:
                log.warning("service allocations held twice service=%s/%s values=%s", meta["namespace"],
                            meta["name"], ",".join(conflicts))
        for name, cidr in await self._stored_pod_cidrs():
            try:
                inside = self.cidrs.occupy(cidr, name)
            except ValueError:
                inside = False
            if not inside:
                log.warning("node podCIDR outside the cluster CIDR node=%s cidr=%s", name, cidr)

    # create ----------------------------------------------------------------------------------
    async def _check_namespace(self, registry: Registry, namespace: str) -> None:
        """NamespaceLifecycle admission, from a watched cache as upstream's informer; a namespace the cache has
        not seen (created through another server a moment ago, or absent) is read from storage."""
        if not registry.info.namespaced:
            return
        ns = await self.namespace_cache.get("", namespace)
        if ns is None:
            try:
                ns = await self.namespaces.get("", namespace)
            except errors.APIError:
                raise errors.not_found("", "namespaces", namespace) from None
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.forbidden_error(registry.info.group, registry.info.plural, "",
                                         f"unable to create new content in namespace {namespace} because it is "
                                         "being terminated")

    async def create(self, registry: Registry, namespace: str, body: Any, dry_run: bool = False) -> Obj:
        body = registry.decode_body(body)  # admission sees a well-typed object, as upstream's (decoded first)
        await self._check_namespace(registry, namespace)
        await node_restriction.admit_create(self, registry, namespace, body)  # a node creates only its own objects
        if registry is self.pods:
            body = with_default_tolerations(body, self.default_toleration_seconds)
        admit = await self.pod_security.for_create(registry, namespace)  # runs on the validated object
        return await self.quota.admit_create(registry, namespace, body, dry_run,
                                             functools.partial(self._create_admitted, admit=admit))

    async def _create_admitted(self, registry: Registry, namespace: str, body: Any, dry_run: bool = False,
                               admit: Callable[[Obj], None] | None = None) -> Obj:
        if registry is self.nodes:
            return await self._create_node(body, dry_run)
        if registry is self.services and isinstance(body, dict) and isinstance(body.get("metadata"), dict):
            meta = body["metadata"]
            if not meta.get("name") and meta.get("generateName"):
                # Name it now: its claims are tracked under its name from the start.
                body = {**body, "metadata": {**meta, "name": generated_name(meta["generateName"])}}
            name = body["metadata"].get("name") or ""
            async with self._service_write(namespace, name):
                return await self._claiming(namespace, name, lambda: registry.create(namespace, body, dry_run))
        return await registry.create(namespace, body, dry_run, admit)

    @contextlib.asynccontextmanager
    async def _service_write(self, namespace: str, name: str) -> AsyncIterator[None]:
        """Around a Service write: afterwards, that Service's ClusterIP/NodePort claims are set to what
        storage holds (claims made by a failed or dry-run write go away; a deletion frees them)."""
        owner = f"{namespace}/{name}"
        self._service_writes[owner] = self._service_writes.get(owner, 0) + 1
        try:
            yield
        finally:
            self._service_writes[owner] -= 1
            if not self._service_writes[owner]:
                del self._service_writes[owner]
                kv = await self.storage.get(self.services.key(namespace, name)) if name else None
                self.service_allocator.sync(owner, self.services.decode(kv) if kv else None)

    async def _claiming(self, namespace: str, name: str, write: Callable[[], Awaitable[_T]]) -> _T:
        """A Service write whose value another server claimed first (service_allocation.ClaimingStorage): the
        value is noted as taken and the write retried, so a dynamic pick moves on and a requested value
        fails admission as upstream's "provided IP is already allocated"."""
        owner = f"{namespace}/{name}"
        relearned_when_full = False
        for _ in range(8):
            try:
                return await write()
            except ClaimConflict as conflict:
                if conflict.holder == owner:  # a concurrent write of a same-named Service (another uid)
                    raise errors.conflict("", "services", name, errors.STALE_OBJECT) from None
                log.info("service allocation taken by another server service=%s %s", owner, conflict)
                self.service_allocator.note_taken(conflict.kind, conflict.value, conflict.holder, owner)
                await self._relearn_service_allocations()
            except errors.APIError as exc:
                # "range is full" may come from a stale view (values freed on another server): look again once.
                if exc.code != 422 or relearned_when_full or not self.service_allocator.exhausted():
                    raise
                relearned_when_full = True
                await self._relearn_service_allocations()
        raise errors.conflict("", "services", name, "allocations kept changing under concurrent writers; try again")

    async def _relearn_service_allocations(self) -> None:
        """The in-memory ClusterIP/NodePort view set to the store's: stored Services and every claim."""
        services, _ = await self.services.list()
        claims = await self.services.storage.claimed()
        self.service_allocator.relearn(services, claims, lambda owner: owner in self._service_writes)

    async def follow_service_allocations(self) -> None:
        """Every server: keep the in-memory ClusterIP/NodePort view current with other servers' Services."""
        await follow_services(Informer(self.services), self.service_allocator,
                              lambda owner: owner in self._service_writes)

    async def _stored_pod_cidrs(self) -> list[tuple[str, str]]:
        """(node, podCIDR) of every stored Node."""
        nodes, _ = await self.nodes.list()
        return [(node["metadata"]["name"], cidr) for node in nodes
                for cidr in (node.get("spec") or {}).get("podCIDRs") or []]

    def _pod_cidr_problems(self, node_name: str, cidrs: list[Any]) -> list[errors.FieldError]:
        """A requested podCIDR (an admin's: nodes may not set theirs, NodeRestriction) must lie in the cluster
        CIDR and overlap no other node's, or the node routes would send one node's pod traffic to another.
        Values that are not CIDRs are left to the kind's validation."""
        problems = []
        for index, cidr in enumerate(cidrs):
            try:
                why = self.cidrs.conflict(cidr, node_name)
            except (ValueError, TypeError):
                continue
            if why:
                problems.append(errors.invalid(f"spec.podCIDRs[{index}]", cidr, why))
        return problems

    def _node_cidr_admission(self, name: str) -> Callable[[Obj, Obj], None]:
        """Validating admission of a Node update: NodeRestriction (for nodes), then podCIDRs set now are checked
        against the cluster CIDR and the other nodes' (they may only change from empty, Node validation)."""
        restriction = node_restriction.node_update_admission(name)

        def admit(new: Obj, old: Obj) -> None:
            if restriction is not None:
                restriction(new, old)
            old_cidrs = (old.get("spec") or {}).get("podCIDRs") or []
            new_cidrs = (new.get("spec") or {}).get("podCIDRs") or []
            if new_cidrs != old_cidrs:
                problems = self._pod_cidr_problems(name, new_cidrs)
                if problems:
                    raise errors.invalid_object("", "Node", name, problems)
        return admit

    def _occupy_pod_cidrs(self, node: Obj) -> None:
        for cidr in (node.get("spec") or {}).get("podCIDRs") or []:
            self.cidrs.occupy(cidr, node["metadata"]["name"])

    async def _create_node(self, body: Any, dry_run: bool) -> Obj:
        if not isinstance(body, dict):
            return await self.nodes.create("", body, dry_run)
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        requested = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
        if requested:
            return await self._create_node_with_cidrs(body, requested, dry_run)
        if dry_run:
            return await self.nodes.create("", body, dry_run)
        async with self._cidr_lock:
            node_name = str((body.get("metadata") or {}).get("name") or "")
            try:
                cidr = await self.shared_cidrs.allocate(node_name)
            except CIDRExhausted as exc:
                log.error("podCIDR allocation failed node=%s error=%s", (body.get("metadata") or {}).get("name"), exc)
                return await self.nodes.create("", body, dry_run)
            body = copy.deepcopy(body)
            body.setdefault("spec", {}).update({"podCIDR": cidr, "podCIDRs": [cidr]})
            try:
                node = await self.nodes.create("", body, dry_run)
            except BaseException:
                await asyncio.shield(self.shared_cidrs.release(cidr, node_name))
                raise
        log.info("assigned podCIDR node=%s cidr=%s", node["metadata"]["name"], cidr)
        return node

    async def _create_node_with_cidrs(self, body: Obj, requested: Any, dry_run: bool) -> Obj:
        """A Node created with its podCIDRs: checked as an update setting them is, and claimed in the shared
        store like an allocated one, so no other node gets it (nor this one twice)."""
        node_name = str((body.get("metadata") or {}).get("name") or "")
        if not isinstance(requested, list):
            return await self.nodes.create("", body, dry_run)  # the kind refuses the wrong type
        async with self._cidr_lock:
            problems = self._pod_cidr_problems(node_name, requested)
            if problems:
                raise errors.invalid_object("", "Node", node_name, problems)
            if dry_run:
                return await self.nodes.create("", body, dry_run)
            claimed = []
            try:
                for cidr in requested:
                    await self.shared_cidrs.claims.claim(str(cidr), node_name, "")
                    claimed.append(str(cidr))
                node = await self.nodes.create("", body, dry_run)
            except ClaimConflict as conflict:
                await asyncio.shield(self._release_claims(claimed, node_name))
                raise errors.invalid_object("", "Node", node_name, [errors.invalid(
                    "spec.podCIDRs", requested, f'podCIDR {conflict.value} is already allocated to node '
                                                f'"{conflict.holder}"')]) from None
            except BaseException:
                await asyncio.shield(self._release_claims(claimed, node_name))
                raise
            self._occupy_pod_cidrs(node)
        return node

    async def _release_claims(self, cidrs: list[str], node_name: str) -> None:
        """Claims of a Node create that failed (its subnets were not marked used in memory yet)."""
        for cidr in cidrs:
            try:
                await self.shared_cidrs.claims.release(cidr, node_name, "")
            except Exception as exc:  # noqa: BLE001 - a leaked claim turns stale and is taken over later
                log.warning("podCIDR claim not released node=%s cidr=%s error=%r", node_name, cidr, exc)

    # update / patch --------------------------------------------------------------------------
    async def update(self, registry: Registry, namespace: str, name: str, body: Any, subresource: str = "",
                     dry_run: bool = False) -> tuple[Obj, bool]:
        if subresource == "finalize" and registry is self.namespaces:
            return await self.finalize_namespace(name, body, dry_run), False
        if subresource == "approval":
            await admit_approval(self, name)  # 403 unless the user may approve for the CSR's signer
            registry = self.csr_approvals
        if registry is self.services:
            async with self._service_write(namespace, name):
                return await self._claiming(namespace, name,
                                            lambda: registry.update(namespace, name, body, subresource, dry_run))
        admit, finish = await self._update_admission(registry, namespace, name, subresource)
        obj, created = await registry.update(namespace, name, body, subresource, dry_run, admit)
        if registry is self.nodes and not dry_run:
            self._occupy_pod_cidrs(obj)
        await finish()
        return obj, created

    async def patch(self, registry: Registry, namespace: str, name: str, patch_type: str, patch: Any,
                    subresource: str = "", dry_run: bool = False) -> Obj:
        if subresource == "approval":
            await admit_approval(self, name)
            registry = self.csr_approvals
        if registry is self.services:
            async with self._service_write(namespace, name):
                return await self._claiming(namespace, name, lambda: registry.patch(
                    namespace, name, patch_type, patch, subresource, dry_run))
        admit, finish = await self._update_admission(registry, namespace, name, subresource)
        obj = await registry.patch(namespace, name, patch_type, patch, subresource, dry_run, admit)
        if registry is self.nodes and not dry_run:
            self._occupy_pod_cidrs(obj)
        await finish()
        return obj

    async def _update_admission(self, registry: Registry, namespace: str, name: str, subresource: str
                                ) -> tuple[Callable[[Obj, Obj], None] | None, Callable[[], Awaitable[None]]]:
        """Validating admission of an update, run by the registry on (new, old) before storing, and what runs
        once the write went through: NodeRestriction and podCIDR checks for Nodes, PodSecurity for namespaces,
        pods and workloads."""
        if registry is self.nodes:
            return self._node_cidr_admission(name), _nothing
        if registry is self.namespaces and not subresource:
            namespace_update = self.pod_security.namespace_update()
            return namespace_update.admit, namespace_update.finish
        return await self.pod_security.for_update(registry, namespace, subresource), _nothing

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
        if registry is self.services:
            async with self._service_write(namespace, name):
                return await registry.delete(namespace, name, options)
        result = await registry.delete(namespace, name, options)
        if registry is self.nodes and result.removed and not options.dry_run:
            for cidr in (result.object.get("spec") or {}).get("podCIDRs") or []:
                await self.shared_cidrs.release(cidr, name)
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
            # Named like upstream's recorder (<name>.<unix nanos in hex>): lists come back in creation order.
            "metadata": {"name": f"{meta['name']}.{time.time_ns():x}", "namespace": namespace},
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
