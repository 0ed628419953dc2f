"""Issue 3 item 4 acceptance: kubectl logs [-f] [--previous] and kubectl exec [-i] [-t] against our cluster.

kubectl v1.35 → API server (pods/log, pods/exec) → the agent's node server on :10250 → CRI log files
and containerd's streaming server.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
import urllib.request

import pytest

from tests.e2e.cluster import TEST_IMAGE, Kubectl, container_status, node_server_ssl_context, pod_manifest, unique_name
from tests.support import wait_for

pytestmark = pytest.mark.e2e

WRITER = ["sh", "-c", "i=0; while true; do echo line $i; echo warn $i >&2; i=$((i+1)); sleep 0.2; done"]
TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) (line|warn) \d+$")


def run_pod(kubectl: Kubectl, namespace: str, name: str, containers: list[dict], **spec) -> dict:
    kubectl.apply(pod_manifest(name, namespace, containers, terminationGracePeriodSeconds=1, **spec))

    def running() -> dict | None:
        pod = kubectl.json("get", "pod", name, "-n", namespace)
        states = [s.get("state", {}) for s in pod.get("status", {}).get("containerStatuses", [])]
        return pod if len(states) == len(containers) and all("running" in s for s in states) else None
    return wait_for(running, timeout=30, what=f"pod {namespace}/{name} running")


def test_logs_tail_timestamps_limit_and_container_choice(kubectl: Kubectl, namespace: str) -> None:
    name = unique_name("logs")
    run_pod(kubectl, namespace, name, [{"name": "writer", "image": TEST_IMAGE, "command": WRITER},
                                       {"name": "idle", "image": TEST_IMAGE, "command": ["sleep", "3600"]}])
    wait_for(lambda: "line 5" in kubectl.run("logs", name, "-n", namespace, "-c", "writer").stdout,
             timeout=10, what="six lines logged")

    everything = kubectl.run("logs", name, "-n", namespace, "-c", "writer").stdout.splitlines()
    assert set(everything[:2]) == {"line 0", "warn 0"}, everything[:4]    # stdout and stderr

    tail = kubectl.run("logs", name, "-n", namespace, "-c", "writer", "--tail=3", "--timestamps").stdout
    assert len(tail.splitlines()) == 3, tail
    assert all(TIMESTAMPED.match(line) for line in tail.splitlines()), tail

    # The log's first 5 bytes: stdout's "line 0" or stderr's "warn 0", whichever the runtime wrote first.
    limited = kubectl.run("logs", name, "-n", namespace, "-c", "writer", "--limit-bytes=5").stdout
    assert limited == everything[0][:5] and limited in ("line ", "warn "), limited
    assert kubectl.run("logs", name, "-n", namespace, "-c", "idle").stdout == ""

    # The API server picks nothing for a pod of two containers: upstream's message lists the choices.
    raw = kubectl.run("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{name}/log", check=False)
    assert raw.returncode != 0
    assert f"a container name must be specified for pod {name}, choose one of: [writer idle]" in raw.stderr

    missing = kubectl.run("logs", "nope", "-n", namespace, check=False)
    assert missing.returncode != 0 and 'pods "nope" not found' in missing.stderr


def test_logs_follow_sees_new_lines(kubectl: Kubectl, namespace: str) -> None:
    name = unique_name("follow")
    run_pod(kubectl, namespace, name, [{"name": "writer", "image": TEST_IMAGE, "command": WRITER}])
    started = time.monotonic()
    follower = subprocess.Popen([kubectl.binary, "--kubeconfig", kubectl.kubeconfig, "logs", "-f", name,
                                 "-n", namespace, "--tail=1"], stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(25, follower.kill)   # a silent follow fails the test instead of hanging it
    watchdog.start()
    try:
        numbers = []
        while len(numbers) < 6 and time.monotonic() - started < 20:
            line = follower.stdout.readline()
            if line.startswith("line "):
                numbers.append(int(line.split()[1]))
        assert len(numbers) == 6, numbers
        assert numbers == list(range(numbers[0], numbers[0] + 6)), numbers   # new lines, none lost
    finally:
        watchdog.cancel()
        follower.kill()
        follower.wait()


def test_logs_previous_after_restart(kubectl: Kubectl, namespace: str) -> None:
    name = unique_name("prev")
    command = ["sh", "-c", "echo instance-$(cat /proc/sys/kernel/random/uuid); sleep 3; exit 1"]
    run_pod(kubectl, namespace, name, [{"name": "c", "image": TEST_IMAGE, "command": command}])
    no_previous = kubectl.run("logs", "--previous", name, "-n", namespace, check=False)
    assert no_previous.returncode != 0
    assert f'previous terminated container "c" in pod "{name}" not found' in no_previous.stderr

    def restarted() -> dict | None:
        status = container_status(kubectl.json("get", "pod", name, "-n", namespace), "c")
        return status if status.get("lastState", {}).get("terminated", {}).get("containerID") else None
    status = wait_for(restarted, timeout=40, what="the container to restart")
    previous = kubectl.run("logs", "--previous", name, "-n", namespace).stdout
    assert re.fullmatch(r"instance-[0-9a-f-]{36}\n", previous), previous
    print(f"restartCount={status['restartCount']} previous={previous.strip()}")

    def second_instance() -> str | None:
        current = kubectl.run("logs", name, "-n", namespace, check=False).stdout
        return current if current and current != previous else None
    wait_for(second_instance, timeout=40, what="the next instance's own log")


def test_exec_commands_stdin_and_exit_codes(kubectl: Kubectl, namespace: str) -> None:
    name = unique_name("exec")
    run_pod(kubectl, namespace, name, [{"name": "c", "image": TEST_IMAGE, "command": ["sleep", "3600"]}])

    assert kubectl.run("exec", name, "-n", namespace, "--", "cat", "/etc/hostname").stdout == f"{name}\n"

    piped = kubectl.run("exec", "-i", name, "-n", namespace, "--", "sh",
                        stdin="echo piped-$((40+2))\ncat /etc/hostname\necho oops >&2\n", timeout=20)
    assert piped.returncode == 0
    assert piped.stdout == f"piped-42\n{name}\n" and "oops" in piped.stderr

    failed = kubectl.run("exec", name, "-n", namespace, "--", "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 3, failed.stderr
    assert "command terminated with exit code 3" in failed.stderr

    big = kubectl.run("exec", "-i", name, "-n", namespace, "--", "wc", "-c", stdin="x" * 300_000, timeout=20)
    assert big.stdout.strip() == "300000"


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) to give kubectl a terminal")
def test_exec_with_terminal(kubectl: Kubectl, namespace: str) -> None:
    name = unique_name("tty")
    run_pod(kubectl, namespace, name, [{"name": "c", "image": TEST_IMAGE, "command": ["sleep", "3600"]}])
    command = (f"{kubectl.binary} --kubeconfig {kubectl.kubeconfig} exec -it {name} -n {namespace} -- sh")
    result = subprocess.run(["script", "-qec", command, "/dev/null"], input="tty -s && echo is-a-tty\nexit 5\n",
                            capture_output=True, text=True, timeout=30)
    assert "is-a-tty" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 5, result.stdout + result.stderr


def test_node_server_healthz_and_metrics(kubectl: Kubectl, node_name: str) -> None:
    node = kubectl.json("get", "node", node_name)
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    context = node_server_ssl_context(kubectl.kubeconfig)     # a client certificate of the cluster CA
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context, timeout=5) as response:
        assert response.read() == b"ok\n"
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=context, timeout=5) as response:
        text = response.read().decode()
    assert re.search(r"^process_resident_memory_bytes \d", text, re.M), text[:500]
    assert "process_cpu_seconds_total" in text
    assert 'kubelet_pod_worker_duration_seconds_bucket{le="0.005",operation="sync"}' in text


def test_attach_to_a_container_reading_stdin(kubectl: Kubectl, namespace: str) -> None:
    name = unique_name("attach")
    command = ["sh", "-c", "echo ready; while read l; do echo got-$l; done"]
    run_pod(kubectl, namespace, name, [{"name": "c", "image": TEST_IMAGE, "command": command, "stdin": True}])
    # Input is kept open until the answer came back: stdin EOF ends an attach session at once.
    attach = subprocess.Popen([kubectl.binary, "--kubeconfig", kubectl.kubeconfig, "attach", "-i", name,
                               "-n", namespace], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(20, attach.kill)   # a broken attach fails the test instead of hanging it
    watchdog.start()
    try:
        attach.stdin.write("hello\n")
        attach.stdin.flush()
        assert attach.stdout.readline() == "got-hello\n"
        attach.stdin.close()
        assert attach.wait(timeout=20) == 0
    finally:
        watchdog.cancel()
        attach.kill()
        attach.wait()
    wait_for(lambda: "got-hello" in kubectl.run("logs", name, "-n", namespace).stdout, timeout=5,
             what="the attached input in the container's log")
