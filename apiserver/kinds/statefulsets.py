"""apps/v1 StatefulSet: defaulting and validation as upstream's (apps validation), `/status` and `/scale`,
kubectl's columns. The controller is controllers/statefulset.py."""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass

from apiserver.errors import FieldError, forbidden, invalid, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.kinds.daemonsets import template_cells, template_errors, validate_positive_int_or_percent
from apiserver.kinds.persistentvolumeclaims import default_claim
from apiserver.kinds.workloads import _non_negative, default_pod_template
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age
from apiserver.validation import dns1123_label

STATEFULSET_INFO = ResourceInfo("apps", "v1", "StatefulSet", "statefulsets", "statefulset", True,
                                short_names=("sts",), categories=("all",), subresources=("status", "scale"))
RETENTION_POLICIES = ("Retain", "Delete")
_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
            "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
_FORBIDDEN_UPDATE = ("updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                     "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
                     "'minReadySeconds' are forbidden")
STATUS_COUNTS = ("replicas", "readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas",
                 "observedGeneration", "collisionCount")


def _validate_strategy(spec: Obj) -> list[FieldError]:
    strategy = spec.get("updateStrategy") or {}
    kind = strategy.get("type")
    path = "spec.updateStrategy"
    if not kind:
        return [required(path, "")]
    if kind == "OnDelete":
        if strategy.get("rollingUpdate") is not None:
            return [invalid(f"{path}.rollingUpdate", strategy["rollingUpdate"],
                            "only allowed for updateStrategy 'RollingUpdate'")]
        return []
    if kind != "RollingUpdate":
        return [invalid(path, strategy, "must be 'RollingUpdate' or 'OnDelete'")]
    rolling = strategy.get("rollingUpdate")
    if not isinstance(rolling, dict):
        return []
    errors = _non_negative(rolling, "partition", f"{path}.rollingUpdate")
    unavailable = rolling.get("maxUnavailable")
    if unavailable is not None:
        errors += validate_positive_int_or_percent(unavailable, f"{path}.rollingUpdate.maxUnavailable")
        if unavailable in (0, "0%"):
            errors.append(invalid(f"{path}.rollingUpdate.maxUnavailable", unavailable, "must be greater than 0"))
    return errors


def _validate_retention(spec: Obj) -> list[FieldError]:
    policy = spec.get("persistentVolumeClaimRetentionPolicy")
    if policy is None:
        return []
    errors = []
    for key in ("whenDeleted", "whenScaled"):
        value = policy.get(key)
        if value not in RETENTION_POLICIES:
            errors.append(invalid(f"spec.persistentVolumeClaimRetentionPolicy.{key}", value,
                                  "must be 'Retain' or 'Delete'"))
    return errors


def _with_claim_volumes(spec: Obj) -> Obj:
    """The template as validated: claim templates stand in as volumes (the controller adds them to pods)."""
    checked = copy.deepcopy(spec)
    template_spec = (checked.get("template") or {}).get("spec")
    if isinstance(template_spec, dict):
        volumes = [v for v in template_spec.get("volumes") or [] if isinstance(v, dict)]
        names = {v.get("name") for v in volumes}
        for claim in spec.get("volumeClaimTemplates") or []:
            name = ((claim or {}).get("metadata") or {}).get("name")
            if name and name not in names:
                volumes.append({"name": name, "persistentVolumeClaim": {"claimName": name}})
        if volumes:
            template_spec["volumes"] = volumes
    return checked


STATEFULSET_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Ready", "string", "", "Number of the pod with ready state"),
    Column("Age", "string", "", AGE_DESCRIPTION),
    Column("Containers", "string", "", "Names of each container in the template.", 1),
    Column("Images", "string", "", "Images referenced by each container in the template.", 1),
]


def statefulset_row(obj: Obj, now: datetime.datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = template_cells(obj)
    return Row([obj["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
                age(obj["metadata"].get("creationTimestamp"), now), names, images])


@dataclass
class StatefulSetStrategy(Strategy):
    info: ResourceInfo = STATEFULSET_INFO
    has_status: bool = True

    def default(self, obj: Obj) -> None:
        """SetDefaults_StatefulSet; claim templates get the claim defaults (and their type meta)."""
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.setdefault("updateStrategy", {})
        if isinstance(strategy, dict):
            if not strategy.get("type"):
                strategy["type"] = "RollingUpdate"
                strategy.setdefault("rollingUpdate", {})
            rolling = strategy.get("rollingUpdate")
            if strategy["type"] == "RollingUpdate" and isinstance(rolling, dict):
                rolling.setdefault("partition", 0)
        policy = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        if isinstance(policy, dict):
            policy.setdefault("whenDeleted", "Retain")
            policy.setdefault("whenScaled", "Retain")
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        default_pod_template(spec.get("template"))
        for claim in spec.get("volumeClaimTemplates") or []:
            if isinstance(claim, dict):
                claim.setdefault("apiVersion", "v1")
                claim.setdefault("kind", "PersistentVolumeClaim")
                default_claim(claim)

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"replicas": 0, "availableReplicas": 0}

    def validate(self, obj: Obj) -> list[FieldError]:
        errors = super().validate(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return errors + [required("spec")]
        policy = spec.get("podManagementPolicy")
        if not policy:
            errors.append(required("spec.podManagementPolicy", ""))
        elif policy not in ("OrderedReady", "Parallel"):
            errors.append(invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'"))
        errors += _validate_strategy(spec) + _validate_retention(spec)
        for key in ("replicas", "minReadySeconds", "revisionHistoryLimit"):
            errors += _non_negative(spec, key, "spec")
        ordinals = spec.get("ordinals")
        if isinstance(ordinals, dict):
            errors += _non_negative(ordinals, "start", "spec.ordinals")
        service = spec.get("serviceName")
        if service:
            errors += [invalid("spec.serviceName", service, message) for message in dns1123_label(service)]
        errors += template_errors(_with_claim_volumes(spec), "StatefulSet")
        for index, claim in enumerate(spec.get("volumeClaimTemplates") or []):
            if not ((claim or {}).get("metadata") or {}).get("name"):
                errors.append(required(f"spec.volumeClaimTemplates[{index}].metadata.name", "name or generateName is required"))
        return errors

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errors = super().validate_update(new, old)
        new_rest = {k: v for k, v in (new.get("spec") or {}).items() if k not in _MUTABLE}
        old_rest = {k: v for k, v in (old.get("spec") or {}).items() if k not in _MUTABLE}
        if new_rest != old_rest:
            errors.append(forbidden("spec", _FORBIDDEN_UPDATE))
        return errors

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = new.get("status") or {}
        return [error for key in STATUS_COUNTS for error in _non_negative(status, key, "status")]

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(STATEFULSET_COLUMNS, lambda obj: statefulset_row(obj, now))
