"""The proxy against real iptables and nftables, in network namespaces this test creates (root).

A "node" netns and a "pod" netns joined by a veth; a TCP server in the pod; the proxier programs
the node's tables through `netns.iptables` (iptables mode, both backends when both are installed) or
`netns.nftables` (nftables mode) and traffic from the node reaches the pod through a ClusterIP and a
NodePort. The traffic checks are the same for every mode; only the checks that read rules back differ.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from agent.proxy import chains
from agent.proxy import nft as nft_render
from agent.proxy.proxier import NftProxier, Proxier, cleanup_iptables, cleanup_nftables
from agent.proxy.render import RenderConfig
from netns.iptables import LEGACY, NFT, Iptables, IptablesError, detect_backend, installed_backends
from netns.nftables import Nft, nft_available

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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


NFTABLES = "nftables"


def backends():
    return [pytest.param(b, id=b.name) for b in installed_backends()]


def modes():
    """iptables mode on every installed backend, and the nftables mode."""
    return [*backends(), pytest.param(NFTABLES, id="nftables")]


def nft_table(netns: str) -> str:
    out = subprocess.run([*enter(netns), "nft", "list", "table", "ip", nft_render.TABLE], capture_output=True,
                         text=True)
    return out.stdout if out.returncode == 0 else ""


def nft_elements(netns: str, name: str) -> dict[str, str]:
    """A map of our table as the kernel holds it: key → value."""
    out = subprocess.run([*enter(netns), "nft", "-j", "list", "map", "ip", nft_render.TABLE, name],
                         capture_output=True, text=True, check=True)
    found = {}
    for item in json.loads(out.stdout)["nftables"]:
        for key, value in item.get("map", {}).get("elem", []):
            key = " . ".join(str(part) for part in key["concat"]) if isinstance(key, dict) else str(key)
            found[key] = " . ".join(str(part) for part in value["concat"])
    return found


async def cleanup(mode, netns: str) -> list[str]:
    return await cleanup_nftables(netns) if mode == NFTABLES else await cleanup_iptables(netns, [mode])


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


def make_proxier(mode, netns: str, **config) -> Proxier:
    cfg = RenderConfig(cluster_cidr="10.244.0.0/16", node_name="node-a", **config)
    if mode == NFTABLES:
        if not nft_available():   # a skip here once hid that CI never ran the nftables mode
            pytest.fail("nft is not installed (make up and make test install the nftables package)")
        return NftProxier(Nft(netns), cfg, min_sync_period=0)
    return Proxier(Iptables(mode, netns), cfg, min_sync_period=0)


@pytest.mark.parametrize("mode", modes())
async def test_cluster_ip_node_port_reject_partial_and_cleanup(topology, mode):
    node = topology
    proxier = make_proxier(mode, node)
    proxier.on_service_add(service("web", "10.96.0.10", node_port=30080))
    proxier.on_endpoint_slice_update(endpoints("web", POD_IP))
    proxier.on_service_add(service("empty", "10.96.0.11"))
    proxier.on_service_add(service("other", "10.96.0.12"))
    proxier.on_endpoint_slice_update(endpoints("other", POD_IP))
    proxier.on_services_synced()
    proxier.on_endpoint_slices_synced()
    assert await proxier.sync()

    web = chains.cluster_policy_chain("default/web:http", "tcp")
    other = chains.cluster_policy_chain("default/other:http", "tcp")
    other_nft = "svc-" + other[len(chains.CLUSTER_POLICY_PREFIX):]
    if mode == NFTABLES:
        table = nft_table(node)
        assert f"chain {other_nft}" in table and "chain svc-" + web[len(chains.CLUSTER_POLICY_PREFIX):] in table
        assert "10.96.0.10 . tcp . 80 : goto svc-" in table and "tcp . 30080 : goto ext-" in table
        assert "10.96.0.11 . tcp . 80" in table      # in cluster-no-endpoints
    else:
        nat = save(mode, node, "nat")
        assert {"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-MARK-MASQ", "KUBE-POSTROUTING", web, other} <= chain_lines(nat)
        assert "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES" in nat
        assert "-j KUBE-SERVICES" in save(mode, node, "filter")

    # ClusterIP and NodePort (on every node address) reach the pod; no endpoints → refused.
    assert connect(node, "10.96.0.10", 80) == "pod-answer"
    assert connect(node, NODE_IP, 30080) == "pod-answer"
    assert connect(node, EXTRA_NODE_IP, 30080) == "pod-answer"
    assert connect(node, "127.0.0.1", 30080) == "pod-answer"   # localhost NodePorts, as upstream's default
    assert connect(node, "10.96.0.11", 80) == "ConnectionRefusedError"
    assert connect(node, "10.96.0.12", 80) == "pod-answer"

    # One service changes: only its rules are rewritten.
    other_sep = chains.endpoint_chain("default/other:http", "tcp", f"{POD_IP}:8080")
    if mode != NFTABLES:
        before = sep_counters(save(mode, node, "nat", counters=True), other_sep)
        assert before >= 1
    proxier.on_endpoint_slice_update(endpoints("web", POD_IP, port=9999))
    assert await proxier.sync()
    if mode == NFTABLES:
        # Same endpoint count: only elements of the shared endpoint maps move (sent as one netlink
        # element batch, read back here through nft: keys and values encoded as nft encodes them).
        by_ip, by_port = nft_render.endpoint_maps(False, "tcp")
        assert f"{POD_IP} . 9999" in proxier.last_text and "10.96.0.12" not in proxier.last_text
        assert "chain" not in proxier.last_text and "delete table" not in proxier.last_text
        assert proxier.last_by_netlink
        assert nft_elements(node, by_ip) == {"10.96.0.10 . 80 . 0": f"{POD_IP} . 9999",
                                             "10.96.0.12 . 80 . 0": f"{POD_IP} . 8080"}
        assert nft_elements(node, by_port) == {"30080 . 0": f"{POD_IP} . 9999"}
    else:
        after = save(mode, node, "nat", counters=True)
        assert sep_counters(after, other_sep) == before
        assert f"--to-destination {POD_IP}:9999" in after
        assert chains.endpoint_chain("default/web:http", "tcp", f"{POD_IP}:8080") not in chain_lines(after)
    assert connect(node, "10.96.0.10", 80) == "ConnectionRefusedError"  # nothing listens on 9999

    # The empty service gets endpoints: REJECT gone, traffic flows.
    proxier.on_endpoint_slice_update(endpoints("empty", POD_IP))
    assert await proxier.sync()
    assert connect(node, "10.96.0.11", 80) == "pod-answer"
    if mode == NFTABLES:
        assert "10.96.0.11 . tcp . 80 : goto svc-" in nft_table(node)
    else:
        assert "has no endpoints" not in save(mode, node, "filter")

    # A removed service's chains are gone.
    proxier.on_service_delete(service("other", "10.96.0.12"))
    assert await proxier.sync()
    if mode == NFTABLES:
        table = nft_table(node)
        assert other_nft not in table and "10.96.0.12" not in table
    else:
        nat = save(mode, node, "nat")
        assert other not in chain_lines(nat) and other_sep not in chain_lines(nat)
        assert "10.96.0.12" not in nat
    assert connect(node, "10.96.0.12", 80) != "pod-answer"

    # Someone removes our rules behind the proxier's back: the next quiet sync notices the missing
    # canary and programs everything again.
    await cleanup(mode, node)
    assert connect(node, "10.96.0.11", 80) != "pod-answer"
    assert await proxier.sync()
    assert connect(node, "10.96.0.11", 80) == "pod-answer"

    # Cleanup removes every chain and jump of ours.
    removed = await cleanup(mode, node)
    if mode == NFTABLES:
        assert removed == [f"nftables:ip/{nft_render.TABLE}"] and nft_table(node) == ""
    else:
        assert f"{mode.name}:nat/KUBE-SERVICES" in removed
        for table in ("nat", "filter", "mangle"):
            assert "KUBE-" not in save(mode, node, table)


async def test_nftables_full_sync_of_a_new_table_sends_its_bulk_by_netlink_and_replaces_a_table_whole(topology):
    """A new table's endpoint-map and hairpin elements go as one netlink batch after its rules (the kernel
    holds them as nft would have loaded them); a full sync over the table already there is one transaction."""
    node = topology
    proxier = make_proxier(NFTABLES, node)
    assert not await proxier.nft.has_table("ip", nft_render.TABLE)
    proxier.on_service_add(service("web", "10.96.0.10", node_port=30080))
    proxier.on_endpoint_slice_update(endpoints("web", POD_IP))
    proxier.on_services_synced()
    proxier.on_endpoint_slices_synced()
    assert await proxier.sync()
    by_ip, by_port = nft_render.endpoint_maps(False, "tcp")
    assert proxier.last_bulk_elements == 3                        # by IP, by node port, hairpin
    assert f"{POD_IP} . 8080" not in proxier.last_text            # not in the nft transaction...
    assert nft_elements(node, by_ip) == {"10.96.0.10 . 80 . 0": f"{POD_IP} . 8080"}    # ...yet in the kernel
    assert nft_elements(node, by_port) == {"30080 . 0": f"{POD_IP} . 8080"}
    assert f"{POD_IP} . {POD_IP}" in nft_table(node)               # the hairpin set
    assert await proxier.nft.has_table("ip", nft_render.TABLE)
    assert await proxier.nft.has_chain("ip", nft_render.TABLE, "services")
    assert not await proxier.nft.has_chain("ip", nft_render.TABLE, "no-such-chain")
    assert connect(node, "10.96.0.10", 80) == "pod-answer"

    proxier._need_full_sync = True                                  # as the periodic full sync
    assert await proxier.sync()
    assert proxier.last_bulk_elements == 0 and "delete table" in proxier.last_text
    assert f"{POD_IP} . 8080" in proxier.last_text
    assert proxier.last_rendered == 1          # the new table's render left its elements out: not reusable
    assert nft_elements(node, by_ip) == {"10.96.0.10 . 80 . 0": f"{POD_IP} . 8080"}
    assert connect(node, "10.96.0.10", 80) == "pod-answer"
    proxier._need_full_sync = True
    assert await proxier.sync()
    assert proxier.last_rendered == 0          # nothing changed: the last full sync's text is reused
    assert nft_elements(node, by_ip) == {"10.96.0.10 . 80 . 0": f"{POD_IP} . 8080"}

    proxier.on_service_add(service("other", "10.96.0.11"))     # one more service: only it is rendered
    proxier._need_full_sync = True
    assert await proxier.sync()
    assert proxier.last_rendered == 1 and "10.96.0.11" in proxier.last_text
    assert connect(node, "10.96.0.10", 80) == "pod-answer"
    await cleanup(NFTABLES, node)


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


@pytest.mark.parametrize("mode", modes())
async def test_udp_service_and_stale_conntrack_flows(topology, mode):
    node = topology
    pod = node.replace("-node-", "-pod-")
    server = subprocess.Popen([*enter(pod), sys.executable, "-c", UDP_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        proxier = make_proxier(mode, node)
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
        await cleanup(mode, node)
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("mode", modes())
async def test_agent_cleanup_iptables_flag(topology, mode):
    node = topology
    proxier = make_proxier(mode, node)
    proxier.on_service_add(service("web", "10.96.0.10", node_port=30080))
    proxier.on_endpoint_slice_update(endpoints("web", POD_IP))
    proxier.on_services_synced()
    proxier.on_endpoint_slices_synced()
    assert await proxier.sync()
    if mode == NFTABLES:
        assert nft_table(node)
    else:
        assert "KUBE-" in save(mode, node, "nat")
    # This tree's CLI (the venv's `shipmate` script may be another checkout's editable install).
    result = subprocess.run([*enter(node), sys.executable, "-m", "shipmate.cli", "agent", "--cleanup-iptables"],
                            capture_output=True, text=True, timeout=60, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr
    if mode == NFTABLES:
        assert f"nftables:ip/{nft_render.TABLE}" in result.stderr and nft_table(node) == ""
    else:
        assert "removed" in result.stderr and "nat/KUBE-SERVICES" in result.stderr
        for table in ("nat", "filter", "mangle"):
            assert "KUBE-" not in save(mode, node, table)


# --- The service features of issue 20's acceptance, the same traffic checks in every mode -----------------
# A second endpoint address in the pod netns, an outside client netns on its own link to the node, and a
# server that answers with the address it was reached on and the peer it saw.
POD_IP2, OUTSIDE_IP, NODE_OUTSIDE_IP = "10.244.0.6", "192.168.78.2", "192.168.78.1"
LB_IP, EXTERNAL_IP = "10.200.0.50", "10.201.0.7"
WHO_SERVER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8081))
s.listen()
print("ready", flush=True)
while True:
    c, addr = s.accept()
    c.sendall(f"{c.getsockname()[0]}|{addr[0]}".encode())
    c.close()
"""


