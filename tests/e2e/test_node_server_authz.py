"""The agent's :10250 authorizes each request through a SubjectAccessReview (kubelet's Webhook mode):
a certificate of the cluster CA is not enough, its user needs nodes/<subresource> on this node.

Against the cluster `make up` started; client certificates are issued with the cluster CA's key."""
from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from shipmate import pki
from tests.e2e.cluster import TEST_IMAGE, Kubectl, node_server_ssl_context, unique_name
from tests.e2e.test_logs_exec import run_pod
from tests.support import wait_for

pytestmark = pytest.mark.e2e

NODE_SERVER = os.environ.get("SHIPMATE_NODE_SERVER", "https://127.0.0.1:10250")
CLUSTER_PKI = os.environ.get("SHIPMATE_CLUSTER_PKI", "/var/lib/shipmate/server/pki")


def client_context(tmp_path: Path, user: str, groups: list[str]) -> ssl.SSLContext:
    """TLS with a fresh client certificate of the cluster CA for `user` (the node's certificate is not checked)."""
    ca_cert = Path(CLUSTER_PKI, "ca.crt").read_bytes()
    ca_key = Path(CLUSTER_PKI, "ca.key").read_bytes()
    cert, key = pki.issue(ca_cert, ca_key, user, groups, client=True, seconds=3600)
    cert_file, key_file = tmp_path / f"{user.replace(':', '_')}.crt", tmp_path / f"{user.replace(':', '_')}.key"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def call(context: ssl.SSLContext, path: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(NODE_SERVER + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


@pytest.fixture
def log_pod(kubectl: Kubectl, namespace: str) -> str:
    name = unique_name("authz")
    run_pod(kubectl, namespace, name, [{"name": "app", "image": TEST_IMAGE,
                                        "command": ["sh", "-c", "echo authz-marker; sleep 3600"]}])
    wait_for(lambda: "authz-marker" in kubectl.run("logs", name, "-n", namespace).stdout, timeout=10,
             what="the pod's log line")
    return name


def test_admin_certificate_is_allowed() -> None:
    admin = node_server_ssl_context()         # kubernetes-admin, group system:masters
    assert call(admin, "/healthz") == (200, "ok\n")
    status, body = call(admin, "/metrics")
    assert status == 200 and "kubelet_pod_worker_duration_seconds" in body


def test_another_nodes_certificate_is_forbidden(tmp_path: Path, namespace: str, log_pod: str) -> None:
    other = client_context(tmp_path, "system:node:other", ["system:nodes"])
    exec_path = f"/exec/{namespace}/{log_pod}/app?command=id&output=1"
    assert call(other, exec_path, "POST") == (
        403, "Forbidden (user=system:node:other, verb=create, resource=nodes, subresource=proxy)\n")
    assert call(other, f"/containerLogs/{namespace}/{log_pod}/app") == (
        403, "Forbidden (user=system:node:other, verb=get, resource=nodes, subresource=proxy)\n")
    assert call(other, "/metrics") == (
        403, "Forbidden (user=system:node:other, verb=get, resource=nodes, subresource=metrics)\n")
    status, body = call(other, "/healthz")
    assert status == 403 and "subresource(s)=[healthz proxy]" in body


def test_user_granted_nodes_proxy_is_allowed(tmp_path: Path, kubectl: Kubectl, node_name: str, namespace: str,
                                             log_pod: str) -> None:
    user = unique_name("jane")
    role = f"{user}-node-proxy"
    kubectl.run("create", "clusterrole", role, "--verb=get,create", "--resource=nodes/proxy",
                f"--resource-name={node_name}")
    try:
        kubectl.run("create", "clusterrolebinding", role, f"--clusterrole={role}", f"--user={user}")
        jane = client_context(tmp_path, user, [])
        assert call(jane, f"/containerLogs/{namespace}/{log_pod}/app") == (200, "authz-marker\n")
        # Past authorization the handler answers: a plain POST is not the WebSocket upgrade exec needs.
        status, body = call(jane, f"/exec/{namespace}/{log_pod}/app?command=id&output=1", "POST")
        assert status == 400 and "WebSocket" in body, (status, body)
        status, body = call(jane, "/healthz")          # nodes/proxy also grants the fine-grained paths
        assert (status, body) == (200, "ok\n")
        status, body = call(jane, "/metrics")          # but not nodes/metrics
        assert status == 403 and "subresource=metrics" in body, (status, body)
    finally:
        kubectl.run("delete", "clusterrolebinding", role, check=False)
        kubectl.run("delete", "clusterrole", role, check=False)
