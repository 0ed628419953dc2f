"""Join tokens and certificate signing on a real `shipmate server`: `shipmate token`, a CSR posted with the
bearer token, auto-approval and issue by the cluster CA, expired tokens, `kubectl get csr` and
`kubectl certificate approve|deny`."""
from __future__ import annotations

import base64
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml

from shipmate import pki
from tests.integration.test_apiserver_kubectl import REPO, Server
from tests.support import wait_for

pytestmark = pytest.mark.integration

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
TOKEN_FORM = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")


@pytest.fixture(scope="module")
def server(module_server: Server) -> Server:
    return module_server


def shipmate_token(server, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "shipmate.cli", "token", *args, "--kubeconfig", server.kubeconfig],
                            cwd=REPO, capture_output=True, text=True, timeout=30)
    if check:
        assert result.returncode == 0, result.stderr
    return result


class Caller:
    """HTTPS to the server trusting only <data-dir>/pki/ca.crt, as a bearer token or a client certificate."""

    def __init__(self, server, token: str | None = None, cert_and_key: tuple[str, str] | None = None):
        self.url = server.url
        self.context = ssl.create_default_context(cafile=os.path.join(server.data_dir, "pki", "ca.crt"))
        if cert_and_key:
            self.context.load_cert_chain(*cert_and_key)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def __call__(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={**self.headers, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


def node_csr(name: str, node: str, key: bytes, **spec) -> dict:
    request = pki.make_csr(key, f"system:node:{node}", ["system:nodes"])
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": base64.b64encode(request).decode(),
                     "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                     "usages": ["digital signature", "client auth"], **spec}}


def issued_certificate(call: Caller, name: str) -> bytes:
    def issued():
        code, csr = call("GET", f"{CSRS}/{name}")
        assert code == 200, csr
        return csr.get("status", {}).get("certificate")
    return base64.b64decode(wait_for(issued, timeout=15, what=f"a certificate for {name}"))


def test_join_token_gets_a_node_certificate_that_renews_itself(server, tmp_path):
    created = shipmate_token(server, "create", "--ttl", "10m", "--description", "node x")
    token = created.stdout.strip()
    assert TOKEN_FORM.match(token), created.stdout
    listed = shipmate_token(server, "list").stdout.splitlines()
    assert listed[0].split() == ["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA", "GROUPS"]
    row = next(line for line in listed if line.startswith(token))
    assert re.search(r"\s(9m|10m)\s.*\sauthentication\s+node x\s+<none>$", row), row

    as_token = Caller(server, token=token)
    key = pki.new_key_pem()
    code, csr = as_token("POST", CSRS, node_csr("node-csr-x", "x", key, expirationSeconds=3600))
    assert code == 201, csr
    assert csr["spec"]["username"] == f"system:bootstrap:{token.split('.')[0]}"
    assert "system:bootstrappers" in csr["spec"]["groups"]

    cert = issued_certificate(as_token, "node-csr-x")
    ca = open(os.path.join(server.data_dir, "pki", "ca.crt"), "rb").read()
    assert pki.verify_issued_by(cert, ca)
    assert pki.cert_subject(cert) == ("system:node:x", ("system:nodes",))
    not_before, not_after = pki.cert_validity(cert)
    assert 3600 <= (not_after - not_before).total_seconds() <= 3600 + 600
    _, csr = as_token("GET", f"{CSRS}/node-csr-x")
    approved = csr["status"]["conditions"][0]
    assert (approved["type"], approved["reason"]) == ("Approved", "AutoApproved")

    # the issued certificate is the node's identity; with it the node renews its own certificate
    cert_file, key_file = tmp_path / "node.crt", tmp_path / "node.key"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    as_node = Caller(server, cert_and_key=(str(cert_file), str(key_file)))
    code, renewal = as_node("POST", CSRS, node_csr("node-csr-x-renew", "x", pki.new_key_pem()))
    assert code == 201, renewal
    assert renewal["spec"]["username"] == "system:node:x"
    renewed = issued_certificate(as_node, "node-csr-x-renew")
    assert pki.cert_subject(renewed) == ("system:node:x", ("system:nodes",))
    _, renewal = as_node("GET", f"{CSRS}/node-csr-x-renew")
    assert renewal["status"]["conditions"][0]["message"] == \
        "Auto approving self kubelet client certificate after SubjectAccessReview."

    shipmate_token(server, "delete", token)
    code, status = as_token("GET", f"{CSRS}/node-csr-x")
    assert code == 401, status


def test_expired_token_is_refused_with_a_clear_message(server):
    token = shipmate_token(server, "create", "--ttl", "1s").stdout.strip()
    time.sleep(2.1)
    code, status = Caller(server, token=token)("POST", CSRS, node_csr("late", "late", pki.new_key_pem()))
    assert code == 401
    token_id = token.split(".")[0]
    assert status["kind"] == "Status" and status["reason"] == "Unauthorized"
    assert re.fullmatch(rf"bootstrap token {token_id} expired at \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ: create a new "
                        r"one with `shipmate token create`", status["message"]), status["message"]
    code, _ = Caller(server, token=token.replace(token[-1], "0" if token[-1] != "0" else "1"))("GET", CSRS)
    assert code == 401


def test_print_join_command(server):
    line = shipmate_token(server, "create", "--print-join-command").stdout.strip()
    ca = open(os.path.join(server.data_dir, "pki", "ca.crt"), "rb").read()
    match = re.fullmatch(r"shipmate agent --server (\S+) --token ([a-z0-9]{6}\.[a-z0-9]{16}) --ca-cert-hash (\S+)",
                         line)
    assert match, line
    assert match.group(3) == pki.ca_cert_hash(ca)
    assert all(url.startswith("https://") and url.endswith(f":{server.port}") for url in match.group(1).split(","))


def client_csr_manifest(name: str, user: str, usages: list[str]) -> str:
    request = pki.make_csr(pki.new_key_pem(), user, ["devs"])
    return yaml.safe_dump({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                           "metadata": {"name": name},
                           "spec": {"request": base64.b64encode(request).decode(),
                                    "signerName": "kubernetes.io/kube-apiserver-client", "usages": usages,
                                    "expirationSeconds": 86400}})


def test_kubectl_get_approve_and_deny(server):
    server.kubectl("create", "-f", "-", input=client_csr_manifest("jane", "jane", ["client auth"]))
    server.kubectl("create", "-f", "-", input=client_csr_manifest("mallory", "mallory", ["client auth"]))
    table = server.kubectl("get", "csr").stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    jane = next(line for line in table if line.startswith("jane "))
    assert jane.split()[2:] == ["kubernetes.io/kube-apiserver-client", "kubernetes-admin", "24h", "Pending"]

    approved = server.kubectl("certificate", "approve", "jane")
    assert "certificatesigningrequest.certificates.k8s.io/jane approved" in approved.stdout
    server.kubectl("certificate", "deny", "mallory")

    def issued():
        return server.kubectl("get", "csr", "jane", "-o", "jsonpath={.status.certificate}").stdout
    cert = base64.b64decode(wait_for(issued, timeout=15, what="jane's certificate"))
    ca = open(os.path.join(server.data_dir, "pki", "ca.crt"), "rb").read()
    assert pki.verify_issued_by(cert, ca) and pki.cert_subject(cert) == ("jane", ("devs",))
    rows = {line.split()[0]: line.split()[-1] for line in server.kubectl("get", "csr").stdout.splitlines()[1:]}
    assert rows["jane"] == "Approved,Issued" and rows["mallory"] == "Denied"
    denied = json.loads(server.kubectl("get", "csr", "mallory", "-o", "json").stdout)
    assert "certificate" not in denied["status"]
    assert denied["status"]["conditions"][0]["reason"] == "KubectlDeny"


def test_invalid_csr_is_refused_by_kubectl(server):
    manifest = yaml.safe_load(client_csr_manifest("bad", "bad", ["client auth", "flying"]))
    manifest["spec"]["expirationSeconds"] = 60
    result = server.kubectl("create", "-f", "-", input=yaml.safe_dump(manifest), check=False)
    assert result.returncode != 0
    assert 'spec.usages[1]: Unsupported value: "flying"' in result.stderr
    assert "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds" \
        in result.stderr
