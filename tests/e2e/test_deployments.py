"""Issue 5 acceptance on the real cluster (real agent, containerd): a 3-replica Deployment rolls from one
image tag to another with `kubectl set image`, never below replicas − maxUnavailable ready pods, and
`kubectl rollout undo` brings the first tag back; a ReplicaSet replaces a deleted pod and its pods go with it."""
from __future__ import annotations

import subprocess
import threading
import time
from typing import Any

import pytest

from tests.e2e.cluster import TEST_IMAGE, Kubectl
from tests.support import wait_for

pytestmark = pytest.mark.e2e

SECOND_IMAGE = "127.0.0.1:5000/library/busybox:e2e-rollout"
# Exits at once on SIGTERM so replaced pods go quickly.
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


@pytest.fixture(scope="module")
def second_image() -> str:
    """The test image pushed under a second tag (same content, a different reference for the template)."""
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{TEST_IMAGE}", f"docker://{SECOND_IMAGE}"], check=True, capture_output=True, timeout=120)
    return SECOND_IMAGE


def deployment(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 2,
                                           "containers": [{"name": "app", "image": TEST_IMAGE, "command": COMMAND}]}}}}


def pod_states(kubectl: Kubectl, namespace: str, app: str) -> list[dict[str, Any]]:
    return kubectl.json("get", "pods", "-n", namespace, "-l", f"app={app}")["items"]


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or [])


def running_images(kubectl: Kubectl, namespace: str, app: str) -> set[str]:
    return {p["spec"]["containers"][0]["image"] for p in pod_states(kubectl, namespace, app)
            if not p["metadata"].get("deletionTimestamp")}


class ReadySampler:
    """Counts Ready, non-terminating pods of the app every ~0.2 s while a rollout runs."""

    def __init__(self, kubectl: Kubectl, namespace: str, app: str):
        self.kubectl, self.namespace, self.app = kubectl, namespace, app
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pods = pod_states(self.kubectl, self.namespace, self.app)
            self.samples.append(sum(1 for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp")))
            time.sleep(0.2)

    def __enter__(self) -> "ReadySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_deployment_rolls_forward_and_back(kubectl: Kubectl, namespace: str, second_image: str) -> None:
    kubectl.apply(deployment("web", namespace))
    kubectl.run("rollout", "status", "deployment/web", "-n", namespace, "--timeout=120s", timeout=130)
    assert len([p for p in pod_states(kubectl, namespace, "web") if is_ready(p)]) == 3
    with ReadySampler(kubectl, namespace, "web") as sampler:
        started = time.monotonic()
        kubectl.run("set", "image", "deployment/web", f"app={second_image}", "-n", namespace)
        kubectl.run("rollout", "status", "deployment/web", "-n", namespace, "--timeout=180s", timeout=190)
        took = time.monotonic() - started
    assert min(sampler.samples) >= 3 - 1, sampler.samples  # replicas − maxUnavailable
    wait_for(lambda: running_images(kubectl, namespace, "web") == {second_image}, timeout=60,
             what="only pods of the new image")
    history = kubectl.run("rollout", "history", "deployment/web", "-n", namespace).stdout
    assert [line.split()[0] for line in history.strip().splitlines()[2:]] == ["1", "2"], history
    with ReadySampler(kubectl, namespace, "web") as sampler:
        kubectl.run("rollout", "undo", "deployment/web", "-n", namespace)
        kubectl.run("rollout", "status", "deployment/web", "-n", namespace, "--timeout=180s", timeout=190)
    assert min(sampler.samples) >= 2, sampler.samples
    wait_for(lambda: running_images(kubectl, namespace, "web") == {TEST_IMAGE}, timeout=60,
             what="only pods of the first image again")
    ready = [p for p in pod_states(kubectl, namespace, "web") if is_ready(p)]
    assert len(ready) == 3 and all(p["status"].get("podIP") for p in ready)
    print(f"rollout of 3 replicas on the real node took {took:.1f}s")


def test_replicaset_replaces_deleted_pod_and_cascades(kubectl: Kubectl, namespace: str) -> None:
    manifest = deployment("rs", namespace)
    manifest["kind"] = "ReplicaSet"
    del manifest["spec"]["strategy"]
    manifest["spec"]["replicas"] = 2
    kubectl.apply(manifest)
    first = wait_for(lambda: (pods := pod_states(kubectl, namespace, "rs")) and
                     sum(1 for p in pods if is_ready(p)) == 2 and pods, timeout=120, what="2 ready pods")
    victim = first[0]["metadata"]["name"]
    kubectl.run("delete", "pod", victim, "-n", namespace, "--wait=false")
    wait_for(lambda: sum(1 for p in pod_states(kubectl, namespace, "rs")
                         if is_ready(p) and p["metadata"]["name"] != victim) == 2,
             timeout=120, what="a ready replacement pod")
    kubectl.run("delete", "replicaset", "rs", "-n", namespace, "--wait=false")
    wait_for(lambda: not pod_states(kubectl, namespace, "rs"), timeout=120, what="the pods to be deleted with it")
