"""What a CertificateSigningRequest is made of and the rules it must follow: the well-known signer names and
condition types, readers of its fields, and upstream's validation (pkg/apis/certificates/validation).

spec.request must be exactly one correctly signed PEM CERTIFICATE REQUEST (certificates/requests.py, the one
parser every reader uses), signerName a qualified `domain/path`, usages
from the known list without repeats, expirationSeconds at least 600, conditions of known status values with
Approved and Denied exclusive; conditions can never be removed, Approved/Denied only change through /approval
and the certificate only through /status, once. What a write path may do comes in as ValidationOptions.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from apiserver.certificates.requests import ParsedRequest, parse_request
from apiserver.errors import FieldError, GoLiteral, duplicate, forbidden, invalid, not_supported, required
from apiserver.kinds.base import Obj
from apiserver.kinds.configmaps import _decode_base64
from apiserver.validation import (dns1123_label, dns1123_subdomain, path_segment_name, validate_meta_update,
                                  validate_object_meta)

KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
APISERVER_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN_SIGNER = "kubernetes.io/legacy-unknown"

APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
VALID_USAGES = sorted([
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
    "client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel", "ipsec user",
    "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc"])
MIN_EXPIRATION_SECONDS = 600
_STATUS_VALUES = ["False", "True", "Unknown"]
_DNS1123_SUBDOMAIN_MAX = 253
_DNS1123_LABEL_MAX = 63


# reading a CSR ---------------------------------------------------------------------------------
def spec_of(csr: Obj) -> dict[str, Any]:
    spec = csr.get("spec")
    return spec if isinstance(spec, dict) else {}


def conditions_of(csr: Obj) -> list[dict[str, Any]]:
    status = csr.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    return [c for c in conditions if isinstance(c, dict)] if isinstance(conditions, list) else []


def has_condition(csr: Obj, condition_type: str) -> bool:
    """Upstream's HasTrueCondition (Approved/Denied/Failed only ever have status True)."""
    return any(c.get("type") == condition_type and c.get("status") == "True" for c in conditions_of(csr))


def request_pem(csr: Obj) -> bytes:
    return _decode_base64(spec_of(csr).get("request")) or b""


def certificate_pem(csr: Obj) -> bytes:
    status = csr.get("status")
    return (_decode_base64(status.get("certificate")) or b"") if isinstance(status, dict) else b""


def parsed_request(csr: Obj) -> ParsedRequest:
    """The CSR's request (ValueError when it is not exactly one valid CERTIFICATE REQUEST): validation,
    admission, the approver and the signer all read it through here."""
    return parse_request(request_pem(csr))


def condition_summary(csr: Obj) -> str:
    """kubectl's CONDITION column: Denied/Approved/Pending, then ",Failed" and ",Issued"."""
    summary = "Denied" if has_condition(csr, DENIED) else "Approved" if has_condition(csr, APPROVED) else "Pending"
    if has_condition(csr, FAILED):
        summary += ",Failed"
    if certificate_pem(csr):
        summary += ",Issued"
    return summary


# validation ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ValidationOptions:
    """What a write path may do, and the oddities tolerated because the stored object already has them."""
    allow_setting_approval_conditions: bool = False
    allow_setting_certificate: bool = False
    allow_both_approved_and_denied: bool = False
    allow_legacy_signer_name: bool = False
    allow_duplicate_condition_types: bool = False
    allow_empty_condition_type: bool = False
    allow_arbitrary_certificate: bool = False
    allow_unknown_usages: bool = False
    allow_duplicate_usages: bool = False


def _condition_types(csr: Obj) -> list[str]:
    return [c.get("type") or "" for c in conditions_of(csr)]


def _usages(csr: Obj) -> list[Any]:
    usages = spec_of(csr).get("usages")
    return usages if isinstance(usages, list) else []


