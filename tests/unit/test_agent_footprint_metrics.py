"""The agent's idle cost knobs and figures: --sync-frequency (kubelet's 1m) drives the periodic pod resync,
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


def test_sync_frequency_flag_defaults_to_kubelets_minute():
    assert parse_args(["--node-ip", "10.0.0.1"]).sync_frequency == 60.0
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
