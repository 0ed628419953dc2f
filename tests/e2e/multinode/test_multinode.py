"""Multi-node acceptance (issues 5 and 7): nodes Ready with routes to each other's podCIDR, pods on
every node reach every other pod by IP without NAT, a NodePort answers on every node, a 6-replica
Deployment spreads 2/2/2, a stopped node goes Unknown and its pods move to the others while the
Service keeps answering, a restarted node and a thawed (frozen) agent are Ready again promptly.

The tests run in file order on one cluster (each builds on the previous ones' objects).

Runs against the netns harness (started here), or unchanged against real machines when
SHIPMATE_MULTINODE_KUBECONFIG names their cluster (make e2e-vagrant): then commands in pods go
through `kubectl exec`, SHIPMATE_MULTINODE_STOP_NODE / SHIPMATE_MULTINODE_START_NODE (shell
commands with `{node}`) stop and start a node's containerd and agent.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from tests.e2e.multinode.harness import KUBECTL, MultiNodeCluster
from tests.support import wait_for

pytestmark = pytest.mark.e2e

EXTERNAL_KUBECONFIG = os.environ.get("SHIPMATE_MULTINODE_KUBECONFIG", "")
STOP_NODE_COMMAND = os.environ.get("SHIPMATE_MULTINODE_STOP_NODE", "")
START_NODE_COMMAND = os.environ.get("SHIPMATE_MULTINODE_START_NODE", "")
NAMESPACE = "g-multinode"
IMAGE = "127.0.0.1:5000/library/busybox:latest"
# An HTTP server with two CGIs: /cgi-bin/ip answers the client address it saw (REMOTE_ADDR),
# /cgi-bin/name the pod's hostname (its name).
ECHO_SOURCE_SCRIPT = ("mkdir -p /www/cgi-bin && "
                      "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && "
                      "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\nhostname\\n' > /www/cgi-bin/name && "
                      "chmod +x /www/cgi-bin/ip /www/cgi-bin/name && exec httpd -f -p 8080 -h /www")
# The installed servers' --node-monitor-grace-period / --pod-eviction-timeout (the harness sets shorter ones).
EXTERNAL_NODE_MONITOR_GRACE = float(os.environ.get("SHIPMATE_MULTINODE_NODE_MONITOR_GRACE", "40"))
EXTERNAL_POD_EVICTION_TIMEOUT = float(os.environ.get("SHIPMATE_MULTINODE_POD_EVICTION_TIMEOUT", "300"))
# The agent's node status check interval (agent/node_manager.STATUS_CHECK_INTERVAL): how soon a node
# repairs a status the server changed.
STATUS_CHECK_INTERVAL = 10.0
DEPLOYMENT = "web"
REPLICAS = 6
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


class ExternalCluster:
    """Machines installed with `shipmate install` (Vagrant): kubectl only."""

    def __init__(self, kubeconfig: str):
        self.kubeconfig = kubeconfig
        self.node_monitor_grace = EXTERNAL_NODE_MONITOR_GRACE
        self.pod_eviction_timeout = EXTERNAL_POD_EVICTION_TIMEOUT

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

    def _node_command(self, command: str, variable: str, name: str) -> None:
        if not command:
            pytest.skip(f"set {variable} to a command for {{node}}'s agent and containerd")
        subprocess.run(command.format(node=name), shell=True, check=True, timeout=120)

    def stop_node(self, name: str) -> None:
        self._node_command(STOP_NODE_COMMAND, "SHIPMATE_MULTINODE_STOP_NODE", name)

    def start_node(self, name: str) -> None:
        self._node_command(START_NODE_COMMAND, "SHIPMATE_MULTINODE_START_NODE", name)

    def freeze_agent(self, name: str) -> None:
        pytest.skip("freezing an agent needs the netns harness")

    def thaw_agent(self, name: str) -> None:
        pytest.skip("thawing an agent needs the netns harness")

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
    harness.kubectl("create", "namespace", NAMESPACE)
    try:
        yield harness
    finally:
        harness.down()


# ---------------------------------------------------------------- queries

def node_names(cluster: Any) -> list[str]:
    return sorted(n["metadata"]["name"] for n in cluster.json("get", "nodes")["items"])


def ready_status(cluster: Any, name: str) -> str:
    node = cluster.json("get", "node", name)
    return next((c["status"] for c in node["status"].get("conditions", []) if c["type"] == "Ready"), "")


def taint_keys(cluster: Any, name: str) -> set[str]:
    return {t["key"] for t in cluster.json("get", "node", name)["spec"].get("taints") or []}


def node_ips(cluster: Any) -> dict[str, str]:
    return {n["metadata"]["name"]: next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
            for n in cluster.json("get", "nodes")["items"]}


def is_running(pod: dict) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return bool(pod.get("status", {}).get("podIP") and statuses and all("running" in s["state"] for s in statuses))


def running_pod(cluster: Any, name: str) -> dict | None:
    pod = cluster.json("get", "pod", "-n", NAMESPACE, name)
    return pod if is_running(pod) else None


def deployment_pods(cluster: Any) -> list[dict]:
    """The Deployment's pods that are not terminating."""
    pods = cluster.json("get", "pods", "-n", NAMESPACE, "-l", f"app={DEPLOYMENT}")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def all_ready(pods: list[dict]) -> bool:
    return all(is_running(p) and any(c["type"] == "Ready" and c["status"] == "True"
                                     for c in p["status"].get("conditions") or []) for p in pods)


