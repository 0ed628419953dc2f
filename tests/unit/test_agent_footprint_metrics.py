"""The agent's idle cost knobs and figures: --sync-frequency (5m, a safety net) drives the periodic pod resync,
and /metrics carries the pod workers' queue depth and the relist duration."""
from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from agent.config import parse_args
from agent.node_server.metrics import NodeMetrics
from agent.pod_workers import PodHandlers, PodUpdate, PodWorkers, SyncOutcome


def pod(uid: str) -> dict:
    return {"metadata": {"uid": uid, "name": uid, "namespace": "ns"}, "spec": {}}


def samples(metrics: NodeMetrics) -> dict[str, float]:
    return {s.name: s.value for family in text_string_to_metric_families(metrics.render().decode())
            for s in family.samples if not s.labels or s.name.endswith("_count")}


def test_sync_frequency_flag_defaults_to_a_five_minute_safety_net():
    """Events drive syncs; kubelet's 1m periodic resync was ≈ 0.3 % of a core at 110 pods."""
    assert parse_args(["--node-ip", "10.0.0.1"]).sync_frequency == 300.0
    assert PodWorkers(PodHandlers(None, None, None)).resync_interval == 300.0  # type: ignore[arg-type]
    assert parse_args(["--node-ip", "10.0.0.1", "--sync-frequency", "90s"]).sync_frequency == 90.0


async def test_queue_depth_counts_pods_waiting_for_their_worker_and_resync_follows_the_interval():
    release = asyncio.Event()
    synced: list[str] = []

    async def sync(p: dict) -> SyncOutcome:
        synced.append(p["metadata"]["uid"])
        await release.wait()
        return SyncOutcome()

    async def nothing(*_args) -> None:
        return None

    workers = PodWorkers(PodHandlers(sync, nothing, nothing), resync_interval=90.0)
    metrics = NodeMetrics()
    metrics.track_queue_depth(workers.queue_depth)
    for uid in ("a", "b"):
        workers.update(PodUpdate(pod(uid)))
    assert samples(metrics)["kubelet_pod_worker_queue_depth"] == 2   # both waiting, none started
    await asyncio.sleep(0.01)
    assert sorted(synced) == ["a", "b"] and samples(metrics)["kubelet_pod_worker_queue_depth"] == 0
    workers.update(PodUpdate(pod("a")))                                # arrives while a's sync runs
    assert samples(metrics)["kubelet_pod_worker_queue_depth"] == 1
    release.set()
    await asyncio.sleep(0.01)
    assert samples(metrics)["kubelet_pod_worker_queue_depth"] == 0
    worker = workers.workers["b"]
    assert 89.0 < worker.next_sync_at - asyncio.get_running_loop().time() <= 90.0  # the flag's interval
    workers.resync_due(now=worker.next_sync_at - 1)
    assert worker.pending is None
    workers.resync_due(now=worker.next_sync_at)
    assert worker.pending is not None
    await workers.stop()


def test_relist_duration_is_a_histogram():
    metrics = NodeMetrics()
    metrics.observe_relist(0.002)
    text = metrics.render().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["kubelet_pleg_relist_duration_seconds"].type == "histogram"
    assert samples(metrics)["kubelet_pleg_relist_duration_seconds_count"] == 1


def test_housekeeping_gives_freed_heap_back_within_ten_seconds(monkeypatch):
    """After a burst (a node filled, pods gone) RSS comes down within seconds, not a minute later."""
    from types import SimpleNamespace

    import agent.kubelet as kubelet
    trims: list[float] = []
    now = [1000.0]
    monkeypatch.setattr(kubelet, "release_freed_memory", lambda: trims.append(now[0]))
    monkeypatch.setattr(kubelet.time, "monotonic", lambda: now[0])
    agent = SimpleNamespace(_trimmed_at=now[0], node_manager=SimpleNamespace(health=SimpleNamespace(ready=True)),
                            _start_static_pods=lambda: None,
                            pods=SimpleNamespace(synced=asyncio.Event()), static_pods=SimpleNamespace(synced=asyncio.Event()))
    for now[0] in (1002.0, 1008.0, 1010.0, 1012.0, 1020.0):
        kubelet.Agent._handle_housekeeping(agent, None)  # type: ignore[arg-type]
    assert trims == [1010.0, 1020.0]