def validation_options(new: Obj, old: Obj | None, **allowed: bool) -> ValidationOptions:
    """Upstream's getValidationOptions: an update may keep what the stored object already got wrong."""
    if old is None:
        return ValidationOptions(**allowed)
    old_types = _condition_types(old)
    old_usages = _usages(old)
    return ValidationOptions(
        allow_both_approved_and_denied=APPROVED in old_types and DENIED in old_types,
        allow_legacy_signer_name=spec_of(old).get("signerName") == LEGACY_UNKNOWN_SIGNER,
        allow_duplicate_condition_types=len(set(old_types)) != len(old_types),
        allow_empty_condition_type="" in old_types,
        allow_arbitrary_certificate=certificate_pem(new) == certificate_pem(old) or
        certificate_problem(certificate_pem(old)) is not None,
        allow_unknown_usages=any(u not in VALID_USAGES for u in old_usages),
        allow_duplicate_usages=len(set(map(str, old_usages))) != len(old_usages),
        **allowed)


def go_bytes(data: bytes) -> GoLiteral:
    """A []byte bad value as Go's %#v prints it."""
    return GoLiteral("[]byte{" + ", ".join(f"0x{b:x}" for b in data) + "}")


def signer_name_problems(path: str, signer_name: str) -> list[FieldError]:
    """Upstream's ValidateSignerName: `<fqdn>/<path>`, each part of bounded length and DNS-1123 shaped."""
    if not signer_name:
        return [required(path)]
    segments = signer_name.split("/")
    if len(segments) != 2:
        return [invalid(path, signer_name, "must be a fully qualified domain and path of the form "
                                           "'example.com/signer-name'")]
    domain, signer_path = segments
    problems = []
    if len(domain) > _DNS1123_SUBDOMAIN_MAX:
        problems.append(FieldError("FieldValueTooLong", path, f"may not be more than {_DNS1123_SUBDOMAIN_MAX} bytes"))
    domain_labels = domain.split(".")
    for label in domain_labels:
        label_problems = dns1123_label(label)
        if label_problems:
            problems += [invalid(path, domain, f'validating label "{label}": {p}') for p in label_problems]
            break
    if len(domain_labels) < 2:
        problems.append(invalid(path, domain, "should be a domain with at least two segments separated by dots"))
    for label in signer_path.split("."):
        label_problems = dns1123_subdomain(label)
        if label_problems:
            problems += [invalid(path, signer_path, f'validating label "{label}": {p}') for p in label_problems]
            break
    longest = _DNS1123_SUBDOMAIN_MAX + (_DNS1123_SUBDOMAIN_MAX + _DNS1123_LABEL_MAX + 1) + 1
    if len(signer_name) > longest:
        problems.append(FieldError("FieldValueTooLong", path, f"may not be more than {longest} bytes"))
    return problems


def certificate_problem(pem: bytes) -> str | None:
    """Upstream's validateCertificate: empty, or only CERTIFICATE blocks (no headers) that parse."""
    if not pem:
        return None
    blocks = 0
    for block in _pem_blocks(pem):
        kind, headers, der = block
        if kind != "CERTIFICATE":
            return f'only CERTIFICATE PEM blocks are allowed, found "{kind}"'
        if headers:
            return "no PEM block headers are permitted"
        try:
            x509.load_der_x509_certificate(der)
        except ValueError as exc:
            return f"x509: malformed certificate: {exc}"
        blocks += 1
    return None if blocks else "must contain at least one CERTIFICATE PEM block"


def _pem_blocks(pem: bytes) -> list[tuple[str, bool, bytes]]:
    blocks = []
    text = pem.decode("latin-1")
    while (start := text.find("-----BEGIN ")) >= 0:
        header_end = text.find("-----", start + 11)
        if header_end < 0:
            break
        kind = text[start + 11:header_end]
        end_marker = f"-----END {kind}-----"
        end = text.find(end_marker, header_end)
        if end < 0:
            break
        lines = text[header_end + 5:end].strip().splitlines()
        headers = any(":" in line for line in lines)
        try:
            der = base64.b64decode("".join(line.strip() for line in lines if ":" not in line), validate=True)
        except ValueError:
            break  # as Go's pem.Decode: a block that does not decode ends the scan
        blocks.append((kind, headers, der))
        text = text[end + len(end_marker):]
    return blocks


