"""systemd: the unit files pass `systemd-analyze verify`, and the real server and agent speak the
sd_notify protocol (READY=1 once serving / registered, then WATCHDOG=1 at half of WATCHDOG_USEC)
to a socket this test listens on, as systemd's would."""
from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from shipmate.install import (AGENT_UNIT, SERVER_UNIT, SYSTEMD_SOURCE_DIR, AgentOptions, AgentPaths, agent_args,
                              containerd_files, write_files)
from tests.support import wait_for

pytestmark = pytest.mark.integration

SHIPMATE = [sys.executable, "-m", "shipmate.cli"]
WATCHDOG_USEC = 1_000_000          # keep-alives expected every 0.5 s


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing (apt-get install systemd)")
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("unit", [SERVER_UNIT, AGENT_UNIT])
def test_unit_passes_systemd_analyze_verify(unit: str) -> None:
    result = verify(SYSTEMD_SOURCE_DIR / unit)
    # verify exits 0 on some problems (an unknown value is "ignored") but always says so.
    assert result.returncode == 0 and unit not in result.stderr, result.stderr


@pytest.mark.parametrize("role,unit", [("server", SERVER_UNIT), ("agent", AGENT_UNIT)])
def test_installed_unit_passes_verify(tmp_path: Path, role: str, unit: str) -> None:
    extra = ["--server", "https://10.0.0.1:6443", "--token", "abcdef.0123456789abcdef",
             "--ca-cert-hash", "sha256:" + "ab" * 32] if role == "agent" else []
    subprocess.run([*SHIPMATE, "install", role, "--root", str(tmp_path), "--shipmate-bin",
                    str(Path(sys.executable).parent / "shipmate"), *extra], check=True, capture_output=True)
    installed = tmp_path / "etc/systemd/system" / unit
    result = verify(installed)
    assert result.returncode == 0 and unit not in result.stderr, result.stderr


def test_verify_rejects_a_broken_unit(tmp_path: Path) -> None:
    """The check above would catch a mistake: a unit whose ExecStart does not exist fails."""
    broken = tmp_path / SERVER_UNIT
    broken.write_text((SYSTEMD_SOURCE_DIR / SERVER_UNIT).read_text().replace("/opt/shipmate/venv/bin/shipmate",
                                                                              "/nonexistent/shipmate"))
    assert verify(broken).returncode != 0


# ---------------------------------------------------------------- sd_notify with the real daemons