def http_get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.read().decode().strip()
    except OSError:
        return None


def normalized_address(text: str) -> str:
    return text.strip().removeprefix("[").removesuffix("]").removeprefix("::ffff:")


def sources_seen(cluster: Any, client: dict, server_ips: list[str]) -> dict[str, str]:
    """Asks the echo server in each of the other pods which client address it saw (one exec)."""
    request = "printf 'GET /cgi-bin/ip HTTP/1.0\\r\\n\\r\\n' | nc -w 5 $ip 8080 | tail -n 1"
    script = f"for ip in {' '.join(server_ips)}; do echo \"$ip $({request})\"; done"
    code, out, err = cluster.exec(client, "echo", ["sh", "-c", script])
    assert code == 0, f"{client['metadata']['name']}: exit {code}: {err}"
    seen = dict(line.split(" ", 1) if " " in line else (line, "") for line in out.strip().splitlines())
    return {ip: normalized_address(seen.get(ip, "")) for ip in server_ips}


def assert_pods_reach_each_other_without_nat(cluster: Any, pods: list[dict]) -> None:
    for client in pods:
        others = [p for p in pods if p is not client]
        seen = sources_seen(cluster, client, [p["status"]["podIP"] for p in others])
        for server in others:
            assert seen[server["status"]["podIP"]] == client["status"]["podIP"], (
                f"{client['metadata']['name']} on {client['spec']['nodeName']} -> {server['metadata']['name']} on "
                f"{server['spec']['nodeName']}: server saw {seen[server['status']['podIP']]!r}, client is "
                f"{client['status']['podIP']} (unreachable, or NAT on the path?)")


def names_answering(cluster: Any, client: dict, ip: str, port: int, requests: int) -> list[str]:
    """The pod names that answered `requests` requests to /cgi-bin/name on ip:port made from `client`
    ("" for a failure). nc, not wget: busybox-static's wget crashes in the image."""
    request = f"printf 'GET /cgi-bin/name HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} {port} | tail -n 1"
    script = f"for i in $(seq {requests}); do echo \"=$({request})\"; done"
    code, out, err = cluster.exec(client, "echo", ["sh", "-c", script])
    assert code == 0, f"{client['metadata']['name']}: exit {code}: {err}"
    return [line[1:].strip() for line in out.splitlines() if line.startswith("=")]


# ---------------------------------------------------------------- bare pods

def echo_pod(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "echo", "node": node}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "echo", "image": IMAGE, "command": ["sh", "-c", ECHO_SOURCE_SCRIPT]}]}}


