"""core/v1 PersistentVolumeClaim: defaulting, upstream validation messages, status.phase Pending, `/status`,
kubectl's columns. The PV controller (controllers/persistentvolume.py) binds claims to volumes; admission adds
the default StorageClass and the `kubernetes.io/pvc-protection` finalizer (admission/storage.py)."""
from __future__ import annotations

import datetime
from fractions import Fraction
from dataclasses import dataclass
from typing import Any

from apiserver.errors import FieldError, forbidden, invalid, not_supported, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy, canonicalize_quantities
from apiserver.kinds.field_rules import validate_label_selector
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age
from apiserver.validation import dns1123_subdomain
from shipmate.quantity import QuantityError, parse_quantity

PVC_INFO = ResourceInfo("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", True,
                        short_names=("pvc",), subresources=("status",))
ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
VOLUME_MODES = ["Block", "Filesystem"]
STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
PHASES = ["Bound", "Lost", "Pending"]
_IMMUTABLE = "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"


def default_claim(claim: Any) -> None:
    """SetDefaults_PersistentVolumeClaim(+Spec): volumeMode Filesystem, status.phase Pending."""
    if not isinstance(claim, dict):
        return
    spec = claim.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
        resources = spec.get("resources")
        if isinstance(resources, dict):
            canonicalize_quantities(resources.get("requests"))
            canonicalize_quantities(resources.get("limits"))
    status = claim.setdefault("status", {})
    if isinstance(status, dict) and not status.get("phase"):
        status["phase"] = "Pending"


def validate_access_modes(modes: list[Any], path: str, missing_detail: str = "") -> list[FieldError]:
    """A claim's or a volume's accessModes: at least one, each known, ReadWriteOncePod alone."""
    errors: list[FieldError] = []
    if not modes:
        errors.append(required(path, missing_detail))
    for mode in modes:
        if mode not in ACCESS_MODES:
            errors.append(not_supported(path, mode, ACCESS_MODES))
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        errors.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errors


def validate_storage_size(value: Any, path: str) -> list[FieldError]:
    """A claim's storage request or a volume's storage capacity: a quantity above zero."""
    try:
        quantity = parse_quantity(value)
    except (QuantityError, TypeError):
        return [invalid(path, value, "must be a valid resource quantity")]
    return [invalid(path, str(value), "must be greater than zero")] if quantity.value <= 0 else []


def validate_claim_spec(spec: Any, path: str = "spec") -> list[FieldError]:
    """ValidatePersistentVolumeClaimSpec (the parts a claim without data sources meets)."""
    if not isinstance(spec, dict):
        return [required(path, "")]
    errors = validate_access_modes(spec.get("accessModes") or [], f"{path}.accessModes",
                                   "at least 1 access mode is required")
    requests = (spec.get("resources") or {}).get("requests") or {}
    if "storage" not in requests:
        errors.append(required(f"{path}.resources[storage]", ""))
    else:
        errors += validate_storage_size(requests["storage"], f"{path}.resources[storage]")
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        errors.append(not_supported(f"{path}.volumeMode", mode, VOLUME_MODES))
    class_name = spec.get("storageClassName")
    if class_name:
        for message in dns1123_subdomain(class_name):
            errors.append(invalid(f"{path}.storageClassName", class_name, message))
    if spec.get("selector") is not None:
        errors += validate_label_selector(spec["selector"], f"{path}.selector")
    return errors


def storage_request(claim: Obj) -> Fraction:
    """spec.resources.requests.storage in bytes (0 when missing or unparseable)."""
    value = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    try:
        return parse_quantity(value).value if value is not None else Fraction(0)
    except (QuantityError, TypeError):
        return Fraction(0)


def claim_class(claim: Obj) -> str:
    """GetPersistentVolumeClaimClass: the beta annotation, else spec.storageClassName."""
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    if STORAGE_CLASS_ANNOTATION in annotations:
        return annotations[STORAGE_CLASS_ANNOTATION]
    return (claim.get("spec") or {}).get("storageClassName") or ""


