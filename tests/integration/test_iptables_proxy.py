"""The proxy against real iptables, in network namespaces this test creates (root).

A "node" netns and a "pod" netns joined by a veth; a TCP server in the pod; the Proxier programs
the node's tables through `netns.iptables` and traffic from the node reaches the pod through a
ClusterIP and a NodePort. Runs on both backends when both are installed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from agent.proxy import chains
from agent.proxy.proxier import Proxier, cleanup_iptables
from agent.proxy.render import RenderConfig
from netns.iptables import LEGACY, NFT, Iptables, IptablesError, detect_backend, installed_backends

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)")]

NODE_IP, POD_IP, EXTRA_NODE_IP = "10.244.0.1", "10.244.0.5", "192.168.77.1"
SERVER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen()
print("ready", flush=True)
while True:
    c, addr = s.accept()
    c.sendall(b"pod-answer")
    c.close()
"""
CLIENT = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print(s.recv(100).decode())
except OSError as e:
    print(type(e).__name__)
"""
UDP_SERVER = """
import selectors, socket
sel = selectors.DefaultSelector()
for port in (5353, 5354):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    sel.register(s, selectors.EVENT_READ, port)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        data, addr = key.fileobj.recvfrom(100)
        key.fileobj.sendto(f"udp-{key.data}".encode(), addr)
"""
UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40000))  # one source port: the same conntrack flow every time
s.settimeout(2)
s.connect((sys.argv[1], int(sys.argv[2])))
try:
    s.send(b"ping")
    print(s.recv(100).decode())
except OSError as e:
    print(type(e).__name__)
"""


def sh(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True)


def enter(netns: str) -> list[str]:
    return ["nsenter", f"--net=/var/run/netns/{netns}"]


def backends():
    return [pytest.param(b, id=b.name) for b in installed_backends()]


