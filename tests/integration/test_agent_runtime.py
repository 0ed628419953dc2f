"""The agent's runtime path against the host containerd: spec → sandbox + containers with
kubelet's labels → status; pull errors; kill within the grace period and removal."""
from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timezone
from typing import AsyncIterator

import pytest

from cri.client import CRIClient
from cri.gen import api_pb2

from agent.dns import ResolvConf
from agent.image_manager import ImageManager
from agent.pod_status import generate_pod_status
from agent.runtime_manager import RuntimeManager
from tests.support import remove_runtime_pods

pytestmark = pytest.mark.integration

SOCKET = "/run/containerd/containerd.sock"
BUSYBOX = "127.0.0.1:5000/library/busybox:latest"
NODE = "dev-node"


@pytest.fixture
async def manager(tmp_path) -> AsyncIterator[RuntimeManager]:
    if not os.path.exists(SOCKET):
        pytest.fail(f"{SOCKET} is missing: integration tests need the host containerd")
    async with CRIClient() as runtime:
        yield RuntimeManager(runtime, ImageManager(runtime), NODE, "127.0.0.1",
                             ResolvConf(["127.0.0.53"], [], []), log_root=str(tmp_path),
                             root_dir=str(tmp_path))


@pytest.fixture
def uid() -> str:
    return f"it-{uuid.uuid4()}"


@pytest.fixture(autouse=True)
async def remove_test_sandboxes(uid: str) -> AsyncIterator[None]:
    yield
    await remove_runtime_pods({"io.kubernetes.pod.uid": uid})


def host_network_pod(uid: str, containers: list[dict]) -> dict:
    # Host network: this test needs no CNI (the full-flow test covers pod networking).
    return {"metadata": {"name": f"rt-{uid[3:11]}", "namespace": "agent-it", "uid": uid},
            "spec": {"hostNetwork": True, "restartPolicy": "Always", "containers": containers,
                     "terminationGracePeriodSeconds": 3}}


def status_of(manager: RuntimeManager, pod: dict, observed, waiting=None) -> dict:
    return generate_pod_status(pod, observed, waiting or {}, host_ips=["127.0.0.1"],
                               runtime_name=manager.runtime_name, now=datetime.now(timezone.utc))


async def test_pod_runs_with_kubelet_labels_and_is_killed_within_grace(manager: RuntimeManager, uid: str) -> None:
    pod = host_network_pod(uid, [
        {"name": "web", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]},
        {"name": "sidecar", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
         "command": ["sh", "-c", "echo hello-$(GREETING); exec sleep 3600"],
         "env": [{"name": "GREETING", "value": "world"}]},
    ])
    started = time.monotonic()
    observed = await manager.inspect_pod(uid)
    result = await manager.sync_pod(pod, observed)
    observed = await manager.inspect_pod(uid)
    took = time.monotonic() - started
    assert result.acted and result.waiting == {}
    status = status_of(manager, pod, observed)
    assert status["phase"] == "Running", status
    assert all("running" in s["state"] for s in status["containerStatuses"])
    assert all(s["containerID"].startswith("containerd://") and s["imageID"] for s in status["containerStatuses"])
    print(f"sandbox + 2 containers running in {took:.2f}s")

    sandboxes = await manager.runtime.list_pod_sandbox(
        api_pb2.PodSandboxFilter(label_selector={"io.kubernetes.pod.uid": uid}))
    assert len(sandboxes) == 1
    labels = sandboxes[0].labels
    assert (labels["io.kubernetes.pod.name"], labels["io.kubernetes.pod.namespace"]) == (pod["metadata"]["name"], "agent-it")
    assert sandboxes[0].metadata.name == pod["metadata"]["name"]
    containers = await manager.runtime.list_containers(
        api_pb2.ContainerFilter(label_selector={"io.kubernetes.pod.uid": uid}))
    assert sorted(c.labels["io.kubernetes.container.name"] for c in containers) == ["sidecar", "web"]
    log_file = os.path.join(manager.log_root, f"agent-it_{pod['metadata']['name']}_{uid}", "sidecar", "0.log")
    deadline = time.monotonic() + 5
    while not (os.path.exists(log_file) and "hello-world" in open(log_file).read()):
        assert time.monotonic() < deadline, f"{log_file} never said hello-world"
        time.sleep(0.05)

    # A second sync with nothing changed does nothing.
    assert not (await manager.sync_pod(pod, observed)).acted

    stopping = time.monotonic()
    await manager.stop_pod(observed, grace_seconds=3)
    stopped = await manager.inspect_pod(uid)
    assert time.monotonic() - stopping < 3 + 2
    assert all(c.phase.value == "exited" for c in stopped.containers)
    final = status_of(manager, pod, stopped)
    assert all("terminated" in s["state"] for s in final["containerStatuses"])
    await manager.remove_pod(stopped)
    gone = await manager.inspect_pod(uid)
    assert gone.sandboxes == [] and gone.containers == []


async def test_missing_image_reports_err_image_pull_then_backoff(manager: RuntimeManager, uid: str) -> None:
    pod = host_network_pod(uid, [{"name": "app", "image": "127.0.0.1:5000/library/does-not-exist:1.0"}])
    first = await manager.sync_pod(pod, await manager.inspect_pod(uid))
    assert first.waiting["app"].reason == "ErrImagePull"
    assert "does-not-exist" in first.waiting["app"].message
    assert first.retry_in == pytest.approx(10, abs=0.5)
    second = await manager.sync_pod(pod, await manager.inspect_pod(uid))
    assert second.waiting["app"].reason == "ImagePullBackOff"
    status = status_of(manager, pod, await manager.inspect_pod(uid), second.waiting)
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert status["phase"] == "Pending"


async def test_never_pull_policy_with_missing_image(manager: RuntimeManager, uid: str) -> None:
    pod = host_network_pod(uid, [{"name": "app", "image": "127.0.0.1:5000/library/absent:9", "imagePullPolicy": "Never"}])
    result = await manager.sync_pod(pod, await manager.inspect_pod(uid))
    assert result.waiting["app"].reason == "ErrImageNeverPull"


async def test_failed_sandbox_keeps_containers_creating_and_backs_off(manager: RuntimeManager, uid: str) -> None:
    pod = host_network_pod(uid, [{"name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent"}])
    pod["spec"]["securityContext"] = {"sysctls": [{"name": "kernel.shipmate_no_such_sysctl", "value": "1"}]}
    first = await manager.sync_pod(pod, await manager.inspect_pod(uid))
    assert first.waiting["app"].reason == "ContainerCreating"
    assert first.retry_in == pytest.approx(1.0, abs=0.2)
    started = time.monotonic()
    second = await manager.sync_pod(pod, await manager.inspect_pod(uid))
    assert time.monotonic() - started < 0.5 and second.retry_in is not None and second.retry_in <= 1.0
