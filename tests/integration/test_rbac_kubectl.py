"""RBAC on a real `shipmate server`, driven by the real kubectl: default policy, Roles and bindings, `kubectl
auth can-i [--list] [--as]`, `kubectl auth whoami`, and a user with her own client certificate."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from shipmate import pki

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]


def wait_for_output(run, expected: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
    """RBAC objects reach the authorizer through a watch: poll until the answer is the expected one."""
    deadline = time.monotonic() + timeout
    while True:
        result = run()
        if result.stdout.strip() == expected or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def can_i(server, *args):
    return server.kubectl("auth", "can-i", *args, check=False)


def user_kubectl(server, kubeconfig):
    def run(*args, check=False):
        return subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", server.cache_dir, *args],
                              capture_output=True, text=True, timeout=30, check=check)
    return run


def jane_kubeconfig(server, tmp_path) -> str:
    """The admin kubeconfig plus a user `jane` (groups: devs) with a client certificate from the cluster CA."""
    ca_dir = os.path.join(server.data_dir, "pki")
    with open(os.path.join(ca_dir, "ca.crt"), "rb") as cert, open(os.path.join(ca_dir, "ca.key"), "rb") as key:
        cert_pem, key_pem = pki.issue(cert.read(), key.read(), "jane", organizations=("devs",), client=True)
    (tmp_path / "jane.crt").write_bytes(cert_pem)
    (tmp_path / "jane.key").write_bytes(key_pem)
    kubeconfig = str(tmp_path / "jane.kubeconfig")
    shutil.copy(server.kubeconfig, kubeconfig)
    subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "config", "set-credentials", "jane",
                    f"--client-certificate={tmp_path / 'jane.crt'}", f"--client-key={tmp_path / 'jane.key'}",
                    "--embed-certs"], check=True, capture_output=True)
    # The context names the user: kubectl's global --user would clash with `create rolebinding --user`.
    subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "config", "set-context", "--current", "--user=jane"],
                   check=True, capture_output=True)
    return kubeconfig


def test_default_policy_and_tables(server):
    roles = server.kubectl("get", "clusterroles").stdout.splitlines()
    assert roles[0].split() == ["NAME", "CREATED", "AT"]
    names = {line.split()[0] for line in roles[1:]}
    assert {"cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery",
            "system:public-info-viewer", "system:node-bootstrapper",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"} <= names
    wide = server.kubectl("get", "clusterrolebindings", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    row = next(line.split() for line in wide if line.startswith("cluster-admin "))
    assert row[1] == "ClusterRole/cluster-admin" and row[-1] == "system:masters"
    narrow = server.kubectl("get", "clusterrolebindings", "cluster-admin").stdout.splitlines()
    assert narrow[0].split() == ["NAME", "ROLE", "AGE"]
    admin = server.kubectl("get", "clusterrole", "admin", "-o", "jsonpath={.rules[*].resources}").stdout
    assert "rolebindings" in admin and "deployments" in admin  # aggregated from edit and view


def test_role_binding_validation_through_kubectl(server):
    server.kubectl("create", "clusterrolebinding", "b", "--clusterrole=view", "--user=jane")
    result = server.kubectl("patch", "clusterrolebinding", "b", "--type=merge", "-p",
                            '{"roleRef":{"name":"edit"}}', check=False)
    assert result.returncode != 0
    assert "cannot change roleRef" in result.stderr
    bad = server.kubectl("create", "-f", "-", check=False, input=(
        '{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"x",'
        '"namespace":"default"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Pod","name":"r"},'
        '"subjects":[{"kind":"User","name":"jane"}]}'))
    assert 'roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole"' in bad.stderr


def test_can_i_whoami_and_a_user_with_a_client_certificate(server, tmp_path):
    assert can_i(server, "create", "pods").stdout.strip() == "yes"
    whoami = server.kubectl("auth", "whoami").stdout
    assert "kubernetes-admin" in whoami and "system:masters" in whoami

    server.kubectl("create", "namespace", "dev")
    server.kubectl("create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods", "-n", "dev")
    server.kubectl("create", "rolebinding", "jane-read", "--role=pod-reader", "--user=jane", "-n", "dev")
    allowed = wait_for_output(lambda: can_i(server, "list", "pods", "-n", "dev", "--as", "jane"), "yes")
    assert allowed.stdout.strip() == "yes" and allowed.returncode == 0, allowed.stderr
    denied = can_i(server, "list", "pods", "-n", "default", "--as", "jane")
    assert denied.stdout.strip() == "no" and denied.returncode == 1
    assert can_i(server, "delete", "pods", "-n", "dev", "--as", "jane").stdout.strip() == "no"
    listed = server.kubectl("auth", "can-i", "--list", "-n", "dev", "--as", "jane").stdout.splitlines()
    assert listed[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert ["pods", "[]", "[]", "[get", "list", "watch]"] in [line.split() for line in listed]

    jane = user_kubectl(server, jane_kubeconfig(server, tmp_path))
    assert "jane" in jane("auth", "whoami").stdout
    listing = jane("get", "pods", "-n", "dev")
    assert listing.returncode == 0, listing.stderr
    forbidden = jane("get", "pods", "-n", "default")
    assert forbidden.returncode != 0
    assert 'pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace ' \
           '"default"' in forbidden.stderr

    server.kubectl("create", "clusterrolebinding", "jane-view", "--clusterrole=view", "--user=jane")
    readable = wait_for_output(lambda: jane("auth", "can-i", "list", "pods", "-n", "default"), "yes")
    assert readable.stdout.strip() == "yes"
    assert jane("get", "pods", "-n", "default").returncode == 0
    create = jane("create", "configmap", "x", "-n", "default")
    assert create.returncode != 0
    assert 'configmaps is forbidden: User "jane" cannot create resource "configmaps"' in create.stderr

    # Escalation prevention: as admin of dev, jane may grant what she holds there, not cluster-admin.
    server.kubectl("create", "rolebinding", "jane-admin", "--clusterrole=admin", "--user=jane", "-n", "dev")
    wait_for_output(lambda: jane("auth", "can-i", "create", "rolebindings", "-n", "dev"), "yes")
    granted = jane("create", "rolebinding", "bob-edit", "--clusterrole=edit", "--user=bob", "-n", "dev")
    assert granted.returncode == 0, granted.stderr
    refused = jane("create", "rolebinding", "bob-root", "--clusterrole=cluster-admin", "--user=bob", "-n", "dev")
    assert refused.returncode != 0
    assert 'rolebindings.rbac.authorization.k8s.io "bob-root" is forbidden: user "jane" (groups=["devs" ' \
           '"system:authenticated"]) is attempting to grant RBAC permissions not currently held:' in refused.stderr
