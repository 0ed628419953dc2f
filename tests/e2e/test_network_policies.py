"""Issue 17 items 3-5 on the `make up` cluster, with kubectl v1.35: NetworkPolicy default deny, the
`app=client` from namespace x path re-opened exactly, egress deny; a hostPort on the node's address and
a second pod asking for it Pending with kube-scheduler's message; a LoadBalancer Service's EXTERNAL-IP
(the node's address) serving traffic (the LoadBalancer part also runs in test_services.py)."""
from __future__ import annotations

import urllib.request
from typing import Any, Callable, Iterator

import pytest

from tests.e2e.cluster import TEST_IMAGE, Kubectl, unique_name
from tests.support import wait_for

pytestmark = pytest.mark.e2e

ECHO_IP = ("mkdir -p /www/cgi-bin && "
           "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && "
           "chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www")
SLEEP = "trap 'exit 0' TERM; sleep 3600 & wait"
HOST_PORT = 8081
CLUSTER_DNS = "10.96.0.10"   # the kube-dns Service of the DNS addon (shipmate.addons)


def pod(namespace: str, name: str, labels: dict[str, str], command: str, **container: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                {"name": "app", "image": TEST_IMAGE, "command": ["sh", "-c", command], **container}]}}


def netpol(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"namespace": namespace, "name": name}, "spec": {"podSelector": {}, **spec}}


def address(text: str) -> str:
    return text.strip().removeprefix("[").removesuffix("]").removeprefix("::ffff:")


def seen_by(kubectl: Kubectl, namespace: str, name: str, ip: str, port: int = 8080) -> str:
    request = f"printf 'GET /cgi-bin/ip HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} {port} | tail -n 1"
    result = kubectl.run("exec", "-n", namespace, name, "--", "sh", "-c", request, check=False)
    return address(result.stdout)


