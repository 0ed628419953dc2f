"""Port-forward and exec stdin through a real node (tests/integration/private_node.py: its own netns,
containerd, `shipmate server` and agent): kubectl 1.35 (SPDY tunnelled in WebSocket, and plain SPDY) to a pod,
a Service and a Deployment, 100 sequential and 10 parallel HTTP requests, nothing left in the agent after
kubectl exits; the official Python client's port-forward (raw, several ports, a closed port, HTTP) and exec
(stdin as text and as binary, the v5 close signal), from a venv that has the `kubernetes` package
(PYTHON_CLIENT below; the test skips without one); pods/portforward needs `create`."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.private_node import BUSYBOX, KUBECTL, PrivateNode, running_node
from tests.support import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NODE_NAME = "portfwd"
LOADED = 90
# A Python with the official client (`python -m venv --system-site-packages DIR && DIR/bin/pip install kubernetes`).
PYTHON_CLIENT = os.environ.get("SHIPMATE_K8S_CLIENT_PYTHON", sys.executable)
WEB = "web"


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateNode]:
    with running_node(name=NODE_NAME) as private:
        manifests = [
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": WEB, "namespace": "default"},
             "spec": {"replicas": 1, "selector": {"matchLabels": {"app": WEB}},
                      "template": {"metadata": {"labels": {"app": WEB}}, "spec": {
                          "terminationGracePeriodSeconds": 1,
                          "containers": [{
                              "name": "httpd", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                              "ports": [{"containerPort": 80, "name": "http"}],
                              "command": ["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && "
                                                      "(nc -ll -p 1234 -e cat &) && (nc -ll -p 1235 -e cat &) && "
                                                      "exec httpd -f -p 80 -h /www"]}]}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": WEB, "namespace": "default"},
             "spec": {"selector": {"app": WEB}, "ports": [{"port": 8080, "targetPort": "http"}]}},
        ]
        for manifest in manifests:
            private.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        wait_for(lambda: web_pod(private), LOADED, "the web pod running")
        yield private


def web_pod(node: PrivateNode) -> dict[str, Any] | None:
    pods = node.json("get", "pods", "-l", f"app={WEB}")["items"]
    for pod in pods:
        statuses = pod.get("status", {}).get("containerStatuses") or []
        if statuses and "running" in statuses[0]["state"] and not pod["metadata"].get("deletionTimestamp"):
            return pod
    return None


def in_netns(node: PrivateNode, code: str, *args: str, python: str = sys.executable,
             timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*node.enter, python, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def node_metrics(node: PrivateNode) -> dict[str, float]:
    """The agent's /metrics as the API server's kubelet client certificate reads them."""
    pki = node.work_dir / "server" / "pki"
    result = subprocess.run([*node.enter, "curl", "-sf", "--cacert", str(pki / "ca.crt"),
                             "--cert", str(pki / "apiserver-kubelet-client.crt"),
                             "--key", str(pki / "apiserver-kubelet-client.key"), "https://127.0.0.1:10250/metrics"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    values = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^(shipmate_node_portforward_\w+) (\S+)$", line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets a process holds; an fd closed while we walk the table is skipped, not an error."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def agent_runtime_connections(node: PrivateNode) -> int:
    """TCP connections the agent holds to containerd's streaming server (loopback, not :10250 or :6443)."""
    pid = node.agent.pid()
    assert pid is not None
    inodes = socket_inodes(pid)
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, remote_port = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        if fields[9] in inodes and fields[3] == "01" and 10250 not in (local_port,) \
                and remote_port not in (6443, 10250) and local_port not in (6443,):
            count += 1
    return count


