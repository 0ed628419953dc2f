"""Authentication, node authorization and NodeRestriction on a real `shipmate server`, driven by the real
kubectl and raw HTTPS: anonymous → 401; a node's client certificate (issued from the server's CA) writes its
own Node and its pods' status but gets 403 for another node and another node's pod, and for its own taints
and restricted labels (the node lifecycle controller derives taints from the conditions it reports); static
bearer tokens; impersonation (`kubectl --as`)."""
from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from shipmate import pki
from tests.integration.test_apiserver_kubectl import Server
from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
                "reason": "Unauthorized", "code": 401}
TOKENS = 'alice-token-0123456789,alice,uid-alice,"dev,qa"\n'


class Identity:
    """A client certificate signed by the server's CA, as a kubeconfig for kubectl and an SSL context."""

    def __init__(self, server: Server, directory: str, common_name: str, organizations: tuple[str, ...] = ()):
        os.makedirs(directory, exist_ok=True)
        self.server = server
        self.ca_path = os.path.join(server.data_dir, "pki", "ca.crt")
        self.cert_path = os.path.join(directory, "client.crt")
        self.key_path = os.path.join(directory, "client.key")
        user = {}
        if common_name:  # else: no credentials at all
            with open(self.ca_path, "rb") as ca, open(os.path.join(server.data_dir, "pki", "ca.key"), "rb") as ca_key:
                cert, key_pem = pki.issue(ca.read(), ca_key.read(), common_name, organizations, client=True)
            for path, data in ((self.cert_path, cert), (self.key_path, key_pem)):
                with open(path, "wb") as out:
                    out.write(data)
            user = {"client-certificate": self.cert_path, "client-key": self.key_path}
        self.kubeconfig = os.path.join(directory, "kubeconfig")
        with open(self.kubeconfig, "w") as out:
            json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "c",
                       "clusters": [{"name": "c", "cluster": {"server": server.url,
                                                             "certificate-authority": self.ca_path}}],
                       "users": [{"name": "u", "user": user}],
                       "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}, out)
        self.context = ssl.create_default_context(cafile=self.ca_path)
        if common_name:
            self.context.load_cert_chain(self.cert_path, self.key_path)

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, "--cache-dir",
                               os.path.dirname(self.kubeconfig) + "/cache", *args],
                              input=input, capture_output=True, text=True, timeout=30)

    def request(self, method: str, path: str, body=None, content_type: str = "application/merge-patch+json",
                headers: dict[str, str] | None = None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server.url + path, data=data, method=method,
                                     headers={**({"Content-Type": content_type} if data else {}), **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.context) as response:
                text = response.read().decode()
                return response.status, json.loads(text) if text.startswith("{") else text
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read().decode())


