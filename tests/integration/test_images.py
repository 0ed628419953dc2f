"""The offline images: pause binary, reproducible OCI builds, the local registry, CRI runs them."""
from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from cri.client import CRIClient
from cri.gen import api_pb2
from shipmate import containerd_config
from tests.integration.isolated_containerd import cri_plugin_state, isolated_containerd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
import build_images  # noqa: E402  (hack/ is scripts, not a package)

needs_toolchain = pytest.mark.skipif(
    not (shutil.which("gcc") and build_images.BUSYBOX.exists()),
    reason="needs gcc and busybox-static (make up installs them)")

@pytest.fixture(scope="module")
def pause_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_images.build_pause_binary(output=tmp_path_factory.mktemp("pause") / "pause")


def wait_exit(process: subprocess.Popen, timeout: float = 5) -> int:
    return process.wait(timeout=timeout)


@needs_toolchain
@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT])
def test_pause_exits_zero_on_sigterm_and_sigint(pause_binary: Path, signo: int) -> None:
    process = subprocess.Popen([str(pause_binary)], stderr=subprocess.DEVNULL)
    time.sleep(0.2)
    assert process.poll() is None, "pause must sleep until signalled"
    process.send_signal(signo)
    assert wait_exit(process) == 0


@needs_toolchain
def test_pause_reaps_children(pause_binary: Path) -> None:
    # sh forks a short-lived child, then becomes pause: the child's exit must not leave a zombie.
    process = subprocess.Popen(["/bin/sh", "-c", f"sleep 0.2 & echo $!; exec {pause_binary}"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        child = int(process.stdout.readline())
        deadline = time.monotonic() + 5
        while True:
            try:
                state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                break  # reaped
            assert time.monotonic() < deadline, f"child {child} still present in state {state}"
            time.sleep(0.05)
    finally:
        process.terminate()
    assert wait_exit(process) == 0


def program_header_types(elf: bytes) -> list[int]:
    assert elf[:4] == b"\x7fELF" and elf[4] == 2, "expected a 64-bit ELF"
    phoff = int.from_bytes(elf[32:40], "little")
    phentsize, phnum = int.from_bytes(elf[54:56], "little"), int.from_bytes(elf[56:58], "little")
    return [int.from_bytes(elf[phoff + i * phentsize:][:4], "little") for i in range(phnum)]


@needs_toolchain
def test_pause_binary_is_static(pause_binary: Path) -> None:
    pt_interp, pt_dynamic = 3, 2
    types = program_header_types(pause_binary.read_bytes())
    assert pt_interp not in types and pt_dynamic not in types


@needs_toolchain
def test_builds_are_reproducible(tmp_path: Path) -> None:
    first = build_images.build_default_images(tmp_path / "a")
    second = build_images.build_default_images(tmp_path / "b")
    assert [image.manifest_digest for image in first] == [image.manifest_digest for image in second]
    assert [image.name for image in first] == [build_images.PAUSE_IMAGE, build_images.BUSYBOX_IMAGE,
                                               build_images.CLUSTER_DNS_IMAGE]


def test_cluster_dns_image_holds_what_the_dns_pod_imports() -> None:
    """The repo's modules the server imports, one by one, and the third-party packages they come from, whole;
    not the rest of the repo nor the agent's host-side dependencies."""
    paths = {entry.path for entry in build_images.module_files(build_images.CLUSTER_DNS_MODULE)}
    lib = build_images.MODULES_DIR
    for needed in ("agent/cluster_dns/pod.py", "agent/cluster_dns/zone.py", "agent/proxy/sources.py",
                   "shipmate/kubeclient.py", "aiohttp/__init__.py", "yaml/__init__.py", "multidict/__init__.py"):
        assert f"{lib}/{needed}" in paths, needed
    assert not any(path.startswith((f"{lib}/apiserver/", f"{lib}/pyroute2/", f"{lib}/agent/kubelet"))
                   for path in paths)


@needs_toolchain
def test_busybox_layer_contents(tmp_path: Path) -> None:
    busybox = build_images.build_default_images(tmp_path)[1]
    blobs = sorted((busybox.layout_dir / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    with tarfile.open(blobs[-1], "r:gz") as layer:
        members = {member.name: member for member in layer.getmembers()}
        assert all(member.mtime == 0 and member.uid == 0 and member.gid == 0 for member in members.values())
        assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
        assert members["bin/wget"].issym()
        assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
        passwd = layer.extractfile("etc/passwd").read().decode()
        group = layer.extractfile("etc/group").read().decode()
    assert [line.split(":")[0] for line in passwd.splitlines()] == ["root", "nobody"]
    assert [line.split(":")[0] for line in group.splitlines()] == ["root", "nobody"]


def test_layer_rejects_bad_entries() -> None:
    with pytest.raises(ValueError, match="absolute"):
        build_images.file("etc/passwd", "")
    with pytest.raises(ValueError, match="duplicate"):
        build_images.layer_tar([build_images.file("/a", "1"), build_images.file("/a", "2")])
    with pytest.raises(ValueError, match="hardlink"):
        build_images.layer_tar([build_images.Entry("/b", "hardlink", target="/missing")])


@pytest.mark.integration
@needs_toolchain
def test_registry_holds_the_current_build(local_registry: str, tmp_path: Path) -> None:
    for image in build_images.build_default_images(tmp_path):
        assert build_images.registry_digest(local_registry, image) == image.manifest_digest, image.name
        assert build_images.push_image(image, local_registry) is False, "a rebuild must not push again"


async def run_to_completion(client: CRIClient, image: str, command: list[str], log_dir: Path) -> tuple[int, str]:
    """Run `image` (with `command`, or its own entrypoint when empty) in a host-network sandbox."""
    name = f"shipmate-images-{uuid.uuid4().hex[:8]}"
    sandbox_config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="shipmate-tests", uid=name),
        log_directory=str(log_dir),
        linux=api_pb2.LinuxPodSandboxConfig(security_context=api_pb2.LinuxSandboxSecurityContext(
            namespace_options=api_pb2.NamespaceOption(network=api_pb2.NODE))))
    sandbox = await client.run_pod_sandbox(sandbox_config)
    try:
        await client.pull_image(image)
        container = await client.create_container(sandbox, api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="main"), image=api_pb2.ImageSpec(image=image),
            command=command, log_path="main.log"), sandbox_config)
        await client.start_container(container)
        for _ in range(200):
            status = (await client.container_status(container)).status
            if status.state == api_pb2.CONTAINER_EXITED:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"container of {image} did not exit")
        # CRI log lines: "<time> <stream> <P|F> <text>"
        text = "\n".join(line.split(" ", 3)[3] for line in (log_dir / "main.log").read_text().splitlines())
        return status.exit_code, text
    finally:
        await client.stop_pod_sandbox(sandbox)
        await client.remove_pod_sandbox(sandbox)


