"""Scheduler benchmark (issue 5): 1,000 pending pods onto 100 Node objects, in one process.

The scheduler binds in-process (through `API.bind`, admission included, no HTTP), so its floor does too:
both sides run in this process against the same in-process API (SQLite storage with group commit in a
temp dir, the shared informers; nodes are API objects, no agents).
  ours  = 1,000 pods selecting a label no node has yet (all marked Unschedulable, with their
          FailedScheduling events, first); then the label is written onto the 100 nodes (32 at a
          time): time from the first node write until every pod is seen bound AND its Scheduled event
          is seen stored (node updates, scheduling, assume, bindings, events all inside the clock);
  floor = 1,000 other pods (a schedulerName no scheduler serves) bound by a trivial binder: round-robin
          placement, `API.bind` with the scheduler's bind concurrency (BIND_CONCURRENCY), then the same
          Scheduled event through `API.record_event`, until every pod is seen bound and every event
          stored, by the same watchers.
With --rounds N (default 3) both are measured N times, alternating, each round with its own pods and
nodes (a round's nodes are deleted after it), and the medians are compared: the machine is shared,
single runs are noisy. Prints the rates, then the ratio of the medians ours/floor last (targets:
≥ 200 pods/s, ratio ≥ 0.7; exit status 1 when missed).

    /opt/shipmate/venv/bin/python bench/scheduler.py [--pods 1000] [--nodes 100] [--rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from apiserver.api import API  # noqa: E402
from apiserver.informer import SharedInformers  # noqa: E402
from apiserver.registry import DeleteOptions  # noqa: E402
from apiserver.scheduler.scheduler import BIND_CONCURRENCY, SCHEDULER_NAME, Scheduler  # noqa: E402
from apiserver.storage.sqlite import SQLiteStorage  # noqa: E402
from result import Figure, write_result  # noqa: E402

IMAGE = "127.0.0.1:5000/library/busybox:latest"
FLOOR_SCHEDULER = "bench-trivial"


def node_name(round_: int, i: int) -> str:
    return f"bench-r{round_}-node-{i:03d}"


def node(round_: int, i: int) -> dict:
    name = node_name(round_, i)
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"},
                       "allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


def pod(name: str, round_: int, scheduler: str = SCHEDULER_NAME) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"schedulerName": scheduler, "nodeSelector": {"bench/round": str(round_)},
                     "containers": [{"name": "c", "image": IMAGE,
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


async def parallel(calls, concurrency: int) -> None:
    queue = list(calls)
    queue.reverse()

    async def worker() -> None:
        while queue:
            await queue.pop()()
    await asyncio.gather(*(worker() for _ in range(concurrency)))


class Watchers:
    """What the informers saw: pods bound and Scheduled events stored, per namespace."""

    def __init__(self, api: API, informers: SharedInformers):
        self.bound: dict[str, dict[str, str]] = {}
        self.scheduled_events: Counter = Counter()
        self.unschedulable: dict[str, set[str]] = {}
        self.failed_events: Counter = Counter()
        self.changed = asyncio.Event()
        informers.informer(api.pods, self._on_pod)
        informers.informer(api.registry("", "events"), self._on_event)

    def _on_pod(self, kind: str, obj: dict, _old) -> None:
        if kind == "DELETED":
            return
        meta = obj["metadata"]
        node_name = (obj.get("spec") or {}).get("nodeName")
        if node_name:
            self.bound.setdefault(meta["namespace"], {})[meta["name"]] = node_name
        elif any(c.get("type") == "PodScheduled" and c.get("status") == "False"
                 for c in (obj.get("status") or {}).get("conditions") or ()):
            self.unschedulable.setdefault(meta["namespace"], set()).add(meta["name"])
        self.changed.set()

    def _on_event(self, kind: str, obj: dict, _old) -> None:
        if kind == "ADDED":
            namespace = obj["metadata"]["namespace"]
            if obj.get("reason") == "Scheduled":
                self.scheduled_events[namespace] += 1
            elif obj.get("reason") == "FailedScheduling":
                self.failed_events[namespace] += 1
            self.changed.set()

    async def until(self, check, timeout: float, what: str) -> float:
        deadline = time.monotonic() + timeout
        while not check():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"timed out waiting for {what}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, 1.0))
            except TimeoutError:
                pass
        return time.monotonic()

    def done(self, namespace: str, pods: int) -> bool:
        return len(self.bound.get(namespace, ())) >= pods and self.scheduled_events[namespace] >= pods


async def trivial_bind(api: API, namespace: str, name: str, target: str) -> None:
    """The floor's binder: what the scheduler's `_bind` does once it has a node (bind, then the event)."""
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": namespace},
               "target": {"apiVersion": "v1", "kind": "Node", "name": target}}
    bound = await api.bind(namespace, name, binding)
    await api.record_event(bound, "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {target}",
                           FLOOR_SCHEDULER)


async def run_round(api: API, watchers: Watchers, round_: int, pods: int, nodes: int) -> tuple[float, float]:
    sched, floor_ns = f"sched{round_}", f"floor{round_}"
    for namespace in (sched, floor_ns):
        await api.create(api.namespaces, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    await parallel([lambda i=i: api.create(api.nodes, "", node(round_, i)) for i in range(nodes)], BIND_CONCURRENCY)
    # ours: pending pods (each marked Unschedulable with an event), then the label on every node.
    await parallel([lambda i=i: api.create(api.pods, sched, pod(f"p{i:04d}", round_)) for i in range(pods)],
                   BIND_CONCURRENCY)
    await watchers.until(lambda: len(watchers.unschedulable.get(sched, ())) >= pods
                         and watchers.failed_events[sched] >= pods, 300, "pods marked unschedulable")

    def label(current: dict) -> dict:
        current["metadata"].setdefault("labels", {})["bench/round"] = str(round_)
        return current
    started = time.monotonic()
    await parallel([lambda i=i: api.nodes.guaranteed_update("", node_name(round_, i), label) for i in range(nodes)],
                   BIND_CONCURRENCY)
    finished = await watchers.until(lambda: watchers.done(sched, pods), 300, "pods bound by the scheduler")
    ours = pods / (finished - started)
    placement = Counter(watchers.bound[sched].values())
    print(f"round {round_} scheduler: {pods} pods bound + Scheduled events onto {nodes} nodes in "
          f"{finished - started:.2f}s = {ours:.0f} pods/s (pods per node min {min(placement.values())} "
          f"max {max(placement.values())}, {len(placement)} of {nodes} nodes used)", flush=True)

    # floor: the same number of pods bound in-process by a trivial round-robin binder, same concurrency.
    await parallel([lambda i=i: api.create(api.pods, floor_ns, pod(f"f{i:04d}", round_, FLOOR_SCHEDULER))
                    for i in range(pods)], BIND_CONCURRENCY)
    await asyncio.sleep(1.0)
    started = time.monotonic()
    await parallel([lambda i=i: trivial_bind(api, floor_ns, f"f{i:04d}", node_name(round_, i % nodes))
                    for i in range(pods)], BIND_CONCURRENCY)
    finished = await watchers.until(lambda: watchers.done(floor_ns, pods), 300, "pods bound by the floor")
    floor = pods / (finished - started)
    print(f"round {round_} floor: {pods} in-process bindings + events (trivial placement, {BIND_CONCURRENCY} "
          f"concurrent) in {pods / floor:.2f}s = {floor:.0f} pods/s", flush=True)
    await parallel([lambda i=i: api.delete(api.nodes, "", node_name(round_, i), DeleteOptions())
                    for i in range(nodes)], BIND_CONCURRENCY)
    await asyncio.sleep(1.0)
    return ours, floor


async def run(workdir: str, pods: int, nodes: int, rounds: int) -> tuple[list[float], list[float]]:
    storage = SQLiteStorage(os.path.join(workdir, "state.db"))
    await storage.start()
    api = API(storage)
    await api.start()
    informers = SharedInformers()
    watchers = Watchers(api, informers)
    scheduler = Scheduler(api, informers)
    tasks = [asyncio.create_task(informers.run(), name="informers"),
             asyncio.create_task(scheduler.run(), name="scheduler")]
    try:
        results = [await run_round(api, watchers, round_, pods, nodes) for round_ in range(rounds)]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await storage.close()
    return [r[0] for r in results], [r[1] for r in results]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as workdir:
        ours, floor = asyncio.run(run(workdir, args.pods, args.nodes, args.rounds))
    ratios = [o / f for o, f in zip(ours, floor)]
    ours_median, floor_median = statistics.median(ours), statistics.median(floor)
    ratio = ours_median / floor_median
    print(f"median over {args.rounds} rounds: scheduler {ours_median:.0f} pods/s, floor {floor_median:.0f} pods/s; "
          f"per-round ratios {', '.join(f'{r:.2f}' for r in ratios)}")
    write_result("scheduler", [
        Figure(f"{args.pods} pods onto {args.nodes} nodes, bound + events (in-process floor)", ours_median,
               floor_median, "pods/s", "≥ 0.7", ratio=ratio, baseline_label=f"{floor_median:.0f} pods/s"),
        Figure("scheduler rate", ours_median, None, "pods/s", "≥ 200 pods/s", baseline_label="absolute"),
    ], series={"scheduler (pods/s)": ours, "floor (pods/s)": floor},
        notes=f"{args.rounds} rounds; scheduler {', '.join(f'{o:.0f}' for o in ours)} pods/s; floor "
              f"{', '.join(f'{f:.0f}' for f in floor)} pods/s; per-round ratios "
              f"{', '.join(f'{r:.2f}' for r in ratios)} (min {min(ratios):.2f}, max {max(ratios):.2f}).")
    print(f"ratio (scheduler / in-process binding floor): {ratio:.2f}")
    return 0 if ours_median >= 200 and ratio >= 0.7 else 1


if __name__ == "__main__":
    sys.exit(main())
