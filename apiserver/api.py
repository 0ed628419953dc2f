"""The server's resource API: the registries of every kind and the one write path they share.

The HTTP layer, the scheduler and the controllers all write through it: every create, update, patch and
delete (and `pods/binding`) passes the admission chain (admission/chain.py), whose steps include the
allocation of Service ClusterIPs/NodePorts and node podCIDRs. Writes that go to a registry directly are the
exceptions named in apiserver/README.md ("The write path").
"""
from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable, TypeVar

from apiserver import errors
from apiserver.admission.chain import CREATE, DELETE, UPDATE, Admission, AdmissionChain, Attributes
from apiserver.admission.default_ingress_class import DefaultIngressClass
from apiserver.admission.default_tolerations import DefaultTolerationSeconds
from apiserver.admission.limit_ranger import LimitRanger
from apiserver.admission.namespace_lifecycle import NamespaceLifecycle
from apiserver.admission.node_pod_cidrs import NodePodCIDRs
from apiserver.admission.node_restriction import NodeRestriction
from apiserver.admission.priority import Priority
from apiserver.admission.quota import QuotaAdmission
from apiserver.admission.service_account import ServiceAccountAdmission
from apiserver.admission.service_claims import ServiceClaims
from apiserver.admission.storage import (DefaultStorageClass, PersistentVolumeClaimResize, StorageClasses,
                                         StorageObjectInUseProtection)
from apiserver.admission.webhooks import MutatingAdmissionWebhook, ValidatingAdmissionWebhook, WebhookCaller
from apiserver.allocation.service_allocation import ClaimingStorage, ServiceAllocator
from apiserver.certificates.admission import CertificateApproval
from apiserver.custom_resources import CustomResources
from apiserver.decoded_objects import DecodedObjects
from apiserver.informer import StorageCache
from apiserver.kinds import all_strategies
from apiserver.kinds.base import Obj, ResourceInfo
from apiserver.kinds.pods import binding_target, set_condition
from apiserver.kinds.serviceaccounts import token_request
from apiserver import token_request as token_request_rest
from apiserver.podsecurity.admission import PodSecurityAdmission
from apiserver.registry import Clock, DeleteOptions, DeleteResult, Registry, encode, generated_name, utc_now
from apiserver.storage.interface import KeyNotFound, RevisionMismatch, Storage
from shipmate.timeutil import rfc3339

log = logging.getLogger(__name__)

