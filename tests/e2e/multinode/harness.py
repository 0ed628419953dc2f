"""A multi-node shipmate cluster on one machine: each node a network namespace on a shared bridge,
with its own containerd (own root, state, socket, CNI dirs) and its own agent; one `shipmate server`
in the host netns on the wire's host address; a second registry process serving the local
registry's storage on that address (nodes cannot reach the host's 127.0.0.1:5000).

Every daemon runs with the arguments and config `shipmate install` renders (shipmate.install), the
same a Vagrant VM gets. Everything lives under WORK_DIR and in names starting with PREFIX, so a
leftover of an earlier (killed) run is found and removed before a run and nothing else is touched.

    python -m tests.e2e.multinode.harness up [--nodes N]    # leaves the cluster running
    python -m tests.e2e.multinode.harness down
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shipmate.install import (AgentOptions, AgentPaths, ServerOptions, agent_args, agent_config_files,
                              server_args, write_files)

PREFIX = "smn"                                 # netns, links and bridge names
WORK_DIR = Path("/var/lib/shipmate-multinode")
LOG_DIR = Path("/var/log/shipmate/multinode")
BRIDGE = f"{PREFIX}-br0"                       # in WIRE_NETNS
WIRE_NETNS = f"{PREFIX}-wire"
HOST_LINK = f"{PREFIX}-host"                   # host netns end of the wire, HOST_IP
BRIDGE_SUBNET = "10.213.0"                     # /24; .1 the host side, .11, .12 ... the nodes
HOST_IP = f"{BRIDGE_SUBNET}.1"
CLUSTER_CIDR = "10.246.0.0/16"
# Short node lifecycle timings so a stopped node is noticed within a test (upstream 40 s / 5 m).
NODE_MONITOR_GRACE_SECONDS = 20
POD_EVICTION_TIMEOUT_SECONDS = 10
REGISTRY_CONFIG = Path(__file__).resolve().parents[3] / "hack" / "registry.yml"
SHIPMATE = [sys.executable, "-m", "shipmate.cli"]
KUBECTL = "/usr/local/bin/kubectl"


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def wait_until(condition, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def nsenter(netns: str) -> list[str]:
    # `ip netns exec` remounts /sys and breaks runc; nsenter only switches the network namespace.
    return ["nsenter", f"--net=/var/run/netns/{netns}"]


# ---------------------------------------------------------------- processes with pid files

@dataclass
class Daemon:
    name: str
    pid_file: Path
    log_file: Path

    def start(self, argv: list[str]) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- {time.strftime('%FT%TZ', time.gmtime())} {' '.join(argv)}\n".encode())
            process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(f"{process.pid}\n")

    def pid(self) -> int | None:
        """The recorded pid while that process still runs something of this harness."""
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            return None
        return pid if (str(WORK_DIR) in cmdline or PREFIX in cmdline) else None

    def running(self) -> bool:
        return self.pid() is not None

    def signal(self, signum: int) -> None:
        pid = self.pid()
        if pid is None:
            raise RuntimeError(f"{self.name} is not running")
        os.kill(pid, signum)

    def stop(self, timeout: float = 15) -> None:
        stop_all([self], timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def alive(pid: int) -> bool:
    """Whether the process still runs: an exited daemon of an earlier harness process is a zombie
    until PID 1 reaps it, which takes seconds here."""
    try:   # reap it when it is our child
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def stop_all(daemons: list[Daemon], timeout: float = 15) -> None:
    """SIGTERM to all at once, SIGKILL to those still running after `timeout`."""
    stopping = []
    for daemon in daemons:
        pid = daemon.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)    # a frozen (SIGSTOPped) daemon handles SIGTERM only once resumed
            stopping.append((daemon, pid))
    deadline = time.monotonic() + timeout
    while any(alive(pid) for _, pid in stopping) and time.monotonic() < deadline:
        time.sleep(0.05)
    for daemon, pid in stopping:
        if alive(pid):
            print(f"{daemon.name} did not stop within {timeout:.0f}s: killed", file=sys.stderr)
            os.kill(pid, signal.SIGKILL)
        daemon.pid_file.unlink(missing_ok=True)


# ---------------------------------------------------------------- one simulated node

@dataclass
class Node:
    name: str
    index: int

    @property
    def ip(self) -> str:
        return f"{BRIDGE_SUBNET}.{10 + self.index}"

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def host_link(self) -> str:
        return f"{PREFIX}-v{self.index}"

    @property
    def dir(self) -> Path:
        return WORK_DIR / self.name

    @property
    def paths(self) -> AgentPaths:
        d = self.dir
        return AgentPaths(etc_dir=str(d / "etc"), root_dir=str(d / "agent"), ipam_dir=str(d / "ipam"),
                          cni_socket=str(d / "cni.sock"), cni_bin_dir=str(d / "cni/bin"),
                          cni_conf_dir=str(d / "cni/net.d"), containerd_socket=str(d / "containerd.sock"),
                          containerd_config=str(d / "etc/containerd.toml"), certs_dir=str(d / "etc/certs.d"))

    @property
    def runtime_endpoint(self) -> str:
        return f"unix://{self.paths.containerd_socket}"

    @property
    def containerd(self) -> Daemon:
        return Daemon(f"{self.name}-containerd", self.dir / "containerd.pid", LOG_DIR / f"{self.name}-containerd.log")

    @property
    def agent(self) -> Daemon:
        return Daemon(f"{self.name}-agent", self.dir / "agent.pid", LOG_DIR / f"{self.name}-agent.log")

    def containerd_argv(self) -> list[str]:
        d = self.dir / "containerd"
        return [*nsenter(self.netns), "containerd", "--config", self.paths.containerd_config,
                "--root", str(d / "root"), "--state", str(d / "state"), "--address", self.paths.containerd_socket]

    def containerd_up(self) -> bool:
        return run("ctr", "--address", self.paths.containerd_socket, "version", check=False).returncode == 0


# ---------------------------------------------------------------- network

def netns_exists(name: str) -> bool:
    return Path(f"/var/run/netns/{name}").exists()


def create_wire() -> None:
    """The network between the nodes: a bridge in a namespace of its own, as a switch would be —
    without the host's iptables on the path (bridge-nf-call-iptables is per namespace) — and a veth
    to the host netns (HOST_IP) where the server and the registry mirror listen."""
    if not netns_exists(WIRE_NETNS):
        run("ip", "netns", "add", WIRE_NETNS)
    wire = nsenter(WIRE_NETNS)
    run(*wire, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0", check=False)
    if run(*wire, "ip", "link", "show", BRIDGE, check=False).returncode != 0:
        run(*wire, "ip", "link", "add", BRIDGE, "type", "bridge")
    run(*wire, "ip", "link", "set", BRIDGE, "up")
    if run("ip", "link", "show", HOST_LINK, check=False).returncode != 0:
        run("ip", "link", "add", HOST_LINK, "type", "veth", "peer", "name", "uplink", "netns", WIRE_NETNS)
    run("ip", "addr", "replace", f"{HOST_IP}/24", "dev", HOST_LINK)
    run("ip", "link", "set", HOST_LINK, "up")
    run(*wire, "ip", "link", "set", "uplink", "master", BRIDGE, "up")


def create_network(nodes: list[Node]) -> None:
    create_wire()
    for node in nodes:
        create_node_netns(node)


def create_node_netns(node: Node) -> None:
    create_wire()
    if not netns_exists(node.netns):
        run("ip", "netns", "add", node.netns)
    inside, wire = nsenter(node.netns), nsenter(WIRE_NETNS)
    run(*inside, "ip", "link", "set", "lo", "up")
    if run(*wire, "ip", "link", "show", node.host_link, check=False).returncode != 0:
        run(*wire, "ip", "link", "add", node.host_link, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
    run(*wire, "ip", "link", "set", node.host_link, "master", BRIDGE, "up")
    run(*inside, "ip", "addr", "replace", f"{node.ip}/24", "dev", "eth0")
    run(*inside, "ip", "link", "set", "eth0", "up")
    run(*inside, "ip", "route", "replace", "default", "via", HOST_IP)


def delete_network() -> None:
    """Every namespace of the harness, also of nodes a killed run knew and this one does not (deleting
    a namespace deletes its veths and their peers)."""
    for path in Path("/var/run/netns").glob(f"{PREFIX}-*"):
        run("ip", "netns", "del", path.name, check=False)
    run("ip", "link", "del", HOST_LINK, check=False)


def kill_leftover_processes() -> None:
    """Processes still running from the work dir once the daemons stopped: shims of a containerd whose
    pods could not be removed through CRI. They would hold mounts and state the next run reuses."""
    import psutil
    marker = str(WORK_DIR) + "/"
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid != os.getpid() and any(marker in arg for arg in process.info["cmdline"] or []):
            print(f"killing leftover pid={process.pid}: {' '.join(process.info['cmdline'])}", file=sys.stderr)
            try:
                process.kill()
            except psutil.Error:
                pass


# ---------------------------------------------------------------- pods through a node's CRI

async def remove_all_pods(endpoint: str) -> int:
    """Stops and removes every container and sandbox of one node's containerd (concurrently: a
    sandbox's CNI DEL and shim exit take about a second each)."""
    from cri.client import CRIClient
    async with CRIClient(endpoint, timeout=30) as runtime:
        async def remove_container(container_id: str) -> None:
            await runtime.stop_container(container_id, 0)
            await runtime.remove_container(container_id)

        async def remove_sandbox(sandbox_id: str) -> None:
            await runtime.stop_pod_sandbox(sandbox_id)
            await runtime.remove_pod_sandbox(sandbox_id)
        await asyncio.gather(*(remove_container(c.id) for c in await runtime.list_containers()))
        sandboxes = await runtime.list_pod_sandbox()
        await asyncio.gather(*(remove_sandbox(s.id) for s in sandboxes))
        return len(sandboxes)


