"""A whole private shipmate node for tests that must restart containerd or stop the API server: a
network namespace of its own holding a registry (the local registry's storage, served on the
namespace's 127.0.0.1:5000), its own containerd (own root, state, socket, CNI dirs), its own
`shipmate server` and its own agent, which joins the server with a bootstrap token. The host's
containerd and cluster are never touched.

Everything lives under WORK_DIR and in netns NETNS; leftovers of a killed run are removed first.
`PrivateNode(name=...)` gives another node its own dir, netns and node name (tests that may run at
the same time as these use different names); `servers=2` runs two `shipmate server`s (ports 6443,
6444) on an etcd member in the netns instead of one server on SQLite, and the agent gets both URLs.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from shipmate import containerd_config
from tests.e2e.multinode.harness import remove_all_pods, unmount_under
from tests.integration.etcd_support import ETCD, ETCDCTL
from tests.support import wait_for

WORK_DIR = Path("/var/lib/shipmate-f-node")
NETNS = "shipmate-f-node"
NODE = "f-node"
CLUSTER_CIDR = "10.247.0.0/16"
REGISTRY_STORAGE = "/var/lib/shipmate/registry"
SHIPMATE = [sys.executable, "-m", "shipmate.cli"]
KUBECTL = "/usr/local/bin/kubectl"
PRIVATE_CLUSTER_DNS = "169.254.20.10"
ENTER = ["nsenter", f"--net=/var/run/netns/{NETNS}"]
API_PORT = 6443                   # the first server's; a second one listens on the next port
ETCD_CLIENT = "127.0.0.1:2379"    # in the netns: nothing else listens there
ETCD_CLIENT_URL = f"http://{ETCD_CLIENT}"
ETCD_PEER_URL = "http://127.0.0.1:2380"


class Process:
    """A daemon of this node, started in the netns, with a pid file (so a later run can stop it)."""

    def __init__(self, name: str, work_dir: Path = WORK_DIR, enter: tuple[str, ...] = tuple(ENTER)):
        self.name = name
        self.work_dir, self.enter = work_dir, list(enter)
        self.pid_file = work_dir / f"{name}.pid"
        self.log_file = work_dir / f"{name}.log"

    def start(self, argv: list[str]) -> None:
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- {time.strftime('%FT%TZ', time.gmtime())} {' '.join(argv)}\n".encode())
            process = subprocess.Popen([*self.enter, *argv], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        self.pid_file.write_text(str(process.pid))

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            zombie = Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        except (OSError, ValueError, IndexError):
            return None
        return pid if str(self.work_dir) in cmdline and not zombie else None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signum)
        deadline = time.monotonic() + timeout
        while self.pid() is not None and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass

    def log(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


BUSYBOX = "127.0.0.1:5000/library/busybox:latest"


def sleeper_pod(name: str) -> str:
    """A pod manifest (JSON) that sleeps, for `kubectl apply -f -` on a private node."""
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                       "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                           {"name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "3600"]}]}})


class PrivateNode:
    def __init__(self, server_args: tuple[str, ...] = (), *, name: str = NODE, servers: int = 1,
                 node_ip: str = "127.0.0.1") -> None:
        if servers not in (1, 2):
            raise ValueError("a private node runs one server (SQLite) or two (etcd)")
        self.server_args = server_args       # more `shipmate server` flags
        # The agent's --node-ip; another address than 127.0.0.1 is put on the netns' lo (as /32), so
        # hostPorts and LoadBalancer addresses can be reached on it (route a test client's netns to it).
        self.node_ip = node_ip
        self.node_name = name
        self.work_dir = Path(f"/var/lib/shipmate-{name}")
        self.netns = f"shipmate-{name}"
        self.enter = ["nsenter", f"--net=/var/run/netns/{self.netns}"]
        self.registry, self.containerd = self._process("registry"), self._process("containerd")
        self.etcd = self._process("etcd") if servers > 1 else None
        # Server i: "server" (data dir, kubeconfig and CA file as with one server), then "server-b".
        names = ["server", "server-b"][:servers]
        self.servers = [self._process(n) for n in names]
        self.ports = [API_PORT + i for i in range(servers)]
        self.urls = [f"https://127.0.0.1:{port}" for port in self.ports]
        self.kubeconfigs = [self.work_dir / ("admin.kubeconfig" if i == 0 else f"admin-{n}.kubeconfig")
                            for i, n in enumerate(names)]
        self.server, self.agent = self.servers[0], self._process("agent")
        self.kubeconfig = self.kubeconfigs[0]
        self.socket = self.work_dir / "containerd.sock"
        self.endpoint = f"unix://{self.socket}"
        self.manifests = self.work_dir / "manifests"
        self.ca_file = self.work_dir / "server" / "pki" / "ca.crt"
        self.agent_root = self.work_dir / "agent"

    def _process(self, name: str) -> Process:
        return Process(name, self.work_dir, tuple(self.enter))

    # ------------------------------------------------------------ lifecycle
    def up(self) -> None:
        self.down()
        self.work_dir.mkdir(parents=True)
        self.manifests.mkdir()
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run([*self.enter, "ip", "link", "set", "lo", "up"], check=True)
        if self.node_ip != "127.0.0.1":
            subprocess.run([*self.enter, "ip", "addr", "add", f"{self.node_ip}/32", "dev", "lo"], check=True)
        self._start_registry()
        if self.etcd is not None:
            self._start_etcd()
        self._write_containerd_config()
        self.start_containerd()
        self.start_server()
        if len(self.servers) > 1:
            # The first server takes the controller-manager Lease before the second one starts, so it
            # runs the control loops (and a test that kills it sees them handed over).
            wait_for(lambda: self.kubectl("get", "lease", "-n", "kube-system", "kube-controller-manager", "-o",
                                          "jsonpath={.spec.holderIdentity}", check=False).stdout, 20,
                     "the first server to lead", interval=0.2)
            self.start_server(1)
        self.start_agent()
        wait_for(lambda: self.node_ready() is True, 60, f"node {self.node_name} Ready ({self.logs()})", interval=0.5)
        # The node server (logs, exec, attach, port-forward) listens once its serving certificate is issued, a moment
        # after the node is Ready; a pod of cached images can be running before that.
        wait_for(self.node_server_listening, 30, f"node {self.node_name}'s server on :10250", interval=0.2)

    def node_server_listening(self) -> bool:
        listening = subprocess.run([*self.enter, "ss", "-Hltn", "sport = :10250"], capture_output=True, text=True)
        return bool(listening.stdout.strip())

    def down(self) -> None:
        self.agent.stop()
        pods_removed = self._remove_pods()
        for process in (self.containerd, *self.servers, self.registry):
            process.stop()
        # Whatever else a pid file names (etcd, or daemons of a run with other options).
        for pid_file in self.work_dir.glob("*.pid"):
            self._process(pid_file.stem).stop()
        if not pods_removed:
            print(f"{self.node_name}'s netns and {self.work_dir} kept: the next run removes its pods first",
                  file=sys.stderr)
            return
        if Path(f"/var/run/netns/{self.netns}").exists():
            subprocess.run(["ip", "netns", "del", self.netns], check=False)
        unmount_under(self.work_dir)
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def _remove_pods(self) -> bool:
        """Removes every pod of this node's containerd (started again for it if need be); False when
        that failed. Retried a while: a container still starting cannot be removed yet."""
        if not (self.work_dir / "containerd" / "root").exists():
            return True
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.containerd.pid() is None and Path(f"/var/run/netns/{self.netns}").exists():
                    self.start_containerd()
                if self.containerd.pid() is None:
                    return True        # no netns left to run it in: nothing of it runs either
                asyncio.run(remove_all_pods(self.endpoint))
                return True
            except Exception as error:  # noqa: BLE001 - best effort: leftovers must not block a run
                if time.monotonic() > deadline:
                    print(f"cleanup of {self.node_name}'s pods failed: {error!r}", file=sys.stderr)
                    return False
                time.sleep(1)

    def _start_registry(self) -> None:
        config = {"version": 0.1, "log": {"level": "warn"},
                  "storage": {"filesystem": {"rootdirectory": REGISTRY_STORAGE}},
                  "http": {"addr": "127.0.0.1:5000"}}
        path = self.work_dir / "registry.yml"
        path.write_text(yaml.safe_dump(config))
        self.registry.start(["/usr/bin/docker-registry", "serve", str(path)])
        wait_for(lambda: subprocess.run([*self.enter, "curl", "-sf", "http://127.0.0.1:5000/v2/"],
                                        capture_output=True).returncode == 0, 20, "the node's registry")

    def _start_etcd(self) -> None:
        assert self.etcd is not None
        self.etcd.start([ETCD, "--name", "m0", "--data-dir", str(self.work_dir / "etcd"),
                         "--listen-client-urls", ETCD_CLIENT_URL, "--advertise-client-urls", ETCD_CLIENT_URL,
                         "--listen-peer-urls", ETCD_PEER_URL, "--initial-advertise-peer-urls", ETCD_PEER_URL,
                         "--initial-cluster", f"m0={ETCD_PEER_URL}", "--logger", "zap", "--log-outputs", "stderr",
                         "--heartbeat-interval", "50", "--election-timeout", "500"])
        wait_for(lambda: subprocess.run([*self.enter, ETCDCTL, "--endpoints", ETCD_CLIENT_URL, "endpoint", "health"],
                                        capture_output=True, env={**os.environ, "ETCDCTL_API": "3"}).returncode == 0,
                 30, "the node's etcd", interval=0.2)

    def _write_containerd_config(self) -> None:
        rendered = containerd_config.render({}, False, str(self.work_dir / "certs.d"), str(self.work_dir / "cni/bin"),
                                            str(self.work_dir / "cni/net.d"))
        (self.work_dir / "containerd.toml").write_text(rendered.config_toml)
        for host, text in rendered.hosts.items():
            (self.work_dir / "certs.d" / host).mkdir(parents=True, exist_ok=True)
            (self.work_dir / "certs.d" / host / "hosts.toml").write_text(text)

    def start_containerd(self) -> None:
        self.containerd.start(["containerd", "--config", str(self.work_dir / "containerd.toml"),
                               "--root", str(self.work_dir / "containerd/root"),
                               "--state", str(self.work_dir / "containerd/state"), "--address", str(self.socket)])
        wait_for(lambda: subprocess.run(["ctr", "--address", str(self.socket), "version"],
                                        capture_output=True).returncode == 0, 30, "the node's containerd")

    def start_server(self, index: int = 0) -> None:
        datastore = ["--datastore-endpoint", f"etcd://{ETCD_CLIENT}"] if self.etcd else []
        self.servers[index].start([*SHIPMATE, "server", "--bind-address", "127.0.0.1", "--port", str(self.ports[index]),
                                   "--data-dir", str(self.work_dir / self.servers[index].name),
                                   "--cluster-cidr", CLUSTER_CIDR, "--admin-kubeconfig", str(self.kubeconfigs[index]),
                                   *datastore, *self.server_args])
        wait_for(lambda: self.kubeconfigs[index].exists()
                 and self.kubectl("get", "--raw", "/readyz", check=False, server=index).returncode == 0,
                 30, f"the node's API server {self.urls[index]}")

    def create_token(self, ttl: str = "10m") -> str:
        """A bootstrap token from `shipmate token create` (what an operator hands a new node)."""
        result = subprocess.run([*self.enter, *SHIPMATE, "token", "create", "--ttl", ttl,
                                 "--kubeconfig", str(self.kubeconfig)], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise AssertionError(f"shipmate token create: {result.stderr.strip()}")
        return result.stdout.strip()

    def start_agent(self, *extra_args: str) -> None:
        """The first start joins with a new bootstrap token; later ones use the certificate it left."""
        joined = (self.agent_root / "kubelet.kubeconfig").exists()
        join = [] if joined else ["--token", self.create_token()]
        self.agent.start([*SHIPMATE, "agent", *extra_args, *join, "--server", ",".join(self.urls),
                          "--ca-file", str(self.ca_file), "--node-name", self.node_name,
                          "--node-ip", self.node_ip, "--container-runtime-endpoint", self.endpoint,
                          "--root-dir", str(self.agent_root), "--cni-bin-dir", str(self.work_dir / "cni/bin"),
                          "--cni-conf-dir", str(self.work_dir / "cni/net.d"),
                          "--cni-socket", str(self.work_dir / "cni.sock"), "--ipam-dir", str(self.work_dir / "ipam"),
                          "--pod-log-dir", str(self.work_dir / "logs"), "--pod-manifest-path", str(self.manifests),
                          "--cluster-cidr", CLUSTER_CIDR,
                          # no DNS addon in this cluster: the agent answers on a node-local address itself
                          "--cluster-dns", PRIVATE_CLUSTER_DNS, "--serve-cluster-dns"])

    # ------------------------------------------------------------ queries
    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None,
                server: int = 0) -> subprocess.CompletedProcess[str]:
        """kubectl as the admin through server `server` (0: the first)."""
        result = subprocess.run([*self.enter, KUBECTL, "--kubeconfig", str(self.kubeconfigs[server]), *args],
                                input=stdin, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def json(self, *args: str, server: int = 0) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json", server=server).stdout)

    def node_ready(self, server: int = 0) -> bool | None:
        result = self.kubectl("get", "node", self.node_name, "-o", "json", check=False, server=server)
        if result.returncode != 0:
            return None
        conditions = json.loads(result.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def logs(self) -> str:
        daemons = (self.agent, self.containerd, *self.servers, *([self.etcd] if self.etcd else []))
        return "\n".join(f"--- {p.name}:\n{p.log(15)}" for p in daemons)


@contextmanager
def running_node(*args: Any, **kwargs: Any) -> Iterator[PrivateNode]:
    """A PrivateNode(*args, **kwargs) brought up for the caller and torn down afterwards (its logs
    printed when bringing it up or the caller failed); skips the test without root."""
    import pytest
    if os.geteuid() != 0:
        pytest.skip("needs root (netns, containerd)")
    private = PrivateNode(*args, **kwargs)
    try:
        private.up()
        yield private
    except Exception:
        print(private.logs())
        raise
    finally:
        private.down()
