"""Real etcd members for tests: loopback spare ports, temp data dirs, started and killed per test."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from shipmate import pki

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


def etcd_available() -> bool:
    return os.access(ETCD, os.X_OK) and os.access(ETCDCTL, os.X_OK)


def spare_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen | None = None

    scheme: str = "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


@dataclass(frozen=True)
class EtcdPKI:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (shipmate.pki, EC P-256)."""
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def create(cls, directory: Path) -> "EtcdPKI":
        directory.mkdir(parents=True, exist_ok=True)
        ca = pki.make_ca("test-etcd-ca", days=2)
        (directory / "ca.pem").write_bytes(ca[0])
        for name, server in (("server", True), ("client", False)):
            cert, key = pki.issue(*ca, f"test-etcd-{name}", ip_addresses=["127.0.0.1"] if server else [],
                                  server=server, client=not server, seconds=2 * 86400)
            (directory / f"{name}.pem").write_bytes(cert)
            (directory / f"{name}.key").write_bytes(key)
            (directory / f"{name}.key").chmod(0o600)
        return cls(directory / "ca.pem", directory / "server.pem", directory / "server.key",
                   directory / "client.pem", directory / "client.key")


@dataclass
class EtcdCluster:
    root: Path
    size: int = 1
    pki: EtcdPKI | None = None  # client TLS with client-certificate auth when set
    members: list[EtcdMember] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        ports = spare_ports(2 * self.size)
        for i in range(self.size):
            self.members.append(EtcdMember(f"m{i}", ports[2 * i], ports[2 * i + 1], self.root / f"m{i}",
                                           self.root / f"m{i}.log", scheme="https" if self.pki else "http"))

    @property
    def endpoint(self) -> str:
        """The `--datastore-endpoint` value for every member."""
        return "etcd://" + ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)

    def start(self) -> "EtcdCluster":
        for i in range(self.size):
            self.start_member(i, state="new")
        self.wait_healthy()
        return self

    def start_member(self, index: int, state: str = "existing") -> None:
        member = self.members[index]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        args = [ETCD, "--name", member.name, "--data-dir", str(member.data_dir),
                "--listen-client-urls", member.client_url, "--advertise-client-urls", member.client_url,
                "--listen-peer-urls", member.peer_url, "--initial-advertise-peer-urls", member.peer_url,
                "--initial-cluster", initial, "--initial-cluster-token", f"shipmate-test-{self.root.name}",
                "--initial-cluster-state", state, "--logger", "zap", "--log-outputs", "stderr",
                "--heartbeat-interval", "50", "--election-timeout", "500"]
        if self.pki:
            args += ["--cert-file", str(self.pki.server_cert), "--key-file", str(self.pki.server_key),
                     "--trusted-ca-file", str(self.pki.ca), "--client-cert-auth"]
        log = open(member.log_path, "ab")
        member.process = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
        log.close()

    def kill_member(self, index: int) -> None:
        member = self.members[index]
        if member.process and member.process.poll() is None:
            member.process.send_signal(signal.SIGKILL)
            member.process.wait(10)
        member.process = None

    def etcdctl(self, *args: str, members: list[int] | None = None, timeout: float = 15) -> str:
        chosen = [self.members[i] for i in (members if members is not None else range(self.size))]
        endpoints = ",".join(m.client_url for m in chosen)
        tls = ["--cacert", str(self.pki.ca), "--cert", str(self.pki.client_cert),
               "--key", str(self.pki.client_key)] if self.pki else []
        result = subprocess.run([ETCDCTL, "--endpoints", endpoints, "--command-timeout", "5s", *tls, *args],
                                capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "ETCDCTL_API": "3"})
        if result.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def wait_healthy(self, members: list[int] | None = None, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                self.etcdctl("endpoint", "health", members=members)
                return
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                last = str(exc)
            time.sleep(0.2)
        logs = "\n".join(m.log_path.read_text()[-2000:] for m in self.members if m.log_path.exists())
        raise RuntimeError(f"etcd not healthy after {timeout}s: {last}\n{logs}")

    def stop(self) -> None:
        for i in range(self.size):
            self.kill_member(i)
