"""Node object and conditions, runtime health, relist diffs, and the pod worker state machine."""
from __future__ import annotations

import asyncio

from agent.node_info import (NodeFacts, RuntimeHealth, allocatable, capacity, lease_object, node_conditions,
                             node_object, os_image, runtime_health, status_changed)
from agent.pleg import EventType, PodLifecycleEvent, diff_snapshots
from agent.pod_workers import (PodHandlers, PodUpdate, PodWorkers, SyncOutcome, WorkerState, grace_period,
                               needs_sync)

FACTS = NodeFacts(name="dev-node", hostname="vm", internal_ip="192.0.2.2", cpus=2, memory_ki=4_000_000,
                  ephemeral_storage_ki=10_000_000, max_pods=110, runtime_version="containerd://1.6.20",
                  labels={"kubernetes.io/hostname": "dev-node"})


def test_capacity_and_allocatable() -> None:
    assert capacity(FACTS) == {"cpu": "2", "memory": "4000000Ki", "pods": "110", "ephemeral-storage": "10000000Ki"}
    assert allocatable(FACTS) == {"cpu": "2", "memory": f"{4_000_000 - 102400}Ki", "pods": "110",
                                  "ephemeral-storage": str(int(10_000_000 * 1024 * 0.9))}


def test_node_object() -> None:
    node = node_object(FACTS, RuntimeHealth(True), "T0")
    assert node["metadata"]["labels"] == {"kubernetes.io/hostname": "dev-node"}
    status = node["status"]
    assert status["addresses"] == [{"type": "InternalIP", "address": "192.0.2.2"}, {"type": "Hostname", "address": "vm"}]
    assert status["nodeInfo"]["containerRuntimeVersion"] == "containerd://1.6.20"
    assert status["nodeInfo"]["kubeletVersion"].startswith("v1.35.")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("True", "KubeletReady", "kubelet is posting ready status")
    assert "spec" in node and "podCIDR" not in node["spec"]