class NotifySocket:
    """What systemd does for a Type=notify service: a datagram socket in $NOTIFY_SOCKET."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[tuple[float, str]] = []

    def env(self, watchdog_usec: int = WATCHDOG_USEC) -> dict[str, str]:
        return dict(os.environ, NOTIFY_SOCKET=self.path, WATCHDOG_USEC=str(watchdog_usec))

    def receive_until(self, predicate, timeout: float) -> list[tuple[float, str]]:
        deadline = time.monotonic() + timeout
        while not predicate(self.messages):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"sd_notify messages so far: {self.messages}")
            self.sock.settimeout(remaining)
            try:
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))
            except socket.timeout:
                continue
        return self.messages

    def close(self) -> None:
        self.sock.close()


def ready(messages: list[tuple[float, str]]) -> bool:
    return any("READY=1" in text.splitlines() for _, text in messages)


def watchdogs_after_ready(messages: list[tuple[float, str]]) -> list[float]:
    ready_at = next(at for at, text in messages if "READY=1" in text.splitlines())
    return [at for at, text in messages if text == "WATCHDOG=1" and at > ready_at]


def assert_keepalives(notify: NotifySocket) -> None:
    notify.receive_until(lambda m: ready(m) and len(watchdogs_after_ready(m)) >= 4, 10)
    beats = watchdogs_after_ready(notify.messages)
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert all(gap < WATCHDOG_USEC / 1e6 for gap in gaps), f"keep-alives must come faster than the timeout: {gaps}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def start_server(tmp_path: Path, port: int, env: dict[str, str], netns: str | None = None) -> subprocess.Popen:
    prefix = ["nsenter", f"--net=/var/run/netns/{netns}"] if netns else []
    log = open(tmp_path / "server.log", "ab")
    return subprocess.Popen([*prefix, *SHIPMATE, "server", "--bind-address", "127.0.0.1", "--port", str(port),
                             "--data-dir", str(tmp_path / "data"), "--admin-kubeconfig", str(tmp_path / "admin.kubeconfig")],
                            env=env, stdout=log, stderr=log)


def test_server_sends_ready_when_serving_then_watchdog(tmp_path: Path, notify: NotifySocket) -> None:
    port = free_port()
    server = start_server(tmp_path, port, notify.env())
    try:
        notify.receive_until(ready, 30)
        context = ssl.create_default_context(cafile=str(tmp_path / "data" / "pki" / "ca.crt"))
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", timeout=3, context=context) as response:
            assert response.status == 200, "READY=1 came before the server served"
        assert_keepalives(notify)
    finally:
        stop(server)


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"sdn{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["nsenter", f"--net=/var/run/netns/{name}", "ip", "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_agent_sends_ready_once_registered_then_watchdog(tmp_path: Path, notify: NotifySocket, netns: str) -> None:
    """Server, agent and a containerd of the test's own, all in a network namespace the test made
    (the agent writes routes and iptables rules where it runs)."""
    enter = ["nsenter", f"--net=/var/run/netns/{netns}"]
    paths = AgentPaths(etc_dir=str(tmp_path / "etc"), root_dir=str(tmp_path / "agent"), ipam_dir=str(tmp_path / "ipam"),
                       cni_socket=str(tmp_path / "cni.sock"), cni_bin_dir=str(tmp_path / "cni/bin"),
                       cni_conf_dir=str(tmp_path / "cni/net.d"), containerd_socket=str(tmp_path / "containerd.sock"),
                       containerd_config=str(tmp_path / "containerd.toml"), certs_dir=str(tmp_path / "certs.d"))
    port = free_port()
    write_files(containerd_files(AgentOptions(server=f"https://127.0.0.1:{port}", paths=paths), systemd_cgroup=False))
    containerd_log = open(tmp_path / "containerd.log", "ab")
    containerd = subprocess.Popen([*enter, "containerd", "--config", paths.containerd_config,
                                   "--root", str(tmp_path / "containerd/root"), "--state", str(tmp_path / "containerd/state"),
                                   "--address", paths.containerd_socket], stdout=containerd_log, stderr=containerd_log)
    server = start_server(tmp_path, port, dict(os.environ), netns)
    agent = None
    try:
        kubeconfig = tmp_path / "admin.kubeconfig"
        wait_for(lambda: kubeconfig.exists() and Path(paths.containerd_socket).exists(), 30, "server and containerd")
        # The agent runs with exactly the flags `shipmate install agent` writes: it joins with a token.
        token = subprocess.run([*enter, *SHIPMATE, "token", "create", "--ttl", "10m", "--kubeconfig", str(kubeconfig)],
                               capture_output=True, text=True, check=True).stdout.strip()
        options = AgentOptions(server=f"https://127.0.0.1:{port}", token=token,
                               ca_file=str(tmp_path / "data" / "pki" / "ca.crt"), node_name="sd-node",
                               node_ip="127.0.0.1", paths=paths,
                               extra_args=("--pod-log-dir", str(tmp_path / "logs"),
                                           "--pod-manifest-path", str(tmp_path / "manifests")))
        agent_log = open(tmp_path / "agent.log", "ab")
        agent = subprocess.Popen([*enter, *SHIPMATE, "agent", *agent_args(options)],
                                 env=notify.env(), stdout=agent_log, stderr=agent_log)
        notify.receive_until(ready, 60)
        nodes = subprocess.run([*enter, "/usr/local/bin/kubectl", "--kubeconfig", str(kubeconfig), "get", "node",
                                "sd-node", "-o", "json"], capture_output=True, text=True, check=True)
        assert json.loads(nodes.stdout)["spec"]["podCIDR"], "READY=1 came before the node had its podCIDR"
        assert_keepalives(notify)
    finally:
        for process in (agent, server, containerd):
            if process is not None:
                stop(process)
        assert agent is None or agent.returncode == 0, (tmp_path / "agent.log").read_text()[-3000:]


# ---------------------------------------------------------------- a real systemd: Debian 12 in nspawn

NSPAWN_ROOT = Path(os.environ.get("SHIPMATE_NSPAWN_ROOT", "/var/lib/shipmate-nspawn/rootfs"))


def _interpreter_home() -> Path:
    """The install the virtualenv's python links to (bind-mounted into the container too)."""
    return Path(os.path.realpath(sys.executable)).parents[1]


