"""Pod-to-pod TCP round-trip latency and throughput across simulated nodes, against two plain
network namespaces on one bridge (the floor).

Cross-node path: a pod on node1 → its node's shipmate0 bridge → node1's route to node2's podCIDR
(host-gw, agent.node_routes) → the test bridge → node2 → its shipmate0 → the pod. The cluster is
the multi-node harness (tests/e2e/multinode): real containerd, CNI and agents per node. The same
Python echo client/server runs in both setups, inside the pods' network namespaces (nsenter), so
only the network path differs. Targets: RTT p50 ≤ 1.2 × the floor, throughput ≥ 0.9 × the floor. Which hop
costs what: the same echo from the pod to its own node, node to node over the wire, and from the pod to
the other node (one round each, in the notes). Prints medians; the last line is the latency ratio.

    /opt/shipmate/venv/bin/python bench/cross_node.py [--rounds 5] [--round-trips 5000] [--megabytes 100]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from result import Figure, write_result  # noqa: E402
from tests.e2e.multinode.harness import MultiNodeCluster, nsenter  # noqa: E402

PORT = 7799
FLOOR_PREFIX = "smbxn"
FLOOR_WIRE = f"{FLOOR_PREFIX}-wire"
FLOOR_SUBNET = "10.214.0"
SERVER = f"""
import socket
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", {PORT}))
server.listen()
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    mode = conn.recv(1)
    if mode == b"p":                    # ping-pong: echo each byte back
        while (data := conn.recv(1)):
            conn.sendall(data)
    else:                               # bulk: read until EOF, then say done
        while conn.recv(1 << 20):
            pass
    conn.close()
"""
CLIENT = f"""
import socket, statistics, sys, time
host, trips, megabytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conn = socket.create_connection((host, {PORT}), timeout=10)
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
conn.sendall(b"p")
samples = []
for _ in range(trips):
    start = time.perf_counter()
    conn.sendall(b"x")
    conn.recv(1)
    samples.append(time.perf_counter() - start)
conn.close()
bulk = socket.create_connection((host, {PORT}), timeout=10)
bulk.sendall(b"b")
chunk = b"\\0" * (1 << 16)
start = time.perf_counter()
for _ in range(megabytes * 16):
    bulk.sendall(chunk)
bulk.shutdown(socket.SHUT_WR)
bulk.recv(1)
elapsed = time.perf_counter() - start
print(statistics.median(samples) * 1e6, sorted(samples)[int(len(samples) * 0.99)] * 1e6, megabytes * 8 / elapsed)
"""


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result


def measure(server_ns: list[str], client_ns: list[str], server_ip: str, trips: int, megabytes: int) -> tuple[float, float, float]:
    """(median RTT µs, p99 RTT µs, throughput Mbit/s) from the client netns to the server netns."""
    server = subprocess.Popen([*server_ns, sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        out = run(*client_ns, sys.executable, "-c", CLIENT, server_ip, str(trips), str(megabytes)).stdout.split()
        return float(out[0]), float(out[1]), float(out[2])
    finally:
        server.kill()
        server.wait()


# ---------------------------------------------------------------- floor: two netns on one bridge

def floor_down() -> None:
    for netns in (f"{FLOOR_PREFIX}-a", f"{FLOOR_PREFIX}-b", FLOOR_WIRE):
        run("ip", "netns", "del", netns, check=False)


def floor_up() -> None:
    """Two namespaces on one bridge, the bridge in a namespace of its own without netfilter on it,
    exactly as the harness's wire between nodes."""
    floor_down()
    run("ip", "netns", "add", FLOOR_WIRE)
    wire = nsenter(FLOOR_WIRE)
    run(*wire, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0", check=False)
    run(*wire, "ip", "link", "add", "br0", "type", "bridge")
    run(*wire, "ip", "link", "set", "br0", "up")
    for index, side in enumerate(("a", "b"), start=2):
        netns = f"{FLOOR_PREFIX}-{side}"
        run("ip", "netns", "add", netns)
        run(*wire, "ip", "link", "add", f"veth-{side}", "type", "veth", "peer", "name", "eth0", "netns", netns)
        run(*wire, "ip", "link", "set", f"veth-{side}", "master", "br0", "up")
        run(*nsenter(netns), "ip", "addr", "add", f"{FLOOR_SUBNET}.{index}/24", "dev", "eth0")
        run(*nsenter(netns), "ip", "link", "set", "eth0", "up")
        run(*nsenter(netns), "ip", "link", "set", "lo", "up")


# ---------------------------------------------------------------- cross-node pods

def sleeper(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "sleep", "image": "127.0.0.1:5000/library/busybox:latest",
                                     "command": ["sleep", "3600"]}]}}


