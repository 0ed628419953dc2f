"""storage.k8s.io/v1 CSIStorageCapacity: what a CSI driver reports it can provision for one StorageClass in one
topology segment (namespaced; read by capacity-aware schedulers). Upstream's validation (storageClassName a DNS
subdomain, nodeTopology a label selector, capacity not negative), its update rule (storageClassName and
nodeTopology immutable) and kubectl's columns (NAME, STORAGECLASSNAME, CAPACITY: upstream prints no AGE)."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from apiserver.errors import FieldError, GoLiteral, invalid
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.kinds.field_rules import selector_has_invalid_values, validate_label_selector
from apiserver.kinds.workloads import go_label_selector
from apiserver.tables import NAME_DESCRIPTION, Column, Row, TableSpec
from apiserver.validation import dns1123_subdomain, validate_meta_update
from shipmate.quantity import QuantityError, canonical, parse_quantity

CSI_STORAGE_CAPACITY_INFO = ResourceInfo("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities",
                                         "csistoragecapacity", True)
QUANTITY_FIELDS = ("capacity", "maximumVolumeSize")
_QUANTITY_MESSAGE = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


def _quantity_errors(obj: Obj, key: str, check_sign: bool) -> list[FieldError]:
    """An unparseable quantity (a decoding error upstream, reported here as the field's problem), and for
    `capacity` ValidateNonnegativeQuantity (the value printed in canonical form, as Quantity.String())."""
    value = obj.get(key)
    if value is None:
        return []
    try:
        quantity = parse_quantity(value)
    except (QuantityError, TypeError):
        return [invalid(key, value, _QUANTITY_MESSAGE)]
    if check_sign and quantity.value < 0:
        return [invalid(key, canonical(value), "must be greater than or equal to 0")]
    return []


def validate_csi_storage_capacity(obj: Obj, allow_invalid_label_values: bool = False) -> list[FieldError]:
    """ValidateCSIStorageCapacity (metadata aside). Upstream checks only capacity's sign, not
    maximumVolumeSize's."""
    errors = validate_label_selector(obj.get("nodeTopology"), "nodeTopology", allow_invalid_label_values)
    name = obj.get("storageClassName")
    name = name if isinstance(name, str) else ""
    errors += [invalid("storageClassName", name, problem) for problem in dns1123_subdomain(name)]
    errors += _quantity_errors(obj, "capacity", check_sign=True)
    errors += _quantity_errors(obj, "maximumVolumeSize", check_sign=False)
    return errors


def _semantic(value: Any) -> Any:
    """A JSON value as apimachinery's Semantic.DeepEqual sees it: empty lists and maps equal absent ones."""
    if isinstance(value, dict):
        return {key: _semantic(item) for key, item in value.items() if item not in (None, [], {})}
    if isinstance(value, list):
        return [_semantic(item) for item in value]
    return value


def _go_topology(selector: Any) -> GoLiteral:
    """The bad value of an immutable nodeTopology as field.Invalid prints a *LabelSelector: null when unset."""
    return go_label_selector(selector) if isinstance(selector, dict) else GoLiteral("null")


COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("StorageClassName", "string", "", "storageClassName represents the name of the StorageClass that the "
           "reported capacity applies to. It must meet the same requirements as the name of a StorageClass object "
           "(non-empty, DNS subdomain). If that object no longer exists, the CSIStorageCapacity object is obsolete "
           "and should be removed by its creator. This field is immutable."),
    Column("Capacity", "string", "", "capacity is the value reported by the CSI driver in its GetCapacityResponse "
           "for a GetCapacityRequest with topology and parameters that match the previous fields.\n\nThe semantic "
           "is currently (CSI spec 1.2) defined as: The available capacity, in bytes, of the storage that can be "
           "used to provision volumes. If not set, that information is currently unavailable."),
]


def csi_storage_capacity_row(obj: Obj) -> Row:
    """printCSIStorageCapacity: `<unset>` without a capacity."""
    capacity = obj.get("capacity")
    return Row([obj["metadata"]["name"], obj.get("storageClassName", ""),
                "<unset>" if capacity is None else str(capacity)])


@dataclass
class CSIStorageCapacityStrategy(Strategy):
    info: ResourceInfo = CSI_STORAGE_CAPACITY_INFO
    tracks_generation: bool = False  # upstream's PrepareForCreate sets no generation

    def default(self, obj: Obj) -> None:
        """Quantities are stored in canonical form (how a resource.Quantity serializes)."""
        for key in QUANTITY_FIELDS:
            value = obj.get(key)
            if value is not None:
                try:
                    obj[key] = canonical(value)
                except (QuantityError, TypeError):
                    pass  # reported by validation

    def validate(self, obj: Obj) -> list[FieldError]:
        return super().validate(obj) + validate_csi_storage_capacity(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """ValidateCSIStorageCapacity (label values already invalid in the stored selector stay allowed) +
        ValidateCSIStorageCapacityUpdate: the inputs of the CSI GetCapacity call are immutable."""
        allow = selector_has_invalid_values(old.get("nodeTopology"))
        errors = super().validate(new) + validate_csi_storage_capacity(new, allow) + validate_meta_update(new, old)
        if _semantic(new.get("nodeTopology")) != _semantic(old.get("nodeTopology")):
            errors.append(invalid("nodeTopology", _go_topology(new.get("nodeTopology")), "field is immutable"))
        if (new.get("storageClassName") or "") != (old.get("storageClassName") or ""):
            errors.append(invalid("storageClassName", new.get("storageClassName") or "", "field is immutable"))
        return errors

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(COLUMNS, csi_storage_capacity_row)
