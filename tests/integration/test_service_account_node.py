"""A pod's service account token for real, on a private node (own netns, containerd, server and agent; see
private_node.py): the agent mounts the kube-api-access projected volume (token bound to the pod and its node,
the cluster CA from kube-root-ca.crt, the namespace; read-only, atomic `..data` layout) using its node
credentials, and the in-cluster configuration of the official Python client, built from exactly the files
the container sees, lists pods in the pod's namespace (a RoleBinding allows it) and is refused in another
(403, upstream's message). The client runs in the node's netns on the host: no Python image can be built
offline here (the registry holds busybox-based images only), so it reads the token, ca.crt and namespace
out of the running container with `kubectl exec`."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from apiserver.auth import jwt
from tests.integration.private_node import BUSYBOX, KUBECTL, PrivateNode, running_node
from tests.support import wait_for

pytestmark = pytest.mark.integration

NODE_NAME = "sa-node"
MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def kubernetes_python() -> str | None:
    """An interpreter with the official client (`kubernetes`): this one, or $SHIPMATE_KUBERNETES_PYTHON (a venv
    with `pip install kubernetes`, when the project's venv has no such package)."""
    for candidate in (sys.executable, os.environ.get("SHIPMATE_KUBERNETES_PYTHON", "")):
        if candidate and shutil.which(candidate) and subprocess.run(
                [candidate, "-c", "import kubernetes"], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateNode]:
    with running_node(name=NODE_NAME) as private:
        for namespace in ("sa-a", "sa-b"):
            private.kubectl("create", "namespace", namespace)
        wait_for(lambda: private.kubectl("get", "sa", "default", "-n", "sa-a", check=False).returncode == 0, 20,
                 "the default account")
        private.kubectl("create", "serviceaccount", "reader", "-n", "sa-a")
        private.kubectl("create", "role", "pod-reader", "-n", "sa-a", "--verb=get,list", "--resource=pods")
        private.kubectl("create", "rolebinding", "pod-reader", "-n", "sa-a", "--role=pod-reader",
                        "--serviceaccount=sa-a:reader")
        manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": "sa-a"},
                    "spec": {"serviceAccountName": "reader", "terminationGracePeriodSeconds": 1,
                             "containers": [{"name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                                             "command": ["sleep", "3600"]}]}}
        private.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        wait_for(lambda: private.kubectl("get", "pod", "client", "-n", "sa-a", "-o", "jsonpath={.status.phase}",
                                         check=False).stdout == "Running", 90,
                 f"the client pod running ({private.logs()})", interval=0.5)
        yield private


def in_pod(node: PrivateNode, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return node.kubectl("exec", "-n", "sa-a", "client", "--", *command, check=check)


def test_token_volume_is_mounted_read_only_with_atomic_layout(node: PrivateNode) -> None:
    listing = in_pod(node, "ls", "-la", MOUNT).stdout
    assert "..data ->" in listing
    for name in ("token", "ca.crt", "namespace"):
        assert f"{name} -> ..data/{name}" in listing
    assert in_pod(node, "cat", f"{MOUNT}/namespace").stdout == "sa-a"
    assert in_pod(node, "cat", f"{MOUNT}/ca.crt").stdout == node.ca_file.read_text()
    assert in_pod(node, "touch", f"{MOUNT}/x", check=False).returncode != 0          # readOnly
    token = in_pod(node, "cat", f"{MOUNT}/token").stdout
    claims = json.loads(jwt.b64url_decode(token.split(".")[1]))
    pod = node.json("get", "pod", "client", "-n", "sa-a")
    node_uid = node.json("get", "node", NODE_NAME)["metadata"]["uid"]
    assert claims["sub"] == "system:serviceaccount:sa-a:reader"
    assert claims["kubernetes.io"]["pod"] == {"name": "client", "uid": pod["metadata"]["uid"]}
    assert claims["kubernetes.io"]["node"] == {"name": NODE_NAME, "uid": node_uid}
    assert claims["exp"] - claims["iat"] == 3607


def test_in_cluster_client_lists_pods_where_allowed_and_is_refused_elsewhere(node: PrivateNode,
                                                                             tmp_path: Path) -> None:
    python = kubernetes_python()
    if python is None:
        pytest.skip("the official Python client (kubernetes) is not installed: set SHIPMATE_KUBERNETES_PYTHON")
    mount = tmp_path / "serviceaccount"
    mount.mkdir()
    for name in ("token", "ca.crt", "namespace"):
        (mount / name).write_text(in_pod(node, "cat", f"{MOUNT}/{name}").stdout)
    program = textwrap.dedent(f"""
        import json, sys
        from kubernetes import client, config
        from kubernetes.client.rest import ApiException
        config.incluster_config.InClusterConfigLoader(
            token_filename={str(mount / "token")!r}, cert_filename={str(mount / "ca.crt")!r},
            environ={{"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}}).load_and_set()
        namespace = open({str(mount / "namespace")!r}).read()
        v1 = client.CoreV1Api()
        names = [p.metadata.name for p in v1.list_namespaced_pod(namespace).items]
        try:
            v1.list_namespaced_pod("sa-b")
            refused = None
        except ApiException as error:
            refused = {{"status": error.status, "message": json.loads(error.body)["message"]}}
        print(json.dumps({{"namespace": namespace, "pods": names, "refused": refused}}))
    """)
    result = subprocess.run([*node.enter, python, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["namespace"] == "sa-a" and "client" in answer["pods"]
    assert answer["refused"] == {"status": 403, "message": (
        'pods is forbidden: User "system:serviceaccount:sa-a:reader" cannot list resource "pods" in API group "" in '
        'the namespace "sa-b"')}


def test_missing_account_is_refused_and_the_token_dies_with_its_pod(node: PrivateNode) -> None:
    refused = node.kubectl("run", "nobody", "-n", "sa-a", f"--image={BUSYBOX}",
                           '--overrides={"spec":{"serviceAccountName":"ghost"}}', check=False)
    assert 'error looking up service account sa-a/ghost: serviceaccount "ghost" not found' in refused.stderr
    token = in_pod(node, "cat", f"{MOUNT}/token").stdout

    def as_pod(*args: str) -> subprocess.CompletedProcess[str]:  # the token alone: no admin kubeconfig
        return subprocess.run([*node.enter, KUBECTL, "--kubeconfig", "/dev/null", "--server", node.urls[0],
                               "--certificate-authority", str(node.ca_file), "--token", token, *args],
                              capture_output=True, text=True, timeout=60)
    assert as_pod("get", "pods", "-n", "sa-a").returncode == 0
    node.kubectl("delete", "pod", "client", "-n", "sa-a", "--wait=true", "--timeout=60s")
    result = as_pod("get", "pods", "-n", "sa-a")
    assert result.returncode != 0 and "Unauthorized" in result.stderr