# Each test asks for what it needs through the fixtures below (created once per module, whichever test asks
# first), so the tests pass in any order.
@pytest.fixture(scope="module")
def ready_nodes(cluster: Any) -> list[dict]:
    def every_node_ready() -> list[dict] | None:      # installed machines may still be registering
        nodes = cluster.json("get", "nodes")["items"]
        ready = [n for n in nodes if ready_status(cluster, n["metadata"]["name"]) == "True"]
        return nodes if len(nodes) == 3 and len(ready) == 3 else None
    return wait_for(every_node_ready, 120, "3 nodes Ready", 1.0)


@pytest.fixture(scope="module")
def echo_pods(cluster: Any, ready_nodes: list[dict]) -> list[dict]:
    """One echo pod on every node."""
    names = node_names(cluster)
    for node in names:
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(echo_pod(f"echo-{node}", node)))
    return [wait_for(lambda node=node: running_pod(cluster, f"echo-{node}"), 90, f"echo pod on {node}", 0.5)
            for node in names]


def test_three_nodes_ready_with_distinct_pod_cidrs(ready_nodes: list[dict]) -> None:
    cidrs = [n["spec"]["podCIDR"] for n in ready_nodes]
    assert len(set(cidrs)) == 3, cidrs


def test_pods_on_every_node_reach_each_other_without_nat(cluster: Any, echo_pods: list[dict]) -> None:
    assert sorted(p["spec"]["nodeName"] for p in echo_pods) == node_names(cluster)
    started = time.monotonic()
    assert_pods_reach_each_other_without_nat(cluster, echo_pods)
    assert time.monotonic() - started < 60


def test_node_port_answers_on_every_node(cluster: Any, echo_pods: list[dict]) -> None:
    """The Service selects only the echo pod on the first node, so every other node's NodePort must
    forward across nodes. The requests go to the nodes' InternalIPs: addresses inside the namespaces
    the harness made (or the VMs)."""
    backend = node_names(cluster)[0]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": NAMESPACE},
               "spec": {"type": "NodePort", "selector": {"app": "echo", "node": backend},
                        "ports": [{"port": 80, "targetPort": 8080}]}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(service))
    node_port = cluster.json("get", "service", "-n", NAMESPACE, "echo")["spec"]["ports"][0]["nodePort"]
    for name, ip in sorted(node_ips(cluster).items()):
        answer = wait_for(lambda ip=ip: http_get(f"http://{ip}:{node_port}/cgi-bin/name"), 30,
                          f"NodePort {node_port} on {name} ({ip})", 0.5)
        assert answer == f"echo-{backend}", name


# ---------------------------------------------------------------- a Deployment across the nodes

@pytest.fixture(scope="module")
def deployment(cluster: Any, ready_nodes: list[dict]) -> list[dict]:
    """The Deployment of REPLICAS echo pods, ready (its pods as they first came up)."""
    manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": DEPLOYMENT}},
                 "template": {"metadata": {"labels": {"app": DEPLOYMENT}},
                              "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                  {"name": "echo", "image": IMAGE, "command": ["sh", "-c", ECHO_SOURCE_SCRIPT],
                                   "readinessProbe": {"httpGet": {"path": "/cgi-bin/name", "port": 8080},
                                                      "periodSeconds": 1}}]}}}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    return wait_for(lambda: (lambda ps: ps if len(ps) == REPLICAS and all_ready(ps) else None)(deployment_pods(cluster)),
                    120, f"{REPLICAS} ready pods of deployment {DEPLOYMENT}", 1.0)


@pytest.fixture(scope="module")
def deployment_node_port(cluster: Any, deployment: list[dict]) -> int:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE},
               "spec": {"type": "NodePort", "selector": {"app": DEPLOYMENT},
                        "ports": [{"port": 80, "targetPort": 8080}]}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(service))
    return cluster.json("get", "service", "-n", NAMESPACE, DEPLOYMENT)["spec"]["ports"][0]["nodePort"]


def other_requests(cluster: Any) -> dict[str, Counter]:
    """Per node, the requests (cpu, memory) of the containers of every pod but the Deployment's."""
    per_node: dict[str, Counter] = {name: Counter() for name in node_names(cluster)}
    for pod in cluster.json("get", "pods", "-A")["items"]:
        node = pod["spec"].get("nodeName")
        if (not node or (pod["metadata"].get("labels") or {}).get("app") == DEPLOYMENT
                or pod["status"].get("phase") in ("Succeeded", "Failed")):
            continue
        for container in pod["spec"]["containers"]:
            requests = (container.get("resources") or {}).get("requests") or {}
            per_node.setdefault(node, Counter())[(requests.get("cpu", ""), requests.get("memory", ""))] += 1
    return per_node


