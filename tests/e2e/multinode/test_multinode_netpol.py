"""Issue 17 items 3-5 across nodes (the netns harness, or SHIPMATE_MULTINODE_KUBECONFIG's machines):
NetworkPolicies enforced between pods of different nodes (default deny, the `app=client` from
namespace x path re-opened exactly, egress deny), a hostPort on one node's address, and LoadBalancer
Services: EXTERNAL-IP = every node's address (traffic answered on each), with externalTrafficPolicy
Local only the node with an endpoint, which keeps the client address.

Its own cluster (the `cluster` fixture of test_multinode.py, a new one for this module); run it with
`pytest tests/e2e/multinode/test_multinode_netpol.py` (root, the local registry up)."""
from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.multinode.test_multinode import (  # noqa: F401 - `cluster` is this module's fixture too
    ECHO_SOURCE_SCRIPT, EXTERNAL_KUBECONFIG, IMAGE, cluster, http_get, is_running, node_ips, node_names,
    normalized_address)
from tests.support import wait_for

pytestmark = pytest.mark.e2e

SERVER_NS, CLIENT_NS, OTHER_NS = "np-server", "np-x", "np-y"


def pod(namespace: str, name: str, node: str, labels: dict[str, str], command: str, **container: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [
                {"name": "echo", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", command],
                 **container}]}}


def apply(cluster: Any, *objects: dict) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def netpol(namespace: str, name: str, **spec: Any) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"namespace": namespace, "name": name}, "spec": {"podSelector": {}, **spec}}


def get_pod(cluster: Any, namespace: str, name: str) -> dict:
    return cluster.json("get", "pod", "-n", namespace, name)


def seen_by(cluster: Any, client: dict, ip: str, port: int = 8080) -> str:
    """The address the echo server at ip:port saw from `client` ("" when it could not connect)."""
    request = f"printf 'GET /cgi-bin/ip HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} {port} | tail -n 1"
    _, out, _ = cluster.exec(client, "echo", ["sh", "-c", request])
    return normalized_address(out)


@pytest.fixture(scope="module")
def pods(cluster: Any) -> dict[str, dict]:
    names = node_names(cluster)
    assert len(names) >= 3
    for ns in (SERVER_NS, CLIENT_NS, OTHER_NS):
        cluster.kubectl("create", "namespace", ns, check=False)
    sleep = "trap 'exit 0' TERM; sleep 3600 & wait"
    apply(cluster, pod(SERVER_NS, "server", names[0], {"app": "server"}, ECHO_SOURCE_SCRIPT),
          pod(CLIENT_NS, "client", names[1], {"app": "client"}, sleep),
          pod(CLIENT_NS, "other", names[2], {"app": "other"}, sleep),
          pod(OTHER_NS, "client", names[2], {"app": "client"}, sleep))
    found = {}
    for ns, name in ((SERVER_NS, "server"), (CLIENT_NS, "client"), (CLIENT_NS, "other"), (OTHER_NS, "client")):
        found[f"{ns}/{name}"] = wait_for(lambda: (p := get_pod(cluster, ns, name)) and is_running(p) and p, 120,
                                         f"{ns}/{name} running")
    return found


def test_policies_across_nodes(cluster: Any, pods: dict[str, dict]) -> None:
    server_ip = pods[f"{SERVER_NS}/server"]["status"]["podIP"]
    client, other, stranger = pods[f"{CLIENT_NS}/client"], pods[f"{CLIENT_NS}/other"], pods[f"{OTHER_NS}/client"]
    assert seen_by(cluster, client, server_ip) == client["status"]["podIP"]
    apply(cluster, netpol(SERVER_NS, "default-deny", policyTypes=["Ingress"]))
    wait_for(lambda: seen_by(cluster, client, server_ip) == "", 10, "default deny across nodes")
    assert seen_by(cluster, other, server_ip) == "" and seen_by(cluster, stranger, server_ip) == ""

    apply(cluster, netpol(SERVER_NS, "allow-client-from-x", podSelector={"matchLabels": {"app": "server"}},
                          ingress=[{"from": [{"namespaceSelector": {"matchLabels": {
                              "kubernetes.io/metadata.name": CLIENT_NS}}, "podSelector": {"matchLabels": {
                                  "app": "client"}}}]}]))
    wait_for(lambda: seen_by(cluster, client, server_ip) == client["status"]["podIP"], 10, "x/client allowed")
    assert seen_by(cluster, other, server_ip) == ""        # same namespace, other labels
    assert seen_by(cluster, stranger, server_ip) == ""     # same labels, other namespace

    apply(cluster, netpol(CLIENT_NS, "deny-egress", podSelector={"matchLabels": {"app": "client"}},
                          policyTypes=["Egress"]))
    wait_for(lambda: seen_by(cluster, client, server_ip) == "", 10, "x/client's egress denied")
    cluster.kubectl("delete", "netpol", "-n", CLIENT_NS, "deny-egress")
    cluster.kubectl("delete", "netpol", "-n", SERVER_NS, "default-deny", "allow-client-from-x")
    wait_for(lambda: seen_by(cluster, stranger, server_ip) == stranger["status"]["podIP"], 10, "open again")


