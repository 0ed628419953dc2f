"""shipmate-cni end to end in network namespaces the test creates: a simulated node and its pods.

The installed plugin runs inside the node netns (`nsenter --net`), once forwarding to a CNIService
subprocess living in that node netns, once with no agent (in-process fallback).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netns.cni_spec import host_veth_name
from netns.install import CONFLIST_NAME, install_cni

pytestmark = pytest.mark.integration  # root only: tests/conftest.py

PREFIX = "smcni-"
REPO = str(Path(__file__).resolve().parents[2])
SUBNET = "10.250.0.0/24"
GATEWAY = "10.250.0.1"


def sh(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=60, **kwargs)


def remove_leftovers() -> None:
    for line in sh("ip", "netns", "list").stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(PREFIX):
            sh("ip", "netns", "del", name, check=False)


def in_ns(ns_path: str, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return sh("nsenter", f"--net={ns_path}", *args, check=check, **kwargs)


def ip_json(ns_path: str, *args: str) -> list[dict]:
    return json.loads(in_ns(ns_path, "ip", "-j", *args).stdout or "[]")


@dataclass
class Node:
    tmp: Path
    netns: list[str] = field(default_factory=list)
    service: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.name = f"{PREFIX}{os.getpid()}-node"
        self.path = self.add_netns(self.name)
        self.bin_dir, self.conf_dir = self.tmp / "bin", self.tmp / "net.d"
        self.socket, self.ipam_dir = str(self.tmp / "cni.sock"), str(self.tmp / "ipam")
        self.service_log = self.tmp / "service.log"
        install_cni(SUBNET, str(self.bin_dir), str(self.conf_dir), socket_path=self.socket,
                    ipam_dir=self.ipam_dir, mtu=1400)
        conflist = json.loads((self.conf_dir / CONFLIST_NAME).read_text())
        # What libcni hands each plugin of a conflist: the plugin's keys plus name and cniVersion.
        self.conf = {**conflist["plugins"][0], "name": conflist["name"], "cniVersion": conflist["cniVersion"]}

    def add_netns(self, name: str) -> str:
        sh("ip", "netns", "add", name)
        self.netns.append(name)
        return f"/var/run/netns/{name}"

    def pod(self, label: str) -> str:
        return self.add_netns(f"{PREFIX}{os.getpid()}-{label}")

    def start_service(self) -> None:
        self.service = subprocess.Popen(
            ["nsenter", f"--net={self.path}", sys.executable, "-m", "netns.service",
             "--socket", self.socket, "--state-dir", self.ipam_dir],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(self.service_log, "wb"))
        deadline = time.monotonic() + 15
        while not os.path.exists(self.socket):
            assert self.service.poll() is None, self.service_log.read_text()
            assert time.monotonic() < deadline, "CNI service did not start"
            time.sleep(0.05)

    def stop_service(self) -> None:
        if self.service is not None:
            self.service.terminate()
            self.service.wait(timeout=10)
            self.service = None

    def cni(self, command: str, container_id: str, pod_ns: str, ifname: str = "eth0",
            conf: dict | None = None, plugin: str = "shipmate-cni") -> tuple[int, dict]:
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": pod_ns,
               "CNI_IFNAME": ifname, "CNI_PATH": str(self.bin_dir),
               "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={container_id}",
               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        done = in_ns(self.path, str(self.bin_dir / plugin), check=False, env=env,
                     input=json.dumps(conf or self.conf))
        return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {}

    def allocated_ips(self) -> set[str]:
        directory = Path(self.ipam_dir, "shipmate")
        return {p.name for p in directory.iterdir() if p.name[0].isdigit()} if directory.exists() else set()

    def veths(self) -> set[str]:
        return {link["ifname"] for link in ip_json(self.path, "link", "show", "type", "veth")}

    def close(self) -> None:
        self.stop_service()
        for name in self.netns:
            sh("ip", "netns", "del", name, check=False)


@pytest.fixture(params=["agent", "fallback"])
def node(request, tmp_path) -> Iterator[Node]:
    remove_leftovers()
    node = Node(tmp_path)
    try:
        if request.param == "agent":
            node.start_service()
        yield node
        if request.param == "agent":
            # the requests really went through the service, not the fallback
            assert "cni added" in node.service_log.read_text()
    finally:
        node.close()


def pod_ip(result: dict) -> str:
    return result["ips"][0]["address"].split("/")[0]


def serve_http(pod_ns: str, tmp: Path, body: str) -> subprocess.Popen:
    root = tmp / f"www-{body}"
    root.mkdir()
    (root / "index.html").write_text(body)
    server = subprocess.Popen(["nsenter", f"--net={pod_ns}", "busybox", "httpd", "-f", "-p", "8080",
                               "-h", str(root)])
    return server


def curl(from_ns: str, ip: str) -> str:
    for _ in range(50):  # the server needs a moment to bind
        done = in_ns(from_ns, "curl", "-s", "--max-time", "2", f"http://{ip}:8080/", check=False)
        if done.returncode == 0:
            return done.stdout
        time.sleep(0.1)
    raise AssertionError(f"curl {ip}:8080 from {from_ns} failed: {done.stderr}")


def test_add_check_del_with_traffic(node: Node, tmp_path: Path):
    pod_a, pod_b = node.pod("a"), node.pod("b")
    rc, result_a = node.cni("ADD", "pod-a", pod_a)
    assert rc == 0, result_a
    rc, result_b = node.cni("ADD", "pod-b", pod_b)
    assert rc == 0, result_b
    ip_a, ip_b = pod_ip(result_a), pod_ip(result_b)
    assert ip_a != ip_b and {ip_a, ip_b} <= {f"10.250.0.{n}" for n in range(2, 255)}
    assert result_a["ips"][0]["gateway"] == GATEWAY and result_a["cniVersion"] == "1.0.0"

    eth0 = ip_json(pod_a, "addr", "show", "dev", "eth0")[0]
    assert (ip_a, 24) in {(a["local"], a["prefixlen"]) for a in eth0["addr_info"]}
    assert "UP" in eth0["flags"] and eth0["mtu"] == 1400
    assert eth0["address"] == "0a:58:" + ":".join(f"{int(o):02x}" for o in ip_a.split("."))
    assert ip_json(pod_a, "route", "show", "default") == [
        {"dst": "default", "gateway": GATEWAY, "dev": "eth0", "protocol": "static", "flags": []}]
    assert "UP" in ip_json(pod_a, "link", "show", "lo")[0]["flags"]

    host_a = host_veth_name("pod-a", "eth0")
    detail = ip_json(node.path, "-d", "link", "show", host_a)[0]
    assert detail["master"] == "shipmate0" and detail["linkinfo"]["info_slave_data"]["hairpin"] is True
    bridge = ip_json(node.path, "addr", "show", "shipmate0")[0]
    assert bridge["addr_info"][0]["local"] == GATEWAY and "UP" in bridge["flags"]
    assert in_ns(node.path, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"

    in_ns(pod_a, "busybox", "ping", "-c", "1", "-W", "2", GATEWAY)
    server = serve_http(pod_b, tmp_path, "pod-b")
    try:
        assert curl(node.path, ip_b) == "pod-b"   # the node reaches the pod (issue 2 acceptance)
        assert curl(pod_a, ip_b) == "pod-b"       # pod to pod across the bridge
    finally:
        server.terminate()
        server.wait()

    check_conf = {**node.conf, "prevResult": result_a}
    assert node.cni("CHECK", "pod-a", pod_a, conf=check_conf) == (0, {})
    in_ns(pod_a, "ip", "route", "del", "default")
    rc, error = node.cni("CHECK", "pod-a", pod_a, conf=check_conf)
    assert rc != 0 and error["code"] == 103 and "default route" in error["msg"]

    assert node.cni("DEL", "pod-a", pod_a) == (0, {})
    assert host_a not in node.veths()
    assert ip_a not in node.allocated_ips() and ip_b in node.allocated_ips()
    assert node.cni("DEL", "pod-a", pod_a) == (0, {})          # DEL twice
    assert node.cni("DEL", "never-added", "") == (0, {})       # unknown container, netns gone
    assert node.cni("DEL", "pod-b", pod_b) == (0, {})
    assert node.veths() == set() and node.allocated_ips() == set()


def test_repeated_add_keeps_the_address(node: Node):
    pod = node.pod("r")
    rc, first = node.cni("ADD", "pod-r", pod)
    assert rc == 0, first
    rc, second = node.cni("ADD", "pod-r", pod)
    assert rc == 0, second
    assert pod_ip(first) == pod_ip(second) and node.allocated_ips() == {pod_ip(first)}
    assert node.veths() == {host_veth_name("pod-r", "eth0")}


def test_concurrent_adds_get_distinct_addresses_and_dels_leave_nothing(node: Node):
    pods = [node.pod(f"c{n}") for n in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda n: node.cni("ADD", f"pod-c{n}", pods[n]), range(20)))
    assert all(rc == 0 for rc, _ in results), [r for r in results if r[0]]
    ips = {pod_ip(result) for _, result in results}
    assert len(ips) == 20 and node.allocated_ips() == ips
    assert len(node.veths()) == 20
    with ThreadPoolExecutor(max_workers=20) as pool:
        dels = list(pool.map(lambda n: node.cni("DEL", f"pod-c{n}", pods[n]), range(20)))
    assert all(rc == 0 for rc, _ in dels), dels
    assert node.veths() == set() and node.allocated_ips() == set()


def test_loopback_network_of_containerd(node: Node):
    pod = node.pod("lo")
    assert "UP" not in ip_json(pod, "link", "show", "lo")[0]["flags"]
    lo_conf = {"cniVersion": "0.3.1", "name": "cni-loopback", "type": "loopback"}
    rc, result = node.cni("ADD", "pod-lo", pod, ifname="lo", conf=lo_conf, plugin="loopback")
    assert rc == 0, result
    assert result["cniVersion"] == "0.3.1" and result["interfaces"][0]["name"] == "lo"
    assert {"address": "127.0.0.1/8", "interface": 0, "version": "4"} in result["ips"]
    assert "UP" in ip_json(pod, "link", "show", "lo")[0]["flags"]
    assert node.cni("DEL", "pod-lo", pod, ifname="lo", conf=lo_conf, plugin="loopback") == (0, {})
    if node.service is not None:  # loopback alone would not leave the marker the fixture checks
        node.cni("ADD", "pod-lo2", node.pod("lo2"))


def test_invalid_input_is_a_cni_error(node: Node):
    pod = node.pod("bad")
    rc, error = node.cni("ADD", "bad;id", pod)
    assert rc != 0 and error["code"] == 4 and error["cniVersion"] == "1.0.0"
    rc, error = node.cni("ADD", "pod-x", "/var/run/netns/does-not-exist")
    assert rc != 0 and error["code"] == 3
    rc, error = node.cni("ADD", "pod-x", pod, conf={**node.conf, "subnet": "10.250.0.7/24"})
    assert rc != 0 and error["code"] == 7
    if node.service is not None:
        rc, error = node.cni("ADD", "pod-x", pod, conf={**node.conf, "ipamDataDir": "/tmp/elsewhere"})
        assert rc != 0 and error["code"] == 7 and "differs" in error["msg"]
        node.cni("ADD", "pod-ok", pod)
    assert node.veths() <= {host_veth_name("pod-ok", "eth0")}


def test_del_works_and_state_survives_when_the_agent_stops(tmp_path: Path):
    remove_leftovers()
    node = Node(tmp_path)
    try:
        node.start_service()
        pod_a, pod_b = node.pod("sa"), node.pod("sb")
        rc, result_a = node.cni("ADD", "pod-sa", pod_a)
        assert rc == 0, result_a
        node.stop_service()
        assert not os.path.exists(node.socket)
        rc, result_b = node.cni("ADD", "pod-sb", pod_b)  # in-process, same IPAM files
        assert rc == 0, result_b
        assert pod_ip(result_a) != pod_ip(result_b)
        assert node.cni("DEL", "pod-sa", pod_a) == (0, {})
        assert node.allocated_ips() == {pod_ip(result_b)}
        node.start_service()
        assert node.cni("DEL", "pod-sb", pod_b) == (0, {})
        assert node.allocated_ips() == set() and node.veths() == set()
        assert "cni deleted" in node.service_log.read_text()
    finally:
        node.close()


def test_hairpin_a_pod_reaches_itself_through_a_nat_vip(node: Node, tmp_path: Path):
    """The kube-proxy case: pod → service VIP DNATed back to the same pod leaves and re-enters the
    bridge by the same port. Rules live in the test's node netns only."""
    pod = node.pod("h")
    rc, result = node.cni("ADD", "pod-h", pod)
    assert rc == 0, result
    ip = pod_ip(result)
    in_ns(node.path, "sh", "-c", "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables")
    in_ns(node.path, "iptables", "-t", "nat", "-A", "PREROUTING", "-d", "10.96.0.10", "-p", "tcp",
          "--dport", "8080", "-j", "DNAT", "--to-destination", f"{ip}:8080")
    in_ns(node.path, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", ip, "-d", ip, "-j", "MASQUERADE")
    server = serve_http(pod, tmp_path, "self")
    try:
        assert curl(pod, "10.96.0.10") == "self"
        in_ns(node.path, "ip", "link", "set", host_veth_name("pod-h", "eth0"), "type", "bridge_slave",
              "hairpin", "off")
        # without hairpin the same request dies at the bridge: the test above really needed it
        assert in_ns(pod, "curl", "-s", "--max-time", "1", "http://10.96.0.10:8080/", check=False).returncode != 0
    finally:
        server.terminate()
        server.wait()


def test_110_pods_through_the_agent_then_scale_down_leaves_nothing(tmp_path: Path):
    """A full node (kubelet's default max-pods): distinct addresses, then no veth or IPAM leftovers."""
    remove_leftovers()
    node = Node(tmp_path)
    try:
        node.start_service()
        pods = [node.pod(f"m{n}") for n in range(110)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            adds = list(pool.map(lambda n: node.cni("ADD", f"pod-m{n}", pods[n]), range(110)))
        assert [r for r in adds if r[0]] == []
        assert len({pod_ip(result) for _, result in adds}) == 110 and len(node.veths()) == 110
        with ThreadPoolExecutor(max_workers=16) as pool:
            dels = list(pool.map(lambda n: node.cni("DEL", f"pod-m{n}", pods[n]), range(110)))
        assert [r for r in dels if r[0]] == []
        assert node.veths() == set() and node.allocated_ips() == set()
    finally:
        node.close()
