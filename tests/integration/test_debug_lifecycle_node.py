"""kubectl debug (ephemeral containers), lifecycle sleep, stopSignal and observedGeneration through a real node
(tests/integration/private_node.py): `kubectl debug -it pod/x --image=busybox --target=app` gets a shell in the
target's process namespace without restarting the pod's containers; pods/ephemeralcontainers needs update/patch
and is checked by PodSecurity; a preStop sleep holds the stop; a stopSignal stops a container that ignores
SIGTERM."""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from typing import Any, Iterator

import pytest

from tests.integration.private_node import BUSYBOX, KUBECTL, PrivateNode, running_node
from tests.support import wait_for

pytestmark = pytest.mark.integration

NODE_NAME = "debugnode"
LOADED = 90


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateNode]:
    with running_node(name=NODE_NAME) as private:
        yield private


def apply(node: PrivateNode, manifest: dict[str, Any]) -> None:
    node.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


def pod_manifest(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"terminationGracePeriodSeconds": 1, **spec}}


def app(script: str, **fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script],
            **fields}


def get_pod(node: PrivateNode, name: str, namespace: str = "default") -> dict[str, Any]:
    return node.json("get", "pod", name, "-n", namespace)


def running_pod(node: PrivateNode, name: str, namespace: str = "default") -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        pod = get_pod(node, name, namespace)
        statuses = pod.get("status", {}).get("containerStatuses") or []
        return pod if statuses and all("running" in s["state"] for s in statuses) else None
    return wait_for(ready, LOADED, f"pod {name} running", interval=0.5)


