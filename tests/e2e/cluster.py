"""Helpers for end-to-end tests against the cluster `make up` started on this box."""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

ADMIN_KUBECONFIG = os.environ.get("SHIPMATE_KUBECONFIG", "/etc/shipmate/admin.kubeconfig")
KUBECTL = os.environ.get("SHIPMATE_KUBECTL", "/usr/local/bin/kubectl")
TEST_IMAGE = "127.0.0.1:5000/library/busybox:latest"

T = TypeVar("T")


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


def wait_for(condition: Callable[[], T | None], timeout: float, interval: float = 0.1,
             what: str = "condition") -> T:
    """Polls until `condition` returns a truthy value; fails naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


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


def sandboxes_of_pod(pod_uid: str) -> list[Any]:
    """The CRI sandboxes containerd holds for a pod UID, asked through CRI itself."""
    import asyncio

    from cri.client import CRIClient
    from cri.gen import api_pb2

    async def query() -> list[Any]:
        async with CRIClient() as runtime:
            selector = api_pb2.PodSandboxFilter(label_selector={"io.kubernetes.pod.uid": pod_uid})
            return await runtime.list_pod_sandbox(selector)

    return asyncio.run(query())
