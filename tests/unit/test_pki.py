"""shipmate.pki: CA, issued certificates, CSRs, kubeadm's CA hash, and that Python's TLS accepts them."""
from __future__ import annotations

import datetime
import hashlib
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from shipmate import pki


@pytest.fixture(scope="module")
def ca() -> tuple[bytes, bytes]:
    return pki.make_ca()


def _load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _usages(pem: bytes) -> set:
    try:
        return set(_load(pem).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return set()


def test_new_key_is_p256():
    key = serialization.load_pem_private_key(pki.new_key_pem(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


def test_ca_is_self_signed_ca_with_its_lifetime(ca):
    cert_pem, key_pem = ca
    cert = _load(cert_pem)
    assert cert.subject == cert.issuer and pki.cert_subject(cert_pem) == ("shipmate-ca", ())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    not_before, not_after = pki.cert_validity(cert_pem)
    assert not_before.tzinfo is not None and 3649 <= (not_after - not_before).days <= 3651
    assert pki.verify_issued_by(cert_pem, cert_pem)
    assert isinstance(serialization.load_pem_private_key(key_pem, None), ec.EllipticCurvePrivateKey)


def test_issue_serving_certificate_with_sans(ca):
    cert_pem, key_pem = pki.issue(*ca, "kube-apiserver", dns_names=["localhost", "kubernetes", "localhost"],
                                  ip_addresses=["127.0.0.1", "::1"], server=True, seconds=3600)
    assert pki.cert_sans(cert_pem) == ({"localhost", "kubernetes"}, {"127.0.0.1", "::1"})
    assert _usages(cert_pem) == {ExtendedKeyUsageOID.SERVER_AUTH}
    assert not _load(cert_pem).extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    not_before, not_after = pki.cert_validity(cert_pem)
    assert datetime.timedelta(seconds=3600) <= not_after - not_before <= datetime.timedelta(seconds=3600 + 600)
    assert pki.verify_issued_by(cert_pem, ca[0])
    assert _load(cert_pem).public_key().public_numbers() == \
        serialization.load_pem_private_key(key_pem, None).public_key().public_numbers()


def test_issue_client_certificate_keeps_a_given_key_and_subject(ca):
    key_pem = pki.new_key_pem()
    cert_pem, returned_key = pki.issue(*ca, "kubernetes-admin", ["system:masters", "team"], client=True,
                                       key_pem=key_pem)
    assert returned_key == key_pem
    assert pki.cert_subject(cert_pem) == ("kubernetes-admin", ("system:masters", "team"))
    assert _usages(cert_pem) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    der = _load(cert_pem).public_bytes(serialization.Encoding.DER)
    assert pki.cert_subject(der) == pki.cert_subject(cert_pem)
    assert pki.cert_sans(cert_pem) == (set(), set())


def test_issued_certificates_never_outlive_the_ca():
    short_ca = pki.make_ca(days=1)
    cert_pem, _ = pki.issue(*short_ca, "x", client=True, seconds=365 * 86400)
    assert pki.cert_validity(cert_pem)[1] <= pki.cert_validity(short_ca[0])[1]
    with pytest.raises(ValueError):
        pki.issue(*short_ca, "x", seconds=0)


def test_verify_issued_by_rejects_another_ca(ca):
    other = pki.make_ca("other")
    cert_pem, _ = pki.issue(*other, "node", client=True)
    assert pki.verify_issued_by(cert_pem, other[0])
    assert not pki.verify_issued_by(cert_pem, ca[0])
    assert not pki.verify_issued_by(b"garbage", ca[0])


def test_csr_round_trip_and_signing(ca):
    key_pem = pki.new_key_pem()
    csr_pem = pki.make_csr(key_pem, "system:node:n1", ["system:nodes"])
    assert csr_pem.startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    assert pki.csr_subject(csr_pem) == ("system:node:n1", ("system:nodes",))
    cert_pem = pki.sign_csr(*ca, csr_pem, seconds=7200)
    assert pki.cert_subject(cert_pem) == ("system:node:n1", ("system:nodes",))
    assert _usages(cert_pem) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert pki.verify_issued_by(cert_pem, ca[0])
    assert _load(cert_pem).public_key().public_numbers() == \
        serialization.load_pem_private_key(key_pem, None).public_key().public_numbers()
    both = pki.sign_csr(*ca, csr_pem, seconds=7200, client=True, server=True)
    assert _usages(both) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}


@pytest.mark.parametrize("bad", [b"", b"not a csr",
                                 b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"])
def test_bad_csr_is_a_value_error(bad):
    with pytest.raises(ValueError):
        pki.csr_subject(bad)


def test_csr_whose_signature_does_not_match_is_refused(ca):
    csr_pem = pki.make_csr(pki.new_key_pem(), "system:node:n1")
    der = bytearray(x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF   # inside the signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(ValueError, match="signature"):
        pki.csr_subject(tampered)
    with pytest.raises(ValueError):
        pki.sign_csr(*ca, tampered, seconds=60)


def test_ca_cert_hash_is_sha256_of_the_subject_public_key_info(ca):
    spki = _load(ca[0]).public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pki.ca_cert_hash(ca[0]) == "sha256:" + hashlib.sha256(spki).hexdigest()
    assert pki.ca_cert_hash(ca[0]) != pki.ca_cert_hash(pki.make_ca()[0])


def test_python_tls_accepts_the_certificates_both_ways(ca, tmp_path):
    """A TLS handshake over a socket pair: the client verifies the server for 127.0.0.1 against the CA,
    the server verifies the client certificate and sees its subject."""
    server_cert, server_key = pki.issue(*ca, "kube-apiserver", dns_names=["localhost"],
                                        ip_addresses=["127.0.0.1"], server=True)
    client_cert, client_key = pki.issue(*ca, "kubernetes-admin", ["system:masters"], client=True)
    for name, data in {"ca.crt": ca[0], "s.crt": server_cert, "s.key": server_key,
                       "c.crt": client_cert, "c.key": client_key}.items():
        (tmp_path / name).write_bytes(data)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "s.crt", tmp_path / "s.key")
    server_context.load_verify_locations(tmp_path / "ca.crt")
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    client_context.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
    left, right = socket.socketpair()
    peer: dict = {}

    def serve() -> None:
        with server_context.wrap_socket(left, server_side=True) as tls:
            peer.update(tls.getpeercert())

    thread = threading.Thread(target=serve)
    thread.start()
    with client_context.wrap_socket(right, server_hostname="127.0.0.1") as tls:
        tls.getpeercert()
    thread.join(5)
    subject = dict(item for rdn in peer["subject"] for item in rdn)
    assert subject == {"commonName": "kubernetes-admin", "organizationName": "system:masters"}
