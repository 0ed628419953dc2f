"""core/v1 PersistentVolume: defaulting, validation with upstream's messages, phases in `/status` (the
PV controller writes them; the agent of a local-path volume's node reports its directory there), kubectl's
columns. Cluster-scoped: only cluster administrators (and the server's provisioner) create them."""
from __future__ import annotations

import datetime
import posixpath
from dataclasses import dataclass
from typing import Any

from apiserver.errors import FieldError, forbidden, invalid, not_supported, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy, canonicalize_quantities
from apiserver.kinds.persistentvolumeclaims import (VOLUME_MODES, access_modes_text, validate_access_modes,
                                                     validate_storage_size)
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age
from apiserver.validation import dns1123_subdomain, validate_meta_update
from shipmate.timeutil import rfc3339

PV_INFO = ResourceInfo("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", False,
                       short_names=("pv",), subresources=("status",))
RECLAIM_POLICIES = ["Delete", "Recycle", "Retain"]
PHASES = ["Available", "Bound", "Failed", "Pending", "Released"]
HOST_PATH_TYPES = ["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate",
                   "Socket"]
NODE_SELECTOR_OPERATORS = ["DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn"]
STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
# Every field of PersistentVolumeSpec that is not a volume source (the rest is PersistentVolumeSource).
SPEC_FIELDS = frozenset({"capacity", "accessModes", "claimRef", "persistentVolumeReclaimPolicy", "storageClassName",
                         "mountOptions", "volumeMode", "nodeAffinity", "volumeAttributesClassName"})
# Volume sources that pods may mount from a PersistentVolume (upstream's list); the agent mounts hostPath
# and local ones.
VOLUME_SOURCES = frozenset({
    "gcePersistentDisk", "awsElasticBlockStore", "hostPath", "glusterfs", "nfs", "rbd", "iscsi", "cinder", "cephfs",
    "fc", "flocker", "flexVolume", "azureFile", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk",
    "portworxVolume", "scaleIO", "local", "storageos", "csi"})


def volume_class(volume: Obj) -> str:
    """GetPersistentVolumeClass: the beta annotation, else spec.storageClassName."""
    annotations = (volume.get("metadata") or {}).get("annotations") or {}
    if STORAGE_CLASS_ANNOTATION in annotations:
        return annotations[STORAGE_CLASS_ANNOTATION]
    return (volume.get("spec") or {}).get("storageClassName") or ""


def volume_sources(spec: Obj) -> list[str]:
    return [key for key in spec if key not in SPEC_FIELDS and spec[key] is not None]


def default_volume(volume: Any) -> None:
    """SetDefaults_PersistentVolume: reclaim policy Retain, volumeMode Filesystem, hostPath type ""."""
    if not isinstance(volume, dict):
        return
    spec = volume.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
        canonicalize_quantities(spec.get("capacity"))
        host_path = spec.get("hostPath")
        if isinstance(host_path, dict) and host_path.get("type") is None:
            host_path["type"] = ""
    status = volume.setdefault("status", {})
    if isinstance(status, dict) and not status.get("phase"):
        status["phase"] = "Pending"


