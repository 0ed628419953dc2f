"""X.509 for the cluster: a CA, serving and client certificates, CSRs (EC P-256, `cryptography`).

Everything is PEM bytes in and out, so callers store and pass certificates without touching the
library's types. Certificates carry the extensions upstream's signers set: CA certificates are
`BasicConstraints(ca=True)` with keyCertSign; leaf certificates have digitalSignature + the
requested extended key usages (serverAuth / clientAuth).
"""
from __future__ import annotations

import datetime
import hashlib
import ipaddress
from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates start a little in the past so a peer with a slightly slow clock accepts them.
CLOCK_SKEW = datetime.timedelta(minutes=5)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _load_key(key_pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the private key is not an EC key")
    return key


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _load_cert(pem_or_der: bytes) -> x509.Certificate:
    if pem_or_der.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(pem_or_der)
    return x509.load_der_x509_certificate(pem_or_der)


def _name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _subject_of(name: x509.Name) -> tuple[str, tuple[str, ...]]:
    common_names = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    organizations = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(common_names[0].value) if common_names else "",
            tuple(str(org.value) for org in organizations))


def new_key_pem() -> bytes:
    return _key_pem(ec.generate_private_key(ec.SECP256R1()))


def make_ca(common_name: str = "shipmate-ca", days: int = 3650) -> tuple[bytes, bytes]:
    """A self-signed CA certificate and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    name = _name(common_name)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return _cert_pem(cert), _key_pem(key)


def _sign_leaf(ca_cert_pem: bytes, ca_key_pem: bytes, subject: x509.Name, public_key, seconds: int,
               client: bool, server: bool, dns_names: Iterable[str] = (),
               ip_addresses: Iterable[str] = ()) -> bytes:
    if seconds <= 0:
        raise ValueError(f"certificate lifetime must be positive, got {seconds} seconds")
    ca_cert = _load_cert(ca_cert_pem)
    ca_key = _load_key(ca_key_pem)
    now = _now()
    not_after = min(now + datetime.timedelta(seconds=seconds), ca_cert.not_valid_after_utc)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(ca_cert.subject)
               .public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - CLOCK_SKEW)
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dict.fromkeys(dns_names)]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(ip_addresses)]
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return _cert_pem(builder.sign(ca_key, hashes.SHA256()))


def issue(ca_cert_pem: bytes, ca_key_pem: bytes, common_name: str, organizations: Iterable[str] = (),
          dns_names: Iterable[str] = (), ip_addresses: Iterable[str] = (), server: bool = False,
          client: bool = False, seconds: int = 365 * 86400, key_pem: bytes | None = None) -> tuple[bytes, bytes]:
    """A certificate signed by the CA (never outliving it) and its key: `key_pem`, or a new one."""
    key_pem = key_pem or new_key_pem()
    public_key = _load_key(key_pem).public_key()
    cert_pem = _sign_leaf(ca_cert_pem, ca_key_pem, _name(common_name, organizations), public_key, seconds,
                          client, server, dns_names, ip_addresses)
    return cert_pem, key_pem


def make_csr(key_pem: bytes, common_name: str, organizations: Iterable[str] = (), dns_names: Iterable[str] = (),
             ip_addresses: Iterable[str] = ()) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(common_name, organizations))
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dict.fromkeys(dns_names)]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(ip_addresses)]
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    csr = builder.sign(_load_key(key_pem), hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def _load_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise ValueError(f"not a PEM certificate request: {exc}") from None
    if not csr.is_signature_valid:
        raise ValueError("the certificate request's signature does not match its public key")
    return csr


def csr_subject(csr_pem: bytes) -> tuple[str, tuple[str, ...]]:
    """The CSR's CN and O's; ValueError when it is not a valid, self-consistent PEM CSR."""
    return _subject_of(_load_csr(csr_pem).subject)


def sign_csr(ca_cert_pem: bytes, ca_key_pem: bytes, csr_pem: bytes, seconds: int, client: bool = True,
             server: bool = False) -> bytes:
    """A certificate for the CSR's subject and public key; extensions the CSR asks for are ignored."""
    csr = _load_csr(csr_pem)
    return _sign_leaf(ca_cert_pem, ca_key_pem, csr.subject, csr.public_key(), seconds, client, server)


def sign_csr_der(ca_cert_pem: bytes, ca_key_pem: bytes, csr_der: bytes, seconds: int, client: bool, server: bool,
                 dns_names: Iterable[str] = (), ip_addresses: Iterable[str] = ()) -> bytes:
    """A certificate for the subject and public key of a PKCS#10 request (DER) a caller already parsed and
    checked: the API server's signer passes the very bytes its checks read, with the SANs they allowed."""
    csr = x509.load_der_x509_csr(csr_der)
    if not csr.is_signature_valid:
        raise ValueError("the certificate request's signature does not match its public key")
    return _sign_leaf(ca_cert_pem, ca_key_pem, csr.subject, csr.public_key(), seconds, client, server, dns_names,
                      ip_addresses)


def cert_subject(pem_or_der: bytes) -> tuple[str, tuple[str, ...]]:
    return _subject_of(_load_cert(pem_or_der).subject)


def cert_validity(pem: bytes) -> tuple[datetime.datetime, datetime.datetime]:
    cert = _load_cert(pem)
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def cert_sans(pem: bytes) -> tuple[set[str], set[str]]:
    """The certificate's DNS names and IP addresses (normalized text)."""
    try:
        names = _load_cert(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return (set(names.get_values_for_type(x509.DNSName)),
            {str(ip) for ip in names.get_values_for_type(x509.IPAddress)})


def ca_cert_hash(ca_cert_pem: bytes) -> str:
    """kubeadm's --discovery-token-ca-cert-hash: sha256 of the CA's SubjectPublicKeyInfo (DER)."""
    spki = _load_cert(ca_cert_pem).public_key().public_bytes(serialization.Encoding.DER,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def verify_issued_by(cert_pem: bytes, ca_cert_pem: bytes) -> bool:
    """Whether the CA signed this certificate and it is within its validity period now."""
    try:
        cert, ca_cert = _load_cert(cert_pem), _load_cert(ca_cert_pem)
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_before_utc <= _now() <= cert.not_valid_after_utc
