"""A whole private shipmate node for tests that must restart containerd or stop the API server: a
network namespace of its own holding a registry (the local registry's storage, served on the
namespace's 127.0.0.1:5000), its own containerd (own root, state, socket, CNI dirs), its own
`shipmate server` and its own agent, which joins the server with a bootstrap token. The host's
containerd and cluster are never touched.

Everything lives under WORK_DIR and in netns NETNS; leftovers of a killed run are removed first.
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
from pathlib import Path
from typing import Any

import yaml

from shipmate import containerd_config
from tests.e2e.multinode.harness import remove_all_pods, unmount_under
from tests.support import wait_for

WORK_DIR = Path("/var/lib/shipmate-f-node")
NETNS = "shipmate-f-node"
NODE = "f-node"
CLUSTER_CIDR = "10.247.0.0/16"
REGISTRY_STORAGE = "/var/lib/shipmate/registry"
SHIPMATE = [sys.executable, "-m", "shipmate.cli"]
KUBECTL = "/usr/local/bin/kubectl"
ENTER = ["nsenter", f"--net=/var/run/netns/{NETNS}"]


class Process:
    """A daemon of this node, started in the netns, with a pid file (so a later run can stop it)."""

    def __init__(self, name: str):
        self.name = name
        self.pid_file = WORK_DIR / f"{name}.pid"
        self.log_file = WORK_DIR / f"{name}.log"

    def start(self, argv: list[str]) -> None:
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- {time.strftime('%FT%TZ', time.gmtime())} {' '.join(argv)}\n".encode())
            process = subprocess.Popen([*ENTER, *argv], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        self.pid_file.write_text(str(process.pid))

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            zombie = Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        except (OSError, ValueError, IndexError):
            return None
        return pid if str(WORK_DIR) in cmdline and not zombie else None

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


class PrivateNode:
    def __init__(self, server_args: tuple[str, ...] = ()) -> None:
        self.server_args = server_args       # more `shipmate server` flags
        self.registry, self.containerd = Process("registry"), Process("containerd")
        self.server, self.agent = Process("server"), Process("agent")
        self.kubeconfig = WORK_DIR / "admin.kubeconfig"
        self.socket = WORK_DIR / "containerd.sock"
        self.endpoint = f"unix://{self.socket}"
        self.manifests = WORK_DIR / "manifests"
        self.ca_file = WORK_DIR / "server" / "pki" / "ca.crt"
        self.agent_root = WORK_DIR / "agent"

    # ------------------------------------------------------------ lifecycle
    def up(self) -> None:
        self.down()
        WORK_DIR.mkdir(parents=True)
        self.manifests.mkdir()
        subprocess.run(["ip", "netns", "add", NETNS], check=True)
        subprocess.run([*ENTER, "ip", "link", "set", "lo", "up"], check=True)
        self._start_registry()
        self._write_containerd_config()
        self.start_containerd()
        self.start_server()
        self.start_agent()
        wait_for(lambda: self.node_ready() is True, 60, f"node {NODE} Ready ({self.logs()})", interval=0.5)

    def down(self) -> None:
        self.agent.stop()
        if (WORK_DIR / "containerd" / "root").exists():
            try:
                if self.containerd.pid() is None and Path(f"/var/run/netns/{NETNS}").exists():
                    self.start_containerd()
                if self.containerd.pid() is not None:
                    asyncio.run(remove_all_pods(self.endpoint))
            except Exception as error:  # noqa: BLE001 - best effort: leftovers must not block a run
                print(f"cleanup of {NODE}'s pods failed: {error!r}", file=sys.stderr)
        for process in (self.containerd, self.server, self.registry):
            process.stop()
        if Path(f"/var/run/netns/{NETNS}").exists():
            subprocess.run(["ip", "netns", "del", NETNS], check=False)
        unmount_under(WORK_DIR)
        shutil.rmtree(WORK_DIR, ignore_errors=True)

    def _start_registry(self) -> None:
        config = {"version": 0.1, "log": {"level": "warn"},
                  "storage": {"filesystem": {"rootdirectory": REGISTRY_STORAGE}},
                  "http": {"addr": "127.0.0.1:5000"}}
        path = WORK_DIR / "registry.yml"
        path.write_text(yaml.safe_dump(config))
        self.registry.start(["/usr/bin/docker-registry", "serve", str(path)])
        wait_for(lambda: subprocess.run([*ENTER, "curl", "-sf", "http://127.0.0.1:5000/v2/"],
                                        capture_output=True).returncode == 0, 20, "the node's registry")

    def _write_containerd_config(self) -> None:
        rendered = containerd_config.render({}, False, str(WORK_DIR / "certs.d"), str(WORK_DIR / "cni/bin"),
                                            str(WORK_DIR / "cni/net.d"))
        (WORK_DIR / "containerd.toml").write_text(rendered.config_toml)
        for host, text in rendered.hosts.items():
            (WORK_DIR / "certs.d" / host).mkdir(parents=True, exist_ok=True)
            (WORK_DIR / "certs.d" / host / "hosts.toml").write_text(text)

    def start_containerd(self) -> None:
        self.containerd.start(["containerd", "--config", str(WORK_DIR / "containerd.toml"),
                               "--root", str(WORK_DIR / "containerd/root"), "--state", str(WORK_DIR / "containerd/state"),
                               "--address", str(self.socket)])
        wait_for(lambda: subprocess.run(["ctr", "--address", str(self.socket), "version"],
                                        capture_output=True).returncode == 0, 30, "the node's containerd")

    def start_server(self) -> None:
        self.server.start([*SHIPMATE, "server", "--bind-address", "127.0.0.1", "--port", "6443",
                           "--data-dir", str(WORK_DIR / "server"), "--cluster-cidr", CLUSTER_CIDR,
                           "--admin-kubeconfig", str(self.kubeconfig), *self.server_args])
        wait_for(lambda: self.kubeconfig.exists() and self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
                 30, "the node's API server")

    def create_token(self, ttl: str = "10m") -> str:
        """A bootstrap token from `shipmate token create` (what an operator hands a new node)."""
        result = subprocess.run([*ENTER, *SHIPMATE, "token", "create", "--ttl", ttl, "--kubeconfig", str(self.kubeconfig)],
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise AssertionError(f"shipmate token create: {result.stderr.strip()}")
        return result.stdout.strip()

    def start_agent(self, *extra_args: str) -> None:
        """The first start joins with a new bootstrap token; later ones use the certificate it left."""
        joined = (self.agent_root / "kubelet.kubeconfig").exists()
        join = [] if joined else ["--token", self.create_token()]
        self.agent.start([*SHIPMATE, "agent", *extra_args, *join, "--server", "https://127.0.0.1:6443",
                          "--ca-file", str(self.ca_file), "--node-name", NODE,
                          "--node-ip", "127.0.0.1", "--container-runtime-endpoint", self.endpoint,
                          "--root-dir", str(self.agent_root), "--cni-bin-dir", str(WORK_DIR / "cni/bin"),
                          "--cni-conf-dir", str(WORK_DIR / "cni/net.d"), "--cni-socket", str(WORK_DIR / "cni.sock"),
                          "--ipam-dir", str(WORK_DIR / "ipam"), "--pod-log-dir", str(WORK_DIR / "logs"),
                          "--pod-manifest-path", str(self.manifests), "--cluster-cidr", CLUSTER_CIDR])

    # ------------------------------------------------------------ queries
    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*ENTER, KUBECTL, "--kubeconfig", str(self.kubeconfig), *args], input=stdin,
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def node_ready(self) -> bool | None:
        result = self.kubectl("get", "node", NODE, "-o", "json", check=False)
        if result.returncode != 0:
            return None
        conditions = json.loads(result.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}:\n{p.log(15)}" for p in (self.agent, self.containerd, self.server))