def validate_node_selector_term(term: Any, path: str) -> list[FieldError]:
    if not isinstance(term, dict):
        return [required(path, "")]
    errors: list[FieldError] = []
    for index, requirement in enumerate(term.get("matchExpressions") or []):
        where = f"{path}.matchExpressions[{index}]"
        if not isinstance(requirement, dict):
            errors.append(required(where, ""))
            continue
        key, operator, values = requirement.get("key", ""), requirement.get("operator", ""), \
            requirement.get("values") or []
        if not key:
            errors.append(required(f"{where}.key", ""))
        if operator in ("In", "NotIn") and not values:
            errors.append(required(f"{where}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist") and values:
            errors.append(forbidden(f"{where}.values", "may not be specified when `operator` is 'Exists' or "
                                                       "'DoesNotExist'"))
        elif operator in ("Gt", "Lt") and len(values) != 1:
            errors.append(required(f"{where}.values", "must be specified single value when `operator` is 'Lt' or "
                                                      "'Gt'"))
        elif operator not in NODE_SELECTOR_OPERATORS:
            errors.append(not_supported(f"{where}.operator", operator, NODE_SELECTOR_OPERATORS))
    for index, requirement in enumerate(term.get("matchFields") or []):
        where = f"{path}.matchFields[{index}]"
        if not isinstance(requirement, dict) or requirement.get("key") != "metadata.name":
            errors.append(invalid(f"{where}.key", (requirement or {}).get("key", ""), "not a valid field selector "
                                                                                       "key"))
    return errors


def _validate_node_affinity(affinity: Any, path: str) -> list[FieldError]:
    if not isinstance(affinity, dict):
        return [invalid(path, affinity, "must be an object")]
    required_selector = affinity.get("required")
    if required_selector is None:
        return [required(f"{path}.required", "must have at least one node selector term")]
    terms = required_selector.get("nodeSelectorTerms") if isinstance(required_selector, dict) else None
    if not terms:
        return [required(f"{path}.required.nodeSelectorTerms", "must have at least one node selector term")]
    errors: list[FieldError] = []
    for index, term in enumerate(terms):
        errors += validate_node_selector_term(term, f"{path}.required.nodeSelectorTerms[{index}]")
    return errors


def _validate_local_path(path_value: Any, where: str) -> list[FieldError]:
    if not path_value:
        return [required(where, "")]
    errors = []
    if not posixpath.isabs(path_value):
        errors.append(invalid(where, path_value, "must be an absolute path"))
    if ".." in str(path_value).split("/"):
        errors.append(invalid(where, path_value, "must not contain '..'"))
    return errors


def validate_volume_spec(spec: Any, path: str = "spec") -> list[FieldError]:
    """ValidatePersistentVolumeSpec, for what the server checks: access modes, capacity, reclaim policy, class,
    volume mode, exactly one volume source (hostPath and local in detail), node affinity."""
    if not isinstance(spec, dict):
        return [required(path, "")]
    errors = validate_access_modes(spec.get("accessModes") or [], f"{path}.accessModes")
    capacity = spec.get("capacity")
    if not capacity:
        errors.append(required(f"{path}.capacity", ""))
    elif not isinstance(capacity, dict) or "storage" not in capacity or len(capacity) > 1:
        errors.append(not_supported(f"{path}.capacity", capacity, ["storage"]))
    else:
        errors += validate_storage_size(capacity["storage"], f"{path}.capacity[storage]")
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy and policy not in RECLAIM_POLICIES:
        errors.append(not_supported(f"{path}.persistentVolumeReclaimPolicy", policy, RECLAIM_POLICIES))
    class_name = spec.get("storageClassName")
    if class_name:
        for message in dns1123_subdomain(class_name):
            errors.append(invalid(f"{path}.storageClassName", class_name, message))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        errors.append(not_supported(f"{path}.volumeMode", mode, VOLUME_MODES))
    claim_ref = spec.get("claimRef")
    if claim_ref is not None:
        if not isinstance(claim_ref, dict) or not claim_ref.get("name"):
            errors.append(required(f"{path}.claimRef.name", ""))
        elif not claim_ref.get("namespace"):
            errors.append(required(f"{path}.claimRef.namespace", ""))
    sources = volume_sources(spec)
    if not sources:
        errors.append(required(path, "must specify a volume type"))
    for extra in sources[1:]:
        errors.append(forbidden(f"{path}.{extra}", "may not specify more than 1 volume type"))
    unknown = [s for s in sources if s not in VOLUME_SOURCES]
    for source in unknown:
        errors.append(forbidden(f"{path}.{source}", "not a PersistentVolume source"))
    host_path = spec.get("hostPath")
    if isinstance(host_path, dict):
        errors += _validate_local_path(host_path.get("path"), f"{path}.hostPath.path")
        kind = host_path.get("type") or ""
        if kind not in HOST_PATH_TYPES:
            errors.append(not_supported(f"{path}.hostPath.type", kind, HOST_PATH_TYPES))
    local = spec.get("local")
    if isinstance(local, dict):
        errors += _validate_local_path(local.get("path"), f"{path}.local.path")
        if spec.get("nodeAffinity") is None:
            errors.append(required(f"{path}.nodeAffinity", "Local volume requires node affinity"))
    if spec.get("nodeAffinity") is not None:
        errors += _validate_node_affinity(spec["nodeAffinity"], f"{path}.nodeAffinity")
    return errors


PV_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Capacity", "string", "", "capacity is the description of the persistent volume's resources and "
           "capacity."),
    Column("Access Modes", "string", "", "accessModes contains all ways the volume can be mounted."),
    Column("Reclaim Policy", "string", "", "persistentVolumeReclaimPolicy defines what happens to a persistent "
           "volume when released from its claim. Valid options are Retain (default for manually created "
           "PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle "
           "(deprecated)."),
    Column("Status", "string", "", "phase indicates if a volume is available, bound to a claim, or released by a "
           "claim."),
    Column("Claim", "string", "", "claimRef is part of a bi-directional binding between PersistentVolume and "
           "PersistentVolumeClaim."),
    Column("StorageClass", "string", "", "StorageClass of the pv"),
    Column("VolumeAttributesClass", "string", "", "VolumeAttributesClass of the pv"),
    Column("Reason", "string", "", "reason is a brief CamelCase string that describes any failure and is meant "
           "for machine parsing and tidy display in the CLI."),
    Column("Age", "string", "", AGE_DESCRIPTION),
    Column("VolumeMode", "string", "", "volumeMode defines if a volume is intended to be used with a formatted "
           "filesystem or to remain in raw block state.", 1),
]


