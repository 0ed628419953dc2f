"""The real path: containerd's CRI runs the installed shipmate-cni (and loopback) for a sandbox.

Uses the node's CNI config as installed (the agent writes it with the node's podCIDR); when none is
installed yet, installs one for the test podCIDR 10.244.0.0/24. The plugin forwards to the agent's
CNIService when one runs on this host, otherwise works in-process: either way the pod must get an
address from the podCIDR, answer on it from the node, and release it when removed.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from cri.client import CRIClient
from cri.errors import CRIError
from cri.gen import api_pb2
from netns.cni_spec import host_veth_name
from netns.install import CONFLIST_NAME, install_cni

pytestmark = pytest.mark.integration

CONF_DIR, BIN_DIR = Path("/etc/cni/net.d"), Path("/opt/cni/bin")
BUSYBOX = "127.0.0.1:5000/library/busybox:latest"
TEST_POD_CIDR = "10.244.0.0/24"


def installed_network() -> dict:
    conflist = CONF_DIR / CONFLIST_NAME
    if not conflist.exists() or not all((BIN_DIR / name).exists() for name in ("shipmate-cni", "loopback")):
        install_cni(TEST_POD_CIDR, str(BIN_DIR), str(CONF_DIR))
    return json.loads(conflist.read_text())["plugins"][0]


async def wait_for_http(ip: str, timeout: float = 15.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        done = await asyncio.to_thread(subprocess.run, ["curl", "-s", "--max-time", "2", f"http://{ip}:8080/"],
                                       capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout
        if loop.time() > deadline:
            raise AssertionError(f"curl {ip}:8080 failed: rc={done.returncode} {done.stderr}")
        await asyncio.sleep(0.2)


async def test_sandbox_gets_a_pod_ip_that_answers_and_is_released(containerd_socket: str, local_registry: str):
    network = installed_network()
    subnet = ipaddress.IPv4Network(network["subnet"])
    ipam = Path(network["ipamDataDir"], "shipmate")
    uid = str(uuid.uuid4())
    name = f"cni-test-{uid[:8]}"
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="shipmate-cni-test", uid=uid),
        labels={"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "shipmate-cni-test",
                "io.kubernetes.pod.uid": uid},
    )
    async with CRIClient(f"unix://{containerd_socket}", timeout=60.0) as cri:
        image_ref = await cri.pull_image(BUSYBOX)
        sandbox_id = ""
        try:
            sandbox_id = await cri.run_pod_sandbox(config)
            status = (await cri.pod_sandbox_status(sandbox_id)).status
            pod_ip = ipaddress.IPv4Address(status.network.ip)
            assert pod_ip in subnet and pod_ip != next(subnet.hosts())
            assert (ipam / str(pod_ip)).read_text().splitlines() == [sandbox_id, "eth0"]
            assert Path("/sys/class/net", host_veth_name(sandbox_id, "eth0")).exists()

            # a container of the pod shares the sandbox's netns: it serves on the pod IP
            www = Path(f"/tmp/{name}-www")
            www.mkdir()
            (www / "index.html").write_text(name)
            container = api_pb2.ContainerConfig(
                metadata=api_pb2.ContainerMetadata(name="web"),
                image=api_pb2.ImageSpec(image=image_ref),
                command=["httpd", "-f", "-p", "8080", "-h", "/www"],
                mounts=[api_pb2.Mount(container_path="/www", host_path=str(www), readonly=True)],
                labels={**config.labels, "io.kubernetes.container.name": "web"},
            )
            container_id = await cri.create_container(sandbox_id, container, config)
            await cri.start_container(container_id)
            assert await wait_for_http(str(pod_ip)) == name  # `curl <podIP>:8080` from the node

            await cri.stop_pod_sandbox(sandbox_id)  # containerd runs CNI DEL here
            assert not (ipam / str(pod_ip)).exists()
            assert not Path("/sys/class/net", host_veth_name(sandbox_id, "eth0")).exists()
            await cri.remove_pod_sandbox(sandbox_id)
            sandbox_id = ""
        finally:
            if sandbox_id:
                with contextlib.suppress(CRIError):
                    await cri.stop_pod_sandbox(sandbox_id)
                with contextlib.suppress(CRIError):
                    await cri.remove_pod_sandbox(sandbox_id)
            subprocess.run(["rm", "-rf", f"/tmp/{name}-www"], check=False)
