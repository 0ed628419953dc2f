"""Pure rules of volume binding, shared by the PV controller and the scheduler's VolumeBinding: which volume a
claim gets (upstream's findMatchingVolume), node affinity of volumes, storage per node for local-path volumes."""
from __future__ import annotations

from fractions import Fraction
from typing import Any, Iterable

from apiserver.kinds.persistentvolumeclaims import claim_class, storage_request
from apiserver.kinds.persistentvolumes import volume_class
from apiserver.kinds.storageclasses import binding_mode
from apiserver.scheduler.predicates import matches_node_affinity
from shipmate import local_path
from shipmate.quantity import QuantityError, parse_quantity
from shipmate.selectors import SelectorError, label_selector_from_dict

Obj = dict[str, Any]

ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_DYNAMICALLY_PROVISIONED = "pv.kubernetes.io/provisioned-by"
ANN_MIGRATED_PROVISIONED = "volume.kubernetes.io/provisioned-by"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"


def annotations(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def claim_key(claim: Obj) -> str:
    return f"{claim['metadata'].get('namespace', '')}/{claim['metadata']['name']}"


def claim_ref_key(ref: Obj) -> str:
    return f"{ref.get('namespace', '')}/{ref.get('name', '')}"


def capacity(volume: Obj) -> Fraction:
    value = ((volume.get("spec") or {}).get("capacity") or {}).get("storage")
    try:
        return parse_quantity(value).value if value is not None else Fraction(0)
    except (QuantityError, TypeError):
        return Fraction(0)


def is_bound_to_claim(volume: Obj, claim: Obj) -> bool:
    """IsVolumeBoundToClaim: the volume's claimRef names the claim (and its uid, when it has one)."""
    ref = (volume.get("spec") or {}).get("claimRef")
    if not isinstance(ref, dict):
        return False
    meta = claim["metadata"]
    if ref.get("name") != meta["name"] or ref.get("namespace") != meta.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def access_modes_fit(claim: Obj, volume: Obj) -> bool:
    """Every access mode the claim asks for is one of the volume's."""
    wanted = set((claim.get("spec") or {}).get("accessModes") or [])
    return wanted <= set((volume.get("spec") or {}).get("accessModes") or [])


def volume_mode_mismatch(claim: Obj, volume: Obj) -> bool:
    return ((claim.get("spec") or {}).get("volumeMode") or "Filesystem") != \
        ((volume.get("spec") or {}).get("volumeMode") or "Filesystem")


def node_affinity_matches(volume: Obj, labels: dict[str, str], node_name: str) -> bool:
    """CheckNodeAffinity: a volume without node affinity fits every node."""
    required = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required")
    if required is None:
        return True
    spec = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}}
    return matches_node_affinity(spec, labels, node_name)


def selector_matches(claim: Obj, volume: Obj) -> bool:
    selector = (claim.get("spec") or {}).get("selector")
    if not selector:
        return True
    try:
        return label_selector_from_dict(selector).matches((volume.get("metadata") or {}).get("labels") or {})
    except (SelectorError, ValueError):
        return False


def is_delay_binding(claim: Obj, classes: dict[str, Obj]) -> bool:
    """IsDelayBindingMode: the claim's class binds WaitForFirstConsumer."""
    name = claim_class(claim)
    return bool(name) and name in classes and binding_mode(classes[name]) == WAIT_FOR_FIRST_CONSUMER


def usable(volume: Obj) -> bool:
    """Volumes that may be bound: not being deleted, not waiting for their node to create them."""
    return not (volume.get("metadata") or {}).get("deletionTimestamp") and not local_path.awaiting_node(volume)


def find_matching_volume(claim: Obj, volumes: Iterable[Obj], delay_binding: bool,
                         node: tuple[dict[str, str], str] | None = None,
                         excluded: frozenset[str] = frozenset()) -> Obj | None:
    """findMatchingVolume: a volume pre-bound to the claim wins; else the smallest Available one with the
    claim's class, a matching selector, enough capacity and the access modes (and, given a node (labels,
    name), node affinity that fits it). With delayed binding and no node, only pre-bound volumes (the
    scheduler picks the rest). `excluded`: volume names assumed for other claims."""
    requested = storage_request(claim)
    wanted_class = claim_class(claim)
    smallest: Obj | None = None
    for volume in volumes:
        name = volume["metadata"]["name"]
        if name in excluded or not usable(volume):
            continue
        size = capacity(volume)
        if size < requested:
            continue
        if volume_mode_mismatch(claim, volume):
            continue
        affinity_ok = node is None or node_affinity_matches(volume, node[0], node[1])
        if is_bound_to_claim(volume, claim):
            return volume if affinity_ok else None
        if node is None and delay_binding:
            continue
        spec, status = volume.get("spec") or {}, volume.get("status") or {}
        if status.get("phase") != "Available" or spec.get("claimRef") is not None:
            continue
        if not selector_matches(claim, volume) or volume_class(volume) != wanted_class or not affinity_ok:
            continue
        if not access_modes_fit(claim, volume):
            continue
        if smallest is None or capacity(smallest) > size:
            smallest = volume
    return smallest


def local_path_used(volumes: Iterable[Obj], node_name: str) -> Fraction:
    """Storage the local-path volumes of a node take (every phase: a retained directory still uses disk)."""
    return sum((capacity(v) for v in volumes if local_path.is_local_path(v)
                and local_path.affinity_node(v) == node_name), Fraction(0))
