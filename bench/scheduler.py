"""Scheduler benchmark (issue 5): 1,000 pending pods onto 100 Node objects through a real server.

A `shipmate server` runs on a spare port with a temporary data dir (nodes are API objects, no agents).
  ours  = 1,000 pods selecting a label no node has yet (all marked Unschedulable first), then the
          label is patched onto 100 existing nodes (concurrently): time from the first node patch until
          the last pod is seen bound on a watch (node updates, scheduling, assume, bindings and the
          watch delivery are all included);
  floor = 1,000 other pods (schedulerName no scheduler serves) bound by this client with a trivial
          round-robin placement, POST pods/binding with the same concurrency as the scheduler's
          bindings, until the last is seen bound on the same kind of watch: the server's raw binding
          rate for the same pods.
With --rounds N (default 3) both are measured N times, alternating, each round with its own pods and
nodes (pods select their round's nodes by the label; a round's nodes are deleted after it),
and the medians are compared: the machine is shared, single runs are noisy.
Prints the rates, then the ratio of the medians ours/floor last (targets: ≥ 200 pods/s, ratio ≥ 0.7).

    /opt/shipmate/venv/bin/python bench/scheduler.py [--pods 1000] [--nodes 100] [--rounds 3] [--keep]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

import aiohttp

from apiserver.scheduler.scheduler import BIND_CONCURRENCY
from shipmate.kubeclient import load_kubeconfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "127.0.0.1:5000/library/busybox:latest"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_name(round_: int, i: int) -> str:
    return f"bench-r{round_}-node-{i:03d}"


def node(round_: int, i: int) -> dict:
    name = node_name(round_, i)
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


def pod(name: str, round_: int, scheduler: str = "default-scheduler") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"schedulerName": scheduler, "nodeSelector": {"bench/round": str(round_)},
                     "containers": [{"name": "c", "image": IMAGE,
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


class Client:
    def __init__(self, kubeconfig: str, concurrency: int):
        config = load_kubeconfig(kubeconfig)
        self.base = config.server
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency * 2,
                                                                            ssl=config.ssl_context()))
        self.concurrency = concurrency

    async def request(self, method: str, path: str, body: dict | None = None, expect: tuple = (200, 201),
                      content_type: str = "application/json") -> dict:
        data = json.dumps(body).encode() if body is not None else None
        async with self.session.request(method, self.base + path, data=data,
                                        headers={"Content-Type": content_type}) as response:
            data = await response.json(content_type=None)
            if response.status not in expect:
                raise RuntimeError(f"{method} {path} → {response.status}: {data}")
            return data

    async def parallel(self, calls) -> None:
        """Run the coroutine factories with `concurrency` workers."""
        queue = list(calls)
        queue.reverse()

        async def worker() -> None:
            while queue:
                await queue.pop()()
        await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    async def close(self) -> None:
        await self.session.close()


async def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def count(client: Client, path: str, predicate) -> int:
    items = (await client.request("GET", path))["items"]
    return sum(1 for item in items if predicate(item))


async def watch_bound(client: Client, namespace: str, expected: int, resource_version: str) -> tuple[float, Counter]:
    """Returns when every pod of the namespace is seen bound: (monotonic time, pods per node)."""
    placement: dict[str, str] = {}
    url = f"{client.base}/api/v1/namespaces/{namespace}/pods?watch=1&resourceVersion={resource_version}"
    async with client.session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
        async for line in response.content:
            event = json.loads(line)
            obj = event["object"]
            node_name = (obj.get("spec") or {}).get("nodeName")
            if node_name:
                placement[obj["metadata"]["name"]] = node_name
                if len(placement) == expected:
                    return time.monotonic(), Counter(placement.values())
    raise RuntimeError("watch ended early")


async def run_round(client: Client, round_: int, pods: int, nodes: int) -> tuple[float, float]:
    sched, floor_ns = f"sched{round_}", f"floor{round_}"
    for namespace in (sched, floor_ns):
        await client.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    # ours: the round's nodes without the label, pending pods (each gets Unschedulable + an event), then the label.
    await client.parallel([lambda i=i: client.request("POST", "/api/v1/nodes", node(round_, i)) for i in range(nodes)])
    await client.parallel([lambda i=i: client.request("POST", f"/api/v1/namespaces/{sched}/pods",
                                                      pod(f"p{i:04d}", round_)) for i in range(pods)])
    await wait_until(lambda: _all_unschedulable(client, sched, pods), 120, "pods marked unschedulable")
    await wait_until(lambda: _events_at_least(client, sched, pods), 120, "FailedScheduling events")
    start_rv = (await client.request("GET", f"/api/v1/namespaces/{sched}/pods"))["metadata"]["resourceVersion"]
    watcher = asyncio.create_task(watch_bound(client, sched, pods, start_rv))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    label = {"metadata": {"labels": {"bench/round": str(round_)}}}
    await client.parallel([lambda i=i: client.request("PATCH", f"/api/v1/nodes/{node_name(round_, i)}", label,
                                                      content_type="application/merge-patch+json")
                           for i in range(nodes)])
    finished, placement = await watcher
    ours = pods / (finished - started)
    print(f"round {round_} scheduler: {pods} pods bound onto {nodes} nodes in {finished - started:.2f}s = "
          f"{ours:.0f} pods/s (pods per node min {min(placement.values())} max {max(placement.values())}, "
          f"{len(placement)} of {nodes} nodes used)")
    await wait_until(lambda: _events_at_least(client, sched, 2 * pods), 120, "Scheduled events")
    # floor: the same number of pods bound by this client, round-robin, same concurrency.
    await client.parallel([lambda i=i: client.request("POST", f"/api/v1/namespaces/{floor_ns}/pods",
                                                      pod(f"f{i:04d}", round_, "bench-trivial")) for i in range(pods)])
    await asyncio.sleep(1.0)

    start_rv = (await client.request("GET", f"/api/v1/namespaces/{floor_ns}/pods"))["metadata"]["resourceVersion"]
    watcher = asyncio.create_task(watch_bound(client, floor_ns, pods, start_rv))
    await asyncio.sleep(0.2)

    def bind(i: int):
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": f"f{i:04d}"},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node_name(round_, i % nodes)}}
        return client.request("POST", f"/api/v1/namespaces/{floor_ns}/pods/f{i:04d}/binding", binding)
    started = time.monotonic()
    await client.parallel([lambda i=i: bind(i) for i in range(pods)])
    finished, _ = await watcher
    floor = pods / (finished - started)
    print(f"round {round_} floor: {pods} bindings (trivial placement, {client.concurrency} concurrent) "
          f"in {pods / floor:.2f}s = {floor:.0f} pods/s")
    # the next round starts from 100 nodes again
    await client.parallel([lambda i=i: client.request("DELETE", f"/api/v1/nodes/{node_name(round_, i)}")
                           for i in range(nodes)])
    await asyncio.sleep(1.0)
    return ours, floor


async def run(kubeconfig: str, pods: int, nodes: int, rounds: int) -> tuple[float, float]:
    client = Client(kubeconfig, BIND_CONCURRENCY)
    try:
        results = [await run_round(client, round_, pods, nodes) for round_ in range(rounds)]
    finally:
        await client.close()
    ours, floor = statistics.median(r[0] for r in results), statistics.median(r[1] for r in results)
    print(f"median over {rounds} rounds: scheduler {ours:.0f} pods/s, floor {floor:.0f} pods/s")
    return ours, floor


async def _all_unschedulable(client: Client, namespace: str, pods: int) -> bool:
    def unschedulable(p: dict) -> bool:
        return any(c.get("type") == "PodScheduled" and c.get("status") == "False"
                   for c in (p.get("status") or {}).get("conditions") or [])
    return await count(client, f"/api/v1/namespaces/{namespace}/pods", unschedulable) == pods


async def _events_at_least(client: Client, namespace: str, wanted: int) -> bool:
    return await count(client, f"/api/v1/namespaces/{namespace}/events", lambda _e: True) >= wanted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server log)")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bench-scheduler-")
    port = free_port()
    log = open(os.path.join(workdir, "server.log"), "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "shipmate.cli", "server", "--bind-address", "127.0.0.1", "--port", str(port),
         "--data-dir", os.path.join(workdir, "data"), "--admin-kubeconfig", os.path.join(workdir, "kubeconfig"),
         "--node-monitor-grace-period", "1h", "--log-level", os.environ.get("BENCH_SERVER_LOG_LEVEL", "WARNING")],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        kubeconfig = os.path.join(workdir, "kubeconfig")
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    if os.path.exists(kubeconfig):  # written once the server serves HTTPS
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start; see " + log.name)
            time.sleep(0.1)
        time.sleep(0.5)
        ours, floor = asyncio.run(run(kubeconfig, args.pods, args.nodes, args.rounds))
        print(f"ratio (scheduler / raw binding floor): {ours / floor:.2f}")
        return 0 if ours >= 200 and ours / floor >= 0.7 else 1
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
