"""storage.k8s.io/v1 StorageClass: defaulting (reclaimPolicy Delete, volumeBindingMode Immediate), upstream's
validation and update rules, kubectl's columns (the default class marked ` (default)`), and the built-in
`local-path` class the server creates at start (provisioner `shipmate.io/local-path`, the default class,
WaitForFirstConsumer, expandable)."""
from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import Any

from apiserver import errors
from apiserver.errors import FieldError, forbidden, invalid, not_supported, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age
from apiserver.validation import qualified_name, validate_meta_update

log = logging.getLogger(__name__)

STORAGE_CLASS_INFO = ResourceInfo("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", False,
                                  short_names=("sc",))
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
BETA_DEFAULT_CLASS_ANNOTATION = "storageclass.beta.kubernetes.io/is-default-class"
RECLAIM_POLICIES = ["Delete", "Retain"]
BINDING_MODES = ["Immediate", "WaitForFirstConsumer"]
NO_PROVISIONER = "kubernetes.io/no-provisioner"
LOCAL_PATH_PROVISIONER = "shipmate.io/local-path"
LOCAL_PATH_CLASS = "local-path"
_MAX_PARAMETERS = 512
_MAX_PARAMETERS_SIZE = 256 * 1024


def local_path_class() -> Obj:
    """The class `shipmate server` creates when missing (k3s ships the same one for its local-path
    provisioner): the default, bound where the pod lands, Delete on release, expandable."""
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": LOCAL_PATH_CLASS, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
            "provisioner": LOCAL_PATH_PROVISIONER, "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": True}


def is_default_class(storage_class: Obj) -> bool:
    """IsDefaultAnnotation: the GA or the beta annotation is "true"."""
    annotations = (storage_class.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DEFAULT_CLASS_ANNOTATION) == "true" or \
        annotations.get(BETA_DEFAULT_CLASS_ANNOTATION) == "true"


def default_class(classes: list[Obj]) -> Obj | None:
    """GetDefaultClass: of the classes marked default, the newest (then the first by name), as upstream since
    1.26 (several defaults are allowed; new claims get the most recent)."""
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None
    by_name = sorted(defaults, key=lambda c: c["metadata"].get("name", ""))
    return sorted(by_name, key=lambda c: c["metadata"].get("creationTimestamp") or "", reverse=True)[0]


def binding_mode(storage_class: Obj | None) -> str:
    return (storage_class or {}).get("volumeBindingMode") or "Immediate"


def _validate_topologies(topologies: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: list[Any] = []
    for index, term in enumerate(topologies or []):
        path = f"allowedTopologies[{index}]"
        expressions = (term or {}).get("matchLabelExpressions") if isinstance(term, dict) else None
        if not expressions:
            errors.append(required(f"{path}.matchLabelExpressions", "must have at least one label expression"))
            continue
        keys = {}
        for number, expression in enumerate(expressions):
            where = f"{path}.matchLabelExpressions[{number}]"
            key = (expression or {}).get("key", "") if isinstance(expression, dict) else ""
            if not key:
                errors.append(required(f"{where}.key", ""))
            values = (expression or {}).get("values") or [] if isinstance(expression, dict) else []
            if not values:
                errors.append(required(f"{where}.values", "must specify as least one value"))
            keys[key] = sorted(values)
        if keys in seen:
            errors.append(FieldError("FieldValueDuplicate", f"{path}.matchLabelExpressions", "", ""))
        seen.append(keys)
    return errors


def validate_storage_class(storage_class: Obj) -> list[FieldError]:
    """ValidateStorageClass (metadata aside)."""
    errors: list[FieldError] = []
    provisioner = storage_class.get("provisioner") or ""
    if not provisioner:
        errors.append(required("provisioner", ""))
    else:
        for message in qualified_name(provisioner.lower()):
            errors.append(invalid("provisioner", provisioner, message))
    parameters = storage_class.get("parameters") or {}
    if len(parameters) > _MAX_PARAMETERS:
        errors.append(FieldError("FieldValueTooLong", "parameters",
                                 "Provisioner Parameters exceeded max allowed", len(parameters)))
    size = 0
    for key, value in parameters.items():
        if not key:
            errors.append(invalid("parameters", parameters, "key cannot be empty"))
        size += len(key) + len(str(value))
    if size > _MAX_PARAMETERS_SIZE:
        errors.append(FieldError("FieldValueTooLong", "parameters", "", ""))
    policy = storage_class.get("reclaimPolicy")
    if policy and policy not in RECLAIM_POLICIES:
        errors.append(not_supported("reclaimPolicy", policy, RECLAIM_POLICIES))
    mode = storage_class.get("volumeBindingMode")
    if mode is None:
        errors.append(required("volumeBindingMode", ""))
    elif mode not in BINDING_MODES:
        errors.append(not_supported("volumeBindingMode", mode, BINDING_MODES))
    errors += _validate_topologies(storage_class.get("allowedTopologies"))
    return errors


COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Provisioner", "string", "", "provisioner indicates the type of the provisioner."),
    Column("ReclaimPolicy", "string", "", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned "
           "PersistentVolumes of this storage class. Defaults to Delete."),
    Column("VolumeBindingMode", "string", "", "volumeBindingMode indicates how PersistentVolumeClaims should be "
           "provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by "
           "servers that enable the VolumeScheduling feature."),
    Column("AllowVolumeExpansion", "string", "", "allowVolumeExpansion shows whether the storage class allow "
           "volume expand."),
    Column("Age", "string", "", AGE_DESCRIPTION),
]


