"""Issue 6, HA: a real agent fails over between API servers. A private node (own netns, containerd and
registry; see private_node.py) runs an etcd member and two `shipmate server`s on it, A (:6443) and B
(:6444), which share the cluster CA through the datastore. The agent joins with a `shipmate token create`
token and `--server https://A,https://B`, so it talks to A. A is SIGKILLed: the agent's Lease is renewed
through B and the node stays Ready; B takes the controller-manager Lease and schedules a pod created
through it, which the agent runs and reports Running through B; a delete through B stops the pod's
containers and the agent's final delete removes it."""
from __future__ import annotations

import asyncio
import datetime
import json
import signal
import subprocess
import time
from typing import Any, Iterator

import pytest

from cri.client import CRIClient
from cri.gen import api_pb2
from tests.integration.etcd_support import etcd_available
from tests.integration.private_node import PrivateNode, running_node, sleeper_pod
from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not etcd_available(), reason="etcd-server/etcd-client not installed "
                                                              "(hack/up.sh --test-extras installs them)")]

NODE_NAME = "ha-agent"           # not private_node's default: its tests may run at the same time
A, B = 0, 1
HANDOVER_SECONDS = 15            # the kube-controller-manager Lease's duration
LOADED = 60                      # the shared 2-core box is often busy


@pytest.fixture
def node() -> Iterator[PrivateNode]:
    with running_node(name=NODE_NAME, servers=2) as private:
        yield private


def pod(node: PrivateNode, name: str, server: int) -> dict[str, Any]:
    result = node.kubectl("get", "pod", name, "-o", "json", check=False, server=server)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def running_container(node: PrivateNode, name: str, server: int) -> str:
    """The app container's ID once the pod is reported Running with it running, else ''."""
    status = pod(node, name, server).get("status", {})
    app = next((s for s in status.get("containerStatuses", []) if s["name"] == "app"), {})
    running = status.get("phase") == "Running" and "running" in app.get("state", {})
    return app.get("containerID", "").removeprefix("containerd://") if running else ""


def timestamp(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def lease(node: PrivateNode, name: str, namespace: str, server: int) -> dict[str, Any]:
    return node.json("get", "lease", name, "-n", namespace, server=server)["spec"]


def agent_peer_ports(node: PrivateNode) -> set[int]:
    """The loopback ports the agent process has established TCP connections to (ss in the netns)."""
    pid = node.agent.pid()
    assert pid is not None, node.agent.log()
    lines = subprocess.run([*node.enter, "ss", "-Htnp", "state", "established"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in lines if f"pid={pid}," in line}


def runtime_containers(node: PrivateNode, pod_name: str) -> list[Any]:
    async def query() -> list[Any]:
        async with CRIClient(node.endpoint) as runtime:
            return await runtime.list_containers(api_pb2.ContainerFilter(
                label_selector={"io.kubernetes.pod.name": pod_name}))
    return asyncio.run(query())


def test_agent_fails_over_to_the_second_server_when_the_first_is_killed(node: PrivateNode) -> None:
    try:
        check_failover(node)
    except BaseException:
        print(node.logs())
        raise


def check_failover(node: PrivateNode) -> None:
    started = time.monotonic()
    a_port, b_port = node.ports
    # Both servers serve the same store and trust the same CA (the agent's --ca-file is A's copy).
    assert (node.work_dir / "server-b" / "pki" / "ca.crt").read_bytes() == node.ca_file.read_bytes()
    node.kubectl("apply", "-f", "-", stdin=sleeper_pod("before"), server=A)
    before = wait_for(lambda: running_container(node, "before", B), LOADED, "pod before Running (read through B)")
    leader = lease(node, "kube-controller-manager", "kube-system", A)["holderIdentity"]
    # The agent talks to A, the first of its --server URLs (its watches hold connections open).
    assert a_port in agent_peer_ports(node) and b_port not in agent_peer_ports(node), agent_peer_ports(node)

    node.server.stop(signal.SIGKILL)
    killed = datetime.datetime.now(datetime.timezone.utc)
    killed_at = time.monotonic()
    assert node.server.pid() is None

    # The Lease is renewed after the kill, so through B, within one renew interval (10 s) and a retry.
    renewed = wait_for(lambda: (spec := lease(node, NODE_NAME, "kube-node-lease", B))
                       and timestamp(spec["renewTime"]) > killed and spec, 20, "the node Lease renewed through B",
                       interval=0.5)
    assert node.node_ready(B) is True
    assert wait_for(lambda: b_port in agent_peer_ports(node), 5, "the agent connected to B")
    assert a_port not in agent_peer_ports(node)
    assert (f"API server failing, switching failed={node.urls[A]} next={node.urls[B]}"
            in node.agent.log(400)), node.agent.log(60)
    renewal_after = time.monotonic() - killed_at

    # B takes over the control loops within the controller-manager Lease's duration and schedules a
    # pod created through it; the agent (watching through B) runs it and reports it Running through B.
    node.kubectl("apply", "-f", "-", stdin=sleeper_pod("after"), server=B)
    bound = wait_for(lambda: pod(node, "after", B).get("spec", {}).get("nodeName"),
                     HANDOVER_SECONDS + 10, "pod after scheduled by B", interval=0.2)
    scheduled_after = time.monotonic() - killed_at
    assert bound == NODE_NAME
    new_leader = lease(node, "kube-controller-manager", "kube-system", B)
    assert new_leader["holderIdentity"] != leader
    assert (timestamp(new_leader["acquireTime"]) - killed).total_seconds() <= HANDOVER_SECONDS + 0.5
    after = wait_for(lambda: running_container(node, "after", B), LOADED, "pod after Running, reported through B")
    running_after = time.monotonic() - killed_at
    assert {c.id: c.state for c in runtime_containers(node, "after")} == {after: api_pb2.CONTAINER_RUNNING}
    # The pod started before the kill was left alone.
    assert running_container(node, "before", B) == before
    assert pod(node, "before", B)["status"]["containerStatuses"][0]["restartCount"] == 0
    assert node.node_ready(B) is True

    # A delete through B: the agent stops the containers and sends the final delete (kubectl waits for it).
    node.kubectl("delete", "pod", "before", "after", "--timeout", f"{LOADED}s", server=B)
    for name in ("before", "after"):
        assert all(c.state != api_pb2.CONTAINER_RUNNING for c in runtime_containers(node, name)), name
    assert node.kubectl("get", "pods", "-o", "name", server=B).stdout.strip() == ""
    print(f"Lease renewed through B {renewal_after:.1f}s after SIGKILL of A (renewTime {renewed['renewTime']}); "
          f"pod scheduled by B after {scheduled_after:.1f}s, Running after {running_after:.1f}s; "
          f"test body {time.monotonic() - started:.1f}s")