def debug_in_a_terminal(node: PrivateNode, args: list[str], typed: bytes, until: bytes, timeout: float = 90) -> bytes:
    """`kubectl debug -it ...` on a pseudo-terminal (as a person runs it); types `typed` once the shell is up."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen([*node.enter, KUBECTL, "--kubeconfig", str(node.kubeconfig), "debug", *args],
                               stdin=secondary, stdout=secondary, stderr=secondary, close_fds=True)
    os.close(secondary)
    output, sent = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and until not in output:
            ready, _, _ = select.select([primary], [], [], 1)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            if not sent and (b"If you don't see a command prompt" in output or b"# " in output):
                time.sleep(1)
                os.write(primary, typed)
                sent = True
    finally:
        if process.poll() is None:
            os.write(primary, b"exit\r")
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        os.close(primary)
    return output


def test_kubectl_debug_shares_the_target_processes_without_restarting_the_pod(node: PrivateNode) -> None:
    apply(node, pod_manifest("dbg", containers=[app("exec sleep 3601"),
                                                {**app("exec sleep 3602"), "name": "side"}]))
    before = running_pod(node, "dbg")
    ids = {s["name"]: (s["containerID"], s["restartCount"]) for s in before["status"]["containerStatuses"]}
    output = debug_in_a_terminal(node, ["-it", "pod/dbg", f"--image={BUSYBOX}", "--image-pull-policy=IfNotPresent",
                                        "--target=app", "--container=debugger"],
                                 b"ps -o args; echo DONE-$((6*7))\r", b"DONE-42")
    text = output.decode(errors="replace")
    assert "DONE-42" in text, text[-3000:]
    assert "sleep 3601" in text and "sleep 3602" not in text, text[-3000:]   # the target's PID namespace only
    after = wait_for(lambda: (p := get_pod(node, "dbg")) and p["status"].get("ephemeralContainerStatuses") and p,
                     30, "the ephemeral container's status")
    assert {s["name"]: (s["containerID"], s["restartCount"]) for s in after["status"]["containerStatuses"]} == ids
    (ephemeral,) = after["spec"]["ephemeralContainers"]
    assert ephemeral["targetContainerName"] == "app" and ephemeral["tty"] and ephemeral["stdin"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    wait_for(lambda: get_pod(node, "dbg")["status"].get("observedGeneration") == after["metadata"]["generation"],
             30, "observedGeneration to follow the new generation")
    # The debugger exited (we typed exit): it is never restarted, and the others still were not.
    done = wait_for(lambda: (p := get_pod(node, "dbg")) and "terminated" in
                    p["status"]["ephemeralContainerStatuses"][0]["state"] and p, 60, "the debugger terminated")
    assert done["status"]["ephemeralContainerStatuses"][0]["restartCount"] == 0
    time.sleep(3)
    final = get_pod(node, "dbg")
    assert "terminated" in final["status"]["ephemeralContainerStatuses"][0]["state"]
    assert {s["name"]: (s["containerID"], s["restartCount"]) for s in final["status"]["containerStatuses"]} == ids
    node.kubectl("delete", "pod", "dbg", "--wait=false")


def test_ephemeral_containers_need_the_subresource_verbs_and_pass_pod_security(node: PrivateNode) -> None:
    node.kubectl("create", "namespace", "dbg-baseline")
    node.kubectl("label", "namespace", "dbg-baseline", "pod-security.kubernetes.io/enforce=baseline")
    apply(node, pod_manifest("target", "dbg-baseline", containers=[app("exec sleep 3600")]))
    running_pod(node, "target", "dbg-baseline")
    node.kubectl("create", "serviceaccount", "viewer", "-n", "dbg-baseline")
    node.kubectl("create", "rolebinding", "viewer", "--clusterrole=view", "--serviceaccount=dbg-baseline:viewer",
                 "-n", "dbg-baseline")
    viewer = "--as=system:serviceaccount:dbg-baseline:viewer"
    assert node.kubectl("auth", "can-i", "patch", "pods/ephemeralcontainers", "-n", "dbg-baseline", viewer,
                        check=False).stdout.strip() == "no"
    denied = node.kubectl("debug", "-n", "dbg-baseline", "pod/target", f"--image={BUSYBOX}", viewer, "--", "true",
                          check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr
    assert "pods/ephemeralcontainers" in denied.stderr or "ephemeralcontainers" in denied.stderr, denied.stderr
    privileged = node.kubectl("debug", "-n", "dbg-baseline", "pod/target", f"--image={BUSYBOX}", "--profile=sysadmin",
                              "--", "true", check=False)
    assert privileged.returncode != 0 and "violates PodSecurity" in privileged.stderr, privileged.stderr
    assert not get_pod(node, "target", "dbg-baseline")["spec"].get("ephemeralContainers")
    allowed = node.kubectl("debug", "-n", "dbg-baseline", "pod/target", f"--image={BUSYBOX}", "--profile=baseline",
                           "--container=ok", "--", "true", check=False)
    assert allowed.returncode == 0, allowed.stderr
    node.kubectl("delete", "namespace", "dbg-baseline", "--wait=false")


def test_pre_stop_sleep_holds_the_stop(node: PrivateNode) -> None:
    apply(node, pod_manifest("sleeper", terminationGracePeriodSeconds=20,
                             containers=[app("trap 'exit 0' TERM; while true; do sleep 0.2; done",
                                             lifecycle={"preStop": {"sleep": {"seconds": 4}}})]))
    running_pod(node, "sleeper")
    started = time.monotonic()
    node.kubectl("delete", "pod", "sleeper", "--wait=true", "--timeout=60s")
    took = time.monotonic() - started
    assert 4 <= took < 15, took
    invalid = node.kubectl("apply", "-f", "-", check=False, stdin=json.dumps(pod_manifest(
        "too-long", terminationGracePeriodSeconds=5,
        containers=[app("true", lifecycle={"preStop": {"sleep": {"seconds": 6}}})])))
    assert invalid.returncode != 0 and "less than terminationGracePeriodSeconds (5)" in invalid.stderr, invalid.stderr


def test_stop_signal_stops_a_container_that_ignores_sigterm(node: PrivateNode) -> None:
    script = "trap '' TERM; trap 'exit 0' USR1; while true; do sleep 0.2; done"
    apply(node, pod_manifest("signalled", terminationGracePeriodSeconds=30, os={"name": "linux"},
                             containers=[app(script, lifecycle={"stopSignal": "SIGUSR1"})]))
    pod = running_pod(node, "signalled")
    assert pod["status"]["containerStatuses"][0]["stopSignal"] == "SIGUSR1"
    assert pod["status"]["observedGeneration"] == pod["metadata"]["generation"]
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["observedGeneration"] == pod["metadata"]["generation"]
    started = time.monotonic()
    node.kubectl("delete", "pod", "signalled", "--wait=true", "--timeout=60s")
    assert time.monotonic() - started < 12        # SIGTERM alone would wait out the 30 s grace period
    refused = node.kubectl("apply", "-f", "-", check=False, stdin=json.dumps(pod_manifest(
        "no-os", containers=[app("true", lifecycle={"stopSignal": "SIGUSR1"})])))
    assert refused.returncode != 0 and "spec.os.name" in refused.stderr, refused.stderr
