"""CRIClient and ContainerdEvents against the host's containerd (root, real runc).

Sandboxes use the node's network namespace (a hostNetwork pod), so no CNI
config is needed. Every run uses unique names and removes what it created.
"""
from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from cri.client import CRIClient, runtime_conditions
from cri.errors import CRIError, NotFound
from cri.events import ContainerdEvent, ContainerdEvents
from cri.gen import api_pb2

BUSYBOX = "127.0.0.1:5000/library/busybox:latest"  # make images pushes it to the local registry

pytestmark = pytest.mark.integration  # skipped (failed under make test/CI) without containerd: tests/conftest.py

HOST_NETWORK = api_pb2.NamespaceOption(network=api_pb2.NODE, pid=api_pb2.CONTAINER, ipc=api_pb2.POD)


class Pod:
    """One sandbox with kubelet-style metadata and labels, and the containers made in it."""

    def __init__(self, client: CRIClient, log_root: Path) -> None:
        self.client = client
        self.uid = str(uuid.uuid4())
        self.name = f"cri-test-{self.uid[:8]}"
        self.log_directory = log_root / f"shipmate-test_{self.name}_{self.uid}"
        self.config = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=self.name, namespace="shipmate-test", uid=self.uid),
            log_directory=str(self.log_directory),
            labels={"io.kubernetes.pod.name": self.name, "io.kubernetes.pod.namespace": "shipmate-test",
                    "io.kubernetes.pod.uid": self.uid},
            annotations={"kubernetes.io/config.source": "shipmate-test"},
            linux=api_pb2.LinuxPodSandboxConfig(
                security_context=api_pb2.LinuxSandboxSecurityContext(namespace_options=HOST_NETWORK)),
        )
        self.sandbox_id = ""
        self.container_ids: list[str] = []

    async def run(self) -> str:
        self.log_directory.mkdir(parents=True)
        self.sandbox_id = await self.client.run_pod_sandbox(self.config)
        return self.sandbox_id

    async def create(self, name: str, command: list[str], image_ref: str) -> str:
        (self.log_directory / name).mkdir()
        config = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=name, attempt=0),
            image=api_pb2.ImageSpec(image=image_ref, user_specified_image=BUSYBOX),
            command=command,
            labels={**self.config.labels, "io.kubernetes.container.name": name},
            log_path=f"{name}/0.log",
            linux=api_pb2.LinuxContainerConfig(
                security_context=api_pb2.LinuxContainerSecurityContext(namespace_options=HOST_NETWORK)),
        )
        container_id = await self.client.create_container(self.sandbox_id, config, self.config)
        self.container_ids.append(container_id)
        return container_id

    async def remove(self) -> None:
        """Best effort: remove what the test left behind, whatever state it is in."""
        for container_id in self.container_ids:
            with contextlib.suppress(CRIError):
                await self.client.remove_container(container_id)  # forcibly, if still running
        if self.sandbox_id:
            with contextlib.suppress(CRIError):
                await self.client.stop_pod_sandbox(self.sandbox_id)
            with contextlib.suppress(CRIError):
                await self.client.remove_pod_sandbox(self.sandbox_id)


@pytest.fixture
async def client(containerd_socket: str) -> AsyncIterator[CRIClient]:
    async with CRIClient(f"unix://{containerd_socket}", timeout=30.0) as cri:
        yield cri


@pytest.fixture
def events_endpoint(containerd_socket: str) -> str:
    return f"unix://{containerd_socket}"


@pytest.fixture
async def pod(client: CRIClient) -> AsyncIterator[Pod]:
    log_root = Path(tempfile.mkdtemp(prefix="shipmate-cri-logs-"))
    created = Pod(client, log_root)
    try:
        yield created
    finally:
        await created.remove()
        shutil.rmtree(log_root, ignore_errors=True)


async def test_version_and_status(client: CRIClient) -> None:
    version = await client.version()
    assert version.runtime_name == "containerd" and version.runtime_api_version == "v1"
    conditions = runtime_conditions(await client.status())
    assert conditions["RuntimeReady"].status, conditions["RuntimeReady"]
    assert "NetworkReady" in conditions


