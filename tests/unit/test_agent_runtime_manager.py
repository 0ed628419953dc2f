"""The runtime manager's effects against a fake CRI runtime and a fake event recorder: the calls it
makes (order, grace periods, hooks) and the events it posts, with kubelet's reasons and messages."""
from __future__ import annotations

import time
from typing import Any

import aiohttp

from cri.errors import NotFound
from cri.gen import api_pb2

from agent.dns import ResolvConf
from agent.image_manager import ImageManager
from agent.runtime_manager import RuntimeManager
from shipmate.kubeclient import NotFound as ApiNotFound

SECOND = 1_000_000_000


class FakeRuntime:
    """Just enough of CRIClient: keeps sandboxes and containers, records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.sandboxes: dict[str, api_pb2.PodSandboxStatus] = {}
        self.containers: dict[str, api_pb2.ContainerStatus] = {}
        self.exec_result = api_pb2.ExecSyncResponse(exit_code=0)
        self.configs: dict[str, api_pb2.ContainerConfig] = {}

    async def run_pod_sandbox(self, config: api_pb2.PodSandboxConfig) -> str:
        sandbox_id = f"sb{len(self.sandboxes)}"
        self.calls.append(("run_pod_sandbox", config.metadata.name))
        self.sandboxes[sandbox_id] = api_pb2.PodSandboxStatus(
            id=sandbox_id, metadata=config.metadata, state=api_pb2.SANDBOX_READY, labels=config.labels,
            network=api_pb2.PodSandboxNetworkStatus(ip="10.244.0.9"))
        return sandbox_id

    async def pod_sandbox_status(self, sandbox_id: str) -> api_pb2.PodSandboxStatusResponse:
        return api_pb2.PodSandboxStatusResponse(status=self.sandboxes[sandbox_id])

    async def create_container(self, sandbox_id: str, config: api_pb2.ContainerConfig,
                               sandbox: api_pb2.PodSandboxConfig) -> str:
        container_id = f"{config.metadata.name}-{config.metadata.attempt}"
        self.calls.append(("create_container", container_id))
        self.configs[container_id] = config
        self.containers[container_id] = api_pb2.ContainerStatus(
            id=container_id, metadata=config.metadata, state=api_pb2.CONTAINER_CREATED,
            labels=config.labels, annotations=config.annotations)
        return container_id

    async def start_container(self, container_id: str) -> None:
        self.calls.append(("start_container", container_id))
        self.containers[container_id].state = api_pb2.CONTAINER_RUNNING

    async def stop_container(self, container_id: str, timeout: int) -> None:
        self.calls.append(("stop_container", (container_id, timeout)))

    async def remove_container(self, container_id: str) -> None:
        self.calls.append(("remove_container", container_id))
        if self.containers.pop(container_id, None) is None:
            raise NotFound(5, "not found")

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("stop_pod_sandbox", sandbox_id))

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: int) -> api_pb2.ExecSyncResponse:
        self.calls.append(("exec_sync", (container_id, tuple(cmd), timeout)))
        return self.exec_result

    async def image_status(self, image: str) -> api_pb2.Image:
        return api_pb2.Image(id="sha256:abc", size=1234)


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: dict, event_type: str, reason: str, message: str, field_path: str = "") -> None:
        self.events.append((event_type, reason, message, field_path))


class FakeClient:
    async def get(self, resource: Any, name: str, namespace: str | None = None) -> dict:
        raise ApiNotFound(404, {"reason": "NotFound"})

    async def list(self, resource: Any, namespace: str | None = None) -> dict:
        return {"items": []}


def make_manager(tmp_path) -> tuple[RuntimeManager, FakeRuntime, FakeRecorder]:
    runtime, recorder = FakeRuntime(), FakeRecorder()
    manager = RuntimeManager(runtime, ImageManager(runtime), "node-a", "192.0.2.2", ResolvConf(),
                             log_root=str(tmp_path / "logs"), recorder=recorder, client=FakeClient(),
                             root_dir=str(tmp_path / "root"))
    return manager, runtime, recorder


def pod(**spec: Any) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [{"name": "app", "image": "img:1", "command": ["sleep", "9"]}], **spec}}


async def observe(manager: RuntimeManager, runtime: FakeRuntime):
    from agent.runtime_state import PodRuntimeStatus, container_from_status, newest_first, sandbox_from_status
    status = PodRuntimeStatus("u", [sandbox_from_status(s) for s in runtime.sandboxes.values()],
                              [container_from_status(c) for c in runtime.containers.values()])
    return newest_first(status)


async def test_a_new_pod_starts_only_its_first_init_container_with_kubelet_events(tmp_path) -> None:
    manager, runtime, recorder = make_manager(tmp_path)
    spec = pod(initContainers=[{"name": "i1", "image": "img:1"}, {"name": "i2", "image": "img:1"}])
    result = await manager.sync_pod(spec, await observe(manager, runtime))
    assert result.acted and result.waiting == {}
    assert [c for c in runtime.calls if c[0] != "run_pod_sandbox"] == [
        ("create_container", "i1-0"), ("start_container", "i1-0")]
    assert recorder.events == [
        ("Normal", "Pulled", 'Container image "img:1" already present on machine and can be accessed by the pod',
         "spec.initContainers{i1}"),
        ("Normal", "Created", "Created container: i1", "spec.initContainers{i1}"),
        ("Normal", "Started", "Started container i1", "spec.initContainers{i1}")]
    mounts = {m.container_path: m.host_path for m in runtime.configs["i1-0"].mounts}
    assert mounts["/etc/hosts"] == str(tmp_path / "root" / "pods" / "u" / "etc-hosts")
    assert "10.244.0.9\tp\n" in open(mounts["/etc/hosts"]).read()
    assert mounts["/dev/termination-log"].startswith(str(tmp_path / "root" / "pods" / "u" / "containers" / "i1"))


async def test_crash_loop_backoff_counts_from_the_exit(tmp_path) -> None:
    manager, runtime, recorder = make_manager(tmp_path)
    spec = pod()
    await manager.sync_pod(spec, await observe(manager, runtime))
    now = time.time()
    runtime.containers["app-0"].state = api_pb2.CONTAINER_EXITED
    runtime.containers["app-0"].finished_at = int(now * SECOND)
    runtime.containers["app-0"].exit_code = 1
    first = await manager.sync_pod(spec, await observe(manager, runtime))
    assert first.waiting == {} and "app-1" in runtime.containers         # the first restart is immediate
    runtime.containers["app-1"].state = api_pb2.CONTAINER_EXITED
    runtime.containers["app-1"].finished_at = int(now * SECOND)
    runtime.containers["app-1"].exit_code = 1
    second = await manager.sync_pod(spec, await observe(manager, runtime))
    waiting = second.waiting["app"]
    assert waiting.reason == "CrashLoopBackOff"
    assert waiting.message == "back-off 10s restarting failed container=app pod=p_ns(u)"
    assert 8 < second.retry_in <= 10
    assert recorder.events[-1] == ("Warning", "BackOff", "Back-off restarting failed container app in pod p_ns(u)",
                                   "spec.containers{app}")


async def test_kill_runs_pre_stop_then_stops_with_the_rest_of_the_grace_period(tmp_path) -> None:
    manager, runtime, recorder = make_manager(tmp_path)
    spec = pod(terminationGracePeriodSeconds=20)
    spec["spec"]["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["sh", "-c", "drain"]}}}
    await manager.sync_pod(spec, await observe(manager, runtime))
    runtime.calls.clear()
    await manager.stop_pod(await observe(manager, runtime), 20, pod=spec)
    assert runtime.calls == [("exec_sync", ("app-0", ("sh", "-c", "drain"), 20)),
                             ("stop_container", ("app-0", 20)), ("stop_pod_sandbox", "sb0")]
    assert ("Normal", "Killing", "Stopping container app", "spec.containers{app}") in recorder.events


async def test_failed_pre_stop_hook_is_an_event_and_the_stop_goes_on(tmp_path) -> None:
    manager, runtime, recorder = make_manager(tmp_path)
    spec = pod()
    spec["spec"]["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["false"]}}}
    await manager.sync_pod(spec, await observe(manager, runtime))
    runtime.exec_result = api_pb2.ExecSyncResponse(exit_code=1)
    await manager.stop_pod(await observe(manager, runtime), 0, pod=spec)     # grace 0: no hook
    assert not any(c[0] == "exec_sync" for c in runtime.calls)
    await manager.stop_pod(await observe(manager, runtime), 5, pod=spec)
    assert ("Warning", "FailedPreStopHook", "PreStopHook failed", "spec.containers{app}") in recorder.events
    assert runtime.calls[-2] == ("stop_container", ("app-0", 5))


async def test_failed_post_start_hook_stops_the_container(tmp_path) -> None:
    manager, runtime, recorder = make_manager(tmp_path)
    spec = pod()
    spec["spec"]["containers"][0]["lifecycle"] = {"postStart": {"exec": {"command": ["false"]}}}
    runtime.exec_result = api_pb2.ExecSyncResponse(exit_code=2, stderr=b"nope")
    result = await manager.sync_pod(spec, await observe(manager, runtime))
    assert result.waiting["app"].reason == "PostStartHookError"
    assert ("stop_container", ("app-0", 30)) in runtime.calls
    assert ("Warning", "FailedPostStartHook", "PostStartHook failed", "spec.containers{app}") in recorder.events


async def test_missing_config_map_is_a_config_error_retried_later(tmp_path) -> None:
    manager, runtime, recorder = make_manager(tmp_path)
    spec = pod()
    spec["spec"]["containers"][0]["env"] = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]
    result = await manager.sync_pod(spec, await observe(manager, runtime))
    assert result.waiting["app"].reason == "CreateContainerConfigError"
    assert result.waiting["app"].message == 'configmap "cfg" not found'
    assert result.retry_in == 10
    assert ("Warning", "Failed", 'Error: configmap "cfg" not found', "spec.containers{app}") in recorder.events
    assert not any(c[0] == "create_container" for c in runtime.calls)


class DownClient:
    """An API server that does not answer."""
    async def get(self, resource: Any, name: str, namespace: str | None = None) -> dict:
        raise aiohttp.ClientConnectionError("connection refused")

    async def list(self, resource: Any, namespace: str | None = None) -> dict:
        raise aiohttp.ClientConnectionError("connection refused")


async def test_service_variables_survive_an_api_outage_and_static_pods_need_none(tmp_path) -> None:
    manager, runtime, recorder = make_manager(tmp_path)
    await manager.sync_pod(pod(), await observe(manager, runtime))          # reads (no) services once
    manager.client = DownClient()
    runtime.containers.clear()
    result = await manager.sync_pod(pod(), await observe(manager, runtime))
    assert result.waiting == {}                                             # the last answer serves
    other = pod()
    other["metadata"] = {"name": "q", "namespace": "elsewhere", "uid": "u2"}
    runtime.containers.clear()
    failed = await manager.sync_pod(other, await observe(manager, runtime))
    assert failed.waiting["app"].reason == "CreateContainerConfigError"
    assert failed.waiting["app"].message.startswith("services have not yet been read at least once")
    static = pod()
    static["metadata"] = {"name": "s", "namespace": "elsewhere", "uid": "u3",
                          "annotations": {"kubernetes.io/config.source": "file"}}
    runtime.containers.clear()
    assert (await manager.sync_pod(static, await observe(manager, runtime))).waiting == {}