def running(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    found = kubectl.json("get", "pod", "-n", namespace, name)
    return found if found["status"].get("phase") == "Running" and found["status"].get("podIP") else None


def node_ip(kubectl: Kubectl) -> str:
    node = kubectl.json("get", "nodes")["items"][0]
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


@pytest.fixture
def namespaces(kubectl: Kubectl) -> Iterator[Callable[..., str]]:
    created: list[str] = []

    def make(prefix: str) -> str:
        name = unique_name(prefix)
        kubectl.run("create", "namespace", name)
        created.append(name)
        return name
    yield make
    for name in created:
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def test_network_policies(kubectl: Kubectl, namespaces: Callable[..., str]) -> None:
    server_ns, x, y = namespaces("e-np-a"), namespaces("e-np-x"), namespaces("e-np-y")
    manifests = [pod(server_ns, "server", {"app": "server"}, ECHO_IP), pod(server_ns, "client", {"app": "client"}, SLEEP),
                 pod(x, "client", {"app": "client"}, SLEEP), pod(x, "other", {"app": "other"}, SLEEP),
                 pod(y, "client", {"app": "client"}, SLEEP)]
    for manifest in manifests:
        kubectl.apply(manifest)
    found = {f"{m['metadata']['namespace']}/{m['metadata']['name']}":
             wait_for(lambda m=m: running(kubectl, m["metadata"]["namespace"], m["metadata"]["name"]), 60,
                      f"{m['metadata']['name']} running") for m in manifests}
    server = found[f"{server_ns}/server"]["status"]["podIP"]
    client_ip = found[f"{x}/client"]["status"]["podIP"]
    wait_for(lambda: seen_by(kubectl, x, "client", server) == client_ip, 10, "the server answering")

    kubectl.apply(netpol(server_ns, "default-deny", policyTypes=["Ingress"]))
    wait_for(lambda: seen_by(kubectl, x, "client", server) == "", 5, "default deny")
    assert seen_by(kubectl, server_ns, "client", server) == ""

    kubectl.apply(netpol(server_ns, "allow-client-from-x", podSelector={"matchLabels": {"app": "server"}},
                         ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": x}},
                                             "podSelector": {"matchLabels": {"app": "client"}}}]}]))
    wait_for(lambda: seen_by(kubectl, x, "client", server) == client_ip, 5, "x/client allowed")
    assert seen_by(kubectl, x, "other", server) == ""
    assert seen_by(kubectl, y, "client", server) == ""
    assert seen_by(kubectl, server_ns, "client", server) == ""

    kubectl.apply(netpol(x, "deny-egress", podSelector={"matchLabels": {"app": "client"}}, policyTypes=["Egress"]))
    wait_for(lambda: seen_by(kubectl, x, "client", server) == "", 5, "egress denied")
    # DNS is the kube-dns Service (kube-system/coredns pods): TCP through nc, UDP through nslookup.
    dns = (f"echo | nc -w 2 {CLUSTER_DNS} 53 >/dev/null && echo tcp-ok; "
           "nslookup -timeout=2 kubernetes.default.svc.cluster.local >/dev/null 2>&1 && echo udp-ok")

    def dns_from_client() -> str:
        return " ".join(kubectl.run("exec", "-n", x, "client", "--", "sh", "-c", dns, check=False).stdout.split())
    assert dns_from_client() == ""
    # What charts write: egress to the DNS pods by namespace and pod labels, as upstream labels them.
    kubectl.apply(netpol(x, "allow-kube-dns", podSelector={}, policyTypes=["Egress"], egress=[{
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]))
    wait_for(lambda: dns_from_client() == "tcp-ok udp-ok", 10, "DNS allowed to the kube-dns pods")
    assert seen_by(kubectl, x, "client", server) == ""   # nothing else is
    kubectl.run("delete", "netpol", "-n", x, "allow-kube-dns")
    wait_for(lambda: dns_from_client() == "", 10, "DNS denied again")
    kubectl.apply(netpol(x, "allow-dns", podSelector={}, policyTypes=["Egress"],
                         egress=[{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]))
    wait_for(lambda: dns_from_client() == "tcp-ok udp-ok", 10, "DNS allowed by the user's rule")


def test_host_port_and_the_scheduler(kubectl: Kubectl, namespaces: Callable[..., str]) -> None:
    namespace, ip = namespaces("e-hostport"), node_ip(kubectl)
    first = pod(namespace, "first", {"app": "hp"}, ECHO_IP, ports=[{"containerPort": 8080, "hostPort": HOST_PORT}])
    kubectl.apply(first)
    wait_for(lambda: running(kubectl, namespace, "first"), 60, "the hostPort pod running")

    def get(url: str) -> str:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                return address(response.read().decode())
        except OSError:
            return ""
    assert wait_for(lambda: get(f"http://{ip}:{HOST_PORT}/cgi-bin/ip"), 10, "the hostPort on the node IP")
    assert get(f"http://127.0.0.1:{HOST_PORT}/cgi-bin/ip")

    kubectl.apply(pod(namespace, "second", {"app": "hp"}, ECHO_IP, ports=[{"containerPort": 8080, "hostPort": HOST_PORT}]))
    nodes = len(kubectl.json("get", "nodes")["items"])

    def message() -> str:
        conditions = kubectl.json("get", "pod", "-n", namespace, "second")["status"].get("conditions") or []
        return next((c.get("message", "") for c in conditions if c["type"] == "PodScheduled"), "")
    wait_for(message, 30, "the second pod's scheduling failure")
    assert message() == (f"0/{nodes} nodes are available: {nodes} node(s) didn't have free ports for the requested "
                         f"pod ports. preemption: 0/{nodes} nodes are available: {nodes} No preemption victims found "
                         "for incoming pod.")
    assert kubectl.json("get", "pod", "-n", namespace, "second")["status"]["phase"] == "Pending"


def test_load_balancer_external_ip_serves(kubectl: Kubectl, namespaces: Callable[..., str]) -> None:
    namespace, ip = namespaces("e-lb"), node_ip(kubectl)
    kubectl.apply(pod(namespace, "backend", {"app": "lb"}, ECHO_IP))
    wait_for(lambda: running(kubectl, namespace, "backend"), 60, "the backend running")
    kubectl.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb", "namespace": namespace},
                   "spec": {"type": "LoadBalancer", "selector": {"app": "lb"}, "externalTrafficPolicy": "Local",
                            "ports": [{"name": "http", "port": 8099, "targetPort": 8080}]}})
    wait_for(lambda: kubectl.run("get", "svc", "-n", namespace, "lb", "--no-headers").stdout.split()[3] == ip, 20,
             "EXTERNAL-IP")
    def answer() -> str | None:  # the agents program the address a moment after the status names it
        try:
            with urllib.request.urlopen(f"http://{ip}:8099/cgi-bin/ip", timeout=5) as response:
                return response.read().decode()
        except OSError:
            return None
    assert address(wait_for(answer, 20, f"an answer on {ip}:8099"))
