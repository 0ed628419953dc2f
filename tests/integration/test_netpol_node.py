"""NetworkPolicies, hostPorts and LoadBalancer Services with real pods on a private node (own netns,
containerd, server and agent; see private_node.py), driven by kubectl v1.35.

The node's address is 10.251.7.1 (on the node netns' lo); a client netns (10.251.8.2, routed through the
node) plays a machine outside the cluster. Pods answer HTTP on 8080 with the client address they saw
(busybox httpd + CGI), and clients are busybox `nc` in pods or curl in the client netns.
"""
from __future__ import annotations

import json
import subprocess
import time
from typing import Any, Iterator

import pytest

from tests.integration.private_node import BUSYBOX, PrivateNode, running_node
from tests.support import wait_for

pytestmark = pytest.mark.integration

NODE_IP = "10.251.7.1"
CLIENT_NETNS = "shipmate-netpol-client"
CLIENT_IP, CLIENT_GW = "10.251.8.2", "10.251.8.1"
LOADED = 120
POLICY_BOUND = 1.0          # issue 17: a policy change reaches the kernel within 1 s
ECHO_IP = ("mkdir -p /www/cgi-bin && "
           "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && "
           "chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www")
SLEEP = "trap 'exit 0' TERM; sleep 3600 & wait"


def _client_netns(node: PrivateNode) -> None:
    subprocess.run(["ip", "netns", "del", CLIENT_NETNS], capture_output=True)
    subprocess.run(["ip", "netns", "add", CLIENT_NETNS], check=True)
    client = ["nsenter", f"--net=/var/run/netns/{CLIENT_NETNS}"]
    subprocess.run([*node.enter, "ip", "link", "add", "npc-node", "type", "veth", "peer", "name", "npc-client"],
                   check=True)
    subprocess.run([*node.enter, "ip", "link", "set", "npc-client", "netns", CLIENT_NETNS], check=True)
    subprocess.run([*node.enter, "ip", "addr", "add", f"{CLIENT_GW}/24", "dev", "npc-node"], check=True)
    subprocess.run([*node.enter, "ip", "link", "set", "npc-node", "up"], check=True)
    subprocess.run([*client, "ip", "addr", "add", f"{CLIENT_IP}/24", "dev", "npc-client"], check=True)
    subprocess.run([*client, "ip", "link", "set", "npc-client", "up"], check=True)
    subprocess.run([*client, "ip", "link", "set", "lo", "up"], check=True)
    subprocess.run([*client, "ip", "route", "add", "default", "via", CLIENT_GW], check=True)


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateNode]:
    with running_node(name="netpol", node_ip=NODE_IP) as private:
        _client_netns(private)
        try:
            yield private
        finally:
            subprocess.run(["ip", "netns", "del", CLIENT_NETNS], capture_output=True)


