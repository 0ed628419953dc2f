"""The API server proxies logs/exec only to a node server presenting that node's kubelet-serving certificate.

Before, a node's serving certificate was self-signed and never verified, so whoever answered at a Node's
address:port (a node that rewrote its own status, or anyone on the path) received the admin's exec and logs
requests. Now the server verifies the cluster CA, the dialed address and the subject system:node:<node>
before sending anything: a fake node server with a self-signed certificate, or with the cluster CA's
certificate for another node, receives no request and the client gets a 500. A kubelet-serving CSR naming
addresses the node does not have stays unapproved."""
from __future__ import annotations

import base64
import json
import os
import time

import pytest

from shipmate import pki
from tests.integration.test_apiserver_kubectl import NODE, POD, FakeNodeServer, Server
from tests.integration.test_csr_tokens import CSRS, Caller

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(module_server: Server) -> Server:
    return module_server


def cluster_ca(server: Server) -> tuple[bytes, bytes]:
    pki_dir = os.path.join(server.data_dir, "pki")
    return open(os.path.join(pki_dir, "ca.crt"), "rb").read(), open(os.path.join(pki_dir, "ca.key"), "rb").read()


def node_with_pod(server: Server, node_name: str, port: int, pod_name: str) -> None:
    node = json.loads(json.dumps(NODE))
    node["metadata"]["name"] = node_name
    node["status"]["addresses"] = [{"type": "InternalIP", "address": "127.0.0.1"}]
    node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": port}}
    assert server.request("POST", "/api/v1/nodes", node)[0] == 201
    pod = json.loads(json.dumps(POD))
    pod["metadata"]["name"] = pod_name
    pod["spec"]["nodeName"] = node_name
    assert server.request("POST", "/api/v1/namespaces/default/pods", pod)[0] == 201


@pytest.mark.parametrize("impostor", ["self-signed", "another-node", "right-name-wrong-address"])
def test_a_node_server_without_that_nodes_serving_certificate_gets_no_request(server, tmp_path, impostor):
    ca = cluster_ca(server)
    serving = {
        "self-signed": None,  # FakeNodeServer's default: its own CA, IP SAN 127.0.0.1
        "another-node": pki.issue(*ca, "system:node:other", ("system:nodes",), ip_addresses=["127.0.0.1"],
                                  server=True),
        "right-name-wrong-address": pki.issue(*ca, f"system:node:{impostor}", ("system:nodes",),
                                              ip_addresses=["127.0.0.2"], server=True),
    }[impostor]
    with FakeNodeServer(tmp_path, os.path.join(server.data_dir, "pki", "ca.crt"), serving) as fake:
        node_with_pod(server, impostor, fake.port, f"pod-{impostor}")
        code, status = server.request("GET", f"/api/v1/namespaces/default/pods/pod-{impostor}/log")
        assert code == 500, status
        assert (status["kind"], status["reason"]) == ("Status", "InternalError")
        assert status["message"].startswith(f'Get "https://127.0.0.1:{fake.port}/containerLogs/default/'
                                            f'pod-{impostor}/web": '), status["message"]
        assert "certificate" in status["message"].lower(), status["message"]
        logs = server.kubectl("logs", f"pod-{impostor}", check=False)
        assert logs.returncode != 0 and "Error from server" in logs.stderr, logs.stderr
        executed = server.kubectl("exec", f"pod-{impostor}", "--", "cat", "/etc/shadow", check=False)
        assert executed.returncode != 0 and "Error from server (InternalError)" in executed.stderr, executed.stderr
        assert "certificate" in executed.stderr.lower(), executed.stderr
        assert fake.received == []   # not one request (nor its command line) reached the impostor


def test_the_nodes_own_serving_certificate_is_accepted(server, tmp_path):
    serving = pki.issue(*cluster_ca(server), "system:node:honest", ("system:nodes",), ip_addresses=["127.0.0.1"],
                        server=True)
    with FakeNodeServer(tmp_path, os.path.join(server.data_dir, "pki", "ca.crt"), serving) as fake:
        node_with_pod(server, "honest", fake.port, "pod-honest")
        logs = server.kubectl("logs", "pod-honest").stdout
    assert logs == "/containerLogs/default/pod-honest/web from kube-apiserver-kubelet-client/system:masters\n"
    assert fake.received == ["/containerLogs/default/pod-honest/web"]


def node_caller(server: Server, tmp_path, node_name: str) -> Caller:
    cert, key = pki.issue(*cluster_ca(server), f"system:node:{node_name}", ("system:nodes",), client=True)
    (tmp_path / "node.crt").write_bytes(cert)
    (tmp_path / "node.key").write_bytes(key)
    return Caller(server, cert_and_key=(str(tmp_path / "node.crt"), str(tmp_path / "node.key")))


def serving_csr(name: str, node_name: str, ips: list[str]) -> dict:
    request = pki.make_csr(pki.new_key_pem(), f"system:node:{node_name}", ["system:nodes"], ip_addresses=ips)
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": base64.b64encode(request).decode(), "signerName": "kubernetes.io/kubelet-serving",
                     "usages": ["digital signature", "server auth"]}}


def test_serving_csr_for_addresses_the_node_lacks_stays_unapproved(server, tmp_path):
    node_with_pod(server, "csr-node", 10250, "pod-csr-node")
    as_node = node_caller(server, tmp_path, "csr-node")
    code, created = as_node("POST", CSRS, serving_csr("serving-foreign", "csr-node", ["127.0.0.1", "10.9.9.9"]))
    assert code == 201, created
    code, created = as_node("POST", CSRS, serving_csr("serving-own", "csr-node", ["127.0.0.1"]))
    assert code == 201, created
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not as_node("GET", f"{CSRS}/serving-own")[1]["status"].get("certificate"):
        time.sleep(0.2)
    own = as_node("GET", f"{CSRS}/serving-own")[1]
    issued = base64.b64decode(own["status"]["certificate"])
    assert pki.cert_subject(issued) == ("system:node:csr-node", ("system:nodes",))
    assert pki.cert_sans(issued) == (set(), {"127.0.0.1"})
    foreign = as_node("GET", f"{CSRS}/serving-foreign")[1]   # the controllers have looked at it by now
    assert not foreign["status"].get("conditions") and not foreign["status"].get("certificate"), foreign