_T = TypeVar("_T")
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class API:
    def __init__(self, storage: Storage, cluster_cidr: str = "10.244.0.0/16", node_cidr_mask_size: int = 24,
                 clock: Clock = utc_now, service_cluster_ip_range: str = "10.96.0.0/12",
                 service_node_port_range: tuple[int, int] = (30000, 32767), allow_service_external_ips: bool = False):
        self.storage = storage
        self.clock = clock
        self.service_allocator = ServiceAllocator(service_cluster_ip_range, service_node_port_range)
        # Watch fan-out's decoded objects, bounded for the whole server (custom resources' registries too).
        self.decoded_objects = DecodedObjects()
        self.registries: dict[tuple[str, str], Registry] = {
            (s.info.group, s.info.plural): Registry(s, storage, clock, self.decoded_objects)
            for s in all_strategies(self.service_allocator)}
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
        self.pki = None                              # apiserver.pki_bootstrap.ServerPKI, set by `shipmate server`
        self.authorizer = None                       # UnionAuthorizer(Node, RBAC): auth.middleware.install
        self.authenticator = None                    # auth.authentication.Authenticator: auth.middleware.install
        self.token_issuer = None                     # auth.service_accounts.TokenIssuer, set by `shipmate server`
        self.extra_resources: list[ResourceInfo] = []  # kinds served by routes of their own (reviews): discovery
        self.resource_metrics: Any = None            # apiserver.resource_metrics.ResourceMetrics (metrics.k8s.io)
        # The served custom resources (it adds and removes their registries as CRDs come and go).
        self.custom_resources = CustomResources(self)
        self.registry("apiextensions.k8s.io", "customresourcedefinitions").strategy.count = \
            lambda: len(self.custom_resources.crds)  # type: ignore[attr-defined]
        # Plugins with settings (`shipmate server` sets them) or state other parts read.
        self.default_tolerations = DefaultTolerationSeconds()  # its seconds: --pod-eviction-timeout
        # Off unless enabled (`shipmate server` does): API-level tests create pods with no serviceaccount controller.
        self.service_account = ServiceAccountAdmission(self, enabled=False)
        self.pod_security = PodSecurityAdmission(self)
        self.quota = QuotaAdmission(self)            # the ResourceQuota controller recounts through it
        self.node_cidrs = NodePodCIDRs(self, cluster_cidr, node_cidr_mask_size)
        self.service_claims = ServiceClaims(self, self.service_allocator)
        self.storage_classes = StorageClasses(self)  # what the storage plugins read of StorageClasses
        self.webhook_caller = WebhookCaller(self)  # admission webhook calls, bounded per server
        # kube-apiserver's order (mutating before validating within each step, see admission/chain.py); the
        # last two allocate (upstream: Service REST storage, node-ipam controller) in the same write path.
        self.admission = AdmissionChain([
            NamespaceLifecycle(self), LimitRanger(self), self.service_account, NodeRestriction(self), self.pod_security,
            Priority(self), self.default_tolerations, DefaultStorageClass(self.storage_classes),
            StorageObjectInUseProtection(), PersistentVolumeClaimResize(self.storage_classes), CertificateApproval(self),
            DefaultIngressClass(self),
            MutatingAdmissionWebhook(self, self.webhook_caller), ValidatingAdmissionWebhook(self, self.webhook_caller),
            self.quota, self.node_cidrs, self.service_claims])

    def registry(self, group: str, plural: str) -> Registry:
        try:
            return self.registries[(group, plural)]
        except KeyError:
            raise errors.not_found(group, plural, "") from None

    def resources(self) -> list[ResourceInfo]:
        """What discovery and OpenAPI list: built-in kinds, routes of their own, Established custom resources."""
        custom = self.custom_resources
        return [r.info for (group, plural), r in self.registries.items() if not custom.owns(group, plural)] + \
            self.extra_resources + custom.discovery()

    def served_registry(self, group: str, version: str, plural: str) -> Registry | None:
        """The registry serving group/version/plural (a built-in kind, or a served version of a CRD)."""
        registry = self.registries.get((group, plural))
        if registry is not None and registry.info.version == version and \
                not self.custom_resources.owns(group, plural):
            return registry
        return self.custom_resources.lookup(group, version, plural)

    async def start(self) -> None:
        """Create the default namespaces and rebuild the allocators from stored Services and Nodes."""
        for name in DEFAULT_NAMESPACES:
            try:
                await self.namespaces.create("", {"metadata": {"name": name}})
                log.info("created default namespace namespace=%s", name)
            except errors.APIError as exc:
                if exc.reason != "AlreadyExists":
                    raise
        await self.service_claims.rebuild()
        await self.node_cidrs.rebuild()
        await self.custom_resources.refresh()

    async def follow_service_allocations(self) -> None:
        """Every server: keep the in-memory ClusterIP/NodePort view current with other servers' Services."""
        await self.service_claims.follow()

    # writes ----------------------------------------------------------------------------------
    async def _admitted(self, attributes: Attributes, write: Callable[[Admission], Awaitable[_T]],
                        stored: Callable[[_T], Obj | None]) -> _T:
        """One write through the admission chain: the steps held around it, the write retried while a step
        asks for it, then the steps told what was stored."""
        async with self.admission.begin(attributes) as admission:
            while True:
                try:
                    result = await write(admission)
                    break
                except Exception as error:  # noqa: BLE001 - a step decides; anything else is raised again
                    if not await admission.retry(error):
                        raise
            await admission.committed(stored(result))
        return result

    async def create(self, registry: Registry, namespace: str, body: Any, dry_run: bool = False) -> Obj:
        body = registry.decode_body(body)  # admission sees a well-typed object, as upstream's (decoded first)
        meta = body.get("metadata")
        if isinstance(meta, dict) and not meta.get("name") and meta.get("generateName"):
            # Named now, once: every step and every retry of the write sees the same name.
            meta["name"] = generated_name(meta["generateName"])
        name = str(meta.get("name") or "") if isinstance(meta, dict) else ""
        attributes = Attributes(CREATE, registry, namespace, name, dry_run=dry_run)
        return await self._admitted(attributes, lambda admission: registry.create(namespace, body, dry_run, admission),
                                    lambda obj: obj)

    async def update(self, registry: Registry, namespace: str, name: str, body: Any, subresource: str = "",
                     dry_run: bool = False) -> tuple[Obj, bool]:
        attributes = Attributes(UPDATE, registry, namespace, name, subresource, dry_run)
        target = registry.for_subresource(subresource)
        return await self._admitted(
            attributes, lambda admission: target.update(namespace, name, body, subresource, dry_run, admission),
            lambda result: result[0])

    async def patch(self, registry: Registry, namespace: str, name: str, patch_type: str, patch: Any,
                    subresource: str = "", dry_run: bool = False) -> Obj:
        attributes = Attributes(UPDATE, registry, namespace, name, subresource, dry_run)
        target = registry.for_subresource(subresource)
        return await self._admitted(attributes, lambda admission: target.patch(
            namespace, name, patch_type, patch, subresource, dry_run, admission), lambda obj: obj)

    async def delete(self, registry: Registry, namespace: str, name: str, options: DeleteOptions) -> DeleteResult:
        attributes = Attributes(DELETE, registry, namespace, name, dry_run=options.dry_run)

        async def delete(admission: Admission) -> DeleteResult:
            await admission.validate(None, None)
            return await registry.delete(namespace, name, options)
        return await self._admitted(attributes, delete, lambda result: result.object if result.removed else None)

    # binding ---------------------------------------------------------------------------------
    async def bind(self, namespace: str, name: str, binding: Any, dry_run: bool = False) -> Obj:
        """`pods/binding` (CREATE of the subresource, through the chain like upstream's)."""
        attributes = Attributes(CREATE, self.pods, namespace, name, "binding", dry_run)

        async def bind(admission: Admission) -> Obj:
            return await self._bind(namespace, name, binding, dry_run, admission)
        return await self._admitted(attributes, bind, lambda pod: pod)

    async def _bind(self, namespace: str, name: str, binding: Any, dry_run: bool, admission: Admission) -> Obj:
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

        await admission.validate(binding, None)
        # Binding writes spec.nodeName, which a regular update forbids: bypass the update strategy (as
        # upstream's BindingREST, which writes the pod through the store directly).
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

    # serviceaccounts/token ---------------------------------------------------------------------
    async def create_token(self, namespace: str, name: str, body: Any, dry_run: bool = False) -> Obj:
        """TokenRequest (CREATE of `serviceaccounts/token`, through the chain: NodeRestriction checks a node's)."""
        registry = self.registry("", "serviceaccounts")
        attributes = Attributes(CREATE, registry, namespace, name, "token", dry_run)

        async def issue(admission: Admission) -> Obj:
            request = await admission.admit(token_request(body, namespace, name), None)
            await admission.validate(request, None)
            return await token_request_rest.issue(self.registries, self.token_issuer, self.clock(), namespace, name,
                                                  request)
        return await self._admitted(attributes, issue, lambda _request: None)

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
