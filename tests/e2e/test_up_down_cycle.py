"""Issue 2 acceptance: `make up` → `make down` → `make up` on the same box works."""
from __future__ import annotations

import pathlib
import subprocess

import pytest

from tests.e2e.cluster import TEST_IMAGE, Kubectl, pod_manifest, sandboxes_of_pod, unique_name
from tests.support import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.disruptive]

REPO = pathlib.Path(__file__).resolve().parents[2]


def make(target: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["make", "-C", str(REPO), target], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"make {target} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_down_stops_pods_and_keeps_data_then_up_again(kubectl: Kubectl, namespace: str) -> None:
    name = unique_name("survivor")
    kubectl.apply(pod_manifest(name, namespace, [
        {"name": "app", "image": TEST_IMAGE, "command": ["sleep", "3600"]}],
        terminationGracePeriodSeconds=1))
    uid = wait_for(lambda: kubectl.json("get", "pod", name, "-n", namespace)["status"].get("phase")
                   == "Running" and kubectl.json("get", "pod", name, "-n", namespace)["metadata"]["uid"],
                   timeout=20, what="pod Running before make down")

    make("down")
    assert kubectl.run("get", "--raw", "/readyz", check=False, timeout=10).returncode != 0, \
        "the API server still answers after make down"
    assert sandboxes_of_pod(uid) == [], "make down left the pod's sandbox in containerd"

    make("up")
    make("up")  # running it twice is safe
    # The datastore survived: the namespace and the pod object are still there.
    pod = kubectl.json("get", "pod", name, "-n", namespace)
    assert pod["metadata"]["uid"] == uid
    nodes = kubectl.json("get", "nodes")["items"]
    assert all(next(c for c in n["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
               for n in nodes)
    # The agent rebuilt the pod it owns: a fresh ready sandbox (state 0 = SANDBOX_READY).
    wait_for(lambda: any(s.state == 0 for s in sandboxes_of_pod(uid)), timeout=30,
             what="the pod's sandbox running again after make up")
