"""Helpers for end-to-end tests against the cluster `make up` started on this box."""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import uuid
from dataclasses import dataclass
from typing import Any

from shipmate.kubeclient import load_kubeconfig
from tests.support import runtime_sandboxes

ADMIN_KUBECONFIG = os.environ.get("SHIPMATE_KUBECONFIG", "/etc/shipmate/admin.kubeconfig")
KUBECTL = os.environ.get("SHIPMATE_KUBECTL", "/usr/local/bin/kubectl")
TEST_IMAGE = "127.0.0.1:5000/library/busybox:latest"


class KubectlError(AssertionError):
    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]):
        self.result = result
        super().__init__(f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")


@dataclass
class Kubectl:
    kubeconfig: str = ADMIN_KUBECONFIG
    binary: str = KUBECTL

    def run(self, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--kubeconfig", self.kubeconfig, *args]
        result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise KubectlError(list(args), result)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, manifest: dict[str, Any] | str, *extra: str) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.run("apply", "-f", "-", *extra, stdin=text)


def node_server_ssl_context(kubeconfig: str = ADMIN_KUBECONFIG) -> ssl.SSLContext:
    """TLS towards an agent's :10250, which requires a client certificate of the cluster CA: the
    kubeconfig's. The node's serving certificate is self-signed (as kubelet's), so it is not verified."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    load_kubeconfig(kubeconfig).load_client_certificate(context)
    return context


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def pod_manifest(name: str, namespace: str, containers: list[dict[str, Any]],
                 **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": containers, **spec},
    }


def container_status(pod: dict[str, Any], name: str) -> dict[str, Any]:
    for status in pod.get("status", {}).get("containerStatuses", []):
        if status["name"] == name:
            return status
    return {}


def restart_agent() -> None:
    """Restarts the agent `make up` started, loading the current code (pods keep running)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run(["bash", os.path.join(repo, "hack", "restart.sh"), "agent"], check=True, capture_output=True,
                   timeout=180)


def sandboxes_of_pod(pod_uid: str) -> list[Any]:
    """The CRI sandboxes containerd holds for a pod UID."""
    return runtime_sandboxes(**{"io.kubernetes.pod.uid": pod_uid})