@pytest.mark.integration
async def test_busybox_runs_on_pause_sandbox_through_cri(containerd_socket: str, local_registry: str,
                                                          tmp_path: Path) -> None:
    async with CRIClient(f"unix://{containerd_socket}") as client:
        code, output = await run_to_completion(
            client, f"{local_registry}/library/busybox:latest",
            ["sh", "-c", "id -un; grep -c . /etc/passwd; stat -c %a /tmp; echo PATH=$PATH"], tmp_path)
    assert code == 0, output
    assert output.splitlines() == ["root", "2", "1777", f"PATH={build_images.DEFAULT_PATH}"]


@pytest.mark.integration
@needs_toolchain
async def test_built_image_config_is_honoured(containerd_socket: str, local_registry: str, tmp_path: Path) -> None:
    image = build_images.build_image(
        "shipmate/test-entrypoint:1",
        build_images.base_files() + [build_images.file("/etc/motd", "hello from the layer\n")],
        build_images.ImageConfig(entrypoint=["/bin/sh", "-c"], cmd=["cat /etc/motd; echo in $PWD"],
                                 working_dir="/tmp"),
        tmp_path / "oci")
    build_images.push_image(image, local_registry)
    async with CRIClient(f"unix://{containerd_socket}") as client:
        code, output = await run_to_completion(client, f"{local_registry}/{image.name}", [], tmp_path)
    assert (code, output.splitlines()) == (0, ["hello from the layer", "in /tmp"])


@pytest.mark.integration
async def test_cluster_dns_image_runs_the_dns_server_module(containerd_socket: str, local_registry: str,
                                                            tmp_path: Path) -> None:
    """Debian's Python in the image imports the server and everything it needs (here it stops at --help)."""
    async with CRIClient(f"unix://{containerd_socket}") as client:
        code, output = await run_to_completion(
            client, f"{local_registry}/{build_images.CLUSTER_DNS_IMAGE}",
            ["python3", "-m", build_images.CLUSTER_DNS_MODULE, "--help"], tmp_path)
    assert code == 0, output
    assert "--domain" in output and "--resolv-conf" in output


@pytest.mark.integration
async def test_docker_io_mirror_resolves_to_local_registry(containerd_socket: str, local_registry: str,
                                                           tmp_path: Path) -> None:
    """A containerd of the test's own, configured as make up configures the host's when the user has no
    registries.yaml: `image: busybox` is docker.io/library/busybox:latest, served by the mirror. The host's
    containerd and the user's /etc/shipmate/registries.yaml are not involved."""
    registries = containerd_config.load_registries(tmp_path / "absent.yaml", f"http://{local_registry}")
    with isolated_containerd(tmp_path, registries) as socket:
        assert cri_plugin_state(socket) == "ok", (tmp_path / "containerd.log").read_text()[-3000:]
        async with CRIClient(f"unix://{socket}") as client:
            image_ref = await client.pull_image("busybox")
            status = await client.image_status("docker.io/library/busybox:latest")
    async with CRIClient(f"unix://{containerd_socket}") as host:
        await host.pull_image(f"{local_registry}/library/busybox:latest")
        local = await host.image_status(f"{local_registry}/library/busybox:latest")
    assert status is not None and local is not None and image_ref == status.id == local.id
