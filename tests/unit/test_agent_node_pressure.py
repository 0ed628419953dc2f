"""Node health: eviction signals against kubelet's hard thresholds → pressure conditions and node
events (the agent never writes taints: the node lifecycle controller derives them)."""
from __future__ import annotations

from fractions import Fraction
from typing import AsyncIterator

import pytest
from aiohttp import web

from agent.node_info import condition_events, node_conditions, node_object, RuntimeHealth
from agent.node_manager import NodeManager
from agent.node_pressure import (DEFAULT_EVICTION_HARD, parse_eviction_hard, DISK_PRESSURE, MEMORY_PRESSURE, PID_PRESSURE, Observation,
                                 PressureTracker, Signals, Threshold, gather_signals, parse_thresholds,
                                 thresholds_met)
from cri.client import CRIClient
from shipmate.kubeclient import KubeClient
from tests.unit.fake_api_server import client_for
from tests.unit.test_agent_node_manager import FACTS, FakeNodeApi

GI, MI = 1 << 30, 1 << 20


def signals(memory: int = 8 * GI, nodefs: int = 50 * GI, imagefs: int = 50 * GI, inodes: int = 900,
            pids: int = 30000) -> Signals:
    return Signals({"memory.available": Observation(memory, 16 * GI),
                    "nodefs.available": Observation(nodefs, 100 * GI),
                    "nodefs.inodesFree": Observation(inodes, 1000),
                    "imagefs.available": Observation(imagefs, 100 * GI),
                    "imagefs.inodesFree": Observation(inodes, 1000),
                    "pid.available": Observation(pids, 32768)})


def test_default_thresholds_are_kubelets() -> None:
    thresholds = {t.signal: t for t in parse_thresholds(DEFAULT_EVICTION_HARD)}
    assert thresholds["memory.available"] == Threshold("memory.available", quantity=100 * MI)
    assert thresholds["nodefs.available"] == Threshold("nodefs.available", percentage=Fraction(1, 10))
    assert thresholds["imagefs.available"] == Threshold("imagefs.available", percentage=Fraction(15, 100))
    assert thresholds["nodefs.inodesFree"].percentage == Fraction(5, 100)
    assert "pid.available" not in thresholds          # no default upstream


@pytest.mark.parametrize("observed, met", [
    (signals(), []),
    (signals(memory=99 * MI), ["memory.available"]),
    (signals(memory=100 * MI), []),                                  # "<" : exactly at the threshold is fine
    (signals(nodefs=9 * GI), ["nodefs.available"]),
    (signals(imagefs=14 * GI), ["imagefs.available"]),
    (signals(imagefs=16 * GI), []),
    (signals(inodes=40), ["nodefs.inodesFree", "imagefs.inodesFree"]),
    (signals(pids=10), []),
])
def test_thresholds_met(observed: Signals, met: list[str]) -> None:
    assert [t.signal for t in thresholds_met(observed, parse_thresholds(DEFAULT_EVICTION_HARD))] == met


def test_bad_thresholds_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown eviction signal"):
        parse_thresholds({"cpu.available": "1"})
    with pytest.raises(ValueError, match="0%..100%"):
        parse_thresholds({"nodefs.available": "120%"})


def test_pressure_holds_for_the_transition_period() -> None:
    tracker = PressureTracker(thresholds=parse_thresholds({**DEFAULT_EVICTION_HARD, "pid.available": "1000"}))
    assert tracker.observe(signals(), now=0) == set()
    assert tracker.observe(signals(memory=50 * MI, nodefs=1 * GI, pids=500), now=10) == \
        {MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE}
    assert tracker.observe(signals(), now=200) == {MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE}
    assert tracker.observe(signals(), now=311) == set()


def test_gather_signals_reads_this_host(tmp_path) -> None:
    observed = gather_signals(str(tmp_path), None).values
    for signal in ("memory.available", "nodefs.available", "nodefs.inodesFree", "imagefs.available", "pid.available"):
        assert 0 <= observed[signal].available <= observed[signal].capacity, signal