async def sandbox_netns(endpoint: str, pod_uid: str) -> str:
    from cri.client import CRIClient
    from cri.gen import api_pb2
    async with CRIClient(endpoint) as runtime:
        sandboxes = await runtime.list_pod_sandbox(api_pb2.PodSandboxFilter(label_selector={"io.kubernetes.pod.uid": pod_uid}))
        status = await runtime.pod_sandbox_status(sandboxes[0].id, verbose=True)
        spec = json.loads(status.info["info"])["runtimeSpec"]
        return next(ns["path"] for ns in spec["linux"]["namespaces"] if ns["type"] == "network")


def pod_ready(cluster: MultiNodeCluster, name: str) -> dict | None:
    pod = cluster.json("get", "pod", name)
    return pod if pod["status"].get("phase") == "Running" and pod["status"].get("podIP") else None


def interleaved(rounds: int, floor_run, cross_run) -> tuple[list[tuple[float, float, float]], ...]:
    """Alternates floor and cross-node runs so both see the same background load (shared box)."""
    floors, crosses = [], []
    for _ in range(rounds):
        floors.append(floor_run())
        crosses.append(cross_run())
    return floors, crosses


def median_of(samples: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    return tuple(statistics.median(column) for column in zip(*samples))  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--round-trips", type=int, default=5000, help="per round")
    parser.add_argument("--megabytes", type=int, default=100, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    floor_up()
    cluster = MultiNodeCluster(2)
    try:
        cluster.up()
        for node in ("node1", "node2"):
            cluster.kubectl("apply", "-f", "-", stdin=json.dumps(sleeper(f"bench-{node}", node)))
        deadline = time.monotonic() + 90
        pods: dict[str, dict] = {}
        while len(pods) < 2 and time.monotonic() < deadline:
            pods = {n: p for n in ("node1", "node2") if (p := pod_ready(cluster, f"bench-{n}"))}
            time.sleep(0.5)
        if len(pods) < 2:
            raise RuntimeError(f"bench pods did not start:\n{cluster.logs()}")
        paths = {n: asyncio.run(sandbox_netns(cluster.node(n).runtime_endpoint, p["metadata"]["uid"]))
                 for n, p in pods.items()}
        floors, crosses = interleaved(
            args.rounds,
            lambda: measure(nsenter(f"{FLOOR_PREFIX}-b"), nsenter(f"{FLOOR_PREFIX}-a"), f"{FLOOR_SUBNET}.3",
                            args.round_trips, args.megabytes),
            lambda: measure(["nsenter", f"--net={paths['node2']}"], ["nsenter", f"--net={paths['node1']}"],
                            pods["node2"]["status"]["podIP"], args.round_trips, args.megabytes))
        # Which hop costs what: the same echo over parts of the path (one round each, fewer round trips).
        node1, node2 = cluster.node("node1"), cluster.node("node2")
        pod1 = ["nsenter", f"--net={paths['node1']}"]
        hops = {
            "pod → its own node (veth, bridge, node input)": measure(
                nsenter(node1.netns), pod1, node1.ip, args.round_trips, 0),
            "node → node (the harness's wire)": measure(
                nsenter(node2.netns), nsenter(node1.netns), node2.ip, args.round_trips, 0),
            "pod → the other node (+ forwarding in node1)": measure(
                nsenter(node2.netns), pod1, node2.ip, args.round_trips, 0),
        }
    finally:
        cluster.down()
        floor_down()

    floor, cross = median_of(floors), median_of(crosses)
    print(f"{args.rounds} interleaved rounds of {args.round_trips} round trips and {args.megabytes} MB; medians of rounds")
    print(f"{'path':<34}{'RTT p50':>12}{'RTT p99':>12}{'throughput':>16}")
    for label, (p50, p99, mbits) in (("floor: two netns on one bridge", floor), ("pod to pod across nodes", cross)):
        print(f"{label:<34}{p50:>9.1f} µs{p99:>9.1f} µs{mbits:>10.0f} Mbit/s")
    for label, (p50, p99, _mbits) in hops.items():
        print(f"  hop: {label:<48}{p50:>9.1f} µs{p99:>9.1f} µs")
    print(f"throughput ratio cross-node/floor: {cross[2] / floor[2]:.2f}")
    notes = "Which hop costs what (RTT p50 of the same echo, one round each):\n\n" + "\n".join(
        f"- {label}: {p50:.1f} µs" for label, (p50, _p99, _mbits) in hops.items()) + \
        f"\n- pod → pod across nodes (the figure above): {cross[0]:.1f} µs; floor {floor[0]:.1f} µs."
    write_result("cross_node", [
        Figure("pod-to-pod RTT p50 across nodes", cross[0], floor[0], "µs", "≤ 1.2"),
        Figure("pod-to-pod throughput across nodes", cross[2], floor[2], "Mbit/s", "≥ 0.9"),
    ], notes=notes)
    print(f"latency ratio cross-node/floor (p50 RTT): {cross[0] / floor[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
