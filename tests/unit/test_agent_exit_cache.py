"""Exits announced by containerd's events, applied to a pod's runtime status before CRI shows them."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from agent.pleg import ExitCache
from agent.runtime_state import ContainerPhase, ContainerState, PodRuntimeStatus

EXITED_AT = datetime(2026, 1, 1, 0, 0, 5, tzinfo=timezone.utc)


def pod(*containers: ContainerState) -> PodRuntimeStatus:
    return PodRuntimeStatus(uid="u", containers=list(containers))


def running(container_id: str, name: str = "app") -> ContainerState:
    return ContainerState(id=container_id, name=name, attempt=0, phase=ContainerPhase.RUNNING, started_at=1)


def test_announced_exit_overrides_a_stale_running_state_in_a_copy() -> None:
    cache = ExitCache()
    status = pod(running("c1"), running("c2", "side"))
    assert cache.overlaid(status) is None
    cache.record_exit("c1", 137, EXITED_AT, now=0)
    overlaid = cache.overlaid(status)
    assert overlaid is not None
    first = overlaid.containers[0]
    assert (first.phase, first.exit_code, first.finished_at, first.reason) == (
        ContainerPhase.EXITED, 137, int(EXITED_AT.timestamp() * 1e9), "")
    assert overlaid.containers[1].phase == ContainerPhase.RUNNING
    assert status.containers[0].phase == ContainerPhase.RUNNING          # the input is untouched


def test_oom_before_or_after_the_exit_gives_oomkilled() -> None:
    cache = ExitCache()
    cache.record_oom("c1", now=0)
    cache.record_exit("c1", 137, EXITED_AT, now=0)
    cache.record_exit("c2", 137, EXITED_AT, now=0)
    cache.record_oom("c2", now=0)
    overlaid = cache.overlaid(pod(running("c1"), running("c2", "b")))
    assert [c.reason for c in overlaid.containers] == ["OOMKilled", "OOMKilled"]


def test_settled_or_already_exited_containers_are_left_to_cri() -> None:
    cache = ExitCache()
    cache.record_exit("c1", 1, EXITED_AT, now=0)
    exited = ContainerState(id="c1", name="app", attempt=0, phase=ContainerPhase.EXITED, exit_code=1)
    assert cache.overlaid(pod(exited)) is None
    cache.settled("c1")
    assert cache.overlaid(pod(running("c1"))) is None


def test_old_announcements_expire() -> None:
    cache = ExitCache()
    cache.record_exit("old", 0, EXITED_AT, now=0)
    cache.record_exit("new", 0, EXITED_AT, now=100)
    assert set(cache.exits) == {"new"}


class FakeRuntime:
    def __init__(self, labels: dict[str, dict[str, str]]):
        self.labels = labels
        self.calls = 0

    async def container_status(self, object_id: str):
        from types import SimpleNamespace
        from cri.errors import NotFound
        import grpc
        self.calls += 1
        if object_id not in self.labels:
            raise NotFound(grpc.StatusCode.NOT_FOUND, "no such container", "ContainerStatus")
        return SimpleNamespace(status=SimpleNamespace(labels=self.labels[object_id]))

    async def pod_sandbox_status(self, object_id: str):
        from cri.errors import NotFound
        import grpc
        raise NotFound(grpc.StatusCode.NOT_FOUND, "no such sandbox", "PodSandboxStatus")


async def test_resolve_uid_of_a_container_the_relist_has_not_seen() -> None:
    from agent.pleg import Relister
    ours = {"io.kubernetes.pod.uid": "pod-1", "shipmate.io/node-name": "n1"}
    theirs = {"io.kubernetes.pod.uid": "pod-2", "shipmate.io/node-name": "other"}
    runtime = FakeRuntime({"c-ours": ours, "c-theirs": theirs})
    relister = Relister(runtime, "n1")  # type: ignore[arg-type]
    relister.snapshot = {"pod-0": {"c-known": "running"}}
    assert await relister.resolve_uid("c-known") == "pod-0" and runtime.calls == 0
    assert await relister.resolve_uid("c-ours") == "pod-1"
    assert await relister.resolve_uid("c-ours") == "pod-1" and runtime.calls == 1      # remembered
    assert await relister.resolve_uid("c-theirs") is None                               # another node's
    assert await relister.resolve_uid("gone") is None


class _Runtime:
    """A CRI that keeps answering RUNNING (containerd busy deleting the task), then, once told, NotFound."""

    def __init__(self) -> None:
        self.gone = False

    async def container_status(self, container_id: str):
        from types import SimpleNamespace

        import grpc

        from cri.errors import NotFound
        from cri.gen import api_pb2
        if self.gone:
            raise NotFound(grpc.StatusCode.NOT_FOUND, "no such container")
        return SimpleNamespace(status=SimpleNamespace(state=api_pb2.CONTAINER_RUNNING))


async def test_an_exit_stays_announced_until_cri_agrees(monkeypatch) -> None:
    """Past the settle wait, CRI still saying RUNNING must not take the exit back (the pod's status would
    show the terminated container running again); once CRI agrees, the announcement goes."""
    from agent import runtime_events
    monkeypatch.setattr(runtime_events, "SETTLE_TIMEOUT", 0.05)
    monkeypatch.setattr(runtime_events, "SETTLE_POLL", 0.01)
    cache, runtime, notified = ExitCache(), _Runtime(), []
    cache.record_exit("c1", 3, EXITED_AT, now=0)
    await runtime_events._notify_when_settled(runtime, cache, "c1", "u", lambda uid, at: notified.append(uid))
    assert notified == ["u"] and "c1" in cache.exits
    runtime.gone = True
    await runtime_events._notify_when_settled(runtime, cache, "c1", "u", lambda uid, at: notified.append(uid))
    assert notified == ["u", "u"] and "c1" not in cache.exits


class _Stream:
    """containerd's event stream, fed by the test."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()

    def __call__(self, endpoint: str) -> "_Stream":
        return self

    async def __aenter__(self) -> "_Stream":
        return self

    async def __aexit__(self, *exc) -> None:
        pass

    async def subscribe(self, topics):
        while True:
            yield await self.queue.get()