def _container_pid1(nspawn: subprocess.Popen) -> int | None:
    import psutil
    try:
        children = psutil.Process(nspawn.pid).children()
    except psutil.NoSuchProcess:
        return None
    # Before the container starts, nspawn's children are helpers (e.g. copying the --ephemeral tree).
    return next((child.pid for child in children if child.name() == "systemd"), None)


def test_install_server_under_systemd_in_nspawn() -> None:
    """`shipmate install server` inside a booted Debian 12 (systemd as PID 1, its own network
    namespace): the unit becomes active only through READY=1 and stays up on WATCHDOG=1."""
    if shutil.which("systemd-nspawn") is None or not (NSPAWN_ROOT / "lib/systemd/systemd").exists():
        pytest.skip(f"no systemd-nspawn or no Debian tree at {NSPAWN_ROOT}: run `hack/multinode.sh nspawn-rootfs`")
    repo = Path(__file__).resolve().parents[2]
    binds = [f"--bind-ro={path}" for path in dict.fromkeys([str(sys.prefix), str(_interpreter_home()), str(repo)])]
    nspawn = subprocess.Popen(["systemd-nspawn", "--register=no", "--keep-unit", "--ephemeral", "--boot",
                               "--private-network", "--console=passive", "-D", str(NSPAWN_ROOT), *binds],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        pid1 = wait_for(lambda: _container_pid1(nspawn), 30, "the container's init")
        inside = ["nsenter", "-t", str(pid1), "-m", "-u", "-i", "-n", "-p", "--"]

        def system_state() -> str:
            result = subprocess.run([*inside, "systemctl", "is-system-running"], capture_output=True, text=True)
            return result.stdout.strip() if result.stdout.strip() in ("running", "degraded") else ""
        wait_for(system_state, 120, "systemd in the container to finish booting", 0.5)
        install = subprocess.run([*inside, str(Path(sys.prefix) / "bin/shipmate"), "install", "server"],
                                 capture_output=True, text=True, timeout=120)

        def journal() -> str:
            return subprocess.run([*inside, "journalctl", "-u", "shipmate-server", "--no-pager", "-n", "40"],
                                  capture_output=True, text=True).stdout
        assert install.returncode == 0, install.stderr + journal()

        def show() -> dict[str, str]:
            out = subprocess.run([*inside, "systemctl", "show", "shipmate-server", "-p", "ActiveState", "-p",
                                  "StatusText", "-p", "Type", "-p", "WatchdogTimestampMonotonic", "-p", "NRestarts"],
                                 capture_output=True, text=True).stdout
            return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        state = show()
        assert state["Type"] == "notify"
        assert state["ActiveState"] == "active", (state, journal())   # a notify unit is active after READY=1
        assert state["StatusText"] == "serving on 0.0.0.0:6443"
        readyz = subprocess.run([*inside, sys.executable, "-c", "import ssl, urllib.request; print(urllib.request.urlopen("
                                 "'https://127.0.0.1:6443/readyz', timeout=5, "
                                 "context=ssl._create_unverified_context()).read().decode())"],
                                capture_output=True, text=True)
        assert readyz.stdout.strip() == "ok", readyz.stderr
        # WatchdogSec=30: a keep-alive every 15 s moves systemd's watchdog timestamp.
        first_beat = state["WatchdogTimestampMonotonic"]
        wait_for(lambda: show()["WatchdogTimestampMonotonic"] != first_beat, 40, "a WATCHDOG=1 seen by systemd", 1.0)
        assert show()["NRestarts"] == "0", journal()
    finally:
        nspawn.terminate()          # nspawn asks the container's systemd to power off
        try:
            nspawn.wait(60)
        except subprocess.TimeoutExpired:
            nspawn.kill()
            nspawn.wait()