@pytest.fixture
def topology():
    suffix = os.getpid()
    node, pod = f"shipmate-it-node-{suffix}", f"shipmate-it-pod-{suffix}"
    for ns in (node, pod):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        sh("ip", "netns", "add", ns)
    server = None
    try:
        sh("ip", "-n", node, "link", "add", "vnode", "type", "veth", "peer", "name", "eth0", "netns", pod)
        sh("ip", "-n", node, "addr", "add", f"{NODE_IP}/24", "dev", "vnode")
        # A second node address (no dummy module in containers: a veth pair serves).
        sh("ip", "-n", node, "link", "add", "extra", "type", "veth", "peer", "name", "extra-peer")
        sh("ip", "-n", node, "addr", "add", f"{EXTRA_NODE_IP}/32", "dev", "extra")
        for ns, dev in ((node, "vnode"), (node, "extra"), (node, "extra-peer"), (node, "lo"), (pod, "eth0"), (pod, "lo")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", pod, "addr", "add", f"{POD_IP}/24", "dev", "eth0")
        sh("ip", "-n", pod, "route", "add", "default", "via", NODE_IP)
        # Service IPs must be routable for the OUTPUT path to reach the nat table.
        sh("ip", "-n", node, "route", "add", "10.96.0.0/12", "dev", "vnode")
        # What the agent's host setup does for NodePorts on 127.0.0.1 (agent.proxy.host).
        sh(*enter(node), "sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet")
        server = subprocess.Popen([*enter(pod), sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"
        yield node
    finally:
        if server:
            server.kill()
            server.wait()
        for ns in (node, pod):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def connect(netns: str, ip: str, port: int) -> str:
    out = subprocess.run([*enter(netns), sys.executable, "-c", CLIENT, ip, str(port)],
                         capture_output=True, text=True, timeout=20)
    return out.stdout.strip()


def service(name: str, ip: str, port: int = 80, node_port: int = 0, protocol: str = "TCP") -> dict:
    spec_port = {"name": "http", "port": port, "protocol": protocol}
    spec = {"clusterIP": ip, "ports": [spec_port]}
    if node_port:
        spec["type"], spec_port["nodePort"] = "NodePort", node_port
    return {"metadata": {"namespace": "default", "name": name}, "spec": spec}


def endpoints(name: str, *ips: str, port: int = 8080) -> dict:
    return {"metadata": {"namespace": "default", "name": f"{name}-abc",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": "node-a"} for ip in ips]}


def save(backend, netns: str, table: str, counters: bool = False) -> str:
    return sh(*enter(netns), backend.save, "-t", table, *(["-c"] if counters else [])).stdout


def chain_lines(text: str) -> set[str]:
    return {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")}


def sep_counters(saved: str, chain: str) -> int:
    """Packets counted by the DNAT rule of an endpoint chain (`iptables-save -c` format)."""
    for line in saved.splitlines():
        if f"-A {chain} " in line and "DNAT" in line:
            return int(line[1:].split(":")[0])
    raise AssertionError(f"no DNAT rule in {chain}")


def make_proxier(backend, netns: str) -> Proxier:
    return Proxier(Iptables(backend, netns), RenderConfig(cluster_cidr="10.244.0.0/16", node_name="node-a"),
                   min_sync_period=0)


@pytest.mark.parametrize("backend", backends())
async def test_cluster_ip_node_port_reject_partial_and_cleanup(topology, backend):
    node = topology
    proxier = make_proxier(backend, node)
    proxier.on_service_add(service("web", "10.96.0.10", node_port=30080))
    proxier.on_endpoint_slice_update(endpoints("web", POD_IP))
    proxier.on_service_add(service("empty", "10.96.0.11"))
    proxier.on_service_add(service("other", "10.96.0.12"))
    proxier.on_endpoint_slice_update(endpoints("other", POD_IP))
    proxier.on_services_synced()
    proxier.on_endpoint_slices_synced()
    assert await proxier.sync()

    nat = save(backend, node, "nat")
    web = chains.cluster_policy_chain("default/web:http", "tcp")
    other = chains.cluster_policy_chain("default/other:http", "tcp")
    assert {"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-MARK-MASQ", "KUBE-POSTROUTING", web, other} <= chain_lines(nat)
    assert "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES" in nat
    assert "-j KUBE-SERVICES" in save(backend, node, "filter")

    # ClusterIP and NodePort (on every node address) reach the pod; no endpoints → refused.
    assert connect(node, "10.96.0.10", 80) == "pod-answer"
    assert connect(node, NODE_IP, 30080) == "pod-answer"
    assert connect(node, EXTRA_NODE_IP, 30080) == "pod-answer"
    assert connect(node, "127.0.0.1", 30080) == "pod-answer"   # localhost NodePorts, as upstream's default
    assert connect(node, "10.96.0.11", 80) == "ConnectionRefusedError"
    assert connect(node, "10.96.0.12", 80) == "pod-answer"

    # One service changes: only its chains are rewritten (the other keeps its counters).
    other_sep = chains.endpoint_chain("default/other:http", "tcp", f"{POD_IP}:8080")
    before = sep_counters(save(backend, node, "nat", counters=True), other_sep)
    assert before >= 1
    proxier.on_endpoint_slice_update(endpoints("web", POD_IP, port=9999))
    assert await proxier.sync()
    after = save(backend, node, "nat", counters=True)
    assert sep_counters(after, other_sep) == before
    assert f"--to-destination {POD_IP}:9999" in after
    assert chains.endpoint_chain("default/web:http", "tcp", f"{POD_IP}:8080") not in chain_lines(after)
    assert connect(node, "10.96.0.10", 80) == "ConnectionRefusedError"  # nothing listens on 9999

    # The empty service gets endpoints: REJECT gone, traffic flows.
    proxier.on_endpoint_slice_update(endpoints("empty", POD_IP))
    assert await proxier.sync()
    assert connect(node, "10.96.0.11", 80) == "pod-answer"
    assert "has no endpoints" not in save(backend, node, "filter")

    # A removed service's chains are gone.
    proxier.on_service_delete(service("other", "10.96.0.12"))
    assert await proxier.sync()
    nat = save(backend, node, "nat")
    assert other not in chain_lines(nat) and other_sep not in chain_lines(nat)
    assert "10.96.0.12" not in nat
    assert connect(node, "10.96.0.12", 80) != "pod-answer"

    # Someone removes our rules behind the proxier's back: the next quiet sync notices the missing
    # canary chain and programs everything again.
    await cleanup_iptables(node, [backend])
    assert connect(node, "10.96.0.11", 80) != "pod-answer"
    assert await proxier.sync()
    assert connect(node, "10.96.0.11", 80) == "pod-answer"

    # Cleanup removes every chain and jump of ours.
    removed = await cleanup_iptables(node, [backend])
    assert f"{backend.name}:nat/KUBE-SERVICES" in removed
    for table in ("nat", "filter", "mangle"):
        assert "KUBE-" not in save(backend, node, table)


@pytest.mark.parametrize("backend", backends())
async def test_restore_error_names_the_failing_line(topology, backend):
    iptables = Iptables(backend, topology)
    with pytest.raises(IptablesError) as failure:
        await iptables.restore("*nat\n:KUBE-TEST - [0:0]\n-A KUBE-TEST -j KUBE-MISSING\nCOMMIT\n")
    assert failure.value.line_number in (3, 4)  # legacy names the rule, nft the COMMIT
    assert "KUBE-" in (failure.value.line or "") or "COMMIT" in (failure.value.line or "")


async def test_detects_the_backend_that_holds_rules(topology):
    if not shutil.which(LEGACY.restore):
        pytest.skip("iptables-legacy not installed")
    node = topology
    assert await detect_backend(node) in (NFT, LEGACY)  # empty: the distribution's alternative
    await Iptables(LEGACY, node).restore("*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n")
    assert await detect_backend(node) == LEGACY
    await Iptables(LEGACY, node).restore("*mangle\n:KUBE-IPTABLES-HINT - [0:0]\n-X KUBE-IPTABLES-HINT\nCOMMIT\n")
    await Iptables(NFT, node).restore("*filter\n:X - [0:0]\n-A X -j ACCEPT\n-A X -j ACCEPT\nCOMMIT\n")
    assert await detect_backend(node) == NFT


def udp_exchange(netns: str, ip: str, port: int) -> str:
    out = subprocess.run([*enter(netns), sys.executable, "-c", UDP_CLIENT, ip, str(port)],
                         capture_output=True, text=True, timeout=20)
    return out.stdout.strip()


@pytest.mark.parametrize("backend", backends())
async def test_udp_service_and_stale_conntrack_flows(topology, backend):
    node = topology
    pod = node.replace("-node-", "-pod-")
    server = subprocess.Popen([*enter(pod), sys.executable, "-c", UDP_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        proxier = make_proxier(backend, node)
        dns = service("dns", "10.96.0.20", port=53, protocol="UDP")
        proxier.on_service_add(dns)
        proxier.on_services_synced()
        proxier.on_endpoint_slices_synced()
        assert await proxier.sync()
        # No endpoint: rejected (EPERM on the node's own send) ...
        assert udp_exchange(node, "10.96.0.20", 53) in ("ConnectionRefusedError", "PermissionError")

        def udp_slice(port: int) -> dict:
            body = endpoints("dns", POD_IP, port=port)
            body["ports"][0]["protocol"] = "UDP"
            return body
        # ... then the first endpoint appears and the same flow (source port) reaches it.
        proxier.on_endpoint_slice_update(udp_slice(5353))
        assert await proxier.sync()
        assert udp_exchange(node, "10.96.0.20", 53) == "udp-5353"
        # The endpoint moves to another port: the flow DNATed to the old one is cleared (without
        # `conntrack -D` the same source port would keep reaching 5353).
        proxier.on_endpoint_slice_update(udp_slice(5354))
        assert await proxier.sync()
        assert udp_exchange(node, "10.96.0.20", 53) == "udp-5354"
        await cleanup_iptables(node, [backend])
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("backend", backends())
async def test_agent_cleanup_iptables_flag(topology, backend):
    node = topology
    proxier = make_proxier(backend, node)
    proxier.on_service_add(service("web", "10.96.0.10", node_port=30080))
    proxier.on_endpoint_slice_update(endpoints("web", POD_IP))
    proxier.on_services_synced()
    proxier.on_endpoint_slices_synced()
    assert await proxier.sync()
    assert "KUBE-" in save(backend, node, "nat")
    shipmate = os.path.join(os.path.dirname(sys.executable), "shipmate")
    result = subprocess.run([*enter(node), shipmate, "agent", "--cleanup-iptables"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "removed" in result.stderr and "nat/KUBE-SERVICES" in result.stderr
    for table in ("nat", "filter", "mangle"):
        assert "KUBE-" not in save(backend, node, table)