def test_host_port_on_one_node(cluster: Any, pods: dict[str, dict]) -> None:
    names, ips = node_names(cluster), node_ips(cluster)
    apply(cluster, pod(SERVER_NS, "hostport", names[1], {"app": "hostport"}, ECHO_SOURCE_SCRIPT,
                       ports=[{"containerPort": 8080, "hostPort": 8081}]))
    wait_for(lambda: is_running(get_pod(cluster, SERVER_NS, "hostport")), 120, "the hostPort pod running")
    client = pods[f"{CLIENT_NS}/other"]          # on another node
    wait_for(lambda: seen_by(cluster, client, ips[names[1]], 8081), 10, "the hostPort answering from another node")
    if not EXTERNAL_KUBECONFIG:
        # The test host (the wire's host address) is outside the cluster: DNAT keeps its address.
        assert normalized_address(http_get(f"http://{ips[names[1]]}:8081/cgi-bin/ip") or "") != ""
    assert seen_by(cluster, client, ips[names[2]], 8081) == ""     # only on its own node
    cluster.kubectl("delete", "pod", "-n", SERVER_NS, "hostport", "--wait=false")


def test_load_balancer_on_every_node_and_local_policy(cluster: Any, pods: dict[str, dict]) -> None:
    names, ips = node_names(cluster), node_ips(cluster)
    apply(cluster, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb", "namespace": SERVER_NS},
                    "spec": {"type": "LoadBalancer", "selector": {"app": "server"},
                             "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})

    def ingress() -> list[str]:
        service = cluster.json("get", "svc", "-n", SERVER_NS, "lb")
        return sorted(e["ip"] for e in (service["status"].get("loadBalancer") or {}).get("ingress") or [])
    wait_for(lambda: ingress() == sorted(ips.values()), 30, "every node's address as EXTERNAL-IP")
    columns = cluster.kubectl("get", "svc", "-n", SERVER_NS, "lb", "--no-headers").stdout.split()
    assert sorted(columns[3].split(",")) == sorted(ips.values())
    client = pods[f"{CLIENT_NS}/client"]
    for name in names:
        wait_for(lambda: seen_by(cluster, client, ips[name], 80), 10, f"the load balancer answering on {name}")

    # Local: only the server's node is announced, and it keeps the client's address.
    cluster.kubectl("patch", "svc", "-n", SERVER_NS, "lb", "-p", '{"spec": {"externalTrafficPolicy": "Local"}}')
    server_node = pods[f"{SERVER_NS}/server"]["spec"]["nodeName"]
    wait_for(lambda: ingress() == [ips[server_node]], 30, "only the node with the endpoint announced")
    if not EXTERNAL_KUBECONFIG:
        host_ip = "10.213.0.1"     # the harness's wire address of the test host
        wait_for(lambda: normalized_address(http_get(f"http://{ips[server_node]}:80/cgi-bin/ip") or "") == host_ip,
                 10, "the client address kept")
        other_node = next(n for n in names if n != server_node)
        # That node's proxy applies the change on its own schedule (as the server node's, waited for above).
        wait_for(lambda: http_get(f"http://{ips[other_node]}:80/cgi-bin/ip") is None, 10,
                 "the node without an endpoint no longer answering")
    cluster.kubectl("delete", "svc", "-n", SERVER_NS, "lb")
