"""Container exit → pod status in the API: ours against containerd's own event delivery (the floor).

Needs the cluster from `make up`. Pods (restartPolicy Never, `sleep 3600`) are created in batches;
then, one at a time, the benchmark kills a container's process (SIGKILL by host pid) and times
  - the floor: until containerd's TaskExit for that container reaches a subscriber of our own;
  - ours: until a watch on the API shows the container terminated in the pod's status
    (containerd event → agent → CRI inspect → status manager PATCH → API server → watch).
Last line: the p50 ratio ours/floor.

    /opt/shipmate/venv/bin/python bench/exit_to_status.py [--exits 50] [--batch 10]
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


async def run(exits: int, batch: int, events_address: str, kubeconfig: str) -> None:
    async with KubeClient(load_kubeconfig(kubeconfig)) as client, CRIClient(events_address) as runtime:
        await ensure_namespace(client)
        await delete_all(client)
        observers = Observers(client, events_address)
        await observers.start()
        ours, floor = Samples("ours: exit → API status (watch)", []), Samples("floor: exit → TaskExit event", [])
        try:
            while len(ours.seconds) < exits:
                names = [f"exit-{uuid.uuid4().hex[:8]}" for _ in range(min(batch, exits - len(ours.seconds)))]
                for name in names:
                    await client.create(PODS, sleeper(name), NAMESPACE)
                await wait_running(observers, names)
                await asyncio.sleep(1.0)            # let the agent settle after the starts
                for name in names:
                    container_id = observers.running[name]
                    api_seen, event_seen = observers.expect(container_id)
                    pid = await container_pid(runtime, container_id)
                    killed = time.perf_counter()
                    os.kill(pid, signal.SIGKILL)
                    event_at, api_at = await asyncio.wait_for(asyncio.gather(event_seen, api_seen), 30)
                    floor.seconds.append(event_at - killed)
                    ours.seconds.append(api_at - killed)
                    await asyncio.sleep(SETTLE)     # the pod's teardown (sandbox stop, CNI DEL) ends first
                await delete_all(client)
        finally:
            await observers.stop()
            await delete_all(client)
            await client.delete(NAMESPACES, NAMESPACE)
        print(floor.line())
        print(ours.line())
        print("slowest ours: " + ", ".join(f"{v * 1000:.0f} ms" for v in sorted(ours.seconds)[-5:]))
        print(f"p99 ours: {ours.percentile(99) * 1000:.1f} ms (target ≤ 1000 ms); "
              f"p99 ratio ours/floor: {ours.percentile(99) / floor.percentile(99):.2f}")
        write_result("exit_to_status", [
            Figure("container exit → pod status p50", ours.percentile(50) * 1000, floor.percentile(50) * 1000, "ms",
                   "≤ 3"),
            Figure("container exit → pod status p99", ours.percentile(99) * 1000, floor.percentile(99) * 1000, "ms",
                   "≤ 1000 ms"),
        ], series={"ours: exit → status on the API (ms)": [v * 1000 for v in ours.seconds],
                   "floor: exit → containerd TaskExit (ms)": [v * 1000 for v in floor.seconds]})
        print(f"p50 ratio ours/floor: {ours.percentile(50) / floor.percentile(50):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exits", type=int, default=50)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--containerd", default="unix:///run/containerd/containerd.sock")
    parser.add_argument("--kubeconfig", default=KUBECONFIG)
    args = parser.parse_args()
    asyncio.run(run(args.exits, args.batch, args.containerd, args.kubeconfig))


if __name__ == "__main__":
    main()
