"""Container exit → pod status in the API: ours against containerd's own event delivery (the floor).

Needs the cluster from `make up`. Pods (restartPolicy Never, `sleep 3600`) are created in batches;
then the benchmark kills containers' processes (SIGKILL by host pid) and times, per container,
  - the floor: until containerd's TaskExit for that container reaches a subscriber of our own;
  - ours: until a watch on the API shows the container terminated in the pod's status
    (containerd event → agent → status manager PATCH → API server → watch).
Two ways: one exit at a time (`--exits`), and `--concurrent` exits at once (a batch killed together,
`--concurrent-rounds` times). Targets, each way: p50 ≤ 3 × the floor's p50, p99 ≤ 50 ms.
Last line: the one-at-a-time p50 ratio ours/floor.

    /opt/shipmate/venv/bin/python bench/exit_to_status.py [--exits 50] [--batch 10] [--concurrent 20]
        [--concurrent-rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
import uuid
from typing import Any

from cri.client import CRIClient
from cri.events import ContainerdEvents
from result import Figure, Samples, write_result
from shipmate.kubeclient import NAMESPACES, PODS, KubeClient, NotFound, load_kubeconfig

IMAGE = "127.0.0.1:5000/library/busybox:latest"
KUBECONFIG = "/etc/shipmate/admin.kubeconfig"
NAMESPACE = "bench-exit"
SETTLE = 1.0
P50_RATIO_TARGET = "≤ 3"
P99_TARGET = "≤ 50 ms"


def sleeper(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                     "command": ["sleep", "3600"]}]}}


def app_state(pod: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status["name"] == "app":
            return status.get("containerID", ""), status.get("state", {})
    return "", {}


class Observers:
    """One API watch and one containerd subscription; futures resolve when they see an exit."""

    def __init__(self, client: KubeClient, events_address: str):
        self.client = client
        self.events_address = events_address
        self.running: dict[str, str] = {}                          # pod name → container id
        self.running_changed = asyncio.Event()
        self.api_exit: dict[str, asyncio.Future[float]] = {}       # container id → when the API showed it
        self.event_exit: dict[str, asyncio.Future[float]] = {}     # container id → when TaskExit arrived
        self.tasks: list[asyncio.Task[None]] = []
        self.subscribed = asyncio.Event()

    def expect(self, container_id: str) -> tuple[asyncio.Future[float], asyncio.Future[float]]:
        loop = asyncio.get_running_loop()
        self.api_exit[container_id] = loop.create_future()
        self.event_exit[container_id] = loop.create_future()
        return self.api_exit[container_id], self.event_exit[container_id]

    async def start(self) -> None:
        self.tasks = [asyncio.create_task(self._watch()), asyncio.create_task(self._events())]
        await asyncio.wait_for(self.subscribed.wait(), 10)

    async def _watch(self) -> None:
        while True:       # the shared cluster's server may be restarted meanwhile: list and watch again
            try:
                listed = await self.client.list(PODS, NAMESPACE)
                for pod in listed["items"]:
                    self._seen(pod, time.perf_counter())
                async for event in self.client.watch(PODS, NAMESPACE,
                                                     resource_version=listed["metadata"]["resourceVersion"]):
                    self._seen(event.object, time.perf_counter())
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001
                print(f"watch broke ({error!r}), watching again")
                await asyncio.sleep(0.5)

    def _seen(self, pod: dict[str, Any], now: float) -> None:
        container_id, state = app_state(pod)
        container_id = container_id.split("://", 1)[-1]
        if "running" in state and container_id:
            self.running[pod["metadata"]["name"]] = container_id
            self.running_changed.set()
        waiter = self.api_exit.get(container_id)
        if "terminated" in state and waiter is not None and not waiter.done():
            waiter.set_result(now)

    async def _events(self) -> None:
        async with ContainerdEvents(self.events_address) as events:
            stream = events.subscribe(("/tasks/exit",))
            # containerd acknowledges nothing: the first read starts the call; give it a moment.
            reader = asyncio.ensure_future(stream.__anext__())
            await asyncio.sleep(0.3)
            self.subscribed.set()
            while True:
                event = await reader
                now = time.perf_counter()
                waiter = self.event_exit.get(event.container_id)
                if event.init_process and waiter is not None and not waiter.done():
                    waiter.set_result(now)
                reader = asyncio.ensure_future(stream.__anext__())

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def container_pid(runtime: CRIClient, container_id: str) -> int:
    status = await runtime.container_status(container_id, verbose=True)
    return int(json.loads(status.info["info"])["pid"])


async def wait_running(observers: Observers, names: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not all(n in observers.running for n in names):
        if time.monotonic() > deadline:
            missing = [n for n in names if n not in observers.running]
            raise RuntimeError(f"pods not Running after {timeout:.0f}s: {missing}")
        observers.running_changed.clear()
        try:
            await asyncio.wait_for(observers.running_changed.wait(), 1)
        except asyncio.TimeoutError:
            pass


async def delete_all(client: KubeClient) -> None:
    for pod in (await client.list(PODS, NAMESPACE))["items"]:
        try:
            await client.delete(PODS, pod["metadata"]["name"], NAMESPACE, grace_period_seconds=0)
        except NotFound:
            pass
    deadline = time.monotonic() + 120
    while (await client.list(PODS, NAMESPACE))["items"]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"pods in {NAMESPACE} not gone after 120 s")
        await asyncio.sleep(0.2)


async def ensure_namespace(client: KubeClient, timeout: float = 60) -> None:
    """Creates the namespace, waiting out an earlier run's one that is still terminating."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            namespace = await client.get(NAMESPACES, NAMESPACE)
        except NotFound:
            await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
            continue
        if not namespace["metadata"].get("deletionTimestamp"):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"namespace {NAMESPACE} still terminating after {timeout:.0f}s")
        await asyncio.sleep(0.5)


