"""The Node authorizer: what a kubelet (user system:node:<name> in group system:nodes) may do.

As upstream's node authorizer, it only ever allows or has no opinion (RBAC may still grant more),
and it checks what the request's attributes tell; the object-dependent limits (which Node, which
pod's status, which mirror pod) are NodeRestriction's (node_restriction.py), run after it as admission.

- read nodes, pods, services, endpoints, endpointslices, namespaces, networkpolicies;
- get/list/watch a Secret or ConfigMap only by name, and only when a pod bound to the node refers to
  it (the PodIndex of node_graph.py, from a watch: no storage read per request);
- create/update/patch Nodes and nodes/status; get/create/update/patch/delete Leases in kube-node-lease
  named after the node;
- create/delete pods, update/patch pods/status, create pods/eviction;
- create/update/patch events; create/get/list/watch CertificateSigningRequests; create TokenReviews
  and SubjectAccessReviews (a kubelet's delegated authentication/authorization);
- create `serviceaccounts/<name>/token` only for an account a pod bound to the node runs as (NodeRestriction
  then requires the token to be bound to such a pod: admission/node_restriction.py);
- get a PersistentVolumeClaim a pod bound to the node uses, and the PersistentVolume such a claim is bound to
  (upstream's pod → pvc → pv graph edges);
- list/watch PersistentVolumes only with the label selector `storage.shipmate.io/node=<itself>` (the local-path
  volumes of its node: shipmate/local_path.py), and update/patch `persistentvolumes/status` (NodeRestriction
  limits it to those volumes and to the agent's transitions)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from apiserver.auth.authorizer import Attributes, Decision, Verdict
from apiserver.auth.node_graph import PodIndex
from apiserver.auth.user import SYSTEM_NODES
from shipmate import local_path

NODE_LEASE_NAMESPACE = "kube-node-lease"
# How long a Secret/ConfigMap read waits for the pod index when the referring pod is not in it yet (a pod
# bound a moment ago: the kubelet saw it on its own watch, ours may be a few events behind).
INDEX_GRACE_SECONDS = 1.0
INDEX_SYNC_TIMEOUT = 10.0

READ = frozenset({"get", "list", "watch"})
ALLOW = Verdict(Decision.ALLOW)
NO_OPINION = Verdict(Decision.NO_OPINION)


@dataclass(frozen=True)
class Rule:
    group: str
    resource: str
    subresources: frozenset[str]
    verbs: frozenset[str]

    def allows(self, attributes: Attributes) -> bool:
        return (attributes.api_group == self.group and attributes.resource == self.resource
                and attributes.subresource in self.subresources and attributes.verb in self.verbs)


def _rule(group: str, resource: str, verbs: frozenset[str] | set[str],
          subresources: frozenset[str] | set[str] = frozenset({""})) -> Rule:
    return Rule(group, resource, frozenset(subresources), frozenset(verbs))


# Not subdivided per object: NodeRestriction limits the writes to the node's own objects.
NODE_RULES = (
    _rule("", "nodes", READ | {"create", "update", "patch"}),
    _rule("", "nodes", READ | {"update", "patch"}, {"status"}),
    _rule("", "pods", READ | {"create", "delete"}),
    _rule("", "pods", READ | {"update", "patch"}, {"status"}),
    _rule("", "pods", {"create"}, {"eviction"}),
    _rule("", "services", READ),
    _rule("", "endpoints", READ),
    _rule("discovery.k8s.io", "endpointslices", READ),
    _rule("", "namespaces", READ),
    # NetworkPolicy enforcement runs in the agent (agent/netpol), as k3s's embedded controller does.
    _rule("networking.k8s.io", "networkpolicies", READ),
    _rule("", "events", {"create", "update", "patch"}),
    _rule("events.k8s.io", "events", {"create", "update", "patch"}),
    _rule("certificates.k8s.io", "certificatesigningrequests", READ | {"create"}),
    _rule("authentication.k8s.io", "tokenreviews", {"create"}),
    # The node server authorizes each request on :10250 through a SubjectAccessReview (kubelet's
    # --authorization-mode=Webhook, agent/node_server/authz.py); upstream grants kubelets this through
    # the system:node ClusterRole.
    _rule("authorization.k8s.io", "subjectaccessreviews", {"create"}),
)
LEASE_VERBS = frozenset({"get", "create", "update", "patch", "delete"})
REFERENCED_KINDS = frozenset({"secrets", "configmaps", "persistentvolumeclaims"})


def lease_verdict(node_name: str, attributes: Attributes) -> Verdict:
    if attributes.verb not in LEASE_VERBS or attributes.subresource:
        return Verdict(Decision.NO_OPINION, "can only get, create, update, patch, or delete a node lease")
    if attributes.namespace != NODE_LEASE_NAMESPACE:
        return Verdict(Decision.NO_OPINION, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
    # On create the name is in the body: NodeRestriction checks it.
    if attributes.verb != "create" and attributes.name != node_name:
        return Verdict(Decision.NO_OPINION, "can only access node lease with the same name as the requesting node")
    return ALLOW


def reference_precheck(attributes: Attributes) -> Verdict | None:
    """The answer for a Secret/ConfigMap request that the graph need not be asked about, else None."""
    if attributes.verb not in READ:
        return Verdict(Decision.NO_OPINION, "can only read resources of this type")
    if attributes.subresource:
        return Verdict(Decision.NO_OPINION, "cannot read subresource")
    if not attributes.namespace:
        return Verdict(Decision.NO_OPINION, "can only read namespaced object of this type")
    if not attributes.name:
        return Verdict(Decision.NO_OPINION, "No Object name found")
    return None


def no_relationship(node_name: str) -> Verdict:
    return Verdict(Decision.NO_OPINION, f"no relationship found between node '{node_name}' and this object")


class NodeAuthorizer:
    def __init__(self, pod_index: PodIndex, grace: float = INDEX_GRACE_SECONDS, claims: Any = None):
        self.pod_index = pod_index
        self.grace = grace
        self.claims = claims    # a StorageCache of PersistentVolumeClaims (their volumeName)

    async def authorize(self, attributes: Attributes) -> Verdict:
        user = attributes.user
        if SYSTEM_NODES not in user.groups:
            return NO_OPINION
        node_name = user.node_name
        if node_name is None:
            return Verdict(Decision.NO_OPINION, f'unknown node for user "{user.name}"')
        if not attributes.resource_request:
            return NO_OPINION
        if attributes.api_group == "" and attributes.resource in REFERENCED_KINDS:
            return await self._referenced(node_name, attributes)
        if attributes.api_group == "" and attributes.resource == "serviceaccounts":
            return await self._create_token(node_name, attributes)
        if attributes.api_group == "coordination.k8s.io" and attributes.resource == "leases":
            return lease_verdict(node_name, attributes)
        if attributes.api_group == "" and attributes.resource == "persistentvolumes":
            return await self._volume(node_name, attributes)
        if any(rule.allows(attributes) for rule in NODE_RULES):
            return ALLOW
        return NO_OPINION

    async def _create_token(self, node_name: str, attributes: Attributes) -> Verdict:
        """Upstream's authorizeCreateToken."""
        if attributes.verb != "create" or not attributes.name:
            return Verdict(Decision.NO_OPINION, "can only create tokens for individual service accounts")
        if attributes.subresource != "token":
            return Verdict(Decision.NO_OPINION, "can only create token subresource of serviceaccount")
        return await self._related(node_name, attributes)

    async def _volume(self, node_name: str, attributes: Attributes) -> Verdict:
        """A node's local-path volumes by label; one volume by name through its pods' claims; the status of
        volumes (NodeRestriction decides which)."""
        if attributes.subresource == "status" and attributes.verb in ("update", "patch") and attributes.name:
            return ALLOW
        if attributes.subresource:
            return Verdict(Decision.NO_OPINION, "cannot read subresource")
        if attributes.verb in ("list", "watch") and not attributes.name:
            if attributes.label_selector.replace(" ", "") == f"{local_path.NODE_LABEL}={node_name}":
                return ALLOW
            return Verdict(Decision.NO_OPINION, "can only list or watch persistentvolumes with the label selector "
                                                f"{local_path.NODE_LABEL}={node_name}")
        if attributes.verb != "get" or not attributes.name:
            return Verdict(Decision.NO_OPINION, "can only get individual persistentvolumes")
        index = self.pod_index
        if self.claims is None or (not index.synced.is_set() and not await index.wait_synced(INDEX_SYNC_TIMEOUT)):
            return Verdict(Decision.NO_OPINION, "the node authorizer's pod index is not synced yet")
        for namespace, kind, name in list(index.graph.references.get(node_name, ())):
            if kind != "persistentvolumeclaims":
                continue
            claim = await self.claims.get(namespace, name)
            if claim is not None and (claim.get("spec") or {}).get("volumeName") == attributes.name:
                return ALLOW
        return no_relationship(node_name)

    async def _referenced(self, node_name: str, attributes: Attributes) -> Verdict:
        verdict = reference_precheck(attributes)
        if verdict is not None:
            return verdict
        return await self._related(node_name, attributes)

    async def _related(self, node_name: str, attributes: Attributes) -> Verdict:
        """Allowed when a pod bound to the node refers to the object the request names."""
        index = self.pod_index
        if not index.synced.is_set() and not await index.wait_synced(INDEX_SYNC_TIMEOUT):
            return Verdict(Decision.NO_OPINION, "the node authorizer's pod index is not synced yet")
        args = (node_name, attributes.namespace, attributes.resource, attributes.name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        while not index.graph.refers_to(*args):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return no_relationship(node_name)
            await index.wait_for_change(remaining)
        return ALLOW
