"""Crash-safety and node health on a private node (own netns, containerd, server and agent; see
private_node.py): containerd restarts without losing pods, static pods run without the API server,
image garbage collection against a real containerd."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any, Iterator

import pytest
import yaml

from agent.image_gc import GCPolicy, ImageGC
from agent.labels import POD_NAME
from cri.client import CRIClient
from cri.gen import api_pb2
from tests.integration.private_node import BUSYBOX, NODE, PrivateNode, running_node, sleeper_pod
from tests.support import wait_for

pytestmark = pytest.mark.integration

PAUSE = "127.0.0.1:5000/shipmate/pause:1.0"
LOADED = 90          # generous timeouts: the shared 2-core box often runs at load 20-30


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateNode]:
    with running_node() as private:
        yield private


def app_status(node: PrivateNode, name: str) -> dict[str, Any]:
    result = node.kubectl("get", "pod", name, "-o", "json", check=False)
    if result.returncode != 0:
        return {}
    pod = json.loads(result.stdout)
    return next((s for s in pod.get("status", {}).get("containerStatuses", []) if s["name"] == "app"), {})


def running_id(node: PrivateNode, name: str) -> str:
    status = app_status(node, name)
    return status.get("containerID", "") if "running" in status.get("state", {}) else ""


def cri(node: PrivateNode, call) -> Any:
    async def go() -> Any:
        async with CRIClient(node.endpoint) as runtime:
            return await call(runtime)
    return asyncio.run(go())


def test_containerd_restart_loses_no_pod_and_the_agent_reconnects(node: PrivateNode) -> None:
    names = ["keep-1", "keep-2", "keep-3"]
    for name in names:
        node.kubectl("apply", "-f", "-", stdin=sleeper_pod(name))
    before = {n: wait_for(lambda n=n: running_id(node, n), LOADED, f"{n} Running") for n in names}

    node.containerd.stop(signal.SIGTERM)
    # The agent notices (relist fails) and reports the node NotReady with the runtime's error.
    wait_for(lambda: node.node_ready() is False, LOADED, "node NotReady while containerd is down")
    time.sleep(3)                                         # down across several relists and backoffs
    node.start_containerd()
    wait_for(lambda: node.node_ready() is True, LOADED, "node Ready again after containerd came back")
    time.sleep(4)                                         # relists, syncs and a housekeeping pass

    after = {n: running_id(node, n) for n in names}
    assert after == before, "a container was replaced across the containerd restart"
    assert all(app_status(node, n)["restartCount"] == 0 for n in names)
    # (pods of the module's other tests may run too: these three pods' containers are what counts)
    containers = [c for c in cri(node, lambda r: r.list_containers()) if c.labels.get(POD_NAME) in names]
    assert sorted(f"containerd://{c.id}" for c in containers) == sorted(before.values())
    assert all(c.state == api_pb2.CONTAINER_RUNNING for c in containers)

    # The event stream and CRI connection work again: an exit is seen and the container restarted,
    # and a new pod starts.
    victim = before["keep-1"].split("://", 1)[1]
    status = cri(node, lambda r: r.container_status(victim, verbose=True))
    os.kill(int(json.loads(status.info["info"])["pid"]), signal.SIGKILL)
    wait_for(lambda: app_status(node, "keep-1").get("restartCount") == 1 and running_id(node, "keep-1"), LOADED,
             "keep-1 restarted after its container was killed")
    node.kubectl("apply", "-f", "-", stdin=sleeper_pod("after-restart"))
    wait_for(lambda: running_id(node, "after-restart"), LOADED, "a new pod Running after the containerd restart")
    assert "containerd event stream failed" in node.agent.log(400) or "relist failed" in node.agent.log(400)


def test_static_pod_runs_without_the_api_server_and_is_mirrored_when_it_returns(node: PrivateNode) -> None:
    node.server.stop(signal.SIGTERM)
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "offline"},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                    {"name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}}
    path = node.manifests / "offline.yaml"
    path.write_text(yaml.safe_dump(manifest))
    try:
        def static_running() -> bool:
            containers = cri(node, lambda r: r.list_containers(api_pb2.ContainerFilter(
                label_selector={"io.kubernetes.pod.name": f"offline-{NODE}"})))
            return any(c.state == api_pb2.CONTAINER_RUNNING for c in containers)
        wait_for(static_running, LOADED, "the static pod running while the API server is down")
    finally:
        node.start_server()
    mirror = wait_for(lambda: (r := node.kubectl("get", "pod", f"offline-{NODE}", "-o", "json", check=False))
                      .returncode == 0 and (p := json.loads(r.stdout))["status"].get("phase") == "Running" and p,
                      LOADED, "the mirror pod, Running, once the API server is back")
    assert mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"] == \
        mirror["metadata"]["annotations"]["kubernetes.io/config.hash"]
    path.unlink()
    wait_for(lambda: node.kubectl("get", "pod", f"offline-{NODE}", check=False).returncode != 0, LOADED,
             "the mirror pod deleted with its file")


def test_image_gc_removes_unused_images_least_recently_used_first(node: PrivateNode, spare_image: str) -> None:
    node.kubectl("apply", "-f", "-", stdin=sleeper_pod("uses-busybox"))
    wait_for(lambda: running_id(node, "uses-busybox"), LOADED, "a pod using busybox Running")
    cri(node, lambda r: r.pull_image(spare_image))

    def tags() -> set[str]:
        return {t for image in cri(node, lambda r: r.list_images()) for t in image.repo_tags}

    assert {BUSYBOX, PAUSE, spare_image} <= tags()

    async def collect(policy: GCPolicy) -> list[str]:
        async with CRIClient(node.endpoint) as runtime:
            gc = ImageGC(runtime, policy)
            return [t for image in await gc.collect() for t in image.tags]

    # A high mark of 0% is always reached; a low mark of 0% asks for every byte back. Images first
    # seen just now are too young to go.
    assert asyncio.run(collect(GCPolicy(high_threshold=0, low_threshold=0, min_age=3600))) == []
    assert spare_image in tags()
    removed = asyncio.run(collect(GCPolicy(high_threshold=0, low_threshold=0, min_age=0)))
    assert removed == [spare_image]
    left = tags()
    assert spare_image not in left and BUSYBOX in left and PAUSE in left      # in use / sandbox image
    # The normal thresholds leave a disk far from full alone.
    assert asyncio.run(collect(GCPolicy(min_age=0))) == []


def test_memory_pressure_condition_taint_and_event(node: PrivateNode) -> None:
    """A threshold no host can satisfy (memory.available<100%) puts the node under memory pressure: the agent
    reports the condition (its node credentials could not write taints), the server's node lifecycle
    controller adds the taint."""
    def node_view() -> dict[str, Any]:
        return node.json("get", "node", NODE)

    def memory_pressure(view: dict[str, Any]) -> str:
        return next(c["status"] for c in view["status"]["conditions"] if c["type"] == "MemoryPressure")

    node.agent.stop()
    node.start_agent("--eviction-hard", "memory.available<100%")
    try:
        pressed = wait_for(lambda: (v := node_view()) and memory_pressure(v) == "True" and v, LOADED,
                           "MemoryPressure=True")
        condition = next(c for c in pressed["status"]["conditions"] if c["type"] == "MemoryPressure")
        assert condition["reason"] == "KubeletHasInsufficientMemory"
        wait_for(lambda: {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}
                 in (node_view()["spec"].get("taints") or []), LOADED, "the memory-pressure taint")
        wait_for(lambda: "NodeHasInsufficientMemory" in node.kubectl(
            "get", "events", "-n", "default", "--field-selector", f"involvedObject.name={NODE}").stdout,
            LOADED, "the NodeHasInsufficientMemory event")
        assert "Node f-node status is now: NodeHasInsufficientMemory" in node.kubectl(
            "describe", "node", NODE).stdout
    finally:
        node.agent.stop()
        node.start_agent()
    wait_for(lambda: memory_pressure(node_view()) == "False" and not node_view()["spec"].get("taints"), LOADED,
             "pressure and taint gone with the default thresholds")