def node(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


def pod(name: str, node_name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "busybox"}], **spec}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One server for the module: nodes n1, n2; pod p1 on n1 (uses Secret s1), pod p2 on n2."""
    tmp = tmp_path_factory.mktemp("auth")
    tokens = tmp / "tokens.csv"
    tokens.write_text(TOKENS)
    server = Server(tmp)
    server.extra_args = ["--token-auth-file", str(tokens)]
    server.start()
    try:
        for name in ("n1", "n2"):
            assert server.request("POST", "/api/v1/nodes", node(name))[0] == 201
        assert server.request("POST", "/api/v1/namespaces/default/secrets",
                              {"metadata": {"name": "s1"}, "stringData": {"k": "v"}})[0] == 201
        assert server.request("POST", "/api/v1/namespaces/default/pods",
                              pod("p1", "n1", volumes=[{"name": "v", "secret": {"secretName": "s1"}}]))[0] == 201
        assert server.request("POST", "/api/v1/namespaces/default/pods", pod("p2", "n2"))[0] == 201
        yield server, tmp
    finally:
        server.stop()


@pytest.fixture(scope="module")
def n1(cluster):
    server, tmp = cluster
    return Identity(server, str(tmp / "n1"), "system:node:n1", ("system:nodes",))


def test_without_credentials_401(cluster):
    server, tmp = cluster
    anonymous = Identity(server, str(tmp / "anonymous"), "")
    assert anonymous.request("GET", "/api/v1/pods") == (401, UNAUTHORIZED)
    assert anonymous.request("GET", "/api/v1/pods", headers={"Authorization": "Bearer abcdef.0123456789abcdef"}) == \
        (401, UNAUTHORIZED)
    assert anonymous.request("GET", "/version") == (401, UNAUTHORIZED)
    # kubectl with no user at all prompts for a basic-auth username; basic auth is no credential here either,
    # and neither is a made-up token.
    for credentials in (("--username=nobody",), ("--token=abcdef.0123456789abcdef",)):
        result = anonymous.kubectl(*credentials, "get", "pods")
        # (kubectl's discovery call words a 401 "the server has asked for the client to provide credentials")
        assert result.returncode != 0 and "error: You must be logged in to the server" in result.stderr
    raw = anonymous.kubectl("--token=abcdef.0123456789abcdef", "get", "--raw", "/api/v1/pods")
    assert raw.returncode != 0 and "error: You must be logged in to the server (Unauthorized)" in raw.stderr
    # A bootstrap token past its expiration: 401 that says so.
    expired = {"metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
               "type": "bootstrap.kubernetes.io/token",
               "stringData": {"token-id": "abcdef", "token-secret": "0123456789abcdef",
                              "expiration": "2020-01-01T00:00:00Z", "usage-bootstrap-authentication": "true"}}
    assert server.request("POST", "/api/v1/namespaces/kube-system/secrets", expired)[0] == 201
    code, body = anonymous.request("GET", "/api/v1/pods", headers={"Authorization": "Bearer abcdef.0123456789abcdef"})
    assert code == 401 and body["reason"] == "Unauthorized" and "abcdef expired at" in body["message"]
    # Health and the CA bundle stay open: probes and joining agents have no credentials yet.
    assert anonymous.request("GET", "/readyz") == (200, "ok")
    status, bundle = anonymous.request("GET", "/cacerts")
    assert status == 200 and bundle == open(anonymous.ca_path).read()


def test_node_writes_its_own_node_and_pods_only(cluster, n1):
    server, _ = cluster
    status = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                         "message": "ready"}]}}
    patched = n1.kubectl("patch", "node", "n1", "--subresource=status", "--type=merge", "-p", json.dumps(status))
    assert patched.returncode == 0, patched.stderr
    denied = n1.kubectl("patch", "node", "n2", "--subresource=status", "--type=merge", "-p", json.dumps(status))
    assert denied.returncode != 0
    assert 'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"' in denied.stderr
    assert n1.request("PATCH", "/api/v1/nodes/n2", {"metadata": {"labels": {"x": "y"}}})[0] == 403

    phase = {"status": {"phase": "Running"}}
    ok = n1.kubectl("patch", "pod", "p1", "--subresource=status", "--type=merge", "-p", json.dumps(phase))
    assert ok.returncode == 0, ok.stderr
    assert server.request("GET", "/api/v1/namespaces/default/pods/p1")[1]["status"]["phase"] == "Running"
    code, body = n1.request("PATCH", "/api/v1/namespaces/default/pods/p2/status", phase)
    assert code == 403 and body["reason"] == "Forbidden" and body["message"] == (
        'pods "p2" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself')
    assert server.request("GET", "/api/v1/namespaces/default/pods/p2")[1]["status"].get("phase") != "Running"
    # Deleting another node's pod, making a non-mirror pod, touching services: refused.
    assert n1.request("DELETE", "/api/v1/namespaces/default/pods/p2")[0] == 403
    code, body = n1.request("POST", "/api/v1/namespaces/default/pods", pod("sneaky", "n1"), "application/json")
    assert code == 403 and "can only create mirror pods" in body["message"]
    code, body = n1.request("POST", "/api/v1/namespaces/default/services",
                            {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}, "application/json")
    assert code == 403 and body["message"].startswith(
        'services is forbidden: User "system:node:n1" cannot create resource "services" in API group "" in the '
        'namespace "default"')
    # Reads a kubelet needs.
    # (a mirror pod another test made may still be terminating: the two pods of the fixture are what counts)
    assert {"pod/p1", "pod/p2"} <= set(n1.kubectl("get", "pods", "-A", "-o", "name").stdout.split())


def test_node_may_not_change_its_own_taints_or_restricted_labels(cluster, n1):
    server, _ = cluster
    server.kubectl("taint", "node", "n1", "dedicated=db:NoSchedule")
    server.kubectl("label", "node", "n1", "node-role.kubernetes.io/worker=")

    def taints() -> list[dict]:
        return server.request("GET", "/api/v1/nodes/n1")[1]["spec"].get("taints") or []
    before = taints()
    assert {"key": "dedicated", "value": "db", "effect": "NoSchedule"} in before
    for change in (("evil=1:NoSchedule",), ("dedicated-",)):
        refused = n1.kubectl("taint", "node", "n1", *change)
        assert refused.returncode != 0 and refused.stderr.strip() == (
            'Error from server (Forbidden): nodes "n1" is forbidden: node "n1" is not allowed to modify taints')
    code, body = n1.request("PATCH", "/api/v1/nodes/n1", {"spec": {"taints": []}},
                            "application/strategic-merge-patch+json")
    assert (code, body["reason"], body["message"]) == (
        403, "Forbidden", 'nodes "n1" is forbidden: node "n1" is not allowed to modify taints')
    for label in ("node-role.kubernetes.io/worker-", "node-restriction.kubernetes.io/pci=yes"):
        refused = n1.kubectl("label", "--overwrite", "node", "n1", label)
        assert refused.returncode != 0 and refused.stderr.strip() == (
            'Error from server (Forbidden): nodes "n1" is forbidden: is not allowed to modify labels: '
            + label.rstrip("-").split("=")[0])
    assert taints() == before
    assert n1.kubectl("label", "--overwrite", "node", "n1", "team=b").returncode == 0  # outside kubernetes.io: allowed

    # Conditions are the node's to report: MemoryPressure=True → the control plane adds the taint.
    pressure = {"status": {"conditions": [{"type": "MemoryPressure", "status": "True",
                                           "reason": "KubeletHasInsufficientMemory"}]}}
    patched = n1.kubectl("patch", "node", "n1", "--subresource=status", "-p", json.dumps(pressure))
    assert patched.returncode == 0, patched.stderr
    memory_taint = {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}
    wait_for(lambda: memory_taint in taints(), 10, "the memory-pressure taint from the node lifecycle controller")
    pressure["status"]["conditions"][0].update(status="False", reason="KubeletHasSufficientMemory")
    assert n1.request("PATCH", "/api/v1/nodes/n1/status", pressure, "application/strategic-merge-patch+json")[0] == 200
    wait_for(lambda: memory_taint not in taints(), 10, "the memory-pressure taint to go")
    assert {"key": "dedicated", "value": "db", "effect": "NoSchedule"} in taints()


def test_node_reads_only_secrets_of_its_pods(cluster, n1):
    server, tmp = cluster
    assert n1.request("GET", "/api/v1/namespaces/default/secrets/s1")[0] == 200
    n2 = Identity(server, str(tmp / "n2"), "system:node:n2", ("system:nodes",))
    code, body = n2.request("GET", "/api/v1/namespaces/default/secrets/s1")
    assert code == 403 and "no relationship found between node 'n2' and this object" in body["message"]
    assert n1.request("GET", "/api/v1/namespaces/default/secrets")[0] == 403


def test_node_lease_and_mirror_pod(cluster, n1):
    server, _ = cluster
    lease = {"metadata": {"name": "n1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "n1"}}
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    assert n1.request("POST", path, lease, "application/json")[0] == 201
    other = {**lease, "metadata": {"name": "n2", "namespace": "kube-node-lease"}}
    assert n1.request("POST", path, other, "application/json")[0] == 403
    uid = server.request("GET", "/api/v1/nodes/n1")[1]["metadata"]["uid"]
    mirror = pod("static-web-n1", "n1")
    mirror["metadata"].update(annotations={"kubernetes.io/config.mirror": "h1"},
                              ownerReferences=[{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": uid,
                                                               "controller": True}])
    code, body = n1.request("POST", "/api/v1/namespaces/default/pods", mirror, "application/json")
    assert code == 201, body
    assert n1.request("DELETE", "/api/v1/namespaces/default/pods/static-web-n1")[0] == 200


def test_static_token_and_impersonation(cluster):
    server, tmp = cluster
    # A token from --token-auth-file authenticates; RBAC grants alice nothing to list pods.
    token = Identity(server, str(tmp / "token"), "")
    whoami = token.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                           {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                           "application/json", {"Authorization": "Bearer alice-token-0123456789"})
    assert whoami[0] == 201 and whoami[1]["status"]["userInfo"]["username"] == "alice"
    assert set(whoami[1]["status"]["userInfo"]["groups"]) == {"dev", "qa", "system:authenticated"}
    code, body = token.request("GET", "/api/v1/namespaces/default/pods",
                               headers={"Authorization": "Bearer alice-token-0123456789"})
    assert code == 403 and body["message"] == ('pods is forbidden: User "alice" cannot list resource "pods" in API '
                                               'group "" in the namespace "default"')
    # The admin may impersonate: as node n1 it gets exactly n1's rights.
    as_n1 = ("--as=system:node:n1", "--as-group=system:nodes")
    patch = json.dumps({"metadata": {"labels": {"team": "a"}}})
    denied = server.kubectl(*as_n1, "patch", "node", "n2", "--type=merge", "-p", patch, check=False)
    assert denied.returncode != 0 and 'node "n1" is not allowed to modify node "n2"' in denied.stderr
    assert server.kubectl(*as_n1, "patch", "node", "n1", "--type=merge", "-p", patch).returncode == 0
    whoami = json.loads(server.kubectl(*as_n1, "auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == "system:node:n1"
    # As a user RBAC grants nothing: discovery works (system:discovery), the list is refused as upstream words it.
    refused = server.kubectl("--as=carol", "get", "pods", check=False)
    assert refused.returncode != 0 and refused.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "carol" cannot list resource "pods" in API group "" '
        'in the namespace "default"')
    # alice may not impersonate anyone.
    code, body = token.request("GET", "/api/v1/namespaces/default/pods",
                               headers={"Authorization": "Bearer alice-token-0123456789", "Impersonate-User": "bob"})
    assert code == 403 and body["message"] == ('users "bob" is forbidden: User "alice" cannot impersonate resource '
                                               '"users" in API group "" at the cluster scope')