async def exec_in_pod(endpoint: str, pod_uid: str, container: str, command: list[str],
                      timeout: int = 20) -> tuple[int, str, str]:
    """Runs a command in a pod's container through the node's CRI (ExecSync)."""
    from cri.client import CRIClient
    from cri.gen import api_pb2
    async with CRIClient(endpoint) as runtime:
        found = await runtime.list_containers(api_pb2.ContainerFilter(label_selector={
            "io.kubernetes.pod.uid": pod_uid, "io.kubernetes.container.name": container}))
        running = [c for c in found if c.state == api_pb2.CONTAINER_RUNNING]
        if not running:
            raise RuntimeError(f"no running container {container} of pod {pod_uid} on {endpoint}")
        response = await runtime.exec_sync(running[0].id, command, timeout)
        return response.exit_code, response.stdout.decode(errors="replace"), response.stderr.decode(errors="replace")


def _removed_all_pods(endpoint: str) -> bool:
    from cri.errors import CRIError
    try:
        asyncio.run(remove_all_pods(endpoint))
    except CRIError as error:
        print(f"removing pods through {endpoint}: {error}", file=sys.stderr)
        return False
    return True


def unmount_under(directory: Path) -> None:
    """Unmounts whatever a previous run left mounted below `directory` (deepest first)."""
    mounts = []
    with open("/proc/self/mounts") as handle:
        for line in handle:
            target = line.split()[1].replace("\\040", " ")
            if target.startswith(str(directory) + "/"):
                mounts.append(target)
    for target in sorted(mounts, key=len, reverse=True):
        run("umount", "-l", target, check=False)


