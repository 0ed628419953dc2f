"""Multi-node acceptance: nodes Ready with routes to each other's podCIDR, pods on every node reach
every other pod by IP without NAT, a stopped node goes NotReady.

Runs against the netns harness (started here), or unchanged against real machines when
SHIPMATE_MULTINODE_KUBECONFIG names their cluster (make e2e-vagrant): then commands in pods go
through `kubectl exec`, and SHIPMATE_MULTINODE_STOP_NODE (a shell command with `{node}`) stops a node.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from typing import Any, Iterator

import pytest

from tests.e2e.multinode.harness import KUBECTL, MultiNodeCluster
from tests.support import wait_for

pytestmark = pytest.mark.e2e

EXTERNAL_KUBECONFIG = os.environ.get("SHIPMATE_MULTINODE_KUBECONFIG", "")
STOP_NODE_COMMAND = os.environ.get("SHIPMATE_MULTINODE_STOP_NODE", "")
NAMESPACE = "g-multinode"
IMAGE = "127.0.0.1:5000/library/busybox:latest"
# An HTTP server whose one CGI answers with the client address it saw (REMOTE_ADDR).
ECHO_SOURCE_SCRIPT = ("mkdir -p /www/cgi-bin && "
                      "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && "
                      "chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www")
# The installed server's --node-monitor-grace-period (the harness sets its own, shorter).
NODE_MONITOR_GRACE = float(os.environ.get("SHIPMATE_MULTINODE_NODE_MONITOR_GRACE", "40"))


class ExternalCluster:
    """Machines installed with `shipmate install` (Vagrant): kubectl only."""

    def __init__(self, kubeconfig: str):
        self.kubeconfig = kubeconfig
        self.node_monitor_grace = NODE_MONITOR_GRACE

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([KUBECTL, "--kubeconfig", self.kubeconfig, *args], input=stdin,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def exec(self, pod: dict, container: str, command: list[str]) -> tuple[int, str, str]:
        result = self.kubectl("exec", "-n", pod["metadata"]["namespace"], pod["metadata"]["name"], "-c", container,
                              "--", *command, check=False)
        return result.returncode, result.stdout, result.stderr

    def stop_node(self, name: str) -> None:
        if not STOP_NODE_COMMAND:
            pytest.skip("set SHIPMATE_MULTINODE_STOP_NODE to a command stopping {node}'s agent and containerd")
        subprocess.run(STOP_NODE_COMMAND.format(node=name), shell=True, check=True, timeout=120)

    def logs(self) -> str:
        return ""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    if EXTERNAL_KUBECONFIG:
        external = ExternalCluster(EXTERNAL_KUBECONFIG)
        external.kubectl("create", "namespace", NAMESPACE, check=False)
        yield external
        external.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        return
    harness = MultiNodeCluster(3)
    try:
        harness.up()
    except TimeoutError as error:
        logs = harness.logs()
        harness.down()
        pytest.fail(f"{error}\n{logs}")
    harness.stop_node = lambda name: MultiNodeCluster.stop_node(harness, harness.node(name))  # type: ignore[method-assign]
    harness.kubectl("create", "namespace", NAMESPACE)
    try:
        yield harness
    finally:
        harness.down()


def node_names(cluster: Any) -> list[str]:
    return sorted(n["metadata"]["name"] for n in cluster.json("get", "nodes")["items"])


def ready_status(cluster: Any, name: str) -> str:
    node = cluster.json("get", "node", name)
    return next((c["status"] for c in node["status"].get("conditions", []) if c["type"] == "Ready"), "")


def echo_pod(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "echo", "node": node}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "echo", "image": IMAGE, "command": ["sh", "-c", ECHO_SOURCE_SCRIPT]}]}}


def running_pod(cluster: Any, name: str) -> dict | None:
    pod = cluster.json("get", "pod", "-n", NAMESPACE, name)
    statuses = pod.get("status", {}).get("containerStatuses") or []
    if pod["status"].get("podIP") and statuses and all("running" in s["state"] for s in statuses):
        return pod
    return None


def source_seen(cluster: Any, client: dict, server_ip: str) -> str:
    """Asks the echo server in another pod which client address it saw."""
    request = f"printf 'GET /cgi-bin/ip HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {server_ip} 8080"
    code, out, err = cluster.exec(client, "echo", ["sh", "-c", request])
    assert code == 0, f"{client['metadata']['name']} -> {server_ip}: exit {code}: {err}"
    body = out.split("\n\n", 1)[-1].strip()
    return body.removeprefix("[::ffff:").removesuffix("]")


def test_three_nodes_ready_with_distinct_pod_cidrs(cluster: Any) -> None:
    def all_ready() -> list[dict] | None:      # installed machines may still be registering
        nodes = cluster.json("get", "nodes")["items"]
        ready = [n for n in nodes if ready_status(cluster, n["metadata"]["name"]) == "True"]
        return nodes if len(nodes) == 3 and len(ready) == 3 else None
    nodes = wait_for(all_ready, 120, "3 nodes Ready", 1.0)
    cidrs = [n["spec"]["podCIDR"] for n in nodes]
    assert len(set(cidrs)) == 3, cidrs


def test_pods_on_every_node_reach_each_other_without_nat(cluster: Any) -> None:
    names = node_names(cluster)
    for node in names:
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(echo_pod(f"echo-{node}", node)))
    pods = [wait_for(lambda node=node: running_pod(cluster, f"echo-{node}"), 90, f"echo pod on {node}", 0.5)
            for node in names]
    assert sorted(p["spec"]["nodeName"] for p in pods) == names
    started = time.monotonic()
    for client in pods:
        for server in pods:
            if client is server:
                continue
            seen = source_seen(cluster, client, server["status"]["podIP"])
            assert seen == client["status"]["podIP"], (
                f"{client['spec']['nodeName']} -> {server['spec']['nodeName']}: server saw {seen!r}, "
                f"client is {client['status']['podIP']} (NAT on the path?)")
    assert time.monotonic() - started < 60


def node_ips(cluster: Any) -> dict[str, str]:
    return {n["metadata"]["name"]: next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
            for n in cluster.json("get", "nodes")["items"]}


def http_get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.read().decode().strip()
    except OSError:
        return None


def test_node_port_answers_on_every_node(cluster: Any) -> None:
    """Run after the pod test. The Service selects only the echo pod on the first node, so every
    other node's NodePort must forward across nodes. The requests go to the nodes' InternalIPs:
    addresses inside the namespaces the harness made (or the VMs)."""
    backend = node_names(cluster)[0]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": NAMESPACE},
               "spec": {"type": "NodePort", "selector": {"app": "echo", "node": backend},
                        "ports": [{"port": 80, "targetPort": 8080}]}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(service))
    node_port = cluster.json("get", "service", "-n", NAMESPACE, "echo")["spec"]["ports"][0]["nodePort"]
    for name, ip in sorted(node_ips(cluster).items()):
        answer = wait_for(lambda ip=ip: http_get(f"http://{ip}:{node_port}/cgi-bin/ip"), 30,
                          f"NodePort {node_port} on {name} ({ip})", 0.5)
        assert answer, name


def test_stopped_node_goes_not_ready(cluster: Any) -> None:
    victim = node_names(cluster)[-1]
    assert ready_status(cluster, victim) == "True"
    cluster.stop_node(victim)
    stopped = time.monotonic()
    wait_for(lambda: ready_status(cluster, victim) != "True", cluster.node_monitor_grace + 30,
             f"node {victim} to stop being Ready after its agent and containerd stopped", 1.0)
    assert time.monotonic() - stopped >= cluster.node_monitor_grace - 10, "NotReady before the grace period"
    assert ready_status(cluster, victim) == "Unknown"       # no heartbeat: the controller cannot know
    others = [name for name in node_names(cluster) if name != victim]
    assert all(ready_status(cluster, name) == "True" for name in others)
