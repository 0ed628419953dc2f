"""agent.node_routes against the real kernel, in network namespaces this test creates:

    pod (10.246.5.2) ── node (10.246.5.1 | 10.213.9.1) ── remote (10.213.9.2, "pods" 10.246.6.2)

The node's NodeRoutes routes the remote node's podCIDR via its InternalIP and masquerades pod
traffic leaving the cluster CIDR; the remote side reports the source address it sees.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Iterator

import pytest

from agent.node_routes import MASQUERADE_CHAIN, ROUTE_PROTOCOL, NodeRoutes

pytestmark = pytest.mark.integration

CLUSTER_CIDR = "10.246.0.0/16"
PREFIX = f"smr{os.getpid() % 100000}"
POD, NODE, REMOTE = (f"{PREFIX}-{role}" for role in ("pod", "node", "remote"))
PEER_SERVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 7777))
server.listen()
print("listening", flush=True)
while True:
    conn, peer = server.accept()
    conn.sendall(peer[0].encode())
    conn.close()
"""
CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], 7777), timeout=3) as conn:
    print(conn.recv(100).decode())
"""


def sh(*argv: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    prefix = ["nsenter", f"--net=/var/run/netns/{netns}"] if netns else []
    result = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {result.stderr}")
    return result


def remove_namespaces() -> None:
    for name in (POD, NODE, REMOTE):
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def topology() -> Iterator[None]:
    remove_namespaces()
    for name in (POD, NODE, REMOTE):
        sh("ip", "netns", "add", name)
        sh("ip", "link", "set", "lo", "up", netns=name)
    sh("ip", "link", "add", "pod0", "type", "veth", "peer", "name", "node0", netns=NODE)
    sh("ip", "link", "set", "pod0", "netns", POD, netns=NODE)
    sh("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1", netns=NODE)
    sh("ip", "link", "set", "eth1", "netns", REMOTE, netns=NODE)
    for netns, link, address in ((POD, "pod0", "10.246.5.2/24"), (NODE, "node0", "10.246.5.1/24"),
                                 (NODE, "eth0", "10.213.9.1/24"), (REMOTE, "eth1", "10.213.9.2/24"),
                                 (REMOTE, "lo", "10.246.6.2/32")):
        sh("ip", "addr", "add", address, "dev", link, netns=netns)
        sh("ip", "link", "set", link, "up", netns=netns)
    sh("ip", "route", "add", "default", "via", "10.246.5.1", netns=POD)
    sh("ip", "route", "add", "10.246.5.0/24", "via", "10.213.9.1", netns=REMOTE)
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=NODE)
    # Somebody else's route in the same table: ours must leave it alone.
    sh("ip", "route", "add", "10.99.0.0/24", "via", "10.213.9.2", "proto", "static", netns=NODE)
    try:
        yield
    finally:
        remove_namespaces()


def node(name: str, cidr: str, ip: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def our_routes() -> list[str]:
    out = sh("ip", "-4", "route", "show", "proto", str(ROUTE_PROTOCOL), netns=NODE).stdout
    return sorted(line.split(" proto")[0].strip() for line in out.splitlines() if line.strip())


def test_routes_follow_the_node_list_and_leave_others_alone(topology: None) -> None:
    nodes = [node("me", "10.246.5.0/24", "10.213.9.1"), node("remote", "10.246.6.0/24", "10.213.9.2"),
             node("far", "10.246.7.0/24", "10.213.9.3")]
    routes = NodeRoutes("me", CLUSTER_CIDR, lambda: nodes, netns=NODE)
    asyncio.run(routes.sync_routes())
    assert our_routes() == ["10.246.6.0/24 via 10.213.9.2 dev eth0", "10.246.7.0/24 via 10.213.9.3 dev eth0"]

    nodes[2] = node("far", "10.246.7.0/24", "10.213.9.4")      # far moved
    del nodes[1]                                                 # remote left the cluster
    asyncio.run(routes.sync_routes())
    assert our_routes() == ["10.246.7.0/24 via 10.213.9.4 dev eth0"]

    sh("ip", "route", "del", "10.246.7.0/24", netns=NODE)       # someone deleted ours: it comes back
    asyncio.run(routes.sync_routes())
    assert our_routes() == ["10.246.7.0/24 via 10.213.9.4 dev eth0"]
    assert "10.99.0.0/24 via 10.213.9.2" in sh("ip", "route", netns=NODE).stdout


def test_cross_node_pod_traffic_keeps_its_source_and_outside_traffic_is_masqueraded(topology: None) -> None:
    nodes = [node("me", "10.246.5.0/24", "10.213.9.1"), node("remote", "10.246.6.0/24", "10.213.9.2")]
    routes = NodeRoutes("me", CLUSTER_CIDR, lambda: nodes, netns=NODE)

    async def sync_twice() -> None:
        for _ in range(2):          # idempotent: one chain, one jump
            await routes.sync_masquerade()
            await routes.sync_routes()
    asyncio.run(sync_twice())
    nat = sh("iptables-save", "-t", "nat", netns=NODE).stdout
    assert nat.count(f"-j {MASQUERADE_CHAIN}") == 1, nat
    assert f"-A {MASQUERADE_CHAIN} -s {CLUSTER_CIDR} -d {CLUSTER_CIDR}" in nat

    server = subprocess.Popen(["nsenter", f"--net=/var/run/netns/{REMOTE}", sys.executable, "-c", PEER_SERVER],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        to_pod = sh(sys.executable, "-c", CLIENT, "10.246.6.2", netns=POD).stdout.strip()
        to_outside = sh(sys.executable, "-c", CLIENT, "10.213.9.2", netns=POD).stdout.strip()
    finally:
        server.kill()
        server.wait()
    assert to_pod == "10.246.5.2", "pod-to-pod traffic across nodes must not be NATed"
    assert to_outside == "10.213.9.1", "pod traffic leaving the cluster CIDR must be masqueraded to the node"