async def kill_and_time(runtime: CRIClient, observers: Observers, names: list[str], ours: Samples,
                        floor: Samples) -> None:
    """Kills the named pods' containers together; adds each one's exit → TaskExit and exit → API times."""
    waits, pids = [], []
    for name in names:
        container_id = observers.running[name]
        waits.append(observers.expect(container_id))
        pids.append(await container_pid(runtime, container_id))
    killed = []
    for pid in pids:
        killed.append(time.perf_counter())
        os.kill(pid, signal.SIGKILL)
    for at, (api_seen, event_seen) in zip(killed, waits):
        event_at, api_at = await asyncio.wait_for(asyncio.gather(event_seen, api_seen), 30)
        floor.seconds.append(event_at - at)
        ours.seconds.append(api_at - at)


async def measure(client: KubeClient, runtime: CRIClient, observers: Observers, exits: int, batch: int,
                  together: bool) -> tuple[Samples, Samples]:
    """`exits` exits in batches of `batch` pods: one at a time, or each batch killed at once."""
    how = f"{batch} at once" if together else "one at a time"
    ours = Samples(f"ours: exit → API status, {how}", [], width=44)
    floor = Samples(f"floor: exit → TaskExit, {how}", [], width=44)
    while len(ours.seconds) < exits:
        names = [f"exit-{uuid.uuid4().hex[:8]}" for _ in range(min(batch, exits - len(ours.seconds)))]
        for name in names:
            await client.create(PODS, sleeper(name), NAMESPACE)
        await wait_running(observers, names)
        await asyncio.sleep(1.0)            # let the agent settle after the starts
        if together:
            await kill_and_time(runtime, observers, names, ours, floor)
        else:
            for name in names:
                await kill_and_time(runtime, observers, [name], ours, floor)
                await asyncio.sleep(SETTLE)     # the pod's teardown (sandbox stop, CNI DEL) ends first
        await asyncio.sleep(SETTLE)
        await delete_all(client)
    print(floor.line())
    print(ours.line())
    print("  slowest ours: " + ", ".join(f"{v * 1000:.0f} ms" for v in sorted(ours.seconds)[-5:])
          + f"; p50 ratio {ours.percentile(50) / floor.percentile(50):.2f}", flush=True)
    return ours, floor


def figures_for(how: str, ours: Samples, floor: Samples) -> list[Figure]:
    return [Figure(f"container exit → pod status p50, {how}", ours.percentile(50) * 1000,
                   floor.percentile(50) * 1000, "ms", P50_RATIO_TARGET),
            Figure(f"container exit → pod status p99, {how}", ours.percentile(99) * 1000,
                   floor.percentile(99) * 1000, "ms", P99_TARGET)]


async def run(args: argparse.Namespace) -> None:
    async with KubeClient(load_kubeconfig(args.kubeconfig)) as client, CRIClient(args.containerd) as runtime:
        await ensure_namespace(client)
        await delete_all(client)
        observers = Observers(client, args.containerd)
        await observers.start()
        try:
            single = await measure(client, runtime, observers, args.exits, args.batch, together=False)
            burst = await measure(client, runtime, observers, args.concurrent * args.concurrent_rounds,
                                  args.concurrent, together=True) if args.concurrent else None
        finally:
            await observers.stop()
            await delete_all(client)
            await client.delete(NAMESPACES, NAMESPACE)
        figures = figures_for("one at a time", *single)
        series = {"ours: exit → status on the API, one at a time (ms)": [v * 1000 for v in single[0].seconds],
                  "floor: exit → containerd TaskExit, one at a time (ms)": [v * 1000 for v in single[1].seconds]}
        if burst is not None:
            figures += figures_for(f"{args.concurrent} at once", *burst)
            series[f"ours: exit → status on the API, {args.concurrent} at once (ms)"] = \
                [v * 1000 for v in burst[0].seconds]
        for figure in figures:
            print(f"{figure.name}: {figure.value:.1f} ms (floor {figure.baseline:.1f} ms, ratio {figure.ratio:.2f}; "
                  f"target {figure.target}: {'met' if figure.met else 'MISSED'})")
        write_result("exit_to_status", figures, series=series)
        ours, floor = single
        print(f"p50 ratio ours/floor: {ours.percentile(50) / floor.percentile(50):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exits", type=int, default=50)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--concurrent", type=int, default=20, help="exits at once in the burst rounds (0: none)")
    parser.add_argument("--concurrent-rounds", type=int, default=3)
    parser.add_argument("--containerd", default="unix:///run/containerd/containerd.sock")
    parser.add_argument("--kubeconfig", default=KUBECONFIG)
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