def apply(node: PrivateNode, *objects: dict[str, Any]) -> None:
    node.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def pod(namespace: str, name: str, labels: dict[str, str], command: str, **extra: Any) -> dict[str, Any]:
    container = {"name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", command],
                 **extra.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [container], **extra}}


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def netpol(ns: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": {}, **spec}}


def pod_ip(node: PrivateNode, ns: str, name: str) -> str:
    return node.json("get", "pod", "-n", ns, name)["status"].get("podIP", "")


def running(node: PrivateNode, ns: str, *names: str) -> bool:
    for name in names:
        status = node.json("get", "pod", "-n", ns, name)["status"]
        if status.get("phase") != "Running" or not status.get("podIP"):
            return False
    return True


def _address(answer: str) -> str:
    """httpd listens on IPv6 too: it reports IPv4 clients as [::ffff:a.b.c.d]."""
    answer = answer.strip()
    return answer[len("[::ffff:"):-1] if answer.startswith("[::ffff:") and answer.endswith("]") else answer


def from_pod(node: PrivateNode, ns: str, name: str, ip: str, port: int = 8080) -> str:
    """What the server at ip:port answers this pod ("" when the connection fails)."""
    request = f"printf 'GET /cgi-bin/ip HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} {port} | tail -n 1"
    result = node.kubectl("exec", "-n", ns, name, "--", "sh", "-c", request, check=False)
    return _address(result.stdout)


def from_outside(ip: str, port: int = 8080, timeout: float = 2.0, netns: str = CLIENT_NETNS) -> str:
    """What the server answers the client netns ("" when it cannot connect)."""
    result = subprocess.run(["nsenter", f"--net=/var/run/netns/{netns}", "curl", "-s", "-m", str(timeout),
                             f"http://{ip}:{port}/cgi-bin/ip"], capture_output=True, text=True)
    return _address(result.stdout) if result.returncode == 0 else ""


def seconds_until(check, limit: float = 10.0) -> float:
    """How long after now `check()` first holds (polled quickly); fails past `limit`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit:
            raise AssertionError(f"not within {limit} s")
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def workloads(node: PrivateNode) -> dict[str, str]:
    apply(node, namespace("a"), namespace("x", team="x"), namespace("y", team="y"))
    apply(node, pod("a", "server", {"app": "server"}, ECHO_IP,
                    container={"ports": [{"name": "http", "containerPort": 8080}]}),
          pod("a", "client", {"app": "client"}, SLEEP),
          pod("x", "client", {"app": "client"}, SLEEP), pod("x", "other", {"app": "other"}, SLEEP),
          pod("y", "client", {"app": "client"}, SLEEP))
    for ns, names in (("a", ("server", "client")), ("x", ("client", "other")), ("y", ("client",))):
        wait_for(lambda: running(node, ns, *names), LOADED, f"pods of {ns} running")
    ips = {f"{ns}/{n}": pod_ip(node, ns, n) for ns, n in
           (("a", "server"), ("a", "client"), ("x", "client"), ("x", "other"), ("y", "client"))}
    wait_for(lambda: from_outside(ips["a/server"], timeout=1) == CLIENT_IP, 30, "the server answering")
    return ips


def test_default_deny_ingress_then_allow_exactly_app_client_from_x(node: PrivateNode, workloads: dict[str, str]):
    server = workloads["a/server"]
    # No policy: everyone reaches the server, and it sees their own addresses (no NAT).
    assert from_pod(node, "x", "client", server) == workloads["x/client"]
    assert from_pod(node, "a", "client", server) == workloads["a/client"]

    apply(node, netpol("a", "default-deny", policyTypes=["Ingress"]))
    blocked_after = seconds_until(lambda: from_outside(server, timeout=0.3) == "")
    assert blocked_after <= POLICY_BOUND, f"default deny took {blocked_after:.2f} s"
    for ns, name in (("x", "client"), ("x", "other"), ("a", "client"), ("y", "client")):
        assert from_pod(node, ns, name, server) == "", f"{ns}/{name} still reaches the server"

    apply(node, netpol("a", "allow-client-from-x", podSelector={"matchLabels": {"app": "server"}},
                       ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "x"}},
                                           "podSelector": {"matchLabels": {"app": "client"}}}],
                                 "ports": [{"protocol": "TCP", "port": "http"}]}]))
    wait_for(lambda: from_pod(node, "x", "client", server) == workloads["x/client"], 5, "x/client allowed")
    assert from_pod(node, "x", "other", server) == ""      # same namespace, other labels
    assert from_pod(node, "y", "client", server) == ""     # same labels, other namespace
    assert from_pod(node, "a", "client", server) == ""     # the policy's namespace is not implied
    assert from_outside(server, timeout=1) == ""

    # Re-opening for the outside client (an ipBlock) is as quick.
    apply(node, netpol("a", "allow-outside", ingress=[{"from": [{"ipBlock": {
        "cidr": "10.251.8.0/24", "except": ["10.251.8.128/25"]}}]}]))
    opened_after = seconds_until(lambda: from_outside(server, timeout=0.3) == CLIENT_IP)
    assert opened_after <= POLICY_BOUND, f"allow took {opened_after:.2f} s"
    # Deleting the deny policy alone changes nothing (the allow policies still isolate the server).
    node.kubectl("delete", "netpol", "-n", "a", "default-deny")
    assert from_pod(node, "a", "client", server) == ""
    node.kubectl("delete", "netpol", "-n", "a", "allow-client-from-x", "allow-outside")
    reopened_after = seconds_until(lambda: from_outside(server, timeout=0.3) == CLIENT_IP)
    assert reopened_after <= POLICY_BOUND
    assert from_pod(node, "a", "client", server) == workloads["a/client"]
    print(f"policy latency: deny {blocked_after:.3f} s, allow {opened_after:.3f} s, delete {reopened_after:.3f} s")


def test_pod_label_change_applies_within_a_second(node: PrivateNode, workloads: dict[str, str]):
    server = workloads["a/server"]
    apply(node, netpol("a", "only-open", podSelector={"matchLabels": {"app": "server"}},
                       ingress=[{"from": [{"podSelector": {"matchLabels": {"open": "yes"}}}]}]))
    wait_for(lambda: from_pod(node, "a", "client", server) == "", 5, "the server isolated")
    node.kubectl("label", "pod", "-n", "a", "client", "open=yes")
    wait_for(lambda: from_pod(node, "a", "client", server) == workloads["a/client"], 5, "the labelled client allowed")
    # A namespace label change too: the outside client is never a pod, the server's own label goes.
    node.kubectl("label", "pod", "-n", "a", "server", "app-")
    assert seconds_until(lambda: from_outside(server, timeout=0.3) == CLIENT_IP) <= POLICY_BOUND
    node.kubectl("label", "pod", "-n", "a", "server", "app=server")
    node.kubectl("label", "pod", "-n", "a", "client", "open-")
    node.kubectl("delete", "netpol", "-n", "a", "only-open")


def test_namespace_label_change_applies_within_a_second(node: PrivateNode, workloads: dict[str, str]):
    server = workloads["a/server"]
    apply(node, netpol("a", "from-trusted", podSelector={"matchLabels": {"app": "server"}},
                       ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"trusted": "yes"}}}]}]))
    wait_for(lambda: from_pod(node, "y", "client", server) == "", 5, "the server isolated")
    labelled = time.monotonic()
    node.kubectl("label", "namespace", "y", "trusted=yes")
    wait_for(lambda: from_pod(node, "y", "client", server) == workloads["y/client"], 5, "y trusted")
    print(f"namespace label to allowed (incl. one kubectl exec): {time.monotonic() - labelled:.3f} s")
    assert from_pod(node, "x", "client", server) == ""
    node.kubectl("label", "namespace", "y", "trusted-")
    wait_for(lambda: from_pod(node, "y", "client", server) == "", 5, "y untrusted again")
    node.kubectl("delete", "netpol", "-n", "a", "from-trusted")


def test_egress_deny_blocks_outbound_and_dns_only_where_allowed(node: PrivateNode, workloads: dict[str, str]):
    server = workloads["a/server"]
    dns = "echo | nc -w 2 169.254.20.10 53 >/dev/null && echo dns-ok"
    assert node.kubectl("exec", "-n", "x", "client", "--", "sh", "-c", dns).stdout.strip() == "dns-ok"
    apply(node, netpol("x", "deny-egress", podSelector={"matchLabels": {"app": "client"}}, policyTypes=["Egress"]))
    wait_for(lambda: from_pod(node, "x", "client", server) == "", 5, "x/client's egress denied")
    assert node.kubectl("exec", "-n", "x", "client", "--", "sh", "-c", dns, check=False).stdout.strip() == ""
    assert from_pod(node, "x", "other", server) == workloads["x/other"]       # not selected
    # Users allow DNS themselves (as upstream): port 53 to anywhere.
    apply(node, netpol("x", "allow-dns", podSelector={}, policyTypes=["Egress"],
                       egress=[{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]))
    wait_for(lambda: node.kubectl("exec", "-n", "x", "client", "--", "sh", "-c", dns, check=False).stdout.strip()
             == "dns-ok", 5, "DNS allowed again")
    assert from_pod(node, "x", "client", server) == ""
    # x/other is now egress-isolated too (allow-dns selects every pod of x): only DNS leaves.
    assert from_pod(node, "x", "other", server) == ""
    node.kubectl("delete", "netpol", "-n", "x", "deny-egress", "allow-dns")
    wait_for(lambda: from_pod(node, "x", "client", server) == workloads["x/client"], 5, "egress open again")


def test_a_policy_in_one_namespace_never_opens_another(node: PrivateNode, workloads: dict[str, str]):
    server = workloads["a/server"]
    apply(node, netpol("a", "deny", policyTypes=["Ingress"]),
          netpol("x", "allow-everything", ingress=[{}], egress=[{}]))
    wait_for(lambda: from_outside(server, timeout=0.5) == "", 5, "the server isolated")
    assert from_pod(node, "x", "client", server) == ""
    node.kubectl("delete", "netpol", "-n", "a", "deny")
    node.kubectl("delete", "netpol", "-n", "x", "allow-everything")


def test_spoofed_source_addresses_are_dropped(node: PrivateNode, workloads: dict[str, str]):
    """A pod with NET_ADMIN takes the allowed client's address as a second one and connects from it:
    the anti-spoofing rule of its veth drops the packets before any policy sees them."""
    server = workloads["a/server"]
    apply(node, pod("y", "spoofer", {"app": "spoofer"}, SLEEP,
                    container={"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}),
          netpol("a", "only-x-client", podSelector={"matchLabels": {"app": "server"}},
                 ingress=[{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "client"}}}]}]))
    wait_for(lambda: running(node, "y", "spoofer"), LOADED, "the spoofer running")
    wait_for(lambda: from_pod(node, "y", "spoofer", server) == "", 5, "the spoofer isolated")
    spoofed = workloads["y/client"]
    node.kubectl("exec", "-n", "y", "spoofer", "--", "ip", "addr", "add", f"{spoofed}/32", "dev", "eth0")
    # busybox nc has no -s: a route to the server with the stolen address as its source does it.
    node.kubectl("exec", "-n", "y", "spoofer", "--", "ip", "route", "replace", f"{server}/32", "dev", "eth0",
                 "src", spoofed)
    before = _drops(node)
    request = f"printf 'GET /cgi-bin/ip HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {server} 8080 | tail -n 1"
    answer = _address(node.kubectl("exec", "-n", "y", "spoofer", "--", "sh", "-c", request, check=False).stdout)
    assert answer == ""
    assert _drops(node) > before
    node.kubectl("delete", "netpol", "-n", "a", "only-x-client")
    node.kubectl("delete", "pod", "-n", "y", "spoofer", "--wait=false")


def _drops(node: PrivateNode) -> int:
    """Packets dropped by the anti-spoofing rules so far."""
    out = subprocess.run([*node.enter, "iptables", "-w", "-t", "filter", "-L", "SHIPMATE-NP-FORWARD", "-v", "-n", "-x"],
                         capture_output=True, text=True, check=True).stdout
    return sum(int(line.split()[0]) for line in out.splitlines() if "anti-spoofing" in line)


# ---------------------------------------------------------------- hostPort

def test_host_port_answers_on_the_node_ip_and_localhost(node: PrivateNode, workloads: dict[str, str]):
    apply(node, pod("default", "hostport", {"app": "hostport"}, ECHO_IP,
                    container={"ports": [{"containerPort": 8080, "hostPort": 8081}]}))
    wait_for(lambda: running(node, "default", "hostport"), LOADED, "the hostPort pod running")
    # From outside the node: the client keeps its address (DNAT only).
    wait_for(lambda: from_outside(NODE_IP, 8081) == CLIENT_IP, 10, "hostPort on the node IP")
    # On the node itself: node IP and localhost (masqueraded to the bridge address).
    local = subprocess.run([*node.enter, "curl", "-s", "-m", "2", f"http://127.0.0.1:8081/cgi-bin/ip"],
                           capture_output=True, text=True)
    assert local.returncode == 0 and local.stdout.strip(), local
    by_ip = subprocess.run([*node.enter, "curl", "-s", "-m", "2", f"http://{NODE_IP}:8081/cgi-bin/ip"],
                           capture_output=True, text=True)
    assert by_ip.returncode == 0 and by_ip.stdout.strip()
    # From another pod of the node, through the node IP.
    assert from_pod(node, "a", "client", NODE_IP, 8081) != ""

    # A second pod asking for the same port stays Pending with kube-scheduler's message.
    apply(node, pod("default", "hostport-2", {"app": "hostport"}, ECHO_IP,
                    container={"ports": [{"containerPort": 8080, "hostPort": 8081}]}))

    def unschedulable() -> str:
        conditions = node.json("get", "pod", "hostport-2")["status"].get("conditions") or []
        return next((c.get("message", "") for c in conditions if c["type"] == "PodScheduled"
                     and c["status"] == "False"), "")
    wait_for(unschedulable, 30, "the second pod unschedulable")
    assert unschedulable() == ("0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod "
                               "ports. preemption: 0/1 nodes are available: 1 No preemption victims found for "
                               "incoming pod.")
    assert node.json("get", "pod", "hostport-2")["status"]["phase"] == "Pending"
    describe = node.kubectl("describe", "pod", "hostport-2").stdout
    assert "didn't have free ports for the requested pod ports" in describe

    # Deleting the first pod frees the port: the second one is scheduled and answers.
    node.kubectl("delete", "pod", "hostport", "--wait=true", "--timeout=60s")
    wait_for(lambda: running(node, "default", "hostport-2"), LOADED, "the second pod running")
    wait_for(lambda: from_outside(NODE_IP, 8081) == CLIENT_IP, 10, "hostPort moved to the second pod")
    node.kubectl("delete", "pod", "hostport-2", "--wait=false")


# ---------------------------------------------------------------- LoadBalancer

def _external_ip(node: PrivateNode) -> str:
    lines = node.kubectl("get", "svc", "lb", "--no-headers").stdout.split()
    return lines[3] if len(lines) > 3 else ""


def test_load_balancer_gets_the_node_ip_and_serves_traffic(node: PrivateNode, workloads: dict[str, str]):
    apply(node, pod("default", "lb-backend", {"app": "lb"}, ECHO_IP),
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb", "namespace": "default"},
           "spec": {"type": "LoadBalancer", "selector": {"app": "lb"},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    wait_for(lambda: running(node, "default", "lb-backend"), LOADED, "the backend running")
    # kubectl shows the node's address as EXTERNAL-IP ...
    wait_for(lambda: _external_ip(node) == NODE_IP, 20, "EXTERNAL-IP")
    service = node.json("get", "svc", "lb")
    assert service["status"]["loadBalancer"]["ingress"] == [{"ip": NODE_IP, "ipMode": "VIP"}]
    # ... and <EXTERNAL-IP>:<port> answers from outside the node, from the node and from a pod.
    answer = wait_for(lambda: from_outside(NODE_IP, 80), 10, "the load balancer answering")
    # externalTrafficPolicy Cluster: masqueraded (the node's bridge address).
    assert answer != CLIENT_IP
    local = subprocess.run([*node.enter, "curl", "-s", "-m", "2", f"http://{NODE_IP}:80/cgi-bin/ip"],
                           capture_output=True, text=True)
    assert local.returncode == 0 and local.stdout.strip()
    assert from_pod(node, "a", "client", NODE_IP, 80) != ""

    # externalTrafficPolicy Local: the client address is kept ...
    node.kubectl("patch", "svc", "lb", "-p", '{"spec": {"externalTrafficPolicy": "Local"}}')
    wait_for(lambda: from_outside(NODE_IP, 80, timeout=1) == CLIENT_IP, 10, "the client address kept")
    assert _external_ip(node) == NODE_IP
    # ... and a node without a ready local endpoint is no longer announced, nor answers.
    node.kubectl("delete", "pod", "lb-backend", "--wait=true", "--timeout=60s")
    wait_for(lambda: _external_ip(node) == "<pending>", 20, "the ingress withdrawn")
    assert from_outside(NODE_IP, 80, timeout=1) == ""
    # Back to a ClusterIP Service: the controller clears what it wrote.
    apply(node, pod("default", "lb-backend", {"app": "lb"}, ECHO_IP))
    wait_for(lambda: _external_ip(node) == NODE_IP, LOADED, "the ingress back with a local endpoint")
    node.kubectl("patch", "svc", "lb", "--type=json", "-p",
                 '[{"op": "replace", "path": "/spec/type", "value": "ClusterIP"},'
                 ' {"op": "remove", "path": "/spec/externalTrafficPolicy"},'
                 ' {"op": "remove", "path": "/spec/ports/0/nodePort"}]')
    wait_for(lambda: not node.json("get", "svc", "lb")["status"].get("loadBalancer"), 20, "the ingress cleared")
    node.kubectl("delete", "svc", "lb")
    node.kubectl("delete", "pod", "lb-backend", "--wait=false")