def pv_row(volume: Obj, now: datetime.datetime) -> Row:
    """printPersistentVolume."""
    meta, spec, status = volume["metadata"], volume.get("spec") or {}, volume.get("status") or {}
    claim_ref = spec.get("claimRef")
    claim = f"{claim_ref.get('namespace', '')}/{claim_ref.get('name', '')}" if isinstance(claim_ref, dict) else ""
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "")
    return Row([meta["name"], (spec.get("capacity") or {}).get("storage", "0"),
                access_modes_text(spec.get("accessModes") or []), spec.get("persistentVolumeReclaimPolicy", ""),
                phase, claim, volume_class(volume), spec.get("volumeAttributesClassName") or "<unset>",
                status.get("reason", ""), age(meta.get("creationTimestamp"), now),
                spec.get("volumeMode") or "<unset>"])


def _now() -> str:
    return rfc3339(datetime.datetime.now(datetime.timezone.utc))


@dataclass
class PersistentVolumeStrategy(Strategy):
    info: ResourceInfo = PV_INFO
    has_status: bool = True
    tracks_generation: bool = False

    def default(self, obj: Obj) -> None:
        default_volume(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending", "lastPhaseTransitionTime": _now()}

    def validate(self, obj: Obj) -> list[FieldError]:
        return super().validate(obj) + validate_volume_spec(obj.get("spec"))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """ValidatePersistentVolumeUpdate: the volume source, volumeMode and a set node affinity are immutable;
        capacity may change (expansion), as may the claim reference, class, policy and mount options."""
        errors = self.validate(new) + validate_meta_update(new, old)
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        if {k: new_spec.get(k) for k in volume_sources(new_spec) + volume_sources(old_spec)} != \
                {k: old_spec.get(k) for k in volume_sources(new_spec) + volume_sources(old_spec)}:
            errors.append(forbidden("spec.persistentvolumesource",
                                    "spec.persistentvolumesource is immutable after creation"))
        if new_spec.get("volumeMode") != old_spec.get("volumeMode"):
            errors.append(invalid("volumeMode", new_spec.get("volumeMode"), "field is immutable"))
        if old_spec.get("nodeAffinity") is not None and new_spec.get("nodeAffinity") != old_spec.get("nodeAffinity"):
            errors.append(invalid("nodeAffinity", "", "field is immutable"))
        return errors

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        status, old_status = new.get("status") or {}, old.get("status") or {}
        if isinstance(status, dict) and status.get("phase") != old_status.get("phase"):
            status["lastPhaseTransitionTime"] = _now()

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        phase = (new.get("status") or {}).get("phase")
        if phase and phase not in PHASES:
            return [not_supported("status.phase", phase, PHASES)]
        return []

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(PV_COLUMNS, lambda obj: pv_row(obj, now))
