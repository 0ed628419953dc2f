"""The built-in `shipmate.io/local-path` provisioner: what the server (which creates and deletes the
PersistentVolume objects) and the agents (which create and remove the directories, each on its own node)
agree on. Pure.

The exchange, all through the API:
1. A claim of a local-path class is bound where its first pod lands: the scheduler annotates it with
   `volume.kubernetes.io/selected-node`; the server's provisioner creates PersistentVolume `pvc-<claim uid>`:
   hostPath `<dir>/pvc-<uid>_<namespace>_<claim>` (type DirectoryOrCreate), where `<dir>` is what that node's
   agent publishes in its Node annotation `storage.shipmate.io/local-path-dir` (`--local-path-dir`), node
   affinity `kubernetes.io/hostname In [<node>]`, the label `storage.shipmate.io/node: <node>` (what the node
   lists and watches its volumes by), status phase `Pending`.
2. The node's agent sees the Pending volume, creates the directory (only directly below its own directory,
   never through a symlink) and reports through the volume's status: phase `Available` (then the PV
   controller binds the claim), or phase `Pending` with reason `ProvisioningFailed` and a message.
3. Once released with policy Delete (or deleted while unbound), the agent removes the directory and reports
   reason `DirectoryRemoved` (phase kept), or phase `Failed` with reason `VolumeFailedDelete`; then the server
   deletes the PersistentVolume object (finalizer `external-provisioner.volume.kubernetes.io/finalizer`).
"""
from __future__ import annotations

import posixpath
from typing import Any

from shipmate.node_selectors import node_selector_matches

Obj = dict[str, Any]

PROVISIONER = "shipmate.io/local-path"
CLASS_NAME = "local-path"
NODE_LABEL = "storage.shipmate.io/node"                       # on the PersistentVolumes it provisions
DIR_ANNOTATION = "storage.shipmate.io/local-path-dir"         # on each Node, set by its agent
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
CLEANUP_FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"
HOSTNAME_LABEL = "kubernetes.io/hostname"
REASON_PROVISIONING_FAILED = "ProvisioningFailed"
REASON_REMOVED = "DirectoryRemoved"
REASON_REMOVE_FAILED = "VolumeFailedDelete"
DEFAULT_DIR_NAME = "storage"                                  # beside the agent's root dir by default


def is_local_path(volume: Obj) -> bool:
    annotations = (volume.get("metadata") or {}).get("annotations") or {}
    return annotations.get(PROVISIONED_BY) == PROVISIONER


def directory_name(volume_name: str, namespace: str, claim: str) -> str:
    """One path component (names and namespaces are DNS names: no '/' in them), as k3s names its folders."""
    return f"{volume_name}_{namespace}_{claim}"


def volume_path(volume: Obj) -> str:
    spec = volume.get("spec") or {}
    for source in ("hostPath", "local"):
        if isinstance(spec.get(source), dict):
            return str(spec[source].get("path") or "")
    return ""