def storage_class_row(storage_class: Obj, now: datetime.datetime) -> Row:
    """printStorageClass."""
    meta = storage_class["metadata"]
    name = meta["name"] + (" (default)" if is_default_class(storage_class) else "")
    return Row([name, storage_class.get("provisioner", ""), storage_class.get("reclaimPolicy") or "Delete",
                binding_mode(storage_class), bool(storage_class.get("allowVolumeExpansion")),
                age(meta.get("creationTimestamp"), now)])


@dataclass
class StorageClassStrategy(Strategy):
    info: ResourceInfo = STORAGE_CLASS_INFO
    tracks_generation: bool = False

    def default(self, obj: Obj) -> None:
        """SetDefaults_StorageClass."""
        if not obj.get("reclaimPolicy"):
            obj["reclaimPolicy"] = "Delete"
        if not obj.get("volumeBindingMode"):
            obj["volumeBindingMode"] = "Immediate"

    def validate(self, obj: Obj) -> list[FieldError]:
        return super().validate(obj) + validate_storage_class(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """ValidateStorageClassUpdate."""
        errors = validate_meta_update(new, old) + self.validate(new)
        if (new.get("parameters") or {}) != (old.get("parameters") or {}):
            errors.append(forbidden("parameters", "updates to parameters are forbidden."))
        if new.get("provisioner") != old.get("provisioner"):
            errors.append(forbidden("provisioner", "updates to provisioner are forbidden."))
        if new.get("reclaimPolicy") != old.get("reclaimPolicy"):
            errors.append(forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
        if new.get("volumeBindingMode") != old.get("volumeBindingMode"):
            errors.append(invalid("volumeBindingMode", new.get("volumeBindingMode"), "field is immutable"))
        return errors

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(COLUMNS, lambda obj: storage_class_row(obj, now))


async def ensure_local_path_class(registry: Any) -> None:
    """Creates the `local-path` class when missing (at every server start, as k3s re-applies its manifest);
    it is made the default only if no other class is. An existing one is left as it is."""
    classes, _ = await registry.list()
    if any(c["metadata"]["name"] == LOCAL_PATH_CLASS for c in classes):
        return
    body = local_path_class()
    if any(is_default_class(c) for c in classes):
        body["metadata"].pop("annotations")
    try:
        await registry.create("", body)
        log.info("created storage class name=%s default=%s", LOCAL_PATH_CLASS,
                                         is_default_class(body))
    except errors.APIError as exc:
        if exc.reason != "AlreadyExists":
            raise
