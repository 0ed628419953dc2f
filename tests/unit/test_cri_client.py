"""CRIClient and ContainerdEvents against in-process grpc.aio fakes on a temporary unix socket."""
from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2, timestamp_pb2

from cri.client import CRIClient, runtime_conditions
from cri.errors import CRIError, NotFound, RuntimeUnavailable
from cri.events import ContainerdEvents
from cri.gen import api_pb2, api_pb2_grpc, events_pb2, events_pb2_grpc, task_events_pb2


def labels_match(labels, selector) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


class FakeRuntime(api_pb2_grpc.RuntimeServiceServicer, api_pb2_grpc.ImageServiceServicer):
    """Keeps sandboxes, containers and images in dicts, with containerd's error shapes."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.sandboxes: dict[str, api_pb2.PodSandbox] = {}
        self.containers: dict[str, api_pb2.ContainerStatus] = {}
        self.container_sandbox: dict[str, str] = {}
        self.images: dict[str, api_pb2.Image] = {}
        self.deadlines: dict[str, float | None] = {}

    def note_deadline(self, method: str, context: grpc.aio.ServicerContext) -> None:
        self.deadlines[method] = context.time_remaining()

    async def Version(self, request, context):
        return api_pb2.VersionResponse(version=request.version, runtime_name="fake", runtime_version="1.6.20",
                                       runtime_api_version="v1")

    async def Status(self, request, context):
        return api_pb2.StatusResponse(status=api_pb2.RuntimeStatus(conditions=[
            api_pb2.RuntimeCondition(type="RuntimeReady", status=True),
            api_pb2.RuntimeCondition(type="NetworkReady", status=False, reason="NetworkPluginNotReady",
                                     message="cni config uninitialized"),
        ]))

    async def RunPodSandbox(self, request, context):
        self.note_deadline("RunPodSandbox", context)
        sandbox_id = f"sandbox-{next(self.ids)}"
        self.sandboxes[sandbox_id] = api_pb2.PodSandbox(
            id=sandbox_id, metadata=request.config.metadata, state=api_pb2.SANDBOX_READY, created_at=1,
            labels=request.config.labels, annotations=request.config.annotations,
            runtime_handler=request.runtime_handler)
        return api_pb2.RunPodSandboxResponse(pod_sandbox_id=sandbox_id)

    async def StopPodSandbox(self, request, context):
        if request.pod_sandbox_id in self.sandboxes:
            self.sandboxes[request.pod_sandbox_id].state = api_pb2.SANDBOX_NOTREADY
        return api_pb2.StopPodSandboxResponse()

    async def RemovePodSandbox(self, request, context):
        self.sandboxes.pop(request.pod_sandbox_id, None)
        return api_pb2.RemovePodSandboxResponse()

    async def PodSandboxStatus(self, request, context):
        sandbox = self.sandboxes.get(request.pod_sandbox_id)
        if sandbox is None:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f'an error occurred when try to find sandbox "{request.pod_sandbox_id}": not found')
        return api_pb2.PodSandboxStatusResponse(status=api_pb2.PodSandboxStatus(
            id=sandbox.id, metadata=sandbox.metadata, state=sandbox.state, created_at=sandbox.created_at,
            network=api_pb2.PodSandboxNetworkStatus(ip="10.244.0.5", additional_ips=[api_pb2.PodIP(ip="fd00::5")]),
            labels=sandbox.labels))

    async def ListPodSandbox(self, request, context):
        return api_pb2.ListPodSandboxResponse(items=[
            sandbox for sandbox in self.sandboxes.values()
            if labels_match(sandbox.labels, request.filter.label_selector)])

    async def CreateContainer(self, request, context):
        if request.pod_sandbox_id not in self.sandboxes:
            await context.abort(grpc.StatusCode.NOT_FOUND, f'failed to find sandbox "{request.pod_sandbox_id}": not found')
        container_id = f"container-{next(self.ids)}"
        self.containers[container_id] = api_pb2.ContainerStatus(
            id=container_id, metadata=request.config.metadata, state=api_pb2.CONTAINER_CREATED, created_at=2,
            image=request.config.image, image_ref="sha256:b1", labels=request.config.labels,
            log_path=request.config.log_path)
        self.container_sandbox[container_id] = request.pod_sandbox_id
        return api_pb2.CreateContainerResponse(container_id=container_id)

    async def StartContainer(self, request, context):
        status = self.containers[request.container_id]
        status.state, status.started_at = api_pb2.CONTAINER_RUNNING, 3
        return api_pb2.StartContainerResponse()

    async def StopContainer(self, request, context):
        self.note_deadline("StopContainer", context)
        status = self.containers[request.container_id]
        status.state, status.finished_at, status.exit_code, status.reason = api_pb2.CONTAINER_EXITED, 4, 137, "Error"
        return api_pb2.StopContainerResponse()

    async def RemoveContainer(self, request, context):
        self.containers.pop(request.container_id, None)
        return api_pb2.RemoveContainerResponse()

    async def ListContainers(self, request, context):
        return api_pb2.ListContainersResponse(containers=[
            api_pb2.Container(id=status.id, pod_sandbox_id=self.container_sandbox[status.id],
                              metadata=status.metadata, state=status.state, labels=status.labels)
            for status in self.containers.values() if labels_match(status.labels, request.filter.label_selector)])

    async def ContainerStatus(self, request, context):
        status = self.containers.get(request.container_id)
        if status is None:
            # containerd sometimes loses the NotFound type and only says so in the text
            await context.abort(grpc.StatusCode.UNKNOWN, f'container "{request.container_id}" does not exist')
        return api_pb2.ContainerStatusResponse(status=status)

    async def ExecSync(self, request, context):
        self.note_deadline("ExecSync", context)
        if request.cmd[:1] == ["sleep"]:
            await asyncio.sleep(float(request.cmd[1]))
        return api_pb2.ExecSyncResponse(stdout=" ".join(request.cmd[1:]).encode() + b"\n", exit_code=0)

    async def PullImage(self, request, context):
        self.note_deadline("PullImage", context)
        image_id = "sha256:" + "b1" * 32
        self.images[request.image.image] = api_pb2.Image(id=image_id, repo_tags=[request.image.image], size=100)
        return api_pb2.PullImageResponse(image_ref=image_id)

    async def ImageStatus(self, request, context):
        image = self.images.get(request.image.image)
        return api_pb2.ImageStatusResponse(image=image)

    async def ListImages(self, request, context):
        return api_pb2.ListImagesResponse(images=list(self.images.values()))

    async def RemoveImage(self, request, context):
        self.images.pop(request.image.image, None)
        return api_pb2.RemoveImageResponse()


class FakeEvents(events_pb2_grpc.EventsServicer):
    """Streams the queued envelopes, then ends the stream as containerd does when it stops."""

    def __init__(self) -> None:
        self.requests: list[events_pb2.SubscribeRequest] = []
        self.envelopes: list[events_pb2.Envelope] = []

    async def Subscribe(self, request, context):
        self.requests.append(request)
        for envelope in self.envelopes:
            yield envelope


@pytest.fixture
def socket_dir() -> AsyncIterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cri-test-"))  # short: unix socket paths are limited to 107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def fake(socket_dir: Path) -> AsyncIterator[tuple[str, FakeRuntime, FakeEvents]]:
    runtime, events = FakeRuntime(), FakeEvents()
    server = grpc.aio.server()
    api_pb2_grpc.add_RuntimeServiceServicer_to_server(runtime, server)
    api_pb2_grpc.add_ImageServiceServicer_to_server(runtime, server)
    events_pb2_grpc.add_EventsServicer_to_server(events, server)
    endpoint = f"unix://{socket_dir}/containerd.sock"
    server.add_insecure_port(endpoint)
    await server.start()
    yield endpoint, runtime, events
    await server.stop(grace=None)


def pod_config(name: str) -> api_pb2.PodSandboxConfig:
    labels = {"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "default",
              "io.kubernetes.pod.uid": f"uid-{name}"}
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}"),
        hostname=name, labels=labels, log_directory=f"/var/log/pods/default_{name}_uid-{name}")


async def test_contract_round_trip(fake) -> None:
    endpoint, runtime, _ = fake
    async with CRIClient(endpoint, timeout=5.0, pull_timeout=60.0) as client:
        version = await client.version()
        assert (version.runtime_name, version.runtime_api_version, version.version) == ("fake", "v1", "0.1.0")
        conditions = runtime_conditions(await client.status())
        assert conditions["RuntimeReady"].status and not conditions["NetworkReady"].status
        assert conditions["NetworkReady"].reason == "NetworkPluginNotReady"

        image = "127.0.0.1:5000/library/busybox:latest"
        assert await client.image_status(image) is None
        image_ref = await client.pull_image(image)
        assert image_ref.startswith("sha256:")
        assert (await client.image_status(image)).id == image_ref
        assert [i.repo_tags[0] for i in await client.list_images()] == [image]
        assert runtime.deadlines["PullImage"] == pytest.approx(60, abs=2)  # pull_timeout, not timeout

        config = pod_config("web")
        sandbox_id = await client.run_pod_sandbox(config)
        assert runtime.deadlines["RunPodSandbox"] == pytest.approx(60, abs=2)
        status = await client.pod_sandbox_status(sandbox_id)
        assert status.status.state == api_pb2.SANDBOX_READY and status.status.network.ip == "10.244.0.5"
        assert [ip.ip for ip in status.status.network.additional_ips] == ["fd00::5"]
        selector = api_pb2.PodSandboxFilter(label_selector={"io.kubernetes.pod.uid": "uid-web"})
        assert [s.id for s in await client.list_pod_sandbox(selector)] == [sandbox_id]
        assert await client.list_pod_sandbox(api_pb2.PodSandboxFilter(label_selector={"x": "y"})) == []

        container_config = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="main"), image=api_pb2.ImageSpec(image=image_ref),
            command=["sleep", "3600"], labels={"io.kubernetes.container.name": "main"}, log_path="main/0.log")
        container_id = await client.create_container(sandbox_id, container_config, config)
        await client.start_container(container_id)
        running = await client.container_status(container_id)
        assert running.status.state == api_pb2.CONTAINER_RUNNING and running.status.log_path == "main/0.log"
        listed = await client.list_containers(api_pb2.ContainerFilter(
            label_selector={"io.kubernetes.container.name": "main"}))
        assert [(c.id, c.pod_sandbox_id) for c in listed] == [(container_id, sandbox_id)]

        result = await client.exec_sync(container_id, ["echo", "hi"], timeout=3)
        assert (result.stdout, result.exit_code) == (b"hi\n", 0)
        assert runtime.deadlines["ExecSync"] == pytest.approx(8, abs=0.5)  # timeout + the command's own

        await client.stop_container(container_id, timeout=30)
        assert runtime.deadlines["StopContainer"] == pytest.approx(35, abs=0.5)
        exited = (await client.container_status(container_id)).status
        assert (exited.state, exited.exit_code, exited.reason) == (api_pb2.CONTAINER_EXITED, 137, "Error")
        await client.remove_container(container_id)
        await client.stop_pod_sandbox(sandbox_id)
        await client.remove_pod_sandbox(sandbox_id)
        await client.remove_image(image)
        assert await client.image_status(image) is None


async def test_not_found_mapping(fake) -> None:
    endpoint, _, _ = fake
    async with CRIClient(endpoint) as client:
        with pytest.raises(NotFound) as sandbox_error:
            await client.pod_sandbox_status("nope")
        assert sandbox_error.value.code is grpc.StatusCode.NOT_FOUND
        with pytest.raises(NotFound) as container_error:
            await client.container_status("nope")
        assert container_error.value.code is grpc.StatusCode.UNKNOWN
        assert "does not exist" in container_error.value.message


async def test_deadline(fake) -> None:
    endpoint, _, _ = fake
    async with CRIClient(endpoint, timeout=0.2) as client:
        with pytest.raises(CRIError) as error:
            await client.exec_sync("any", ["sleep", "2"], timeout=0)
        assert error.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
        assert not isinstance(error.value, RuntimeUnavailable)


async def test_missing_socket_is_runtime_unavailable(socket_dir: Path) -> None:
    endpoint = f"unix://{socket_dir}/absent.sock"
    async with CRIClient(endpoint, timeout=2.0) as client:
        with pytest.raises(RuntimeUnavailable) as error:
            await client.version()
    assert endpoint in error.value.message and "does not exist" in error.value.message


async def test_refused_socket_is_runtime_unavailable(socket_dir: Path) -> None:
    import socket

    path = socket_dir / "dead.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.close()  # the file stays, nobody listens: connection refused
    async with CRIClient(f"unix://{path}", timeout=2.0) as client:
        with pytest.raises(RuntimeUnavailable) as error:
            await client.status()
    assert f"socket {path} exists" in error.value.message


async def test_events_stream_decodes_and_reports_end(fake) -> None:
    endpoint, _, events = fake
    stamp = timestamp_pb2.Timestamp(seconds=1_800_000_000)
    for topic, message in [("/tasks/start", task_events_pb2.TaskStart(container_id="c1", pid=7)),
                           ("/tasks/exit", task_events_pb2.TaskExit(container_id="c1", id="c1", pid=7,
                                                                    exit_status=3, exited_at=stamp))]:
        payload = any_pb2.Any(type_url=message.DESCRIPTOR.full_name, value=message.SerializeToString())
        events.envelopes.append(events_pb2.Envelope(timestamp=stamp, namespace="k8s.io", topic=topic, event=payload))
    seen = []
    async with ContainerdEvents(endpoint, namespace="k8s.io") as subscriber:
        with pytest.raises(RuntimeUnavailable) as ended:
            async for event in subscriber.subscribe(("/tasks/",)):
                seen.append(event)
    assert [(e.topic, e.container_id, e.pid, e.exit_status) for e in seen] == [
        ("/tasks/start", "c1", 7, None), ("/tasks/exit", "c1", 7, 3)]
    assert "closed the event stream" in ended.value.message
    assert list(events.requests[0].filters) == ['namespace=="k8s.io",topic~="^/tasks/"']


async def test_events_missing_socket(socket_dir: Path) -> None:
    async with ContainerdEvents(f"unix://{socket_dir}/absent.sock") as subscriber:
        with pytest.raises(RuntimeUnavailable) as error:
            async for _ in subscriber.subscribe():
                pass
    assert "does not exist" in error.value.message


class IdleEvents(events_pb2_grpc.EventsServicer):
    async def Subscribe(self, request, context):
        await asyncio.sleep(3600)
        yield events_pb2.Envelope()


async def test_events_runtime_going_away_mid_stream(socket_dir: Path) -> None:
    server = grpc.aio.server()
    events_pb2_grpc.add_EventsServicer_to_server(IdleEvents(), server)
    endpoint = f"unix://{socket_dir}/containerd.sock"
    server.add_insecure_port(endpoint)
    await server.start()

    async def consume(subscriber: ContainerdEvents) -> None:
        async for _ in subscriber.subscribe():
            pass

    async with ContainerdEvents(endpoint) as subscriber:
        consumer = asyncio.create_task(consume(subscriber))
        await asyncio.sleep(0.2)
        await server.stop(grace=None)
        with pytest.raises(RuntimeUnavailable) as error:
            await asyncio.wait_for(consumer, 5)
    assert endpoint in error.value.message