def access_modes_text(modes: list[str]) -> str:
    """GetAccessModesAsString: RWO, ROX, RWX, RWOP in that order, each once."""
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
    return ",".join(short[mode] for mode in short if mode in modes)


PVC_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Status", "string", "", "phase represents the current phase of PersistentVolumeClaim."),
    Column("Volume", "string", "", "volumeName is the binding reference to the PersistentVolume backing this "
           "claim."),
    Column("Capacity", "string", "", "capacity represents the actual resources of the underlying volume."),
    Column("Access Modes", "string", "", "accessModes contains the actual access modes the volume backing the "
           "PVC has."),
    Column("StorageClass", "string", "", "StorageClass of the pvc"),
    Column("VolumeAttributesClass", "string", "", "VolumeAttributesClass of the pvc"),
    Column("Age", "string", "", AGE_DESCRIPTION),
    Column("VolumeMode", "string", "", "volumeMode defines what type of volume is required by the claim.", 1),
]


def pvc_row(claim: Obj, now: datetime.datetime) -> Row:
    """printPersistentVolumeClaim: capacity and access modes only once bound to a volume."""
    meta, spec, status = claim["metadata"], claim.get("spec") or {}, claim.get("status") or {}
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "")
    capacity = modes = ""
    if spec.get("volumeName"):
        modes = access_modes_text(status.get("accessModes") or [])
        capacity = (status.get("capacity") or {}).get("storage", "0")
    return Row([meta["name"], phase, spec.get("volumeName", ""), capacity, modes, claim_class(claim),
                spec.get("volumeAttributesClassName") or "<unset>", age(meta.get("creationTimestamp"), now),
                spec.get("volumeMode") or "<unset>"])


@dataclass
class PersistentVolumeClaimStrategy(Strategy):
    info: ResourceInfo = PVC_INFO
    has_status: bool = True
    tracks_generation: bool = False

    def default(self, obj: Obj) -> None:
        default_claim(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending"}

    def validate(self, obj: Obj) -> list[FieldError]:
        return super().validate(obj) + validate_claim_spec(obj.get("spec"))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """ValidatePersistentVolumeClaimUpdate: the spec is frozen but for a first volumeName (binding),
        larger storage requests of a bound claim and volumeAttributesClassName."""
        errors = super().validate_update(new, old)
        new_spec, old_spec = dict(new.get("spec") or {}), dict(old.get("spec") or {})
        if not old_spec.get("volumeName"):
            new_spec.pop("volumeName", None)
            old_spec.pop("volumeName", None)
        if old_spec.get("storageClassName") is None:   # RetroactiveDefaultStorageClass: a class may be set once
            new_spec.pop("storageClassName", None)
            old_spec.pop("storageClassName", None)
        for spec in (new_spec, old_spec):
            spec.pop("volumeAttributesClassName", None)
        bound = (new.get("status") or {}).get("phase") == "Bound"
        if bound:
            for spec in (new_spec, old_spec):
                requests = dict((spec.get("resources") or {}).get("requests") or {})
                requests.pop("storage", None)
                spec["resources"] = {**(spec.get("resources") or {}), "requests": requests}
        if new_spec != old_spec:
            errors.append(forbidden("spec", _IMMUTABLE))
        elif bound and storage_request(new) < storage_request(old):
            # RecoverVolumeExpansionFailure (GA): a request may come back down, but not to the recorded size.
            capacity = ((new.get("status") or {}).get("capacity") or {}).get("storage")
            try:
                recorded = parse_quantity(capacity).value if capacity is not None else Fraction(0)
            except QuantityError:
                recorded = Fraction(0)
            if storage_request(new) <= recorded:
                errors.append(forbidden("spec.resources.requests.storage", "field can not be less than "
                                                                           "status.capacity"))
        return errors

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        phase = (new.get("status") or {}).get("phase")
        if phase and phase not in PHASES:
            return [not_supported("status.phase", phase, PHASES)]
        return []

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(PVC_COLUMNS, lambda obj: pvc_row(obj, now))