class _CountingRuntime:
    """CRI answers RUNNING until containerd has deleted the task, as containerd 1.6 does."""

    def __init__(self) -> None:
        self.calls = 0
        self.task_deleted = False

    async def container_status(self, container_id: str):
        from types import SimpleNamespace

        from cri.gen import api_pb2
        self.calls += 1
        state = api_pb2.CONTAINER_EXITED if self.task_deleted else api_pb2.CONTAINER_RUNNING
        return SimpleNamespace(status=SimpleNamespace(state=state))


async def test_cri_is_asked_about_an_exit_only_once_containerd_deleted_the_task(monkeypatch) -> None:
    """Before TaskDelete, CRI still says RUNNING: asking then only competes with the exit's status write."""
    from agent import runtime_events
    from cri.events import ContainerdEvent
    stream, runtime, cache, notified = _Stream(), _CountingRuntime(), ExitCache(), []
    monkeypatch.setattr(runtime_events, "ContainerdEvents", stream)
    monkeypatch.setattr(runtime_events, "SETTLE_POLL", 0.005)

    async def uid_of(container_id: str) -> str:
        return "u"
    watcher = asyncio.create_task(runtime_events.watch_task_events(
        "unix:///x", uid_of, lambda uid, at: notified.append(uid), cache, runtime))  # type: ignore[arg-type]
    try:
        stream.queue.put_nowait(ContainerdEvent("/tasks/exit", "k8s.io", EXITED_AT, "containerd.events.TaskExit",
                                                container_id="c1", exit_status=137, exited_at=EXITED_AT))
        await asyncio.sleep(0.1)
        assert notified == ["u"] and "c1" in cache.exits          # announced at once
        assert runtime.calls == 0                                 # CRI not asked yet
        runtime.task_deleted = True
        stream.queue.put_nowait(ContainerdEvent("/tasks/delete", "k8s.io", EXITED_AT, "containerd.events.TaskDelete",
                                                container_id="c1", exit_status=137, exited_at=EXITED_AT))
        await asyncio.sleep(0.1)
        assert runtime.calls == 1 and "c1" not in cache.exits     # settled
        assert notified == ["u", "u"]                             # the exit, then CRI agreeing (not the delete)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def test_a_missed_task_delete_delays_the_settling_only_so_long(monkeypatch) -> None:
    from agent import runtime_events
    monkeypatch.setattr(runtime_events, "DELETE_WAIT", 0.05)
    runtime, cache, notified = _CountingRuntime(), ExitCache(), []
    runtime.task_deleted = True
    cache.record_exit("c1", 3, EXITED_AT, now=0)
    await runtime_events._notify_when_settled(runtime, cache, "c1", "u", lambda uid, at: notified.append(uid),
                                              asyncio.Event())
    assert runtime.calls == 1 and notified == ["u"] and "c1" not in cache.exits