def test_conditions_keep_transition_time_and_heartbeat_moves() -> None:
    first = node_conditions(RuntimeHealth(True), [], "T0")
    second = node_conditions(RuntimeHealth(True), first, "T1")
    assert {c["lastTransitionTime"] for c in second} == {"T0"} and {c["lastHeartbeatTime"] for c in second} == {"T1"}
    down = node_conditions(RuntimeHealth(False, "container runtime is down"), second, "T2")
    ready = next(c for c in down if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"]) == ("False", "KubeletNotReady", "T2")


def test_status_changed_ignores_heartbeats() -> None:
    a = {"conditions": node_conditions(RuntimeHealth(True), [], "T0")}
    b = {"conditions": node_conditions(RuntimeHealth(True), a["conditions"], "T1")}
    assert not status_changed(a, b)
    c = {"conditions": node_conditions(RuntimeHealth(False, "x"), a["conditions"], "T1")}
    assert status_changed(a, c)


def test_runtime_health() -> None:
    assert runtime_health({"RuntimeReady": (True, "", ""), "NetworkReady": (True, "", "")}).ready
    health = runtime_health({"RuntimeReady": (True, "", ""), "NetworkReady": (False, "NetworkPluginNotReady", "cni not init")})
    assert not health.ready
    assert health.message == ("container runtime network not ready: NetworkReady=false "
                              "reason:NetworkPluginNotReady message:cni not init")
    assert runtime_health(None, "socket missing").message == "container runtime is down: socket missing"


def test_os_image_and_lease() -> None:
    assert os_image('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n') == "Debian GNU/Linux 12 (bookworm)"
    lease = lease_object("dev-node", "uid-1", "2026-01-01T00:00:00.000000Z")
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["spec"] == {"holderIdentity": "dev-node", "leaseDurationSeconds": 40,
                             "renewTime": "2026-01-01T00:00:00.000000Z"}
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"


def test_relist_diff() -> None:
    old = {"u1": {"s1": "running", "c1": "running", "c2": "created"}}
    new = {"u1": {"s1": "running", "c1": "exited", "c2": "running"}, "u2": {"s2": "running"}}
    assert diff_snapshots(old, new) == [
        PodLifecycleEvent("u1", EventType.CONTAINER_DIED, "c1"),
        PodLifecycleEvent("u1", EventType.CONTAINER_STARTED, "c2"),
        PodLifecycleEvent("u2", EventType.CONTAINER_STARTED, "s2")]
    assert diff_snapshots(new, {}) == [PodLifecycleEvent("u1", EventType.CONTAINER_REMOVED, "c1"),
                                       PodLifecycleEvent("u1", EventType.CONTAINER_REMOVED, "c2"),
                                       PodLifecycleEvent("u1", EventType.CONTAINER_REMOVED, "s1"),
                                       PodLifecycleEvent("u2", EventType.CONTAINER_REMOVED, "s2")]


# ---------------------------------------------------------------- pod workers
def make_pod(uid: str = "u", version: int = 1, **meta) -> dict:
    return {"metadata": {"uid": uid, "name": "p", "namespace": "ns", "resourceVersion": str(version), **meta},
            "spec": {"terminationGracePeriodSeconds": 30}}


class Recorder:
    def __init__(self, sync_delay: float = 0.0, fail_first: bool = False):
        self.calls: list[tuple] = []
        self.sync_delay = sync_delay
        self.fail_first = fail_first

    async def sync(self, pod: dict) -> SyncOutcome:
        self.calls.append(("sync", pod["metadata"]["resourceVersion"]))
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("boom")
        await asyncio.sleep(self.sync_delay)
        return SyncOutcome()

    async def terminate(self, pod: dict, grace: int) -> None:
        self.calls.append(("terminate", grace))

    async def cleanup(self, pod: dict) -> None:
        self.calls.append(("cleanup",))

    def handlers(self) -> PodHandlers:
        return PodHandlers(self.sync, self.terminate, self.cleanup)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_latest_update_wins_while_a_sync_runs() -> None:
    recorder = Recorder(sync_delay=0.05)
    workers = PodWorkers(recorder.handlers())
    workers.update(PodUpdate(make_pod(version=1)))
    await settle()
    for version in (2, 3, 4):
        workers.update(PodUpdate(make_pod(version=version)))
    await asyncio.sleep(0.2)
    assert recorder.calls == [("sync", "1"), ("sync", "4")]


async def test_deletion_terminates_with_shrinking_grace_then_cleans_up() -> None:
    recorder = Recorder()
    workers = PodWorkers(recorder.handlers())
    workers.update(PodUpdate(make_pod()))
    await settle()
    workers.update(PodUpdate(make_pod(version=2, deletionTimestamp="T", deletionGracePeriodSeconds=20)))
    await settle()
    worker = workers.workers["u"]
    assert worker.state is WorkerState.TERMINATED
    workers.update(PodUpdate(make_pod(version=3, deletionTimestamp="T", deletionGracePeriodSeconds=25)))
    await settle()
    assert worker.grace_seconds == 20          # a grace period can only shrink
    workers.update(PodUpdate(make_pod(version=4), removed=True))
    await settle()
    assert recorder.calls == [("sync", "1"), ("terminate", 20), ("cleanup",)]
    assert not workers.known("u")
    # A runtime listing taken before the worker finished may still show the pod: not an orphan.
    assert workers.known("u", since=0.0)


async def test_terminal_pod_is_stopped_then_terminated_again_when_deleted() -> None:
    recorder = Recorder()

    async def finished(pod: dict) -> SyncOutcome:
        recorder.calls.append(("sync", pod["metadata"]["resourceVersion"]))
        return SyncOutcome(terminal=True)

    workers = PodWorkers(PodHandlers(finished, recorder.terminate, recorder.cleanup))
    workers.update(PodUpdate(make_pod()))
    await settle()
    workers.update(PodUpdate(make_pod(version=2)))       # status echo: nothing more to do
    await settle()
    workers.update(PodUpdate(make_pod(version=3, deletionTimestamp="T", deletionGracePeriodSeconds=30)))
    await settle()
    assert recorder.calls == [("sync", "1"), ("terminate", 0), ("terminate", 0)]


async def test_worker_survives_a_failing_sync_and_retries() -> None:
    recorder = Recorder(fail_first=True)
    workers = PodWorkers(recorder.handlers())
    workers.update(PodUpdate(make_pod()))
    await asyncio.sleep(0.8)
    assert recorder.calls == [("sync", "1"), ("sync", "1")]


async def test_shorter_grace_period_restarts_a_running_kill() -> None:
    kills: list[int] = []

    async def slow_terminate(pod: dict, grace: int) -> None:
        kills.append(grace)
        await asyncio.sleep(grace / 10)

    recorder = Recorder()
    workers = PodWorkers(PodHandlers(recorder.sync, slow_terminate, recorder.cleanup))
    workers.update(PodUpdate(make_pod(deletionTimestamp="T", deletionGracePeriodSeconds=30)))
    await asyncio.sleep(0.05)
    workers.update(PodUpdate(make_pod(version=2, deletionTimestamp="T", deletionGracePeriodSeconds=1)))
    await asyncio.sleep(0.3)
    assert kills[:2] == [30, 1]
    assert workers.workers["u"].state is WorkerState.TERMINATED


def test_status_only_updates_do_not_need_a_sync() -> None:
    old = make_pod(version=1)
    echoed = dict(make_pod(version=2), status={"phase": "Running"})
    assert not needs_sync(old, echoed)
    assert needs_sync(old, make_pod(version=3, deletionTimestamp="T"))
    assert needs_sync(None, old)


def test_grace_period() -> None:
    assert grace_period(make_pod()) == 30
    assert grace_period(make_pod(deletionGracePeriodSeconds=4)) == 4
