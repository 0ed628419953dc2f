"""A CSR whose spec.request holds two PEM blocks must not be validated as one block and signed as another.

The attack: a joining node (bootstrap token) posts a kubelet client request made of a first block naming
`O=system:masters` (its BEGIN line ends in blanks, which one PEM reader skipped) followed by an honest
`O=system:nodes` block. Validation and the auto-approver used to read the second block, the signer the
first: the node got a system:masters certificate. Now the server decodes spec.request once and refuses
anything but one CERTIFICATE REQUEST block with a 422, storing nothing."""
from __future__ import annotations

import base64
import os
import time

import pytest

from shipmate import pki
from tests.integration.test_apiserver_kubectl import Server
from tests.integration.test_csr_tokens import CSRS, Caller, shipmate_token

pytestmark = pytest.mark.integration

NAME = "node-csr-two-blocks"


@pytest.fixture(scope="module")
def server(module_server: Server) -> Server:
    return module_server


def two_block_request(node: str) -> bytes:
    masters = pki.make_csr(pki.new_key_pem(), f"system:node:{node}", ["system:masters"])
    first_line, rest = masters.split(b"\n", 1)
    honest = pki.make_csr(pki.new_key_pem(), f"system:node:{node}", ["system:nodes"])
    return first_line + b" \t\n" + rest + honest


def issued_subjects(server: Server) -> list[tuple[str, tuple[str, ...]]]:
    code, listed = server.request("GET", CSRS)
    assert code == 200, listed
    return [pki.cert_subject(base64.b64decode(csr["status"]["certificate"])) for csr in listed["items"]
            if (csr.get("status") or {}).get("certificate")]


def test_two_block_request_from_a_joining_node_is_refused_and_never_signed(server):
    token = shipmate_token(server, "create", "--ttl", "10m").stdout.strip()
    as_bootstrapper = Caller(server, token=token)
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": NAME},
            "spec": {"request": base64.b64encode(two_block_request("evil")).decode(),
                     "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                     "usages": ["digital signature", "client auth"]}}
    code, status = as_bootstrapper("POST", CSRS, body)
    assert code == 422, status
    assert (status["kind"], status["reason"]) == ("Status", "Invalid")
    assert status["message"].startswith(
        f'CertificateSigningRequest.certificates.k8s.io "{NAME}" is invalid: spec.request: Invalid value: '
        "[]byte{0x2d, 0x2d, 0x2d, 0x2d, 0x2d, 0x42, 0x45, 0x47, 0x49, 0x4e"), status["message"]
    assert status["message"].endswith(": must contain only one PEM block"), status["message"]
    assert status["details"]["causes"][0]["field"] == "spec.request"

    # nothing stored, and after the controllers had time to act no system:masters certificate exists
    code, _ = server.request("GET", f"{CSRS}/{NAME}")
    assert code == 404
    time.sleep(3)
    assert all("system:masters" not in organizations for _, organizations in issued_subjects(server))

    # the same node's honest request still works
    key = pki.new_key_pem()
    honest = dict(body, spec=dict(body["spec"], request=base64.b64encode(
        pki.make_csr(key, "system:node:evil", ["system:nodes"])).decode()))
    code, created = as_bootstrapper("POST", CSRS, honest)
    assert code == 201, created
    ca = open(os.path.join(server.data_dir, "pki", "ca.crt"), "rb").read()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and ("system:node:evil", ("system:nodes",)) not in issued_subjects(server):
        time.sleep(0.2)
    assert ("system:node:evil", ("system:nodes",)) in issued_subjects(server)
    assert all(pki.verify_issued_by(base64.b64decode(csr["status"]["certificate"]), ca)
               for csr in server.request("GET", CSRS)[1]["items"] if csr["status"].get("certificate"))
