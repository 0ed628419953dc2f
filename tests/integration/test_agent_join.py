"""Agent join and certificate rotation for real, on a private node (own netns, containerd, server and
agent; see private_node.py): the agent joins a real `shipmate server` with a token from `shipmate
token create` and gets `system:node:<name>`; with `--cluster-signing-duration 1m` it renews before
expiry without a restart and keeps heartbeating past the first certificate's end; its :10250 only
lets in clients with a certificate of the cluster CA; a restart needs no token; an expired token is
refused with the server's message."""
from __future__ import annotations

import base64
import datetime
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from cryptography import x509

from shipmate import pki
from tests.integration.private_node import ENTER, NODE, SHIPMATE, WORK_DIR, PrivateNode, running_node
from tests.support import wait_for

pytestmark = pytest.mark.integration

SIGNING_SECONDS = 60


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateNode]:
    with running_node(server_args=("--cluster-signing-duration", f"{SIGNING_SECONDS}s")) as private:
        yield private


def client_pem(node: PrivateNode) -> bytes:
    return (node.agent_root / "pki" / "kubelet-client-current.pem").read_bytes()


def serial(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


def csrs(node: PrivateNode) -> list[dict[str, Any]]:
    return node.json("get", "certificatesigningrequests")["items"]


def lease_renewed(node: PrivateNode) -> datetime.datetime:
    lease = node.json("get", "lease", NODE, "-n", "kube-node-lease")
    return datetime.datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00"))


def test_join_gives_the_node_its_own_client_certificate(node: PrivateNode) -> None:
    pem = client_pem(node)
    assert pki.cert_subject(pem) == (f"system:node:{NODE}", ("system:nodes",))
    assert pki.verify_issued_by(pem, node.ca_file.read_bytes())
    assert (node.agent_root / "pki" / "kubelet-client-current.pem").stat().st_mode & 0o777 == 0o600
    assert (node.agent_root / "kubelet.kubeconfig").stat().st_mode & 0o777 == 0o600
    joins = [c for c in csrs(node) if c["metadata"]["name"].startswith("node-csr-")]
    assert len(joins) == 1, joins
    join = joins[0]
    assert join["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    assert join["spec"]["username"].startswith("system:bootstrap:")
    assert any(c["type"] == "Approved" for c in join["status"]["conditions"])
    assert node.node_ready() is True


def _curl_node_server(node: PrivateNode, *cert_args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENTER, "curl", "-sS", "-k", "--max-time", "10", *cert_args,
                           "https://127.0.0.1:10250/healthz"], capture_output=True, text=True, timeout=30)


def test_node_server_lets_in_only_certificates_of_the_cluster_ca(node: PrivateNode, tmp_path: Path) -> None:
    user = yaml.safe_load(node.kubeconfig.read_text())["users"][0]["user"]
    admin = tmp_path / "admin.pem"
    admin.write_bytes(base64.b64decode(user["client-certificate-data"]) + base64.b64decode(user["client-key-data"]))
    stranger_ca, stranger_key = pki.make_ca("stranger")
    cert, key = pki.issue(stranger_ca, stranger_key, "kube-apiserver-kubelet-client", ("system:masters",), client=True)
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(cert + key)

    # the node server listens once its kubelet-serving CSR (asked for after registration) is signed
    wait_for(lambda: "node server listening" in node.agent.log(100000), 30, "the node server's serving certificate")
    allowed = _curl_node_server(node, "--cert", str(admin))
    assert allowed.returncode == 0 and allowed.stdout == "ok\n", allowed.stderr
    for refused in (_curl_node_server(node), _curl_node_server(node, "--cert", str(stranger))):
        assert refused.returncode != 0 and refused.stdout == "", refused


def test_certificate_is_renewed_before_expiry_and_used_without_a_restart(node: PrivateNode) -> None:
    first = client_pem(node)
    first_end = pki.cert_validity(first)[1]
    agent_pid = node.agent.pid()
    renewed = wait_for(lambda: serial(client_pem(node)) != serial(first) and client_pem(node), SIGNING_SECONDS,
                       "the client certificate to be renewed", interval=1)
    assert pki.cert_subject(renewed) == (f"system:node:{NODE}", ("system:nodes",))
    assert pki.verify_issued_by(renewed, node.ca_file.read_bytes())
    assert node.agent.pid() == agent_pid, "the agent restarted"
    assert f"client certificate rotated node={NODE}" in node.agent.log(400)
    renewals = [c for c in csrs(node) if c["metadata"]["name"].startswith("csr-")]
    assert renewals and all(c["spec"]["username"] == f"system:node:{NODE}" for c in renewals), renewals
    # Past the first certificate's end the agent still heartbeats: it talks with a renewed one.
    seconds_left = (first_end - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    time.sleep(max(0.0, seconds_left) + 12)
    after_expiry = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
    wait_for(lambda: lease_renewed(node) > after_expiry, 30, "a node lease renewal after the first certificate expired")
    assert node.node_ready() is True
    assert node.agent.pid() == agent_pid


def test_restart_needs_no_token(node: PrivateNode) -> None:
    joins_before = [c["metadata"]["name"] for c in csrs(node) if c["metadata"]["name"].startswith("node-csr-")]
    node.agent.stop()
    node.start_agent()
    pid = wait_for(node.agent.pid, 15, "the restarted agent's process (see its log in the work dir)")
    assert "--token" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    wait_for(lambda: node.node_ready() is True and "node server listening" in node.agent.log(60), 60,
             "the restarted agent Ready")
    assert [c["metadata"]["name"] for c in csrs(node) if c["metadata"]["name"].startswith("node-csr-")] == joins_before


def _join(node: PrivateNode, token: str, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENTER, *SHIPMATE, "agent", "--server", "https://127.0.0.1:6443", "--token", token,
                           "--ca-file", str(node.ca_file), "--node-name", name, "--node-ip", "127.0.0.1",
                           "--root-dir", str(WORK_DIR / name), "--container-runtime-endpoint", node.endpoint],
                          capture_output=True, text=True, timeout=60)


def test_expired_or_unknown_token_is_refused_with_a_clear_message(node: PrivateNode) -> None:
    joins_before = [c["metadata"]["name"] for c in csrs(node) if c["metadata"]["name"].startswith("node-csr-")]
    expired = node.create_token(ttl="1s")
    time.sleep(2.5)
    result = _join(node, expired, "late-node")
    assert result.returncode != 0
    print(result.stderr.splitlines()[-1])
    assert f"bootstrap token {expired.split('.')[0]}" in result.stderr and "expired" in result.stderr, result.stderr
    assert not (WORK_DIR / "late-node" / "kubelet.kubeconfig").exists()
    unknown = _join(node, "zzzzzz.0123456789abcdef", "unknown-node")
    assert unknown.returncode != 0 and "401 Unauthorized" in unknown.stderr, unknown.stderr
    assert [c["metadata"]["name"] for c in csrs(node) if c["metadata"]["name"].startswith("node-csr-")] == joins_before