# ---------------------------------------------------------------- the cluster

class MultiNodeCluster:
    def __init__(self, node_count: int = 3):
        self.nodes = [Node(f"node{i}", i) for i in range(1, node_count + 1)]
        self.server = Daemon("server", WORK_DIR / "server.pid", LOG_DIR / "server.log")
        self.registry = Daemon("registry", WORK_DIR / "registry.pid", LOG_DIR / "registry.log")
        self.kubeconfig = WORK_DIR / "admin.kubeconfig"
        self.registry_url = ""
        self.server_url = ""
        self.join_token = ""        # one bootstrap token every node joins with (`shipmate token create`)
        self.node_monitor_grace = NODE_MONITOR_GRACE_SECONDS
        self.pod_eviction_timeout = POD_EVICTION_TIMEOUT_SECONDS

    # ------------------------------------------------------------ teardown (also of leftovers)
    def down(self) -> None:
        known = {p.name for p in WORK_DIR.glob("node*") if p.is_dir()}
        nodes = self.nodes + [Node(name, int(name[4:])) for name in sorted(known)
                              if name[4:].isdigit() and name not in {n.name for n in self.nodes}]
        stop_all([node.agent for node in nodes])
        with ThreadPoolExecutor(max(1, len(nodes))) as pool:     # each may wait seconds for its containerd
            list(pool.map(self._remove_node_pods, nodes))
        stop_all([node.containerd for node in nodes] + [self.server, self.registry])
        kill_leftover_processes()
        delete_network()
        unmount_under(WORK_DIR)
        shutil.rmtree(WORK_DIR, ignore_errors=True)

    def _remove_node_pods(self, node: Node) -> None:
        """A node's pods go through its containerd (CNI DEL in its netns): start it if a killed run
        left only its state behind."""
        if not (node.dir / "containerd" / "root").exists():
            return
        try:
            if not node.containerd.running():
                create_node_netns(node)
                node.containerd.start(node.containerd_argv())
                wait_until(node.containerd_up, 20, f"{node.name} containerd (cleanup)")
            # A containerd just started answers `ctr version` before its CRI plugin is initialized.
            wait_until(lambda: _removed_all_pods(node.runtime_endpoint), 30, f"{node.name} pods removed", 0.5)
        except (RuntimeError, TimeoutError, OSError) as error:
            print(f"cleanup of {node.name}'s pods failed: {error}", file=sys.stderr)

    # ------------------------------------------------------------ bring-up
    def up(self, ready_timeout: float = 90) -> None:
        self.down()
        WORK_DIR.mkdir(parents=True)
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        for old_log in LOG_DIR.glob("*.log"):
            old_log.unlink()
        create_network(self.nodes)
        self._start_registry()
        self._start_server()
        for node in self.nodes:
            self._start_containerd(node)
        for node in self.nodes:
            self._start_agent(node)
        wait_until(lambda: self.ready_nodes() == {n.name for n in self.nodes}, ready_timeout,
                   f"nodes Ready (logs in {LOG_DIR})", interval=0.5)

    def _start_registry(self) -> None:
        config = yaml.safe_load(REGISTRY_CONFIG.read_text())
        port = free_port(HOST_IP)
        config["http"]["addr"] = f"{HOST_IP}:{port}"
        path = WORK_DIR / "registry.yml"
        path.write_text(yaml.safe_dump(config))
        self.registry.start(["/usr/bin/docker-registry", "serve", str(path)])
        self.registry_url = f"http://{HOST_IP}:{port}"

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{self.registry_url}/v2/", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False
        wait_until(answers, 20, "the registry mirror")

    def _start_server(self) -> None:
        port = free_port(HOST_IP)
        options = ServerOptions(bind_address=HOST_IP, port=port, data_dir=str(WORK_DIR / "server"),
                                cluster_cidr=CLUSTER_CIDR, admin_kubeconfig=str(self.kubeconfig),
                                extra_args=("--node-monitor-period", "1s",
                                            "--node-monitor-grace-period", f"{NODE_MONITOR_GRACE_SECONDS}s",
                                            "--pod-eviction-timeout", f"{POD_EVICTION_TIMEOUT_SECONDS}s"))
        self.server.start([*SHIPMATE, "server", *server_args(options)])
        self.server_url = f"https://{HOST_IP}:{port}"
        wait_until(lambda: self.kubeconfig.exists() and self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
                   30, "the API server")
        self.join_token = run(*SHIPMATE, "token", "create", "--ttl", "2h", "--description", "multinode harness",
                              "--kubeconfig", str(self.kubeconfig)).stdout.strip()

    @property
    def ca_file(self) -> Path:
        """The cluster CA the server wrote out; the agents trust it (`--ca-file`)."""
        return WORK_DIR / "server" / "pki" / "ca.crt"

    def agent_options(self, node: Node) -> AgentOptions:
        d = node.dir
        return AgentOptions(server=self.server_url, token=self.join_token, ca_file=str(self.ca_file),
                            node_name=node.name, node_ip=node.ip, cluster_cidr=CLUSTER_CIDR,
                            registry_mirror=self.registry_url, paths=node.paths,
                            extra_args=("--pod-log-dir", str(d / "logs"), "--pod-manifest-path", str(d / "manifests")))

    def _start_containerd(self, node: Node) -> None:
        write_files(agent_config_files(self.agent_options(node), systemd_cgroup=False))
        for directory in (node.paths.cni_bin_dir, node.paths.cni_conf_dir, str(node.dir / "manifests")):
            os.makedirs(directory, exist_ok=True)
        node.containerd.start(node.containerd_argv())
        wait_until(node.containerd_up, 30, f"{node.name} containerd")

    def _start_agent(self, node: Node) -> None:
        node.agent.start([*nsenter(node.netns), *SHIPMATE, "agent", *agent_args(self.agent_options(node))])

    def stop_node(self, name: str) -> None:
        """The node dies: its agent and containerd stop (containers keep running in their shims, as
        on a machine cut off the network)."""
        node = self.node(name)
        node.agent.stop()
        node.containerd.stop()     # after the agent, which would report its runtime down (Ready=False)

    def start_node(self, name: str) -> None:
        """The stopped node comes back: containerd (finding its shims again), then the agent."""
        node = self.node(name)
        self._start_containerd(node)
        self._start_agent(node)

    def freeze_agent(self, name: str) -> None:
        """The agent stops answering without exiting (SIGSTOP), like an agent cut off the server."""
        self.node(name).agent.signal(signal.SIGSTOP)

    def thaw_agent(self, name: str) -> None:
        self.node(name).agent.signal(signal.SIGCONT)

    # ------------------------------------------------------------ queries
    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([KUBECTL, "--kubeconfig", str(self.kubeconfig), *args], input=stdin,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def ready_nodes(self) -> set[str]:
        result = self.kubectl("get", "nodes", "-o", "json", check=False)
        if result.returncode != 0:
            return set()
        return {n["metadata"]["name"] for n in json.loads(result.stdout)["items"]
                if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))}

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def exec(self, pod: dict, container: str, command: list[str]) -> tuple[int, str, str]:
        node = self.node(pod["spec"]["nodeName"])
        return asyncio.run(exec_in_pod(node.runtime_endpoint, pod["metadata"]["uid"], container, command))

    def logs(self) -> str:
        daemons = [self.server] + [d for n in self.nodes for d in (n.agent, n.containerd)]
        return "\n".join(f"--- {d.name}:\n{d.log_tail()}" for d in daemons)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.multinode.harness")
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args(argv)
    cluster = MultiNodeCluster(args.nodes)
    if args.action == "down":
        cluster.down()
        return 0
    try:
        cluster.up()
    except TimeoutError as error:
        print(f"{error}\n{cluster.logs()}", file=sys.stderr)
        return 1
    print(f"{len(cluster.nodes)} nodes Ready. export KUBECONFIG={cluster.kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
