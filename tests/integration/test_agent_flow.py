"""The whole flow on this host: a real `shipmate server` (free port, temp data dir) + `shipmate agent`
(node dev-node) + the host containerd + the CNI plugin, driven with the real kubectl."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.multinode.harness import unmount_under
from tests.support import remove_runtime_pods, runtime_sandboxes, wait_for

pytestmark = pytest.mark.integration

NODE = "dev-node"
BUSYBOX = "127.0.0.1:5000/library/busybox:latest"
KUBECTL = "/usr/local/bin/kubectl"
IPAM_DIR = "/var/lib/shipmate/ipam"
SHIPMATE = [sys.executable, "-m", "shipmate.cli"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.port = free_port()
        self.server: subprocess.Popen | None = None
        self.agent: subprocess.Popen | None = None

    def start_server(self) -> None:
        log = open(self.workdir / "server.log", "ab")
        self.server = subprocess.Popen(
            [*SHIPMATE, "server", "--bind-address", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(self.workdir / "data"), "--admin-kubeconfig", str(self.kubeconfig)],
            stdout=log, stderr=log)
        wait_for(lambda: self.kubeconfig.exists() and self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
                 15, "the API server")

    def start_agent(self) -> None:
        log = open(self.workdir / "agent.log", "ab")
        self.agent = subprocess.Popen(
            [*SHIPMATE, "agent", "--kubeconfig", str(self.kubeconfig), "--node-name", NODE,
             "--root-dir", str(self.workdir / "agent")], stdout=log, stderr=log)

    def stop_agent(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            self.agent.wait(10)

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([KUBECTL, "--kubeconfig", str(self.kubeconfig), *args], input=stdin,
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def logs(self) -> str:
        return (self.workdir / "agent.log").read_text(errors="replace")[-4000:]


def remove_node_sandboxes() -> None:
    asyncio.run(remove_runtime_pods({"shipmate.io/node-name": NODE}))


def other_agents() -> list[str]:
    """Agents on the host containerd (they would fight over its CNI socket); agents of simulated
    nodes, each on a containerd of its own, do not count."""
    import psutil
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "agent" in cmdline and any("shipmate" in part for part in cmdline):
            endpoint = next((cmdline[i + 1] for i, part in enumerate(cmdline[:-1])
                             if part == "--container-runtime-endpoint"), "unix:///run/containerd/containerd.sock")
            if endpoint == "unix:///run/containerd/containerd.sock":
                found.append(" ".join(cmdline))
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not os.path.exists("/run/containerd/containerd.sock"):
        pytest.fail("the host containerd is not running")
    if other_agents():
        # This test owns the host's CNI config and socket while it runs.
        pytest.fail(f"another shipmate agent is running (stop it, e.g. `make down`): {other_agents()[0]}")
    remove_node_sandboxes()
    cluster = Cluster(tmp_path_factory.mktemp("flow"))
    cluster.start_server()
    cluster.start_agent()
    try:
        wait_for(lambda: any(c["type"] == "Ready" and c["status"] == "True"
                             for n in cluster.json("get", "nodes")["items"] for c in n["status"]["conditions"]),
                 20, "node Ready")
        yield cluster
    finally:
        cluster.kubectl("delete", "pods", "--all", "--grace-period=1", "--wait=true", check=False)
        cluster.stop_agent()
        if cluster.server is not None:
            cluster.server.terminate()
            cluster.server.wait(10)
        remove_node_sandboxes()
        # A pod still terminating when the agent stopped keeps its token tmpfs mounted under the temp dir, and
        # every later pytest run would warn it cannot remove it.
        unmount_under(cluster.workdir)


def running(cluster: Cluster, name: str) -> dict | None:
    pod = cluster.json("get", "pod", name)
    statuses = pod.get("status", {}).get("containerStatuses") or []
    if pod["status"].get("phase") == "Running" and statuses and all("running" in s["state"] for s in statuses):
        return pod
    return None


def ip_allocated(ip: str) -> bool:
    return any(ip in files for _root, _dirs, files in os.walk(IPAM_DIR))


def test_node_registers_ready_with_pod_cidr_and_lease(cluster: Cluster) -> None:
    node = cluster.json("get", "node", NODE)
    assert node["spec"]["podCIDR"].startswith("10.244.")
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
    info = node["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://1.6")
    assert info["kubeletVersion"].startswith("v1.35.")
    assert {"cpu", "memory", "pods", "ephemeral-storage"} <= set(node["status"]["allocatable"])
    assert {a["type"] for a in node["status"]["addresses"]} == {"InternalIP", "Hostname"}
    lease = cluster.json("get", "lease", NODE, "-n", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == NODE and lease["spec"]["renewTime"]
    assert Path("/etc/cni/net.d/10-shipmate.conflist").exists()
    row = cluster.kubectl("get", "nodes").stdout.splitlines()[1].split()
    assert row[:2] == [NODE, "Ready"]


def test_two_container_pod_runs_serves_and_is_deleted(cluster: Cluster) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"terminationGracePeriodSeconds": 4, "containers": [
                    {"name": "web", "image": BUSYBOX, "ports": [{"containerPort": 8080}],
                     "command": ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]},
                    {"name": "sidecar", "image": BUSYBOX, "command": [
                        "sh", "-c", "while true; do wget -q -O /dev/null http://localhost:8080/ && echo fetch-ok; sleep 0.5; done"]}]}}
    started = time.monotonic()
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    pod = wait_for(lambda: running(cluster, "web"), 10, "pod Running")
    print(f"kubectl apply → Running observed in {time.monotonic() - started:.2f}s")

    uid, ip = pod["metadata"]["uid"], pod["status"]["podIP"]
    assert pod["status"]["podIPs"] == [{"ip": ip}] and pod["spec"]["nodeName"] == NODE
    for status in pod["status"]["containerStatuses"]:
        assert status["containerID"].startswith("containerd://") and status["imageID"] and status["ready"]
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions == {"PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True",
                          "ContainersReady": "True", "PodScheduled": "True"}
    with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as response:
        assert response.status == 200
    log = Path(f"/var/log/pods/default_web_{uid}/sidecar/0.log")
    wait_for(lambda: log.exists() and "fetch-ok" in log.read_text(), 5, "the sidecar reaching localhost:8080")
    wide = cluster.kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert ip in wide[1] and NODE in wide[1] and "2/2" in wide[1]
    sandboxes = runtime_sandboxes(**{"io.kubernetes.pod.uid": uid})
    assert [s.metadata.name for s in sandboxes] == ["web"]
    assert sandboxes[0].labels["io.kubernetes.pod.namespace"] == "default"
    assert ip_allocated(ip)

    deleting = time.monotonic()
    cluster.kubectl("delete", "pod", "web")
    took = time.monotonic() - deleting
    assert took <= 4 + 2, f"delete took {took:.1f}s for a 4 s grace period"
    assert runtime_sandboxes(**{"io.kubernetes.pod.uid": uid}) == []
    assert not ip_allocated(ip)
    assert not log.parent.parent.exists()


def test_agent_restart_keeps_running_containers(cluster: Cluster) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "steady", "namespace": "default"},
                "spec": {"terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"]}]}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    before = wait_for(lambda: running(cluster, "steady"), 10, "pod Running")
    cluster.stop_agent()
    cluster.start_agent()
    wait_for(lambda: "cni installed" in cluster.logs().split("agent stopping")[-1], 10, "the agent back")
    time.sleep(2)   # a relist and a sync ran
    after = cluster.json("get", "pod", "steady")
    assert after["status"]["containerStatuses"][0]["containerID"] == before["status"]["containerStatuses"][0]["containerID"]
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
    assert len(runtime_sandboxes(**{"io.kubernetes.pod.uid": before["metadata"]["uid"]})) == 1
    cluster.kubectl("delete", "pod", "steady")


def test_missing_image_reports_pull_errors_and_agent_survives(cluster: Cluster) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "noimage", "namespace": "default"},
                "spec": {"containers": [{"name": "app", "image": "127.0.0.1:5000/library/does-not-exist:1.0"}]}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))

    def reason() -> str | None:
        statuses = cluster.json("get", "pod", "noimage").get("status", {}).get("containerStatuses") or []
        return statuses[0]["state"].get("waiting", {}).get("reason") if statuses else None
    first = wait_for(lambda: reason() in ("ErrImagePull", "ImagePullBackOff") and reason(), 15, "a pull error")
    wait_for(lambda: reason() == "ImagePullBackOff", 30, "ImagePullBackOff")
    pod = cluster.json("get", "pod", "noimage")
    assert pod["status"]["phase"] == "Pending"
    assert "does-not-exist" in pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    print(f"first reason seen: {first}")
    assert cluster.agent is not None and cluster.agent.poll() is None, cluster.logs()
    node = cluster.json("get", "node", NODE)
    assert next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
    cluster.kubectl("delete", "pod", "noimage")


def test_crashing_container_restarts_then_backs_off(cluster: Cluster) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crash", "namespace": "default"},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                    {"name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                     "command": ["sh", "-c", "sleep 0.5; exit 3"]}]}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))

    def app() -> dict:
        statuses = cluster.json("get", "pod", "crash").get("status", {}).get("containerStatuses") or []
        return statuses[0] if statuses else {}
    status = wait_for(lambda: (s := app()).get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff" and s,
                      15, "CrashLoopBackOff")
    assert status["restartCount"] >= 1
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"
    cluster.kubectl("delete", "pod", "crash")


def test_finished_pod_reports_failed_and_releases_its_ip(cluster: Cluster) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "once", "namespace": "default"},
                "spec": {"restartPolicy": "Never", "containers": [
                    {"name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                     "command": ["sh", "-c", "sleep 1; exit 7"]}]}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    pod = wait_for(lambda: running(cluster, "once"), 10, "pod Running")
    ip = pod["status"]["podIP"]
    started = time.monotonic()
    done = wait_for(lambda: (p := cluster.json("get", "pod", "once"))["status"]["phase"] == "Failed" and p,
                    5, "phase Failed")
    print(f"exit noticed and reported {time.monotonic() - started:.2f}s after Running (container sleeps 1 s)")
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (7, "Error")
    ready = {c["type"]: c for c in done["status"]["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "PodFailed")   # kubelet status.PodFailed
    wait_for(lambda: not ip_allocated(ip), 5, "the finished pod's IP released")
    sandboxes = runtime_sandboxes(**{"io.kubernetes.pod.uid": done["metadata"]["uid"]})
    assert len(sandboxes) == 1 and sandboxes[0].state == 1     # kept, but stopped (SANDBOX_NOTREADY)
    cluster.kubectl("delete", "pod", "once")     # a terminal pod is deleted at once by the server
    wait_for(lambda: runtime_sandboxes(**{"io.kubernetes.pod.uid": done["metadata"]["uid"]}) == [], 5,
             "the deleted pod's sandbox removed")


def test_pod_force_deleted_while_agent_is_down_is_cleaned_up_as_orphan(cluster: Cluster) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gone", "namespace": "default"},
                "spec": {"terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"]}]}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    pod = wait_for(lambda: running(cluster, "gone"), 10, "pod Running")
    uid, ip = pod["metadata"]["uid"], pod["status"]["podIP"]
    cluster.stop_agent()
    cluster.kubectl("delete", "pod", "gone", "--grace-period=0", "--force")
    assert len(runtime_sandboxes(**{"io.kubernetes.pod.uid": uid})) == 1
    cluster.start_agent()
    wait_for(lambda: runtime_sandboxes(**{"io.kubernetes.pod.uid": uid}) == [], 15, "the orphaned sandbox removed")
    assert not ip_allocated(ip)
    assert "killing orphaned pod pod=default/gone" in cluster.logs()


def test_shorter_grace_period_cuts_a_running_kill(cluster: Cluster) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "slow", "namespace": "default"},
                "spec": {"terminationGracePeriodSeconds": 60,
                         "containers": [{"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"]}]}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    uid = wait_for(lambda: running(cluster, "slow"), 10, "pod Running")["metadata"]["uid"]
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "slow", "--wait=false")
    time.sleep(1)
    cluster.kubectl("delete", "pod", "slow", "--grace-period=1")
    took = time.monotonic() - started
    assert took < 10, f"deletion took {took:.1f}s although the grace period was cut to 1 s"
    wait_for(lambda: runtime_sandboxes(**{"io.kubernetes.pod.uid": uid}) == [], 5, "the sandbox removed")