async def test_pod_lifecycle(client: CRIClient, pod: Pod, local_registry: str) -> None:
    image_ref = await client.pull_image(BUSYBOX)
    image = await client.image_status(BUSYBOX)
    assert image is not None and image.id == image_ref

    sandbox_id = await pod.run()
    sandbox = (await client.pod_sandbox_status(sandbox_id)).status
    assert sandbox.state == api_pb2.SANDBOX_READY
    assert sandbox.metadata.uid == pod.uid and sandbox.labels["io.kubernetes.pod.uid"] == pod.uid
    by_uid = api_pb2.PodSandboxFilter(label_selector={"io.kubernetes.pod.uid": pod.uid})
    assert [s.id for s in await client.list_pod_sandbox(by_uid)] == [sandbox_id]

    container_id = await pod.create("main", ["sleep", "3600"], image_ref)
    await client.start_container(container_id)
    by_name = api_pb2.ContainerFilter(label_selector={"io.kubernetes.pod.uid": pod.uid,
                                                     "io.kubernetes.container.name": "main"})
    listed = await client.list_containers(by_name)
    assert [(c.id, c.pod_sandbox_id, c.state) for c in listed] == [
        (container_id, sandbox_id, api_pb2.CONTAINER_RUNNING)]
    status = (await client.container_status(container_id)).status
    assert status.state == api_pb2.CONTAINER_RUNNING and status.started_at > 0
    assert status.image_ref and status.log_path == str(pod.log_directory / "main/0.log")

    result = await client.exec_sync(container_id, ["echo", "hi"], timeout=5)
    assert (result.exit_code, result.stdout, result.stderr) == (0, b"hi\n", b"")

    await client.stop_container(container_id, timeout=0)
    stopped = (await client.container_status(container_id)).status
    assert stopped.state == api_pb2.CONTAINER_EXITED and stopped.finished_at >= stopped.started_at
    assert stopped.exit_code == 137

    await client.remove_container(container_id)
    with pytest.raises(NotFound):
        await client.container_status(container_id)
    await client.stop_pod_sandbox(sandbox_id)
    await client.remove_pod_sandbox(sandbox_id)
    with pytest.raises(NotFound):
        await client.pod_sandbox_status(sandbox_id)


async def wait_for(events: list[tuple[float, ContainerdEvent]], arrived: asyncio.Event,
                   match: Callable[[ContainerdEvent], bool], timeout: float) -> tuple[float, ContainerdEvent]:
    deadline = time.monotonic() + timeout
    while True:
        for received_at, event in events:
            if match(event):
                return received_at, event
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no matching event within {timeout}s; saw {[e for _, e in events]}")
        arrived.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(arrived.wait(), remaining)


async def settled_status(client: CRIClient, container_id: str, timeout: float) -> api_pb2.ContainerStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = (await client.container_status(container_id)).status
        if status.state == api_pb2.CONTAINER_EXITED or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.01)


async def test_task_events(client: CRIClient, pod: Pod, local_registry: str, events_endpoint: str) -> None:
    image_ref = await client.pull_image(BUSYBOX)
    received: list[tuple[float, ContainerdEvent]] = []
    arrived = asyncio.Event()

    async def collect(subscriber: ContainerdEvents) -> None:
        async for event in subscriber.subscribe(("/tasks/",)):
            received.append((time.monotonic(), event))
            arrived.set()

    async with ContainerdEvents(events_endpoint, namespace="k8s.io") as subscriber:
        collector = asyncio.create_task(collect(subscriber))
        try:
            await asyncio.sleep(0.3)  # containerd does not acknowledge a subscription; let it register
            sandbox_id = await pod.run()
            # the sandbox's pause task proves the subscription is live
            await wait_for(received, arrived, lambda e: e.topic == "/tasks/start" and e.container_id == sandbox_id, 5)

            container_id = await pod.create("fail", ["sh", "-c", "echo out; exit 3"], image_ref)
            await client.start_container(container_id)
            started_returned = time.monotonic()
            _, start = await wait_for(
                received, arrived, lambda e: e.topic == "/tasks/start" and e.container_id == container_id, 1.0)
            assert start.pid > 0 and start.namespace == "k8s.io"
            exit_at, exit_event = await wait_for(
                received, arrived, lambda e: e.topic == "/tasks/exit" and e.container_id == container_id, 1.0)
            assert exit_event.exit_status == 3 and exit_event.init_process
            assert exit_event.pid == start.pid and exit_event.exited_at is not None
            assert exit_at - started_returned < 1.0

            # containerd's CRI records the exit from the same event stream, a moment after we see it
            status = await settled_status(client, container_id, timeout=1.0)
            assert (status.state, status.exit_code, status.reason) == (api_pb2.CONTAINER_EXITED, 3, "Error")
            assert "stdout F out" in (pod.log_directory / "fail/0.log").read_text()

            # an exec's exit is a TaskExit too, told apart by its exec id
            sleeper = await pod.create("sleeper", ["sleep", "3600"], image_ref)
            await client.start_container(sleeper)
            await client.exec_sync(sleeper, ["true"], timeout=5)
            _, exec_exit = await wait_for(
                received, arrived, lambda e: e.topic == "/tasks/exit" and e.container_id == sleeper, 1.0)
            assert not exec_exit.init_process and exec_exit.exit_status == 0
        finally:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector


async def test_pull_missing_image_is_not_found(client: CRIClient, local_registry: str) -> None:
    with pytest.raises(NotFound) as error:
        await client.pull_image(f"127.0.0.1:5000/library/does-not-exist-{uuid.uuid4().hex[:8]}:v0")
    assert error.value.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNKNOWN)