@pytest.fixture
def features(topology):
    """(node, pod, outside) netns names, with the who-server on POD_IP/POD_IP2:8081."""
    node = topology
    suffix = os.getpid()
    pod, outside = f"shipmate-it-pod-{suffix}", f"shipmate-it-out-{suffix}"
    subprocess.run(["ip", "netns", "del", outside], stderr=subprocess.DEVNULL)
    sh("ip", "netns", "add", outside)
    server = None
    try:
        sh("ip", "-n", pod, "addr", "add", f"{POD_IP2}/24", "dev", "eth0")
        sh("ip", "-n", node, "link", "add", "vout", "type", "veth", "peer", "name", "eth0", "netns", outside)
        sh("ip", "-n", node, "addr", "add", f"{NODE_OUTSIDE_IP}/24", "dev", "vout")
        sh("ip", "-n", outside, "addr", "add", f"{OUTSIDE_IP}/24", "dev", "eth0")
        for ns, dev in ((node, "vout"), (outside, "eth0"), (outside, "lo")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", outside, "route", "add", "default", "via", NODE_OUTSIDE_IP)
        # Load-balancer and external IPs are routed to the node by whatever announces them; here the
        # node's own traffic to them needs a route too (as for the service CIDR).
        sh("ip", "-n", node, "route", "add", "10.200.0.0/15", "dev", "vnode")
        sh(*enter(node), "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
        server = subprocess.Popen([*enter(pod), sys.executable, "-c", WHO_SERVER], stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"
        yield node, pod, outside
    finally:
        if server:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", outside], stderr=subprocess.DEVNULL)


def who(netns: str, ip: str, port: int) -> tuple[str, str] | str:
    """(endpoint address that answered, client address it saw), or the error's name."""
    answer = connect(netns, ip, port)
    return tuple(answer.split("|")) if "|" in answer else answer


def feature_service(name: str, ip: str, **spec) -> dict:
    body = service(name, ip)
    body["spec"]["ports"][0]["targetPort"] = 8081
    if "node_port" in spec:
        body["spec"]["ports"][0]["nodePort"] = spec.pop("node_port")
    status = spec.pop("status", None)
    body["spec"].update(spec)
    if status:
        body["status"] = status
    return body


def feature_endpoints(name: str, *ips: str, node: str = "node-a") -> dict:
    body = endpoints(name, *ips, port=8081)
    for entry in body["endpoints"]:
        entry["nodeName"] = node
    return body


async def program(proxier, *objects) -> None:
    for obj in objects:
        if obj.get("addressType"):
            proxier.on_endpoint_slice_update(obj)
        else:
            proxier.on_service_add(obj)
    proxier.on_services_synced()
    proxier.on_endpoint_slices_synced()
    assert await proxier.sync()


@pytest.mark.parametrize("mode", modes())
async def test_load_balancer_and_external_ips(features, mode):
    node, _, outside = features
    proxier = make_proxier(mode, node)
    lb = feature_service("lb", "10.96.0.30", type="LoadBalancer", node_port=30090, externalIPs=[EXTERNAL_IP],
                         status={"loadBalancer": {"ingress": [{"ip": LB_IP}]}})
    await program(proxier, lb, feature_endpoints("lb", POD_IP))
    try:
        for ip, port in ((LB_IP, 80), (EXTERNAL_IP, 80), ("10.96.0.30", 80), (NODE_IP, 30090)):
            assert who(node, ip, port)[0] == POD_IP, (ip, port)
        # From outside the node (the load balancer's traffic arrives this way): DNATed at prerouting.
        sh("ip", "-n", outside, "route", "add", f"{LB_IP}/32", "via", NODE_OUTSIDE_IP)
        assert who(outside, LB_IP, 80)[0] == POD_IP
        assert who(outside, NODE_OUTSIDE_IP, 30090)[0] == POD_IP
        # No endpoints: traffic to the load-balancer IP arriving at the node is rejected (not a
        # timeout), as upstream's KUBE-EXTERNAL-SERVICES (input and forward, not the node's own output).
        proxier.on_endpoint_slice_update(feature_endpoints("lb"))
        assert await proxier.sync()
        assert who(outside, LB_IP, 80) == "ConnectionRefusedError"
        assert who(outside, NODE_OUTSIDE_IP, 30090) == "ConnectionRefusedError"
    finally:
        await cleanup(mode, node)


@pytest.mark.parametrize("mode", modes())
async def test_session_affinity(features, mode):
    node, _, _ = features
    proxier = make_proxier(mode, node)
    sticky = feature_service("sticky", "10.96.0.31", sessionAffinity="ClientIP",
                             sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}})
    spread = feature_service("spread", "10.96.0.32")
    await program(proxier, sticky, spread, feature_endpoints("sticky", POD_IP, POD_IP2),
                  feature_endpoints("spread", POD_IP, POD_IP2))
    try:
        sticky_seen = {who(node, "10.96.0.31", 80)[0] for _ in range(12)}
        spread_seen = {who(node, "10.96.0.32", 80)[0] for _ in range(24)}
        assert len(sticky_seen) == 1 and sticky_seen <= {POD_IP, POD_IP2}
        assert spread_seen == {POD_IP, POD_IP2}   # both picked (a miss has probability 2 × 2⁻²⁴)
        # The remembered endpoint goes: the client moves to the other one and stays there.
        gone = sticky_seen.pop()
        left = POD_IP2 if gone == POD_IP else POD_IP
        proxier.on_endpoint_slice_update(feature_endpoints("sticky", left))
        assert await proxier.sync()
        assert {who(node, "10.96.0.31", 80)[0] for _ in range(4)} == {left}
    finally:
        await cleanup(mode, node)


@pytest.mark.parametrize("mode", modes())
async def test_hairpin(features, mode):
    """A pod reaching itself through its own service: masqueraded to the node, so the reply comes back."""
    node, pod, _ = features
    proxier = make_proxier(mode, node)
    await program(proxier, feature_service("self", "10.96.0.33"), feature_endpoints("self", POD_IP))
    try:
        answered, peer = who(pod, "10.96.0.33", 80)
        assert answered == POD_IP and peer == NODE_IP
    finally:
        await cleanup(mode, node)


@pytest.mark.parametrize("mode", modes())
async def test_external_traffic_policy(features, mode):
    node, _, outside = features
    proxier = make_proxier(mode, node)
    local = feature_service("local", "10.96.0.34", type="NodePort", node_port=30091, externalTrafficPolicy="Local")
    cluster = feature_service("cluster", "10.96.0.35", type="NodePort", node_port=30092)
    await program(proxier, local, cluster, feature_endpoints("local", POD_IP, node="node-b"),
                  feature_endpoints("cluster", POD_IP, node="node-b"))
    try:
        # Only a remote endpoint: Local drops outside traffic, Cluster sends it there (masqueraded).
        assert who(outside, NODE_OUTSIDE_IP, 30091) == "TimeoutError"
        assert who(outside, NODE_OUTSIDE_IP, 30092) == (POD_IP, NODE_IP)
        # The node's own traffic and the cluster IP still reach the remote endpoint (upstream's rule).
        assert who(node, "10.96.0.34", 80)[0] == POD_IP
        # A local endpoint: Local answers and keeps the client's address.
        proxier.on_endpoint_slice_update(feature_endpoints("local", POD_IP2, node="node-a"))
        assert await proxier.sync()
        assert who(outside, NODE_OUTSIDE_IP, 30091) == (POD_IP2, OUTSIDE_IP)
    finally:
        await cleanup(mode, node)


@pytest.mark.parametrize("backend", backends())
async def test_switching_modes_removes_the_other_modes_rules(topology, backend):
    """What the agent does at start: to nftables, the iptables proxy chains go (a hostPort chain stays);
    back to iptables, the nft table goes. Traffic flows through the mode in charge each time."""
    node = topology
    old = make_proxier(backend, node)
    await program(old, service("web", "10.96.0.10"), endpoints("web", POD_IP))
    sh(*enter(node), backend.iptables, "-t", "nat", "-N", "SHIPMATE-HOSTPORTS")   # the hostPort chain
    removed = await cleanup_iptables(node, [backend], proxy_only=True)
    assert f"{backend.name}:nat/KUBE-SERVICES" in removed
    nat = save(backend, node, "nat")
    assert "KUBE-" not in nat and ":SHIPMATE-HOSTPORTS" in nat
    assert connect(node, "10.96.0.10", 80) != "pod-answer"         # nobody programs the service now
    new = make_proxier(NFTABLES, node)
    await program(new, service("web", "10.96.0.10"), endpoints("web", POD_IP))
    assert connect(node, "10.96.0.10", 80) == "pod-answer"
    assert await cleanup_nftables(node) == [f"nftables:ip/{nft_render.TABLE}"] and nft_table(node) == ""
    again = make_proxier(backend, node)
    await program(again, service("web", "10.96.0.10"), endpoints("web", POD_IP))
    assert connect(node, "10.96.0.10", 80) == "pod-answer"
    await cleanup_iptables(node, [backend])
