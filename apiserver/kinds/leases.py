"""coordination.k8s.io/v1 Leases (node heartbeats in kube-node-lease, leader election)."""
from __future__ import annotations

import datetime
from dataclasses import dataclass

from apiserver import printers
from apiserver.errors import FieldError, invalid
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.tables import TableSpec

LEASE_INFO = ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", "lease", True)


@dataclass
class LeaseStrategy(Strategy):
    info: ResourceInfo = LEASE_INFO
    allow_create_on_update: bool = True

    def validate(self, obj: Obj) -> list[FieldError]:
        errors = super().validate(obj)
        spec = obj.get("spec") or {}
        for key in ("leaseDurationSeconds", "leaseTransitions"):
            value = spec.get(key)
            if value is not None and (not isinstance(value, int) or value < 0):
                errors.append(invalid(f"spec.{key}", value, "must be greater than or equal to 0"))
        return errors

    def table(self, now: datetime.datetime) -> TableSpec:
        return printers.spec_for(printers.LEASE_COLUMNS, printers.lease_row, now)