def _validate_conditions(csr: Obj, options: ValidationOptions) -> list[FieldError]:
    problems = []
    seen: set[str] = set()
    approved = denied = False
    for i, condition in enumerate(conditions_of(csr)):
        path = f"status.conditions[{i}]"
        kind, status = condition.get("type") or "", condition.get("status") or ""
        if not kind and not options.allow_empty_condition_type:
            problems.append(required(f"{path}.type"))
        allowed = ["True"] if kind in (APPROVED, DENIED, FAILED) else _STATUS_VALUES
        if not status:
            problems.append(required(f"{path}.status"))
        elif status not in allowed:
            problems.append(not_supported(f"{path}.status", status, allowed))
        if not options.allow_both_approved_and_denied:
            if kind == APPROVED:
                approved = True
                if denied:
                    problems.append(invalid(f"{path}.type", kind, "Approved and Denied conditions are mutually "
                                                                  "exclusive"))
            elif kind == DENIED:
                denied = True
                if approved:
                    problems.append(invalid(f"{path}.type", kind, "Approved and Denied conditions are mutually "
                                                                  "exclusive"))
        if not options.allow_duplicate_condition_types:
            if kind in seen:
                problems.append(duplicate(f"{path}.type", kind))
            seen.add(kind)
    return problems


def validate_csr(csr: Obj, options: ValidationOptions) -> list[FieldError]:
    problems = validate_object_meta(csr, False, path_segment_name)
    spec = spec_of(csr)
    try:
        parsed_request(csr)
    except ValueError as exc:
        problems.append(invalid("spec.request", go_bytes(request_pem(csr)), str(exc)))
    usages = spec.get("usages")
    if not isinstance(usages, list) or not usages:
        problems.append(required("spec.usages"))
        usages = []
    if not options.allow_unknown_usages:
        problems += [not_supported(f"spec.usages[{i}]", u, VALID_USAGES)
                     for i, u in enumerate(usages) if u not in VALID_USAGES]
    if not options.allow_duplicate_usages:
        seen: list[Any] = []
        for i, usage in enumerate(usages):
            if usage in seen:
                problems.append(duplicate(f"spec.usages[{i}]", usage))
            seen.append(usage)
    signer_name = spec.get("signerName") or ""
    if signer_name == LEGACY_UNKNOWN_SIGNER and not options.allow_legacy_signer_name:
        problems.append(invalid("spec.signerName", signer_name, "the legacy signerName is not allowed via this API "
                                                                "version"))
    elif isinstance(signer_name, str):
        problems += signer_name_problems("spec.signerName", signer_name)
    else:
        problems.append(invalid("spec.signerName", signer_name, "must be a string"))
    expiration = spec.get("expirationSeconds")
    if expiration is not None and (not isinstance(expiration, int) or expiration < MIN_EXPIRATION_SECONDS):
        problems.append(invalid("spec.expirationSeconds", expiration,
                                "may not specify a duration less than 600 seconds (10 minutes)"))
    problems += _validate_conditions(csr, options)
    if not options.allow_arbitrary_certificate:
        problem = certificate_problem(certificate_pem(csr))
        if problem:
            problems.append(invalid("status.certificate", "<certificate data>", problem))
    return problems


def conditions_of_type(csr: Obj, kind: str) -> list[dict[str, Any]]:
    return [c for c in conditions_of(csr) if c.get("type") == kind]


def validate_csr_update(new: Obj, old: Obj, options: ValidationOptions) -> list[FieldError]:
    problems = validate_csr(new, options)
    for kind in (APPROVED, DENIED, FAILED):
        if len(conditions_of_type(new, kind)) < len(conditions_of_type(old, kind)):
            problems.append(forbidden("status.conditions", f'updates may not remove a condition of type "{kind}"'))
    if not options.allow_setting_approval_conditions:
        for kind in (APPROVED, DENIED):
            old_conditions, new_conditions = conditions_of_type(old, kind), conditions_of_type(new, kind)
            if len(new_conditions) > len(old_conditions):
                problems.append(forbidden("status.conditions", f'updates may not add a condition of type "{kind}"'))
            elif len(new_conditions) == len(old_conditions) and new_conditions != old_conditions:
                problems.append(forbidden("status.conditions",
                                          f'updates may not modify a condition of type "{kind}"'))
    if certificate_pem(new) != certificate_pem(old):
        if not options.allow_setting_certificate:
            problems.append(forbidden("status.certificate", "updates may not set certificate content"))
        elif certificate_pem(old):
            problems.append(forbidden("status.certificate", "updates may not modify existing certificate content"))
    return problems + validate_meta_update(new, old)
