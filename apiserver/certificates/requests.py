"""A CertificateSigningRequest's spec.request, decoded once: the one parser validation, admission, the
approver and the signer all use, so no two of them can see different requests in the same bytes.

spec.request must be exactly one `CERTIFICATE REQUEST` PEM block (no headers) with nothing around it but
whitespace, holding a PKCS#10 request whose signature matches its public key. Upstream's ParseCSR reads the
first PEM block and ignores the rest; we refuse anything else in the field (a second block, text before or
after), because two readers of such bytes may disagree about which block is "the" request (one PEM reader
skips a BEGIN line with trailing blanks, another does not). Messages read like Go's where upstream has one;
"must contain only one PEM block" is ours.

The signer signs `ParsedRequest.der`, the very bytes the checks looked at."""
from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOT_A_CSR = "PEM block type must be CERTIFICATE REQUEST"
ONLY_ONE_BLOCK = "must contain only one PEM block"
NO_HEADERS = "no PEM block headers are permitted"
_BEGIN, _END, _DASHES = b"-----BEGIN ", b"-----END ", b"-----"
_REQUEST_TYPE = b"CERTIFICATE REQUEST"
_WHITESPACE = b" \t\r\n"


@dataclass(frozen=True)
class ParsedRequest:
    common_name: str
    organizations: tuple[str, ...]
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    email_addresses: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    der: bytes = b""  # the PKCS#10 request the fields above were read from: what gets signed


def _signature_error(csr: x509.CertificateSigningRequest) -> str:
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "x509: ECDSA verification failure"
    if isinstance(key, rsa.RSAPublicKey):
        return "crypto/rsa: verification error"
    return "x509: signature verification failure"


def single_request_der(pem: bytes) -> bytes:
    """The DER of the one CERTIFICATE REQUEST block `pem` consists of (ValueError otherwise). Lines may end
    in blanks (Go's PEM reader ignores them), the BEGIN line included."""
    lines = [line.rstrip(b" \t\r") for line in pem.strip(_WHITESPACE).split(b"\n")]
    first = lines[0]
    if not (first.startswith(_BEGIN) and first.endswith(_DASHES) and len(first) > len(_BEGIN) + len(_DASHES)):
        raise ValueError(ONLY_ONE_BLOCK if _BEGIN in first[1:] or _BEGIN in b"\n".join(lines[1:]) else NOT_A_CSR)
    if first[len(_BEGIN):-len(_DASHES)] != _REQUEST_TYPE:
        raise ValueError(NOT_A_CSR)
    end = next((i for i, line in enumerate(lines[1:], 1) if line.startswith(_DASHES)), None)
    if end is None or lines[end] != _END + _REQUEST_TYPE + _DASHES:
        raise ValueError(ONLY_ONE_BLOCK if end is not None and lines[end].startswith(_BEGIN) else NOT_A_CSR)
    if end != len(lines) - 1:
        raise ValueError(ONLY_ONE_BLOCK)
    body = lines[1:end]
    if any(b":" in line for line in body):
        raise ValueError(NO_HEADERS)
    try:
        return base64.b64decode(b"".join(b"".join(body).split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(NOT_A_CSR) from None


# A node's or bootstrapper's request is ~1 KiB; bigger ones are parsed each time, so that the cache (256
# entries, each holding the PEM and DER bytes) stays bounded in bytes whatever a requester submits.
_CACHED_REQUEST_BYTES = 16 * 1024


def parse_request(pem: bytes) -> ParsedRequest:
    """ValueError (message as upstream's where it has one) when `pem` is not exactly one well-formed,
    correctly signed CSR. Pure, so its answers are cached: the approver and signer re-read stored requests."""
    return _parse_request(pem) if len(pem) > _CACHED_REQUEST_BYTES else _parse_request_cached(pem)


def _parse_request(pem: bytes) -> ParsedRequest:
    der = single_request_der(pem)
    try:
        csr = x509.load_der_x509_csr(der)
        subject = csr.subject
        names = _alt_names(csr)
    except ValueError as exc:
        raise ValueError(f"x509: malformed certificate request: {exc}") from None
    if not csr.is_signature_valid:
        raise ValueError(_signature_error(csr))
    common_names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return ParsedRequest(
        common_name=str(common_names[0].value) if common_names else "",
        organizations=tuple(str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)),
        dns_names=tuple(names.get_values_for_type(x509.DNSName)) if names else (),
        ip_addresses=tuple(str(ip) for ip in names.get_values_for_type(x509.IPAddress)) if names else (),
        email_addresses=tuple(names.get_values_for_type(x509.RFC822Name)) if names else (),
        uris=tuple(names.get_values_for_type(x509.UniformResourceIdentifier)) if names else (),
        der=der)


_parse_request_cached = functools.lru_cache(maxsize=256)(_parse_request)


def _alt_names(csr: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
