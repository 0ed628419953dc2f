"""Pod start latency: ours (API create → Running) against the raw CRI sequence.

Needs the cluster from `make up`. The raw baseline runs RunPodSandbox + CreateContainer +
StartContainer with the same image, the same CNI and the sandbox/container configs our agent
would build, on the same containerd, in the same run. Last line: the p50 ratio ours/raw
(pods one by one).

    /opt/shipmate/venv/bin/python bench/pod_startup.py [--pods 20]
"""
from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from agent import labels
from agent.container_config import PodContext, container_config
from agent.dns import ResolvConf
from agent.sandbox_config import sandbox_config
from cri.client import CRIClient
from result import Figure, Samples, write_result
from shipmate.kubeclient import NAMESPACES, NODES, PODS, KubeClient, NotFound, load_kubeconfig

IMAGE = "127.0.0.1:5000/library/busybox:latest"
KUBECONFIG = "/etc/shipmate/admin.kubeconfig"




def bench_pod(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            {"name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
             "command": ["sleep", "3600"]}]},
    }


class RawCRI:
    """The floor: the CRI calls a kubelet must make for a one-container pod, nothing else."""

    def __init__(self, runtime: CRIClient, node_name: str):
        self.runtime = runtime
        self.node_name = node_name
        self.sandboxes: list[str] = []

    async def start_one(self, name: str) -> float:
        pod = bench_pod(name, "bench-raw")
        started = time.perf_counter()
        config = sandbox_config(pod, attempt=0, node_name=self.node_name, dns=ResolvConf())
        # Without our node label the running agent leaves these sandboxes alone (no orphan cleanup).
        del config.labels[labels.NODE_NAME]
        sandbox_id = await self.runtime.run_pod_sandbox(config)
        self.sandboxes.append(sandbox_id)
        container = container_config(pod, pod["spec"]["containers"][0], restart_count=0,
                                     node_name=self.node_name, context=PodContext())
        del container.labels[labels.NODE_NAME]
        container_id = await self.runtime.create_container(sandbox_id, container, config)
        await self.runtime.start_container(container_id)
        return time.perf_counter() - started

    async def cleanup(self) -> None:
        for sandbox_id in self.sandboxes:
            await self.runtime.stop_pod_sandbox(sandbox_id)
            await self.runtime.remove_pod_sandbox(sandbox_id)
        self.sandboxes.clear()


def is_running(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return pod.get("status", {}).get("phase") == "Running" and bool(statuses) and \
        all("running" in s.get("state", {}) for s in statuses)


class ThroughAPI:
    """Ours: create the pod through the API and wait, on one watch, for it to be Running."""

    def __init__(self, client: KubeClient, namespace: str):
        self.client = client
        self.namespace = namespace
        self.running_at: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.watcher: asyncio.Task[None] | None = None

    async def start_watch(self) -> None:
        listed = await self.client.list(PODS, self.namespace)
        self.watcher = asyncio.create_task(self._watch(listed["metadata"]["resourceVersion"]))

    async def _watch(self, resource_version: str) -> None:
        async for event in self.client.watch(PODS, self.namespace, resource_version=resource_version):
            if event.type in ("ADDED", "MODIFIED") and is_running(event.object):
                name = event.object["metadata"]["name"]
                waiter = self.waiters.get(name)
                if waiter and not waiter.done():
                    waiter.set_result(time.perf_counter())

    async def start_one(self, name: str) -> float:
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[name] = waiter
        pod = bench_pod(name, self.namespace)
        del pod["metadata"]["uid"]
        started = time.perf_counter()
        await self.client.create(PODS, pod, self.namespace)
        return await asyncio.wait_for(waiter, timeout=120) - started

    async def cleanup(self) -> None:
        pods = (await self.client.list(PODS, self.namespace))["items"]
        for pod in pods:
            await self.client.delete(PODS, pod["metadata"]["name"], self.namespace, grace_period_seconds=1)
        deadline = time.monotonic() + 120
        while (await self.client.list(PODS, self.namespace))["items"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"pods in {self.namespace} not gone after 120 s")
            await asyncio.sleep(0.2)
        self.waiters.clear()

    async def close(self) -> None:
        if self.watcher:
            self.watcher.cancel()


async def measure(runner: RawCRI | ThroughAPI, label: str, count: int, concurrent: bool) -> Samples:
    names = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    if concurrent:
        seconds = list(await asyncio.gather(*(runner.start_one(n) for n in names)))
    else:
        seconds = [await runner.start_one(n) for n in names]
    await runner.cleanup()
    return Samples(label, seconds, width=28)


async def run(count: int) -> None:
    config = load_kubeconfig(KUBECONFIG)
    async with KubeClient(config) as client, CRIClient() as runtime:
        node_name = (await client.list(NODES))["items"][0]["metadata"]["name"]
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": namespace}})
        raw, ours = RawCRI(runtime, node_name), ThroughAPI(client, namespace)
        await ours.start_watch()
        try:
            await runtime.pull_image(IMAGE)
            await measure(raw, "warm-up raw", 1, False)
            await measure(ours, "warm-up ours", 1, False)
            results = [
                await measure(raw, "raw CRI, one by one", count, False),
                await measure(ours, "ours, one by one", count, False),
                await measure(raw, f"raw CRI, {count} at once", count, True),
                await measure(ours, f"ours, {count} at once", count, True),
            ]
        finally:
            await raw.cleanup()
            await ours.cleanup()
            await ours.close()
            try:
                await client.delete(NAMESPACES, namespace)
            except NotFound:
                pass
    for figures in results:
        print(figures.line())
    raw_seq, ours_seq, raw_par, ours_par = results
    print(f"{count} at once: p50 ratio ours/raw {ours_par.percentile(50) / raw_par.percentile(50):.2f}")
    write_result("pod_startup", [
        Figure("pod start p50, one by one", ours_seq.percentile(50) * 1000, raw_seq.percentile(50) * 1000, "ms",
               "≤ 1.5"),
        Figure("pod start p99, one by one", ours_seq.percentile(99) * 1000, raw_seq.percentile(99) * 1000, "ms"),
        Figure(f"pod start p50, {count} at once", ours_par.percentile(50) * 1000, raw_par.percentile(50) * 1000,
               "ms"),
    ], series={f"{f.label} (ms)": [v * 1000 for v in f.seconds] for f in results})
    print(f"pod_startup p50 ratio ours/raw (one by one): "
          f"{ours_seq.percentile(50) / raw_seq.percentile(50):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20)
    asyncio.run(run(parser.parse_args().pods))


if __name__ == "__main__":
    main()