class PortForward:
    """`kubectl port-forward TARGET LOCAL:REMOTE` in the node's netns, until stopped."""

    def __init__(self, node: PrivateNode, target: str, local: int, remote: int, websockets: bool = True) -> None:
        env = {**os.environ, "KUBECTL_PORT_FORWARD_WEBSOCKETS": "true" if websockets else "false"}
        self.process = subprocess.Popen([*node.enter, KUBECTL, "--kubeconfig", str(node.kubeconfig), "port-forward",
                                         target, f"{local}:{remote}", "--address", "127.0.0.1"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "Forwarding from" not in line:
            self.stop()
            raise AssertionError(f"kubectl port-forward {target}: {line!r} {self.process.stderr.read()!r}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.stderr.read() if self.process.stderr else ""


HTTP_LOAD = r"""
import concurrent.futures, json, sys, time, urllib.request
port = int(sys.argv[1])
def get(_):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as answer:
        return answer.status, answer.read().decode().strip()
started = time.monotonic()
sequential = [get(i) for i in range(100)]
with concurrent.futures.ThreadPoolExecutor(10) as pool:
    parallel = list(pool.map(get, range(10)))
print(json.dumps({"sequential": sequential, "parallel": parallel, "seconds": time.monotonic() - started}))
"""


def http_load(node: PrivateNode, port: int) -> dict[str, Any]:
    result = in_netns(node, HTTP_LOAD, str(port))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def no_leftovers(node: PrivateNode) -> None:
    wait_for(lambda: node_metrics(node) == {"shipmate_node_portforward_sessions": 0.0,
                                            "shipmate_node_portforward_streams": 0.0}, 15,
             "no port-forward session or stream left in the agent")
    wait_for(lambda: agent_runtime_connections(node) == 0, 15,
             "no connection left from the agent to containerd's streaming server")


@pytest.mark.parametrize("target,remote,websockets", [
    ("pod", 80, True), ("svc/" + WEB, 8080, True), ("deploy/" + WEB, 80, True), ("pod", 80, False)],
    ids=["pod-tunnel", "service", "deployment", "pod-spdy"])
def test_kubectl_port_forward_carries_sequential_and_parallel_requests(node: PrivateNode, target: str, remote: int,
                                                                       websockets: bool) -> None:
    if target == "pod":
        target = "pod/" + web_pod(node)["metadata"]["name"]
    local = 18080 + remote % 7 + (0 if websockets else 1)
    forward = PortForward(node, target, local, remote, websockets)
    try:
        load = http_load(node, local)
        assert load["sequential"] == [[200, "hello-from-pod"]] * 100, load
        assert load["parallel"] == [[200, "hello-from-pod"]] * 10, load
        assert node_metrics(node)["shipmate_node_portforward_sessions"] == 1
    finally:
        errors = forward.stop()
    assert "error" not in errors.lower(), errors
    no_leftovers(node)


def test_port_forward_to_a_closed_port_reports_the_runtime_error(node: PrivateNode) -> None:
    pod = web_pod(node)["metadata"]["name"]
    forward = PortForward(node, "pod/" + pod, 18099, 81)
    try:
        result = in_netns(node, """
            import socket, sys
            with socket.create_connection(("127.0.0.1", 18099), timeout=10) as conn:
                conn.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
                print(repr(conn.recv(100)))
        """)
        assert result.returncode == 0 and result.stdout.strip() == "b''", result
        time.sleep(0.5)
    finally:
        errors = forward.stop()
    assert "error forwarding port 81" in errors and "connection refused" in errors, errors
    no_leftovers(node)


def test_port_forward_needs_create_on_pods_portforward(node: PrivateNode) -> None:
    node.kubectl("create", "serviceaccount", "viewer", "-n", "default", check=False)
    node.kubectl("create", "rolebinding", "viewer-view", "--clusterrole=view", "--serviceaccount=default:viewer",
                 "-n", "default", check=False)
    pod = web_pod(node)["metadata"]["name"]
    denied = node.kubectl("port-forward", "--as=system:serviceaccount:default:viewer", f"pod/{pod}", "18100:80",
                          check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr
    assert "pods/portforward" in denied.stderr or "portforward" in denied.stderr, denied.stderr
    allowed = node.kubectl("auth", "can-i", "create", "pods/portforward", "--as=system:serviceaccount:default:viewer",
                           check=False)
    assert allowed.stdout.strip() == "no"


# ------------------------------------------------------------------ the official Python client
def python_client() -> str:
    probe = subprocess.run([PYTHON_CLIENT, "-c", "import kubernetes.stream"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no `kubernetes` package in {PYTHON_CLIENT} (set SHIPMATE_K8S_CLIENT_PYTHON)")
    return PYTHON_CLIENT


CLIENT_PRELUDE = """
import json, select, socket, sys, time, urllib.request
from kubernetes import client, config
from kubernetes.stream import portforward, stream
config.load_kube_config(sys.argv[1])
api = client.CoreV1Api()
pod = sys.argv[2]
namespace = sys.argv[3] if len(sys.argv) > 3 else "default"
"""


RAW_FORWARD = """
        rounds = []
        for round in range(3):
            pf = portforward(api.connect_get_namespaced_pod_portforward, pod, namespace, ports="1234,1235,1236")
            connected = pf.connected
            socks = {p: pf.socket(p) for p in (1234, 1235)}
            replies = {}
            for p, s in socks.items():
                s.setblocking(True)
                s.sendall(f"round {round} to {p}".encode())
            for p, s in socks.items():
                want, got = f"round {round} to {p}".encode(), b""
                deadline = time.time() + 30
                while got != want and time.time() < deadline:
                    if select.select([s], [], [], 1)[0]:
                        chunk = s.recv(1024)
                        if not chunk:
                            break
                        got += chunk
                replies[p] = got.decode()
            closed = pf.socket(1236)
            closed.setblocking(True)
            closed_read = closed.recv(1024)
            error_1236 = pf.error(1236)
            closed.close()
            for s in socks.values():
                s.close()
            time.sleep(1.5)
            rounds.append({"connected": connected, "replies": replies, "closed_read": closed_read.decode(),
                           "error_1236": error_1236, "errors": [pf.error(1234), pf.error(1235)],
                           "still_connected": pf.connected})
        print(json.dumps(rounds))
"""

HTTP_FORWARD = """
        original = socket.create_connection
        def through_pod(address, *args, **kwargs):
            host = address[0].decode() if isinstance(address[0], bytes) else address[0]
            if not host.endswith(".kubernetes"):
                return original(address, *args, **kwargs)
            forward = portforward(api.connect_get_namespaced_pod_portforward, host.split(".")[0], host.split(".")[1],
                                  ports=str(address[1]))
            return forward.socket(address[1])
        socket.create_connection = through_pod
        bodies = []
        for _ in range(5):
            with urllib.request.urlopen(f"http://{pod}.{namespace}.kubernetes/", timeout=30) as answer:
                bodies.append([answer.status, answer.read().decode().strip()])
        print(json.dumps(bodies))
"""

EXEC_FLOWS = """
        result = {}
        for binary in (False, True):
            resp = stream(api.connect_post_namespaced_pod_exec, pod, namespace, command=["/bin/sh"], stderr=True,
                          stdin=True, stdout=True, tty=False, binary=binary, _preload_content=False)
            line = (lambda s: s.encode() if binary else s)
            resp.write_stdin(line("echo out 1\\n"))
            out = resp.readline_stdout(timeout=10)
            resp.write_stdin(line("echo err 2 >&2\\n"))
            err = resp.readline_stderr(timeout=10)
            resp.write_stdin(line("exit 3\\n"))
            resp.run_forever(timeout=10)
            result["binary" if binary else "text"] = {
                "out": out.decode() if binary else out, "err": err.decode() if binary else err,
                "open": resp.is_open(), "code": resp.returncode, "protocol": resp.subprotocol}
        resp = stream(api.connect_post_namespaced_pod_exec, pod, namespace, command=["/bin/sh", "-c", "cat"],
                      stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
        resp.write_stdin("through cat\\n")
        echoed = resp.readline_stdout(timeout=10)
        resp.close_channel(0)
        resp.run_forever(timeout=15)
        result["close"] = {"echoed": echoed, "open": resp.is_open(), "code": resp.returncode}
        resize = stream(api.connect_post_namespaced_pod_exec, pod, namespace,
                        command=["/bin/sh", "-c", "sleep 1; stty size"], stderr=False, stdin=True, stdout=True,
                        tty=True, _preload_content=False)
        resize.write_channel(4, json.dumps({"Width": 91, "Height": 17}))
        resize.run_forever(timeout=15)
        result["resize"] = resize.read_all().strip()
        print(json.dumps(result))
"""


def run_client(node: PrivateNode, code: str) -> dict[str, Any]:
    python = python_client()
    result = in_netns(node, CLIENT_PRELUDE + textwrap.dedent(code), str(node.kubeconfig),
                      web_pod(node)["metadata"]["name"], python=python)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_python_client_port_forward_raw_several_ports_and_a_closed_one(node: PrivateNode) -> None:
    outcome = run_client(node, RAW_FORWARD)
    for index, round_ in enumerate(outcome):
        assert round_["connected"] and not round_["still_connected"], round_
        assert round_["replies"] == {"1234": f"round {index} to 1234", "1235": f"round {index} to 1235"}, round_
        assert round_["closed_read"] == "" and "1236" in (round_["error_1236"] or ""), round_
        assert round_["errors"] == [None, None], round_
    no_leftovers(node)


def test_python_client_port_forward_http(node: PrivateNode) -> None:
    outcome = run_client(node, HTTP_FORWARD)
    assert outcome == [[200, "hello-from-pod"]] * 5
    no_leftovers(node)


def test_python_client_exec_stdin_as_text_and_binary_and_the_close_signal(node: PrivateNode) -> None:
    outcome = run_client(node, EXEC_FLOWS)
    for mode in ("text", "binary"):
        assert outcome[mode] == {"out": "out 1", "err": "err 2", "open": False, "code": 3,
                                 "protocol": "v5.channel.k8s.io"}, outcome
    assert outcome["close"] == {"echoed": "through cat", "open": False, "code": 0}, outcome
    assert outcome["resize"] == "17 91", outcome


def test_the_node_server_takes_port_forward_only_from_the_api_servers_identity(node: PrivateNode) -> None:
    """A node's own client certificate (system:node:portfwd, cluster CA) is refused by its node server: only
    the API server's kubelet-client identity may open /portForward (nodes/proxy), as for exec."""
    pod = web_pod(node)["metadata"]["name"]
    pki = node.work_dir / "server" / "pki"
    node_cert = node.agent_root / "pki" / "kubelet-client-current.pem"

    def upgrade_with(*cert: str) -> str:
        result = subprocess.run([*node.enter, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                                 "--cacert", str(pki / "ca.crt"), *cert, "-X", "POST", "-H", "Connection: Upgrade",
                                 "-H", "Upgrade: SPDY/3.1", "-H", "X-Stream-Protocol-Version: portforward.k8s.io",
                                 f"https://127.0.0.1:10250/portForward/default/{pod}"],
                                capture_output=True, text=True, timeout=30)
        return result.stdout.strip()
    assert upgrade_with("--cert", str(node_cert)) == "403"
    assert upgrade_with() in ("000", "401")        # no client certificate: no TLS session at all
    assert upgrade_with("--cert", str(pki / "apiserver-kubelet-client.crt"),
                        "--key", str(pki / "apiserver-kubelet-client.key")) == "101"
    no_leftovers(node)
