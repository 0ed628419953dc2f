"""Issue 3 acceptance for static pods and crash-safety, with real kubectl against the running cluster:
a static pod file appears as a mirror pod, follows edits and stops when the file is removed; kill -9
and SIGTERM of the agent with pods running restart no container."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import TEST_IMAGE, Kubectl, container_status, pod_manifest, sandboxes_of_pod, unique_name
from tests.support import wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MANIFEST_DIR = Path(os.environ.get("SHIPMATE_MANIFEST_DIR", "/etc/shipmate/manifests"))
AGENT_PIDFILE = Path("/run/shipmate/agent.pid")
AGENT_LOG = Path("/var/log/shipmate/agent.log")
MIRROR = "kubernetes.io/config.mirror"
HASH = "kubernetes.io/config.hash"
# Generous: the shared 2-core box often runs at load 20-30; these tests check behaviour, not speed.
LOADED = 90


def runtime_containers(**labels: str) -> list[Any]:
    from cri.client import CRIClient
    from cri.gen import api_pb2

    async def query() -> list[Any]:
        async with CRIClient() as runtime:
            return await runtime.list_containers(api_pb2.ContainerFilter(label_selector=labels))
    return asyncio.run(query())


def get_pod(kubectl: Kubectl, namespace: str, name: str) -> dict | None:
    result = kubectl.run("get", "pod", name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    import json
    return json.loads(result.stdout)


def running(pod: dict | None) -> bool:
    statuses = (pod or {}).get("status", {}).get("containerStatuses", [])
    return bool(pod) and pod["status"].get("phase") == "Running" and bool(statuses) and \
        all("running" in s.get("state", {}) for s in statuses)


def static_manifest(name: str, namespace: str, command: list[str]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": TEST_IMAGE, "command": command}]}}


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")      # hidden: the agent ignores it
    temporary.write_text(text)
    temporary.rename(path)


def test_static_pod_runs_mirrors_follows_edits_and_stops(kubectl: Kubectl, namespace: str, node_name: str) -> None:
    name = unique_name("static")
    mirror_name = f"{name}-{node_name}"
    MANIFEST_DIR.mkdir(parents=True, exist_ok=True)
    path = MANIFEST_DIR / f"{name}.yaml"
    node_uid = kubectl.json("get", "node", node_name)["metadata"]["uid"]
    try:
        write_atomically(path, yaml.safe_dump(static_manifest(name, namespace, ["sleep", "3600"])))
        mirror = wait_for(lambda: (p := get_pod(kubectl, namespace, mirror_name)) and running(p) and p,
                          timeout=LOADED, what=f"mirror pod {mirror_name} Running")
        annotations = mirror["metadata"]["annotations"]
        static_uid = annotations[HASH]
        assert annotations[MIRROR] == static_uid
        assert annotations["kubernetes.io/config.source"] == "file"
        assert annotations["kubernetes.io/config.seen"]
        assert mirror["metadata"]["uid"] != static_uid
        assert mirror["metadata"]["ownerReferences"] == [
            {"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid, "controller": True}]
        assert mirror["spec"]["nodeName"] == node_name
        # The runtime runs the static pod under its own (file) UID, not the mirror's.
        (sandbox,) = sandboxes_of_pod(static_uid)
        assert sandbox.metadata.name == mirror_name
        assert sandbox.annotations["kubernetes.io/config.source"] == "file"
        assert sandbox.annotations[HASH] == static_uid
        (container,) = runtime_containers(**{"io.kubernetes.pod.uid": static_uid})
        shown = kubectl.run("get", "pods", "-n", namespace).stdout
        assert mirror_name in shown and "Running" in shown

        # Deleting the mirror pod does not stop the static pod: the mirror comes back. (Not --wait: it
        # waits for the name to vanish and can miss it when the mirror is recreated at once, as with
        # kubelet, kubernetes/kubernetes#123177.)
        kubectl.run("delete", "pod", mirror_name, "-n", namespace, "--wait=false")
        again = wait_for(lambda: (p := get_pod(kubectl, namespace, mirror_name))
                         and p["metadata"]["uid"] != mirror["metadata"]["uid"] and running(p) and p,
                         timeout=LOADED, what="mirror pod recreated")
        assert again["metadata"]["annotations"][MIRROR] == static_uid
        assert container_status(again, "app")["containerID"].endswith(container.id)
        assert container_status(again, "app")["restartCount"] == 0

        # Editing the file replaces the pod: new UID, new spec, the old pod's sandbox removed.
        write_atomically(path, yaml.safe_dump(static_manifest(name, namespace, ["sleep", "3601"])))
        edited = wait_for(lambda: (p := get_pod(kubectl, namespace, mirror_name))
                          and p["metadata"]["annotations"].get(MIRROR) not in (None, static_uid) and running(p) and p,
                          timeout=LOADED, what="mirror pod of the edited manifest Running")
        new_uid = edited["metadata"]["annotations"][HASH]
        assert edited["spec"]["containers"][0]["command"] == ["sleep", "3601"]
        wait_for(lambda: not sandboxes_of_pod(static_uid), timeout=LOADED, what="the old static pod's sandbox removed")
        (new_container,) = runtime_containers(**{"io.kubernetes.pod.uid": new_uid})
        assert new_container.id != container.id

        # Removing the file stops the pod and deletes its mirror.
        path.unlink()
        wait_for(lambda: get_pod(kubectl, namespace, mirror_name) is None, timeout=LOADED, what="mirror pod deleted")
        wait_for(lambda: not sandboxes_of_pod(new_uid), timeout=LOADED, what="static pod's sandbox removed")
    finally:
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------
# Agent restarts: kill -9 and SIGTERM with pods running
# ---------------------------------------------------------------------------------------------------------
def agent_pid() -> int:
    return int(AGENT_PIDFILE.read_text().strip())


def restart_agent() -> None:
    subprocess.run(["bash", str(REPO / "hack" / "restart.sh"), "agent"], check=True, capture_output=True,
                   timeout=180)


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie (not reaped yet: the daemon runs in its own session) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def sleeper_pods(kubectl: Kubectl, namespace: str, count: int) -> list[str]:
    names = [f"sleeper-{i}" for i in range(count)]
    for name in names:
        kubectl.apply(pod_manifest(name, namespace, [{"name": "app", "image": TEST_IMAGE,
                                                      "command": ["sleep", "3600"]}],
                                   terminationGracePeriodSeconds=1))
    wait_for(lambda: all(running(get_pod(kubectl, namespace, n)) for n in names), timeout=3 * LOADED,
             what=f"{count} pods Running", interval=0.5)
    return names


def snapshot(kubectl: Kubectl, namespace: str) -> dict[str, tuple[str, int, str]]:
    """pod name → (container ID, restartCount, phase) from the API."""
    pods = kubectl.json("get", "pods", "-n", namespace)["items"]
    return {p["metadata"]["name"]: (container_status(p, "app").get("containerID", ""),
                                    container_status(p, "app").get("restartCount", -1),
                                    p["status"].get("phase", "")) for p in pods}


def runtime_view(namespace: str) -> dict[str, list[tuple[str, int]]]:
    """pod name → [(container id, attempt)] as containerd holds them."""
    view: dict[str, list[tuple[str, int]]] = {}
    for container in runtime_containers(**{"io.kubernetes.pod.namespace": namespace}):
        pod = container.labels["io.kubernetes.pod.name"]
        view.setdefault(pod, []).append((container.id, container.metadata.attempt))
    return view


@pytest.mark.disruptive
def test_kill_9_with_ten_pods_restarts_no_container(kubectl: Kubectl, namespace: str) -> None:
    names = sleeper_pods(kubectl, namespace, 10)
    before_api, before_runtime = snapshot(kubectl, namespace), runtime_view(namespace)
    assert all(restarts == 0 and phase == "Running" for _, restarts, phase in before_api.values())
    pid = agent_pid()
    try:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: process_gone(pid), timeout=10, what="agent killed")
        # While the agent is down, one pod is deleted: after the restart it must be cleaned up too.
        kubectl.run("delete", "pod", names[-1], "-n", namespace, "--wait=false")
        time.sleep(1)
    finally:
        restart_agent()
    assert agent_pid() != pid
    wait_for(lambda: get_pod(kubectl, namespace, names[-1]) is None, timeout=LOADED,
             what="the pod deleted while the agent was down is gone")
    time.sleep(5)          # several sync ticks, relists and a housekeeping pass after the restart
    after_api, after_runtime = snapshot(kubectl, namespace), runtime_view(namespace)
    expected = {n: v for n, v in before_api.items() if n != names[-1]}
    assert after_api == expected, "a container was restarted or a status changed"
    assert after_runtime == {n: v for n, v in before_runtime.items() if n != names[-1]}
    assert all(len(containers) == 1 for containers in after_runtime.values())


@pytest.mark.disruptive
def test_sigterm_exits_cleanly_and_leaves_pods_running(kubectl: Kubectl, namespace: str) -> None:
    sleeper_pods(kubectl, namespace, 2)
    before_api, before_runtime = snapshot(kubectl, namespace), runtime_view(namespace)
    log_offset = AGENT_LOG.stat().st_size
    pid = agent_pid()
    try:
        started = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: process_gone(pid), timeout=15, what="agent exited on SIGTERM")
        print(f"agent exited {time.monotonic() - started:.2f}s after SIGTERM")
        with AGENT_LOG.open() as handle:
            handle.seek(log_offset)
            tail = handle.read()
        assert "agent stopping on signal" in tail
        assert "Traceback" not in tail
        # The pods keep running without the agent.
        assert runtime_view(namespace) == before_runtime
        from cri.gen import api_pb2
        assert all(c.state == api_pb2.CONTAINER_RUNNING
                   for c in runtime_containers(**{"io.kubernetes.pod.namespace": namespace}))
    finally:
        restart_agent()
    time.sleep(5)
    assert snapshot(kubectl, namespace) == before_api
    assert runtime_view(namespace) == before_runtime


# ---------------------------------------------------------------------------------------------------------
# What crictl shows: `crictl pods` / `crictl ps` print sandbox and container metadata and kubelet's labels
# ---------------------------------------------------------------------------------------------------------
NODE_LABEL = "shipmate.io/node-name"               # ours (docs/design.md "Agent notes")


def test_cri_view_carries_kubelets_metadata_labels_and_annotations(kubectl: Kubectl, namespace: str,
                                                                    node_name: str) -> None:
    from cri.gen import api_pb2
    name = unique_name("crictl")
    ports = [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    pre_stop = {"exec": {"command": ["sh", "-c", "true"]}}
    manifest = pod_manifest(name, namespace, [
        {"name": "web", "image": TEST_IMAGE, "command": ["sleep", "3600"], "ports": ports,
         "lifecycle": {"preStop": pre_stop}},
        {"name": "side", "image": TEST_IMAGE, "command": ["sleep", "3600"]},
    ], terminationGracePeriodSeconds=5)
    manifest["metadata"]["labels"] = {"app": "crictl-check", "tier": "web"}
    manifest["metadata"]["annotations"] = {"example.com/note": "kept"}
    kubectl.apply(manifest)
    pod = wait_for(lambda: (p := get_pod(kubectl, namespace, name)) and running(p) and p, timeout=LOADED,
                   what=f"pod {name} Running")
    uid = pod["metadata"]["uid"]
    identity = {"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace,
                "io.kubernetes.pod.uid": uid}

    (sandbox,) = sandboxes_of_pod(uid)
    assert (sandbox.metadata.name, sandbox.metadata.namespace, sandbox.metadata.uid, sandbox.metadata.attempt) == \
        (name, namespace, uid, 0)
    assert sandbox.state == api_pb2.SANDBOX_READY
    assert dict(sandbox.labels) == {**manifest["metadata"]["labels"], **identity, NODE_LABEL: node_name}
    assert sandbox.annotations["example.com/note"] == "kept"
    assert sandbox.annotations["kubernetes.io/config.source"] == "api"
    assert sandbox.annotations["kubernetes.io/config.seen"]

    containers = {c.metadata.name: c for c in runtime_containers(**{"io.kubernetes.pod.uid": uid})}
    assert sorted(containers) == ["side", "web"]
    for container_name, container in containers.items():
        assert container.metadata.attempt == 0
        assert container.pod_sandbox_id == sandbox.id
        assert container.state == api_pb2.CONTAINER_RUNNING
        assert dict(container.labels) == {**identity, "io.kubernetes.container.name": container_name,
                                          NODE_LABEL: node_name}
        annotations = dict(container.annotations)
        int(annotations.pop("io.kubernetes.container.hash"), 16)              # kubelet writes it in hex
        expected = {"io.kubernetes.container.restartCount": "0",
                    "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
                    "io.kubernetes.container.terminationMessagePolicy": "File",
                    "io.kubernetes.pod.terminationGracePeriod": "5"}
        if container_name == "web":
            import json
            assert json.loads(annotations.pop("io.kubernetes.container.ports")) == ports
            assert json.loads(annotations.pop("io.kubernetes.container.preStopHandler")) == pre_stop
        assert annotations == expected
        # kubectl's containerID is the CRI id crictl prints (truncated) in its CONTAINER column.
        assert container_status(pod, container_name)["containerID"] == f"containerd://{container.id}"


def test_sandboxes_and_containers_of_no_known_pod_are_removed(node_name: str) -> None:
    """A sandbox and container carrying this node's label but belonging to no API or static pod
    (e.g. left by a pod deleted while the agent was away) are stopped and removed by housekeeping."""
    import uuid as uuid_module
    from agent.container_config import PodContext, container_config
    from agent.dns import ResolvConf
    from agent.sandbox_config import sandbox_config
    from cri.client import CRIClient

    uid = str(uuid_module.uuid4())
    pod = {"metadata": {"name": unique_name("orphan"), "namespace": "f-orphans", "uid": uid},
           "spec": {"terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "app", "image": TEST_IMAGE, "command": ["sleep", "3600"]}]}}

    async def create() -> None:
        async with CRIClient() as runtime:
            config = sandbox_config(pod, attempt=0, node_name=node_name, dns=ResolvConf())
            sandbox_id = await runtime.run_pod_sandbox(config)
            container = container_config(pod, pod["spec"]["containers"][0], restart_count=0, node_name=node_name,
                                         context=PodContext())
            await runtime.start_container(await runtime.create_container(sandbox_id, container, config))
    asyncio.run(create())
    try:
        wait_for(lambda: not sandboxes_of_pod(uid) and not runtime_containers(**{"io.kubernetes.pod.uid": uid}),
                 timeout=LOADED, what="the orphaned sandbox and container removed by the agent")
    finally:
        from tests.support import remove_runtime_pods
        asyncio.run(remove_runtime_pods({"io.kubernetes.pod.uid": uid}))
