"""A CertificateSigningRequest's spec.request read as upstream's ParseCSR does: the first PEM block must be a
CERTIFICATE REQUEST whose PKCS#10 signature matches its public key. Errors read like Go's."""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

_PEM_BLOCK = re.compile(rb"-----BEGIN ([^\r\n-]+)-----\r?\n(.*?)-----END \1-----", re.S)
NOT_A_CSR = "PEM block type must be CERTIFICATE REQUEST"


@dataclass(frozen=True)
class ParsedRequest:
    common_name: str
    organizations: tuple[str, ...]
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    email_addresses: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()


def _signature_error(csr: x509.CertificateSigningRequest) -> str:
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "x509: ECDSA verification failure"
    if isinstance(key, rsa.RSAPublicKey):
        return "crypto/rsa: verification error"
    return "x509: signature verification failure"


def parse_request(pem: bytes) -> ParsedRequest:
    """ValueError (message as upstream) when `pem` is not a well-formed, correctly signed CSR."""
    block = _PEM_BLOCK.search(pem)
    if block is None or block.group(1) != b"CERTIFICATE REQUEST":
        raise ValueError(NOT_A_CSR)
    body = [line for line in block.group(2).splitlines() if b":" not in line]  # PEM headers are not data
    try:
        der = base64.b64decode(b"".join(b"".join(body).split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(NOT_A_CSR) from None
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
        uris=tuple(names.get_values_for_type(x509.UniformResourceIdentifier)) if names else ())


def _alt_names(csr: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
