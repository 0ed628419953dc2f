"""Issue 17's node-agent acceptance points on the cluster `make up` started: kubectl port-forward to a pod and to
a Service carries 100 sequential and 10 parallel HTTP requests and leaves nothing in the agent once kubectl
exits; the official Python client's exec (stdin as text, close channel) and HTTP port-forward flows (with a
Python that has the `kubernetes` package: SHIPMATE_K8S_CLIENT_PYTHON, else skipped); kubectl debug of a running
pod leaves its containers' restartCount alone; crictl finds the node's containerd through /etc/crictl.yaml."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import ADMIN_KUBECONFIG, KUBECTL, TEST_IMAGE, Kubectl, node_server_ssl_context, unique_name
from tests.integration.test_metrics_endpoints import AGENT_METRICS
from tests.integration.test_port_forward_node import CLIENT_PRELUDE, EXEC_FLOWS, HTTP_FORWARD, HTTP_LOAD, PYTHON_CLIENT
from tests.support import wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
LOADED = 120


def web_server(kubectl: Kubectl, namespace: str) -> str:
    kubectl.apply({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
                   "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                       "name": "httpd", "image": TEST_IMAGE, "ports": [{"containerPort": 80, "name": "http"}],
                       "command": ["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && "
                                               "exec httpd -f -p 80 -h /www"]}]}})
    kubectl.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080, "targetPort": "http"}]}})
    wait_for(lambda: "running" in (kubectl.json("get", "pod", "web", "-n", namespace)["status"]
                                   .get("containerStatuses") or [{"state": {}}])[0]["state"],
             LOADED, "the web pod running", interval=0.5)
    return "web"


def forward_gauges() -> dict[str, float]:
    with urllib.request.urlopen(AGENT_METRICS, timeout=10, context=node_server_ssl_context()) as response:
        text = response.read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(shipmate_node_portforward_\w+) (\S+)$", text,
                                                               re.MULTILINE)}


@pytest.mark.parametrize("target,remote", [("pod/web", 80), ("svc/web", 8080)], ids=["pod", "service"])
def test_kubectl_port_forward_carries_100_sequential_and_10_parallel_requests(kubectl: Kubectl, namespace: str,
                                                                              target: str, remote: int) -> None:
    web_server(kubectl, namespace)
    local = 28080 + remote % 11
    process = subprocess.Popen([KUBECTL, "--kubeconfig", ADMIN_KUBECONFIG, "-n", namespace, "port-forward", target,
                                f"{local}:{remote}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "Forwarding from" in process.stdout.readline()
        load = subprocess.run([sys.executable, "-c", HTTP_LOAD, str(local)], capture_output=True, text=True,
                              timeout=300)
        assert load.returncode == 0, load.stderr[-3000:]
        outcome = json.loads(load.stdout.splitlines()[-1])
        assert outcome["sequential"] == [[200, "hello-from-pod"]] * 100
        assert outcome["parallel"] == [[200, "hello-from-pod"]] * 10
    finally:
        process.terminate()
        process.wait(15)
    wait_for(lambda: forward_gauges() == {"shipmate_node_portforward_sessions": 0.0,
                                          "shipmate_node_portforward_streams": 0.0}, 20,
             "no port-forward session or stream left in the agent")


def run_python_client(code: str, pod: str, namespace: str) -> dict[str, Any]:
    if subprocess.run([PYTHON_CLIENT, "-c", "import kubernetes.stream"], capture_output=True).returncode != 0:
        pytest.skip(f"no `kubernetes` package in {PYTHON_CLIENT} (set SHIPMATE_K8S_CLIENT_PYTHON)")
    result = subprocess.run([PYTHON_CLIENT, "-c", CLIENT_PRELUDE + textwrap.dedent(code), ADMIN_KUBECONFIG, pod,
                             namespace], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_python_client_exec_and_http_port_forward(kubectl: Kubectl, namespace: str) -> None:
    pod = web_server(kubectl, namespace)
    exec_outcome = run_python_client(EXEC_FLOWS, pod, namespace)
    for mode in ("text", "binary"):
        assert exec_outcome[mode] == {"out": "out 1", "err": "err 2", "open": False, "code": 3,
                                      "protocol": "v5.channel.k8s.io"}, exec_outcome
    assert exec_outcome["close"] == {"echoed": "through cat", "open": False, "code": 0}, exec_outcome
    assert run_python_client(HTTP_FORWARD, pod, namespace) == [[200, "hello-from-pod"]] * 5


def test_kubectl_debug_keeps_the_pods_containers(kubectl: Kubectl, namespace: str) -> None:
    name = unique_name("dbg")
    kubectl.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
                   "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                       {"name": "app", "image": TEST_IMAGE, "command": ["sleep", "3601"]}]}})
    pod = wait_for(lambda: (p := kubectl.json("get", "pod", name, "-n", namespace)) and
                   "running" in (p["status"].get("containerStatuses") or [{"state": {}}])[0]["state"] and p,
                   LOADED, f"pod {name} running", interval=0.5)
    before = [(s["containerID"], s["restartCount"]) for s in pod["status"]["containerStatuses"]]
    # An interactive session, as a user's: stdin stays open while the shell answers. (Input piped and closed at
    # once ends the attach as soon as containerd sees stdin's end: the debug container has no stdinOnce, so the
    # output streams are detached then, upstream too.) What the shell prints before the attach's output is
    # connected is lost, hence kubectl's "If you don't see a command prompt, try pressing enter": ask again.
    session = subprocess.Popen([kubectl.binary, "--kubeconfig", kubectl.kubeconfig, "debug", "-n", namespace,
                                f"pod/{name}", "-i", f"--image={TEST_IMAGE}", "--target=app", "--container=debugger",
                                "--", "sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert session.stdin is not None and session.stdout is not None
    os.set_blocking(session.stdout.fileno(), False)
    output = b""
    deadline = time.monotonic() + LOADED
    try:
        while b"sleep 3601" not in output and time.monotonic() < deadline and session.poll() is None:
            session.stdin.write(b"ps -o args\n")
            session.stdin.flush()
            time.sleep(1)
            output += session.stdout.read() or b""
        session.stdin.write(b"exit\n")
        session.stdin.close()
        session.wait(timeout=60)
    finally:
        if session.poll() is None:
            session.kill()
    output += session.stdout.read() or b""
    assert b"sleep 3601" in output, output.decode(errors="replace") + session.stderr.read().decode(errors="replace")
    time.sleep(2)
    after = kubectl.json("get", "pod", name, "-n", namespace)
    assert [(s["containerID"], s["restartCount"]) for s in after["status"]["containerStatuses"]] == before
    assert after["status"]["ephemeralContainerStatuses"][0]["name"] == "debugger"


def test_crictl_is_pointed_at_the_nodes_containerd() -> None:
    config = Path("/etc/crictl.yaml")
    assert config.exists(), "make up writes /etc/crictl.yaml"
    text = config.read_text()
    if text.startswith("# Written by shipmate"):
        assert "runtime-endpoint: unix:///run/containerd/containerd.sock" in text
    crictl = shutil.which("crictl")
    if crictl is None:
        pytest.skip("crictl is not installed (Debian 12 packages no cri-tools); /etc/crictl.yaml is in place")
    pods = subprocess.run([crictl, "pods"], capture_output=True, text=True, timeout=60)
    assert pods.returncode == 0 and "POD ID" in pods.stdout, pods.stderr
    containers = subprocess.run([crictl, "ps"], capture_output=True, text=True, timeout=60)
    assert containers.returncode == 0 and "CONTAINER" in containers.stdout, containers.stderr
