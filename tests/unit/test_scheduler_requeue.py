"""The scheduler task in-process (API over SQLite, shared informers): unschedulable pods requeued by node
changes, taken from the backoff queue when nothing else waits (upstream's SchedulerPopFromBackoffQ), never
placed on a node that does not fit; status heartbeats are no cluster event; a burst's Scheduled events are
posted side by side, not two at a time."""
from __future__ import annotations

import asyncio
import os
import time

from apiserver.api import API
from apiserver.informer import SharedInformers
from apiserver.scheduler.scheduler import Scheduler, scheduling_properties_changed
from apiserver.storage.sqlite import SQLiteStorage


def node(name: str, pods: str = "110") -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": pods},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeSelector": {"pool": "web"},
                     "containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


class FrozenClock:
    """The scheduler's monotonic clock, standing still: no backoff ever completes by itself."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


async def until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def run_scheduler(tmp_path, scenario) -> None:
    async def main() -> None:
        storage = SQLiteStorage(os.path.join(tmp_path, "state.db"))
        await storage.start()
        api = API(storage)
        await api.start()
        informers = SharedInformers()
        scheduler = Scheduler(api, informers)
        scheduler.monotonic = FrozenClock()
        tasks = [asyncio.create_task(informers.run()), asyncio.create_task(scheduler.run())]
        try:
            await api.create(api.namespaces, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}})
            await scenario(api, scheduler)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await storage.close()
    asyncio.run(main())


def bound(scheduler: Scheduler) -> dict[str, str]:
    return {p["metadata"]["name"]: p["spec"]["nodeName"] for p in scheduler.pods.cache.values()
            if p["metadata"]["namespace"] == "ns" and p["spec"].get("nodeName")}


async def label(api: API, name: str, **labels: str) -> None:
    def change(current: dict) -> dict:
        current["metadata"].setdefault("labels", {}).update(labels)
        return current
    await api.nodes.guaranteed_update("", name, change)


def test_backing_off_pods_are_taken_when_nothing_else_waits_and_only_where_they_fit(tmp_path):
    async def scenario(api: API, scheduler: Scheduler) -> None:
        for name, pods in (("a", "110"), ("b", "3"), ("c", "110")):
            await api.create(api.nodes, "", node(name, pods))
        for i in range(12):
            await api.create(api.pods, "ns", pod(f"p{i}"))
        await until(lambda: len(scheduler.unschedulable) == 12)
        assert not bound(scheduler)
        # The clock stands still: every pod is still backing off when the nodes change, so each is placed
        # only because the scheduler takes the backoff queue once nothing is ready.
        await label(api, "b", pool="web")
        await until(lambda: len(bound(scheduler)) == 3)
        await label(api, "a", pool="web")
        await until(lambda: len(bound(scheduler)) == 12)
        placed = bound(scheduler)
        assert sorted(placed.values()).count("b") == 3          # b holds 3 pods: never more
        assert set(placed.values()) == {"a", "b"}              # c has no pool=web label
        assert not scheduler.pending and not scheduler.retries.moved()
    run_scheduler(tmp_path, scenario)


def test_a_heartbeat_is_no_cluster_event(tmp_path):
    async def scenario(api: API, scheduler: Scheduler) -> None:
        await api.create(api.nodes, "", node("a"))
        await api.create(api.pods, "ns", pod("p"))
        await until(lambda: len(scheduler.unschedulable) == 1)
        uid = next(iter(scheduler.unschedulable))
        attempts = scheduler.retries._entries[uid].attempts

        def heartbeat(current: dict) -> dict:
            current["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-01-01T00:00:10Z"
            return current
        await api.nodes.guaranteed_update("", "a", heartbeat, subresource="status")
        await asyncio.sleep(0.3)
        assert scheduler.retries._entries[uid].attempts == attempts and not scheduler.retries.moved()
        await label(api, "a", pool="web")
        await until(lambda: bound(scheduler) == {"p": "a"})
    run_scheduler(tmp_path, scenario)


def test_scheduling_properties_of_a_node():
    old = node("a")
    heartbeat = node("a")
    heartbeat["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-01-01T00:00:10Z"
    heartbeat["status"]["nodeInfo"] = {"kubeletVersion": "v1.35.0"}
    assert not scheduling_properties_changed(old, heartbeat)
    not_ready = node("a")
    not_ready["status"]["conditions"][0]["status"] = "False"
    resized = node("a", pods="5")
    labelled = node("a")
    labelled["metadata"]["labels"]["pool"] = "web"
    annotated = node("a")
    annotated["metadata"]["annotations"] = {"storage.shipmate.io/local-path-dir": "/var/lib/x"}
    tainted = {**node("a"), "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}
    cordoned = {**node("a"), "spec": {"unschedulable": True}}
    for changed in (not_ready, resized, labelled, annotated, tainted, cordoned):
        assert scheduling_properties_changed(old, changed)


def test_a_bursts_scheduled_events_go_out_together(tmp_path):
    async def scenario(api: API, scheduler: Scheduler) -> None:
        posting, most = [0], [0]
        record = api.record_event

        async def slow_record(*args, **kwargs) -> None:
            posting[0] += 1
            most[0] = max(most[0], posting[0])
            try:
                await asyncio.sleep(0.05)           # a storage round trip
                await record(*args, **kwargs)
            finally:
                posting[0] -= 1
        api.record_event = slow_record
        node_a = node("a")
        node_a["metadata"]["labels"]["pool"] = "web"
        await api.create(api.nodes, "", node_a)
        for i in range(12):
            await api.create(api.pods, "ns", pod(f"p{i}"))
        await until(lambda: len(bound(scheduler)) == 12)
        await until(lambda: scheduler._events.empty() and posting[0] == 0)
        assert most[0] > 2      # not two at a time: a burst's events share storage commits
    run_scheduler(tmp_path, scenario)
