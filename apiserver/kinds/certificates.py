"""certificates.k8s.io/v1 CertificateSigningRequests: cluster-scoped, spec immutable, with subresources
`status` (the signer sets status.certificate) and `approval` (Approved/Denied conditions), as upstream.

The rules are in csr_rules.py; here: the strategies of the three write paths (a plain update keeps spec and
status, /status keeps spec and the approval conditions, /approval takes only the conditions), the requester
(spec.username/uid/groups/extra) taken from the request's user, and kubectl's table.
"""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field

from apiserver import errors, printers
from apiserver.auth.context import current_user
from apiserver.auth.user import SYSTEM_MASTERS
from apiserver.errors import FieldError
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.kinds.configmaps import _base64_error, _decode_base64
from apiserver.kinds.csr_rules import (APISERVER_CLIENT_SIGNER, APPROVED, DENIED, condition_summary, conditions_of,
                                       conditions_of_type, parsed_request, spec_of, validate_csr,
                                       validate_csr_update, validation_options)
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age, human_duration
from shipmate.timeutil import rfc3339
from apiserver.validation import NameValidator, path_segment_name

CSR_INFO = ResourceInfo("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests",
                        "certificatesigningrequest", False, short_names=("csr",), subresources=("status", "approval"))


# timestamps --------------------------------------------------------------------------------------
def populate_condition_timestamps(new: Obj, old: Obj, now: datetime.datetime) -> None:
    """Conditions without lastUpdateTime get now; without lastTransitionTime the old one of the same
    type and status, else now (upstream's populateConditionTimestamps)."""
    stamp = rfc3339(now)
    for condition in conditions_of(new):
        if not condition.get("lastUpdateTime"):
            condition["lastUpdateTime"] = stamp
        if not condition.get("lastTransitionTime"):
            previous = next((c.get("lastTransitionTime") for c in conditions_of(old)
                             if c.get("type") == condition.get("type") and c.get("status") == condition.get("status")
                             and c.get("lastTransitionTime")), None)
            condition["lastTransitionTime"] = previous or stamp


def _preserve_instances(new: Obj, old: Obj, kind: str) -> None:
    """A /status write keeps the stored Approved/Denied conditions (when it has as many of them)."""
    conditions = new["status"]["conditions"]
    new_indices = [i for i, c in enumerate(conditions) if isinstance(c, dict) and c.get("type") == kind]
    old_instances = conditions_of_type(old, kind)
    if len(new_indices) != len(old_instances):
        return  # validation reports the added or removed condition
    for index, instance in zip(new_indices, old_instances):
        conditions[index] = copy.deepcopy(instance)


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


# strategies --------------------------------------------------------------------------------------
def _check_base64(obj: Obj) -> None:
    """[]byte fields that are not base64 fail decoding (400), before validation, as upstream."""
    spec, status = obj.get("spec"), obj.get("status")
    values = [spec.get("request")] if isinstance(spec, dict) else []
    values += [status.get("certificate")] if isinstance(status, dict) else []
    for value in values:
        if value is not None and _decode_base64(value) is None:
            raise _base64_error(CSR_INFO.kind, value)
    expiration = spec.get("expirationSeconds") if isinstance(spec, dict) else None
    if isinstance(expiration, int) and not -2**31 <= expiration < 2**31:  # an int32 upstream
        raise errors.bad_request(f'CertificateSigningRequest in version "v1" cannot be handled as a '
                                 f'CertificateSigningRequest: json: cannot unmarshal number {expiration} into Go '
                                 'struct field CertificateSigningRequestSpec.spec.expirationSeconds of type int32')


CSR_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Age", "string", "", AGE_DESCRIPTION),
    Column("SignerName", "string", "", "signerName names the signer the certificate is requested from (a "
                                       "qualified name such as kubernetes.io/kube-apiserver-client)."),
    Column("Requestor", "string", "", "The user who created the request (spec.username), set by the server."),
    Column("RequestedDuration", "string", "", "expirationSeconds is the requested validity of the issued "
                                              "certificate; signers may issue a shorter one."),
    Column("Condition", "string", "", "Approved or Denied, Failed, and Issued once status.certificate is set."),
]


def csr_row(csr: Obj, now: datetime.datetime) -> Row:
    spec = spec_of(csr)
    expiration = spec.get("expirationSeconds")
    duration = human_duration(datetime.timedelta(seconds=expiration)) if isinstance(expiration, int) else "<none>"
    return Row([csr["metadata"]["name"], age(csr["metadata"].get("creationTimestamp"), now),
                spec.get("signerName") or "<none>", spec.get("username") or "", duration, condition_summary(csr)])


@dataclass
class CSRStrategy(Strategy):
    info: ResourceInfo = CSR_INFO
    name_validator: NameValidator = path_segment_name
    has_status: bool = True
    tracks_generation: bool = False
    field_labels: tuple[str, ...] = field(default=("metadata.name", "spec.signerName"))

    def subresource_strategies(self) -> dict[str, Strategy]:
        return {"approval": CSRApprovalStrategy()}

    def default(self, obj: Obj) -> None:
        _check_base64(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            for key in ("username", "uid", "groups", "extra"):
                spec.pop(key, None)
            user = current_user()
            if user is not None:
                spec.update(user.as_user_info())
        obj["status"] = {}  # nobody creates a pre-approved or pre-issued request

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_csr(obj, validation_options(obj, None))

    def admit(self, new: Obj, old: Obj | None) -> list[FieldError]:
        """Upstream's CertificateSubjectRestriction admission: no system:masters client certificates through
        the kube-apiserver-client signer (a 403 on create)."""
        if old is None and spec_of(new).get("signerName") == APISERVER_CLIENT_SIGNER and \
                SYSTEM_MASTERS in parsed_request(new).organizations:
            raise errors.forbidden_error(CSR_INFO.group, CSR_INFO.plural, new["metadata"].get("name", ""),
                                         f"use of {APISERVER_CLIENT_SIGNER} signer with {SYSTEM_MASTERS} group is not "
                                         "allowed")
        return []

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """The spec never changes; status changes only through /status and /approval."""
        _keep(new, old, "spec")
        _keep(new, old, "status")

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_csr_update(new, old, validation_options(new, old))

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        if isinstance(new.get("status"), dict) and isinstance(new["status"].get("conditions"), list):
            _preserve_instances(new, old, APPROVED)
            _preserve_instances(new, old, DENIED)
        populate_condition_timestamps(new, old, _utc_now())

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_csr_update(new, old, validation_options(new, old, allow_setting_certificate=True))

    def field_values(self, obj: Obj) -> dict[str, str]:
        values = super().field_values(obj)
        values["spec.signerName"] = str(spec_of(obj).get("signerName") or "")
        return values

    def table(self, now: datetime.datetime) -> TableSpec:
        return printers.spec_for(CSR_COLUMNS, csr_row, now)


@dataclass
class CSRApprovalStrategy(CSRStrategy):
    """The `approval` subresource: only status.conditions change (kubectl certificate approve/deny)."""

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        _keep(new, old, "spec")
        status = new.get("status") if isinstance(new.get("status"), dict) else {}
        new["status"] = {**copy.deepcopy(old.get("status") or {}), "conditions": status.get("conditions") or []}
        if not new["status"]["conditions"]:
            del new["status"]["conditions"]
        populate_condition_timestamps(new, old, _utc_now())

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_csr_update(new, old, validation_options(new, old, allow_setting_approval_conditions=True))


def _keep(new: Obj, old: Obj, key: str) -> None:
    if key in old:
        new[key] = copy.deepcopy(old[key])
    else:
        new.pop(key, None)