def test_conditions_and_events_follow_pressure() -> None:
    now = "2026-01-01T00:00:00Z"
    calm = node_conditions(RuntimeHealth(True), [], now)
    assert condition_events([], calm) == ["NodeHasSufficientMemory", "NodeHasNoDiskPressure",
                                          "NodeHasSufficientPID", "NodeReady"]
    pressed = node_conditions(RuntimeHealth(True), calm, "2026-01-01T00:01:00Z", {MEMORY_PRESSURE, DISK_PRESSURE})
    memory = next(c for c in pressed if c["type"] == "MemoryPressure")
    assert (memory["status"], memory["reason"], memory["message"]) == (
        "True", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available")
    assert memory["lastTransitionTime"] == "2026-01-01T00:01:00Z"
    disk = next(c for c in pressed if c["type"] == "DiskPressure")
    assert (disk["status"], disk["reason"]) == ("True", "KubeletHasDiskPressure")
    assert condition_events(calm, pressed) == ["NodeHasInsufficientMemory", "NodeHasDiskPressure"]
    assert condition_events(pressed, node_conditions(RuntimeHealth(False, "x"), pressed, now)) == [
        "NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeNotReady"]

    # Registration under pressure: the conditions say so, the Node carries no taint of ours.
    registered = node_object(FACTS, RuntimeHealth(True, ""), now, {MEMORY_PRESSURE})
    assert registered["spec"] == {}
    assert next(c for c in registered["status"]["conditions"] if c["type"] == "MemoryPressure")["status"] == "True"


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[dict, str, str, str]] = []

    def event(self, obj: dict, event_type: str, reason: str, message: str, field_path: str = "") -> None:
        self.events.append((obj, event_type, reason, message))


class FakeNodeApiRecordingSpecWrites(FakeNodeApi):
    """Records every write to the Node itself (not its status): the agent must make none."""
    def __init__(self) -> None:
        super().__init__()
        self.node_patches: list[dict] = []
        self.app.router.add_patch("/api/v1/nodes/{name}", self.patch_node)

    async def patch_node(self, request: web.Request) -> web.Response:
        self.node_patches.append(await request.json())
        return web.json_response(self.node)


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeNodeApiRecordingSpecWrites, KubeClient]]:
    fake = FakeNodeApiRecordingSpecWrites()
    async with client_for(fake.app) as client:
        yield fake, client


async def test_node_manager_reports_pressure_conditions_not_taints(api, tmp_path) -> None:
    fake, client = api
    recorder = FakeRecorder()
    async with CRIClient(f"unix://{tmp_path}/no-such.sock", timeout=2) as runtime:
        manager = NodeManager(client, runtime, FACTS, recorder=recorder)   # type: ignore[arg-type]
        await manager.register()
        reasons = [e[2] for e in recorder.events]
        assert reasons == ["Starting", "NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeHasSufficientPID",
                           "NodeNotReady"]
        assert recorder.events[0][0] == {"kind": "Node", "metadata": {"name": "n1", "uid": "n1"}}
        assert recorder.events[1][3] == "Node n1 status is now: NodeHasSufficientMemory"
        assert fake.node_patches == []

        # Memory below a threshold no host can satisfy: MemoryPressure and its event, no taint write.
        manager.pressure_tracker.thresholds = parse_thresholds({"memory.available": "100%"})
        await manager.check_pressure()
        await manager.report_status()
        memory = next(c for c in fake.node["status"]["conditions"] if c["type"] == "MemoryPressure")
        assert memory["status"] == "True"
        assert fake.node_patches == [] and not fake.node.get("spec", {}).get("taints")
        assert recorder.events[-1][2] == "NodeHasInsufficientMemory"

        # Pressure gone (after the transition period): the condition turns False.
        manager.pressure_tracker = PressureTracker(transition_period=0)
        await manager.check_pressure()
        await manager.report_status()
        memory = next(c for c in fake.node["status"]["conditions"] if c["type"] == "MemoryPressure")
        assert memory["status"] == "False" and fake.node_patches == []
        assert recorder.events[-1][2] == "NodeHasSufficientMemory"


def test_eviction_hard_flag_syntax() -> None:
    assert parse_eviction_hard("memory.available<1Gi, nodefs.available<5%") == {
        "memory.available": "1Gi", "nodefs.available": "5%"}
    assert parse_eviction_hard("") == {}
    with pytest.raises(ValueError, match="signal<quantity"):
        parse_eviction_hard("memory.available=1Gi")
    with pytest.raises(ValueError, match="unknown eviction signal"):
        parse_eviction_hard("cpu<1")


def test_allocatable_follows_the_eviction_thresholds() -> None:
    from agent.node_info import allocatable
    custom = allocatable(FACTS, parse_thresholds({"memory.available": "1Mi", "nodefs.available": "50%"}))
    assert custom["memory"] == f"{FACTS.memory_ki - 1024}Ki"
    assert custom["ephemeral-storage"] == str(FACTS.ephemeral_storage_ki * 1024 // 2)
    none = allocatable(FACTS, [])
    assert none["memory"] == f"{FACTS.memory_ki}Ki" and none["ephemeral-storage"] == str(FACTS.ephemeral_storage_ki * 1024)
