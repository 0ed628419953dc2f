"""NodeRestriction admission (upstream's plugin of that name): limits a node's writes to its own objects.

A node (system:node:<name>, group system:nodes) may modify only its own Node and its own Lease in
kube-node-lease, update the status of / delete / evict only pods bound to it, and create only mirror
pods bound to itself (owned by its Node, referring to no Secret, ConfigMap, ServiceAccount or PVC). It
runs after authorization, twice:
- `admit_request`, from the auth middleware, for what the URL names (the pod's current node comes from
  the node authorizer's pod index, confirmed by a storage read when the index does not say "yours");
- `admit_create`, from API.create, for what only the body names (the new pod, Node or Lease);
- `node_update_admission`, from API.update / API.patch of a Node, on the old and the new object: a
  node may not change its own taints (the node lifecycle controller owns them), podCIDR/podCIDRs (the
  server's allocator owns them: a node choosing its pod subnet could take over another node's pod
  traffic), ownerReferences, a non-nil configSource, or labels outside the kubelet's set. Nor may it
  create its Node with a podCIDR (stricter than upstream, whose node-ipam controller would not overwrite it).
Requests of other users, and the server's own control loops (no user), pass untouched."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from apiserver import errors
from apiserver.auth.authorizer import Attributes
from apiserver.auth.context import current_user
from apiserver.auth.node_graph import PodIndex, pod_references
from apiserver.auth.user import SYSTEM_NODES
from shipmate import local_path

if TYPE_CHECKING:
    from apiserver.admission.interface import AdmissionAPI
    from apiserver.registry import Registry

Obj = dict[str, Any]
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_RESTRICTION_LABEL_DOMAIN = "node-restriction.kubernetes.io"
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch", "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type"})
KUBELET_LABEL_DOMAINS = ("kubelet.kubernetes.io", "node.kubernetes.io")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_OPERATIONS = {"create": "CREATE", "update": "UPDATE", "patch": "UPDATE", "delete": "DELETE",
               "deletecollection": "DELETE"}


def _in_domain(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def forbidden_labels(keys: Any) -> list[str]:
    """Label keys a node may not set on its Node: node-restriction.kubernetes.io/*, and kubernetes.io /
    k8s.io ones outside the kubelet's own set."""
    forbidden = set()
    for key in keys:
        namespace = key.split("/", 1)[0] if "/" in key else ""
        if _in_domain(namespace, NODE_RESTRICTION_LABEL_DOMAIN):
            forbidden.add(key)
        kubernetes_label = _in_domain(namespace, "kubernetes.io") or _in_domain(namespace, "k8s.io")
        kubelet_label = key in KUBELET_LABELS or any(_in_domain(namespace, d) for d in KUBELET_LABEL_DOMAINS)
        if kubernetes_label and not kubelet_label:
            forbidden.add(key)
    return sorted(forbidden)


def _meta(obj: Any) -> Obj:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return meta if isinstance(meta, dict) else {}


def mirror_pod_problem(node_name: str, pod: Obj, node_uid: str | None) -> str | None:
    """Why a node may not create this pod (None: it may). `node_uid` is its Node's uid (None: no Node)."""
    meta, spec = _meta(pod), pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    if MIRROR_POD_ANNOTATION not in (meta.get("annotations") or {}):
        return f'pod does not have "{MIRROR_POD_ANNOTATION}" annotation, node "{node_name}" can only create mirror pods'
    if spec.get("nodeName") != node_name:
        return f'node "{node_name}" can only create pods with spec.nodeName set to itself'
    owners = meta.get("ownerReferences") or []
    if len(owners) > 1:
        return f'node "{node_name}" can only create pods with a single owner reference set to itself'
    if not owners:
        return f'node "{node_name}" can only create pods with an owner reference set to itself'
    owner = owners[0] if isinstance(owners[0], dict) else {}
    if owner.get("apiVersion") != "v1" or owner.get("kind") != "Node" or owner.get("name") != node_name:
        return f'node "{node_name}" can only create pods with an owner reference set to itself'
    if owner.get("controller") is not True:
        return f'node "{node_name}" can only create pods with a controller owner reference set to itself'
    if owner.get("blockOwnerDeletion"):
        return f'node "{node_name}" must not set blockOwnerDeletion on an owner reference'
    if node_uid is not None and owner.get("uid") != node_uid:
        return f"node {node_name} UID mismatch: expected {owner.get('uid')} got {node_uid}"
    if spec.get("serviceAccountName"):
        return f'node "{node_name}" can not create pods that reference a service account'
    references = pod_references(pod)
    for kind in ("secrets", "configmaps"):
        if any(k == kind for k, _ in references):
            return f'node "{node_name}" can not create pods that reference {kind}'
    for volume in spec.get("volumes") or []:
        if isinstance(volume, dict) and volume.get("persistentVolumeClaim"):
            return f'node "{node_name}" can not create pods that reference persistentvolumeclaims'
    return None


def node_create_problem(node_name: str, node: Obj) -> str | None:
    name = _meta(node).get("name", "")
    if name != node_name:
        return f'node "{node_name}" is not allowed to modify node "{name}"'
    spec = node.get("spec") if isinstance(node.get("spec"), dict) else {}
    if spec.get("configSource") is not None:
        return f'node "{node_name}" is not allowed to create pods with a non-nil configSource'
    if spec.get("podCIDR") or spec.get("podCIDRs"):
        return f'node "{node_name}" is not allowed to set podCIDR or podCIDRs: the server allocates them'
    labels = forbidden_labels((_meta(node).get("labels") or {}).keys())
    if labels:
        return f'node "{node_name}" is not allowed to set the following labels: {", ".join(labels)}'
    return None


def modified_labels(new: Any, old: Any) -> set[str]:
    """Label keys added, removed or given another value."""
    new, old = new if isinstance(new, dict) else {}, old if isinstance(old, dict) else {}
    return {key for key in new.keys() | old.keys() if key not in new or key not in old or new[key] != old[key]}


def node_update_problem(node_name: str, new: Obj, old: Obj) -> str | None:
    """Why a node may not update its own Node from `old` to `new` (None: it may). Absent and empty
    lists/maps are the same, as upstream's semantic comparison has them."""
    new_spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
    old_spec = old.get("spec") if isinstance(old.get("spec"), dict) else {}
    config_source = new_spec.get("configSource")
    if config_source is not None and config_source != old_spec.get("configSource"):
        return f'node "{node_name}" is not allowed to update configSource to a new non-nil configSource'
    if (new_spec.get("taints") or []) != (old_spec.get("taints") or []):
        return f'node "{node_name}" is not allowed to modify taints'
    if (new_spec.get("podCIDR") or "") != (old_spec.get("podCIDR") or "") or \
            (new_spec.get("podCIDRs") or []) != (old_spec.get("podCIDRs") or []):
        return f'node "{node_name}" is not allowed to modify podCIDR or podCIDRs'
    if (_meta(new).get("ownerReferences") or []) != (_meta(old).get("ownerReferences") or []):
        return f'node "{node_name}" is not allowed to modify ownerReferences'
    labels = forbidden_labels(modified_labels(_meta(new).get("labels"), _meta(old).get("labels")))
    if labels:
        return f'is not allowed to modify labels: {", ".join(labels)}'
    return None


# What a node may do to the status of one of its local-path volumes (shipmate/local_path.py): report the
# directory made (Pending → Available) or not (Pending, ProvisioningFailed), removed (reason DirectoryRemoved,
# phase kept) or not (Failed, VolumeFailedDelete).
_VOLUME_TRANSITIONS = {("Pending", "Available"), ("Pending", "Pending"), ("Pending", "Failed"),
                       ("Released", "Released"), ("Released", "Failed"), ("Failed", "Failed"),
                       ("Available", "Available"), ("Available", "Failed")}


def volume_status_problem(node_name: str, new: Obj, old: Obj) -> str | None:
    """Why a node may not write this status of PersistentVolume `old` (None: it may): only the local-path
    volumes whose node affinity and label name it, and only the agent's own transitions."""
    name = _meta(old).get("name", "")
    if not local_path.is_local_path(old) or local_path.affinity_node(old) != node_name or \
            (_meta(old).get("labels") or {}).get(local_path.NODE_LABEL) != node_name:
        return f'node "{node_name}" can only update the status of local-path persistentvolumes on itself'
    before = (old.get("status") or {}).get("phase") or "Pending"
    after = (new.get("status") or {}).get("phase") or "Pending"
    if (before, after) not in _VOLUME_TRANSITIONS:
        return f'node "{node_name}" may not move persistentvolume "{name}" from phase {before} to {after}'
    return None


def node_update_admission(name: str) -> Callable[[Obj, Obj], None] | None:
    """The check API.update / API.patch of Node `name` runs on (new, old) before storing, when the
    current user is a node (None: nobody to restrict). Another node's name was refused by
    admit_request already; a user without a node name is refused here."""
    user = current_user()
    if user is None or SYSTEM_NODES not in user.groups:
        return None
    node_name = user.node_name

    def admit(new: Obj, old: Obj) -> None:
        if node_name is None:
            raise _forbidden("", "nodes", name, f'could not determine node from user "{user.name}"')
        problem = node_update_problem(node_name, new, old)
        if problem:
            raise _forbidden("", "nodes", name, problem)
    return admit


def lease_problem(node_name: str, namespace: str, name: str) -> str | None:
    if namespace != NODE_LEASE_NAMESPACE:
        return f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
    if name != node_name:
        return "can only access node lease with the same name as the requesting node"
    return None


def _forbidden(group: str, resource: str, name: str, why: str) -> errors.APIError:
    return errors.forbidden_error(group, resource, name or "Unknown", why)


async def admit_request(attributes: Attributes, pods: PodIndex, api: "AdmissionAPI") -> None:
    """Checks a node's write against what the URL names (403/404 APIError when refused)."""
    user = attributes.user
    if SYSTEM_NODES not in user.groups or attributes.verb not in WRITE_VERBS or not attributes.resource_request:
        return
    group, resource, name, verb = attributes.api_group, attributes.resource, attributes.name, attributes.verb
    node_name = user.node_name
    if node_name is None:
        raise _forbidden(group, resource, name, f'could not determine node from user "{user.name}"')
    if group == "" and resource == "pods":
        await _admit_pod_request(node_name, attributes, pods, api)
    elif group == "" and resource == "nodes" and verb != "create":
        if name != node_name:
            raise _forbidden(group, resource, name, f'node "{node_name}" is not allowed to modify node "{name}"')
    elif group == "coordination.k8s.io" and resource == "leases" and verb != "create":
        problem = lease_problem(node_name, attributes.namespace, name)
        if problem:
            raise _forbidden(group, resource, name, problem)


async def _admit_pod_request(node_name: str, attributes: Attributes, pods: PodIndex, api: "AdmissionAPI") -> None:
    name, verb, subresource = attributes.name, attributes.verb, attributes.subresource
    operation = _OPERATIONS[verb]
    if subresource == "":
        if verb == "create":
            return  # the body is checked by admit_create
        if operation != "DELETE":
            raise _forbidden("", "pods", name, f'unexpected operation "{operation}", node "{node_name}" can only '
                                               "create and delete mirror pods")
        why = f'node "{node_name}" can only delete pods with spec.nodeName set to itself'
        shown = "Unknown"  # upstream names the object of the request, and a delete has none
    elif subresource == "status":
        if operation != "UPDATE":
            raise _forbidden("", "pods", name, f'unexpected operation "{operation}"')
        why = f'node "{node_name}" can only update pod status for pods with spec.nodeName set to itself'
        shown = name
    elif subresource == "eviction":
        if operation != "CREATE":
            raise _forbidden("", "pods", name, f"unexpected operation {operation}")
        why = f"node {node_name} can only evict pods with spec.nodeName set to itself"
        shown = name
    else:
        raise _forbidden("", "pods", name, f"unexpected pod subresource \"{subresource}\", only 'status' and "
                                           "'eviction' are allowed")
    if not name:
        raise _forbidden("", "pods", name, why)
    if pods.bound_node(attributes.namespace, name) == node_name:
        return
    # Not ours in the index: it may lag a binding that just happened, so storage decides.
    pod = await api.pods.get(attributes.namespace, name)  # 404 when there is no such pod, as upstream
    if (pod.get("spec") or {}).get("nodeName") != node_name:
        raise _forbidden("", "pods", shown, why)


async def admit_create(api: "AdmissionAPI", registry: "Registry", namespace: str, body: Any) -> None:
    """Checks what a node creates (from API.create): nothing to do for anyone else."""
    user = current_user()
    if user is None or SYSTEM_NODES not in user.groups or not isinstance(body, dict):
        return
    info = registry.info
    meta = _meta(body)
    shown = meta.get("name") or meta.get("generateName") or ""
    node_name = user.node_name
    if node_name is None:
        raise _forbidden(info.group, info.plural, shown, f'could not determine node from user "{user.name}"')
    problem = None
    if info.group == "" and info.plural == "pods":
        problem = mirror_pod_problem(node_name, body, None)
        if problem is None:
            node = await api.nodes.get("", node_name)  # 404 when the node is not registered, as upstream
            problem = mirror_pod_problem(node_name, body, node["metadata"].get("uid"))
    elif info.group == "" and info.plural == "nodes":
        problem = node_create_problem(node_name, body)
    elif info.group == "coordination.k8s.io" and info.plural == "leases":
        problem = lease_problem(node_name, namespace, meta.get("name", ""))
    if problem:
        raise _forbidden(info.group, info.plural, shown, problem)
