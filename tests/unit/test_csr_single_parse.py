"""spec.request is decoded by one parser (apiserver/certificates/requests.py): exactly one CERTIFICATE REQUEST
PEM block, nothing else but surrounding whitespace; the signer signs the DER that parser returned."""
from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from apiserver.certificates.requests import NO_HEADERS, NOT_A_CSR, ONLY_ONE_BLOCK, parse_request, single_request_der
from apiserver.kinds.csr_rules import validate_csr, validation_options
from shipmate import pki

KEY = pki.new_key_pem()
NODE = pki.make_csr(KEY, "system:node:n1", ("system:nodes",))
MASTERS = pki.make_csr(pki.new_key_pem(), "system:node:n1", ("system:masters",))


def with_trailing_blank_on_begin(pem: bytes) -> bytes:
    first, rest = pem.split(b"\n", 1)
    return first + b"  \t\n" + rest


def test_one_block_parses_and_keeps_its_der():
    parsed = parse_request(NODE)
    assert (parsed.common_name, parsed.organizations) == ("system:node:n1", ("system:nodes",))
    assert parsed.der == x509.load_pem_x509_csr(NODE).public_bytes(Encoding.DER)


def test_surrounding_whitespace_and_blank_line_ends_are_fine():
    assert parse_request(b"\n  " + with_trailing_blank_on_begin(NODE) + b"\n\n").organizations == ("system:nodes",)
    assert parse_request(NODE.replace(b"\n", b"\r\n")).common_name == "system:node:n1"


@pytest.mark.parametrize("pem", [
    with_trailing_blank_on_begin(MASTERS) + NODE,   # the attack: two readers, two different "first" blocks
    MASTERS + NODE,
    NODE + MASTERS,
    NODE + b"trailing text\n",
    b"explanatory text\n" + NODE,
])
def test_anything_besides_one_block_is_refused(pem):
    with pytest.raises(ValueError, match=ONLY_ONE_BLOCK):
        parse_request(pem)


@pytest.mark.parametrize("pem", [b"", b"garbage", pki.make_ca()[0],
                                 NODE.replace(b"-----END CERTIFICATE REQUEST-----", b""),
                                 NODE.replace(b"\n", b"!\n", 2)])
def test_not_a_certificate_request(pem):
    with pytest.raises(ValueError, match=NOT_A_CSR):
        parse_request(pem)


def test_pem_headers_are_refused():
    first, rest = NODE.split(b"\n", 1)
    with pytest.raises(ValueError, match=NO_HEADERS):
        single_request_der(first + b"\nProc-Type: 4,ENCRYPTED\n" + rest)


def test_validation_answers_the_two_block_request_as_upstream_shapes_it():
    obj = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "x"},
           "spec": {"request": base64.b64encode(with_trailing_blank_on_begin(MASTERS) + NODE).decode(),
                    "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                    "usages": ["digital signature", "client auth"]}}
    problems = [f"{p.field}: {p.message()}" for p in validate_csr(obj, validation_options(obj, None))]
    assert len(problems) == 1
    assert problems[0].startswith("spec.request: Invalid value: []byte{0x2d, 0x2d")
    assert problems[0].endswith(": " + ONLY_ONE_BLOCK)


def test_the_signed_certificate_is_for_the_parsed_der():
    ca_cert, ca_key = pki.make_ca()
    parsed = parse_request(NODE)
    cert = pki.sign_csr_der(ca_cert, ca_key, parsed.der, 3600, client=True, server=False)
    assert pki.cert_subject(cert) == ("system:node:n1", ("system:nodes",))