def test_deployment_spreads_over_all_nodes_and_its_pods_reach_each_other(cluster: Any, deployment: list[dict]) -> None:
    """6 replicas on 3 nodes. Where the nodes carry the same requests (the netns harness), LeastAllocated
    scores tie and the spread tie-break (fewest pods of the same controller) decides: 2/2/2. Where they do
    not (the Vagrant VMs: the two DNS pods request 100m CPU each on some nodes), the scores differ and
    every node still gets some."""
    spread = Counter(p["spec"]["nodeName"] for p in deployment)
    names, others = node_names(cluster), other_requests(cluster)
    if all(others[name] == others[names[0]] for name in names):
        assert spread == {name: REPLICAS // 3 for name in names}, spread
    else:
        assert set(spread) == set(names), (spread, others)
    assert len({p["status"]["podIP"] for p in deployment}) == REPLICAS
    assert_pods_reach_each_other_without_nat(cluster, deployment_pods(cluster))


def test_deployment_node_port_answers_on_every_node(cluster: Any, deployment_node_port: int) -> None:
    node_port = deployment_node_port
    pod_names = {p["metadata"]["name"] for p in deployment_pods(cluster)}
    for name, ip in sorted(node_ips(cluster).items()):
        url = f"http://{ip}:{node_port}/cgi-bin/name"
        wait_for(lambda url=url: http_get(url), 30, f"NodePort {node_port} on {name} ({ip})", 0.5)
        answers = {http_get(url) for _ in range(12)}
        assert answers <= pod_names, f"{name}: {answers - pod_names}"
        assert len(answers) > 1, f"{name}: every request went to {answers}"    # load-balanced, not pinned


# ---------------------------------------------------------------- node failure and recovery

@dataclass
class NodeFailure:
    """What was seen while the last node was stopped (its agent and containerd)."""
    victim: str
    moved: set[str]                 # the Deployment's pods that ran on it
    not_ready_after: float          # seconds from the stop to Ready != True
    ready_status: str               # Ready then
    tainted: bool                   # the unreachable taint appeared
    survivors_ready: bool
    pods: list[dict]                # the Deployment's pods once replaced on the survivors
    moved_after: float


@pytest.fixture(scope="module")
def node_failure(cluster: Any, deployment: list[dict]) -> NodeFailure:
    """Stops the last node and waits until its pods run elsewhere; test_restarted_node_... starts it again."""
    victim = node_names(cluster)[-1]
    moved = {p["metadata"]["name"] for p in deployment_pods(cluster) if p["spec"]["nodeName"] == victim}
    assert moved and ready_status(cluster, victim) == "True"
    cluster.stop_node(victim)
    stopped = time.monotonic()
    wait_for(lambda: ready_status(cluster, victim) != "True", cluster.node_monitor_grace + 30,
             f"node {victim} to stop being Ready after its agent and containerd stopped", 1.0)
    not_ready_after, status = time.monotonic() - stopped, ready_status(cluster, victim)
    tainted = bool(wait_for(lambda: UNREACHABLE_TAINT in taint_keys(cluster, victim), 5,
                            f"the unreachable taint on {victim}", 0.5))
    survivors = [name for name in node_names(cluster) if name != victim]
    survivors_ready = all(ready_status(cluster, name) == "True" for name in survivors)

    def replaced() -> list[dict] | None:
        pods = deployment_pods(cluster)
        on_survivors = [p for p in pods if p["spec"].get("nodeName") in survivors]
        return pods if len(pods) == REPLICAS and len(on_survivors) == REPLICAS and all_ready(pods) else None
    pods = wait_for(replaced, cluster.pod_eviction_timeout + 90,
                    f"{REPLICAS} ready pods of {DEPLOYMENT} on {survivors}", 1.0)
    return NodeFailure(victim, moved, not_ready_after, status, tainted, survivors_ready, pods,
                       time.monotonic() - stopped)


def test_stopped_node_goes_unknown_and_its_pods_move_to_the_others(cluster: Any, node_failure: NodeFailure) -> None:
    assert node_failure.not_ready_after >= cluster.node_monitor_grace - 10, "NotReady before the grace period"
    assert node_failure.ready_status == "Unknown"       # no heartbeat: the controller cannot know
    assert node_failure.tainted and node_failure.survivors_ready
    assert not node_failure.moved & {p["metadata"]["name"] for p in node_failure.pods}
    print(f"pods moved off {node_failure.victim} {node_failure.moved_after:.0f}s after it stopped: "
          f"{dict(Counter(p['spec']['nodeName'] for p in node_failure.pods))}")


def test_service_traffic_recovers_after_the_node_failure(cluster: Any, node_failure: NodeFailure,
                                                         deployment_node_port: int) -> None:
    """From a pod on a surviving node to the ClusterIP, and from outside to each surviving node's
    NodePort: every request is answered, only by pods on the surviving nodes."""
    victim = node_failure.victim
    service = cluster.json("get", "service", "-n", NAMESPACE, DEPLOYMENT)
    cluster_ip, node_port = service["spec"]["clusterIP"], service["spec"]["ports"][0]["nodePort"]
    pods = deployment_pods(cluster)
    alive = {p["metadata"]["name"] for p in pods}
    client = pods[0]

    def cluster_ip_answers() -> list[str] | None:
        names = names_answering(cluster, client, cluster_ip, 80, 12)
        return names if len(names) == 12 and set(names) <= alive else None
    names = wait_for(cluster_ip_answers, 60, f"ClusterIP {cluster_ip} answered only by {sorted(alive)}", 1.0)
    assert len(set(names)) > 1, names
    for name, ip in sorted(node_ips(cluster).items()):
        if name == victim:
            continue
        url = f"http://{ip}:{node_port}/cgi-bin/name"
        wait_for(lambda url=url: all(http_get(url) in alive for _ in range(12)), 60,
                 f"NodePort {node_port} on {name} answered only by {sorted(alive)}", 1.0)


def test_restarted_node_is_ready_again_and_cleans_up(cluster: Any, node_failure: NodeFailure) -> None:
    victim = node_failure.victim
    cluster.start_node(victim)
    started = time.monotonic()
    wait_for(lambda: ready_status(cluster, victim) == "True", 60, f"node {victim} Ready after its restart", 0.5)
    wait_for(lambda: UNREACHABLE_TAINT not in taint_keys(cluster, victim), 15,
             f"the unreachable taints off {victim}", 0.5)
    print(f"{victim} Ready and untainted {time.monotonic() - started:.1f}s after its restart")
    # Its evicted pods (Terminating since the eviction) are killed and deleted by its agent.
    wait_for(lambda: not [p["metadata"]["name"] for p in cluster.json("get", "pods", "-n", NAMESPACE)["items"]
                          if p["spec"].get("nodeName") == victim], 90, f"the evicted pods on {victim} gone", 1.0)


def test_thawed_agent_repairs_the_unknown_status_within_its_check_interval(cluster: Any,
                                                                          ready_nodes: list[dict]) -> None:
    """A frozen agent (SIGSTOP) misses the grace period: Ready=Unknown. Once it runs again, it compares
    its status with the server's copy at its next check and writes Ready=True at once instead of
    waiting for the next periodic report (60 s). The first node: never the one node_failure stops."""
    victim = node_names(cluster)[0]
    cluster.freeze_agent(victim)
    try:
        wait_for(lambda: ready_status(cluster, victim) == "Unknown", cluster.node_monitor_grace + 30,
                 f"node {victim} Unknown while its agent is frozen", 1.0)
    finally:
        cluster.thaw_agent(victim)
    thawed = time.monotonic()
    wait_for(lambda: ready_status(cluster, victim) == "True" and UNREACHABLE_TAINT not in taint_keys(cluster, victim),
             STATUS_CHECK_INTERVAL + 5, f"node {victim} Ready and untainted after its agent was thawed", 0.5)
    print(f"{victim} Ready {time.monotonic() - thawed:.1f}s after its agent was thawed")