def affinity_node(volume: Obj) -> str | None:
    """The one node a volume's affinity names (`kubernetes.io/hostname In [<node>]` or `metadata.name In
    [<node>]`, one term, one requirement, one value); None for anything else."""
    required = (((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {})
    terms = required.get("nodeSelectorTerms") or []
    if len(terms) != 1 or not isinstance(terms[0], dict):
        return None
    expressions, fields = terms[0].get("matchExpressions") or [], terms[0].get("matchFields") or []
    requirements = [(r, HOSTNAME_LABEL) for r in expressions] + [(r, "metadata.name") for r in fields]
    if len(requirements) != 1:
        return None
    requirement, key = requirements[0]
    values = requirement.get("values") or []
    if requirement.get("key") != key or requirement.get("operator") != "In" or len(values) != 1:
        return None
    return str(values[0])


def awaiting_node(volume: Obj) -> bool:
    """A local-path volume whose directory its node has not created yet (not usable, not bindable)."""
    return is_local_path(volume) and (volume.get("status") or {}).get("phase", "Pending") == "Pending" and \
        not (volume.get("metadata") or {}).get("deletionTimestamp")


def wants_removal(volume: Obj) -> bool:
    """Whether the node should remove the volume's directory: released with policy Delete, or deleted while
    no claim is bound to it; and not reported removed yet."""
    spec, status, meta = volume.get("spec") or {}, volume.get("status") or {}, volume.get("metadata") or {}
    if not is_local_path(volume) or status.get("reason") == REASON_REMOVED:
        return False
    if spec.get("persistentVolumeReclaimPolicy") != "Delete":
        return False
    phase = status.get("phase")
    return phase in ("Released", "Failed") or (bool(meta.get("deletionTimestamp")) and phase != "Bound")


def new_volume(claim: Obj, storage_class: Obj, node: str, base_dir: str) -> Obj:
    """The PersistentVolume the provisioner creates for `claim` on `node` (under the node's `base_dir`)."""
    meta, spec = claim["metadata"], claim.get("spec") or {}
    name = f"pvc-{meta['uid']}"
    policy = storage_class.get("reclaimPolicy") or "Delete"
    volume: Obj = {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {NODE_LABEL: node},
                     "annotations": {PROVISIONED_BY: PROVISIONER},
                     "finalizers": [CLEANUP_FINALIZER] if policy == "Delete" else []},
        "spec": {
            "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage")},
            "accessModes": list(spec.get("accessModes") or []),
            "persistentVolumeReclaimPolicy": policy,
            "storageClassName": storage_class["metadata"]["name"],
            "volumeMode": "Filesystem",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                         "name": meta["name"], "uid": meta["uid"]},
            "hostPath": {"path": posixpath.join(base_dir, directory_name(name, meta["namespace"], meta["name"])),
                         "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}]}]}},
        },
    }
    if storage_class.get("mountOptions"):
        volume["spec"]["mountOptions"] = list(storage_class["mountOptions"])
    return volume


def provision_problem(claim: Obj) -> str | None:
    """Why this provisioner cannot make a volume for the claim (None: it can), in k3s's words."""
    spec = claim.get("spec") or {}
    if spec.get("selector"):
        return "claim.Spec.Selector is not supported"
    for mode in spec.get("accessModes") or []:
        if mode not in ("ReadWriteOnce", "ReadWriteOncePod"):
            return "NodePath only supports ReadWriteOnce and ReadWriteOncePod access modes"
    if spec.get("volumeMode") == "Block":
        return "Block volume mode is not supported"
    return None


def directory_problem(path: str, base_dir: str, volume_name: str) -> str | None:
    """Why an agent whose local-path directory is `base_dir` must not create or remove `path` for the
    volume (None: it may): the path must be exactly one component below `base_dir`, that component must
    start with the volume's name followed by `_`, and hold no `..`. (Symlinks are refused when the
    directory is opened: agent/volumes/local_path.py.)"""
    if not path or not posixpath.isabs(path):
        return f"path {path!r} is not absolute"
    if ".." in path.split("/"):
        return f"path {path!r} contains '..'"
    base = posixpath.normpath(base_dir)
    parent, leaf = posixpath.split(posixpath.normpath(path))
    if parent != base:
        return f"path {path!r} is not directly under the local-path directory {base!r}"
    if not leaf.startswith(f"{volume_name}_") or leaf in (".", ".."):
        return f"path {path!r} is not named after volume {volume_name!r}"
    return None


def node_affinity_matches(volume: Obj, labels: dict[str, str], node_name: str) -> bool:
    """Whether the volume's required node affinity selects the node (no affinity: every node). Terms are
    ORed, their requirements ANDed; an empty term selects nothing (upstream's NodeSelector)."""
    required = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required")
    if required is None:
        return True
    return node_selector_matches(required, labels, node_name)
