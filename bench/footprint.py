"""Footprint: the agent's memory and CPU at idle with the node's pods as they are and with the node full
(110 pods, kubelet's default maxPods), and the API server's memory with 10k pods stored.

- Agent (the running cluster's, pid from /run/shipmate/agent.pid): psutil samples RSS each second over
  `--seconds` (60) after the pods settled, of the agent and its live child processes; CPU = user+system
  seconds over the window of the agent and every child process it started (iptables-restore, nft,
  conntrack, CNI helpers...): the agent's own times, the times of children it reaped (the kernel's
  cutime/cstime) and those of children still running, so short-lived children are counted.
  The node is filled to its allocatable pod count with pods of our own namespace (others' pods count).
- Server: a `shipmate server` of our own (spare port, temporary data dir, nothing else talks to it);
  10k pods created through the API (64 concurrent clients), then RSS sampled the same way.

Targets (absolute, so the ratio printed is figure / limit): agent RSS ≤ 80 MiB idle with the node's pods as
found and ≤ 100 MiB with 110 pods, agent CPU at idle with 110 pods ≤ 1 % of one core (children included),
server RSS with 10k pods ≤ 300 MiB. Last line: the agent RSS ratio with the node full.

    /opt/shipmate/venv/bin/python bench/footprint.py [--seconds 60] [--no-fill] [--no-server]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass

import psutil

from density import ThroughAPI, free_capacity, fresh_namespace, has_deployments
from pod_startup import IMAGE, KUBECONFIG
from result import Figure, write_result
from cri.client import CRIClient
from shipmate.kubeclient import NAMESPACES, NODES, PODS, KubeClient, NotFound, load_kubeconfig

MIB = 2 ** 20
AGENT_PID_FILE = "/run/shipmate/agent.pid"
AGENT_RSS_IDLE_LIMIT_MIB = 80       # the node's pods as found
AGENT_RSS_LIMIT_MIB = 100            # with the node full (110 pods)
AGENT_CPU_LIMIT_PERCENT = 1
SERVER_RSS_LIMIT_MIB = 300


@dataclass
class Usage:
    rss_mib: float          # median of the samples
    rss_max_mib: float
    cpu_percent: float      # of one core, over the window
    samples: list[float]

    def line(self, label: str) -> str:
        return (f"{label:<40} RSS {self.rss_mib:6.1f} MiB (max {self.rss_max_mib:6.1f})  "
                f"CPU {self.cpu_percent:5.2f} % of a core")


def tree_cpu_seconds(process: psutil.Process) -> float:
    """User+system seconds of a process and every descendant it ever had: its own, its reaped children's
    (cutime/cstime, which include their reaped descendants) and, recursively, its live children's. The
    sum is continuous when a child exits and is reaped, so a difference of two readings counts every
    child's work in between, short-lived ones included."""
    try:
        times = process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        children = process.children()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return 0.0
    return total + sum(tree_cpu_seconds(child) for child in children)


def tree_rss_mib(process: psutil.Process) -> float:
    """RSS of a process and its live descendants."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / MIB


async def sample(pid: int, seconds: float) -> Usage:
    process = psutil.Process(pid)
    started, cpu_start = time.monotonic(), tree_cpu_seconds(process)
    samples = []
    while True:
        samples.append(tree_rss_mib(process))
        if time.monotonic() - started >= seconds:
            break
        await asyncio.sleep(1.0)
    cpu = tree_cpu_seconds(process) - cpu_start
    return Usage(statistics.median(samples), max(samples), 100 * cpu / (time.monotonic() - started), samples)


def running_pods_on(pods: list[dict], node_name: str) -> int:
    return sum(1 for p in pods if p.get("spec", {}).get("nodeName") == node_name
               and p.get("status", {}).get("phase") == "Running")


# --- agent ----------------------------------------------------------------------------------------
async def agent_footprint(args: argparse.Namespace) -> list[tuple[str, int, Usage]]:
    with open(AGENT_PID_FILE) as pid_file:
        pid = int(pid_file.read())
    results = []
    async with KubeClient(load_kubeconfig(args.kubeconfig)) as client, CRIClient(args.containerd) as runtime:
        node_name = args.node or (await client.list(NODES))["items"][0]["metadata"]["name"]

        async def measure(label: str) -> None:
            await asyncio.sleep(args.settle)
            pods = (await client.list(PODS, field_selector=f"spec.nodeName={node_name}"))["items"]
            count = running_pods_on(pods, node_name)
            usage = await sample(pid, args.seconds)
            print(usage.line(f"agent, {label} ({count} pods Running)"), flush=True)
            results.append((label, count, usage))

        await measure("as found")
        if not args.fill:
            return results
        free, others = await free_capacity(client, node_name, args.namespace)
        await fresh_namespace(client, args.namespace)
        filler = ThroughAPI(client, runtime, args.namespace, args.kubeconfig, 1, await has_deployments(client))
        try:
            await runtime.pull_image(IMAGE)
            await filler.start()
            await filler.fill(free, args.timeout)
            await measure("node full")
            await filler.drain(args.timeout)
        finally:
            await filler.close()
            try:
                await client.delete(NAMESPACES, args.namespace)
            except NotFound:
                pass
    return results


# --- server ---------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pod_body(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"fp-{i:05d}", "labels": {"app": "footprint", "shard": str(i % 16)}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                {"name": "app", "image": IMAGE, "command": ["sleep", "3600"],
                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


async def server_footprint(args: argparse.Namespace) -> tuple[Usage, Usage]:
    with tempfile.TemporaryDirectory(prefix="k-footprint-") as work:
        port = free_port()
        kubeconfig = os.path.join(work, "admin.kubeconfig")
        with open(os.path.join(work, "server.log"), "wb") as log:
            server = subprocess.Popen([sys.executable, "-m", "shipmate.cli", "server", "--bind-address", "127.0.0.1",
                                       "--port", str(port), "--data-dir", os.path.join(work, "data"),
                                       "--admin-kubeconfig", kubeconfig],
                                      stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    config = load_kubeconfig(kubeconfig)  # written once the server serves HTTPS
                    with urllib.request.urlopen(config.server + "/readyz", timeout=2, context=config.ssl_context()):
                        break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("own server did not start: " +
                                           open(os.path.join(work, "server.log")).read()[-2000:])
                    await asyncio.sleep(0.2)
            empty = await sample(server.pid, min(args.seconds, 10))
            print(empty.line("server, empty"), flush=True)
            created = time.perf_counter()
            async with KubeClient(load_kubeconfig(kubeconfig)) as client:
                await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "footprint"}})
                queue = iter(range(args.server_pods))

                async def creator() -> None:
                    for i in queue:
                        await client.create(PODS, pod_body(i), "footprint")
                await asyncio.gather(*(creator() for _ in range(64)))
                print(f"server: {args.server_pods} pods created in {time.perf_counter() - created:.1f} s", flush=True)
                stored = len((await client.list(PODS, "footprint"))["items"])
                assert stored == args.server_pods, f"{stored} pods stored, {args.server_pods} created"
            await asyncio.sleep(args.settle)
            full = await sample(server.pid, args.seconds)
            print(full.line(f"server, {args.server_pods} pods stored"), flush=True)
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return empty, full


async def run(args: argparse.Namespace) -> None:
    figures, series = [], {}
    agent = await agent_footprint(args) if args.agent else []
    for label, count, usage in agent:
        series[f"agent RSS, {count} pods (MiB)"] = usage.samples
        series.setdefault("pods per node", []).append(count)
        series.setdefault("agent RSS median (MiB)", []).append(usage.rss_mib)
        series.setdefault("agent CPU (% of a core)", []).append(usage.cpu_percent)
    if args.server:
        empty, full = await server_footprint(args)
        figures.append(Figure(f"server RSS, {args.server_pods} pods stored", full.rss_mib, None, "MiB",
                              f"≤ {SERVER_RSS_LIMIT_MIB} MiB", ratio=full.rss_mib / SERVER_RSS_LIMIT_MIB,
                              baseline_label=f"empty server {empty.rss_mib:.0f} MiB"))
        print(f"server RSS with {args.server_pods} pods / {SERVER_RSS_LIMIT_MIB} MiB: "
              f"{full.rss_mib / SERVER_RSS_LIMIT_MIB:.2f}")
    for label, count, usage in agent:
        figures.append(Figure(f"agent CPU at idle, {count} pods (children included)", usage.cpu_percent, None,
                              "% of a core",
                              f"≤ {AGENT_CPU_LIMIT_PERCENT} %", ratio=usage.cpu_percent / AGENT_CPU_LIMIT_PERCENT,
                              baseline_label="limit"))
        print(f"agent CPU at idle with {count} pods / {AGENT_CPU_LIMIT_PERCENT} %: "
              f"{usage.cpu_percent / AGENT_CPU_LIMIT_PERCENT:.2f}")
    for label, count, usage in agent:
        limit = AGENT_RSS_IDLE_LIMIT_MIB if label == "as found" else AGENT_RSS_LIMIT_MIB
        figures.append(Figure(f"agent RSS, {count} pods ({label})", usage.rss_mib, None, "MiB", f"≤ {limit} MiB",
                              ratio=usage.rss_mib / limit, baseline_label="limit"))
    write_result("footprint", figures, series, notes=f"psutil, {args.seconds:.0f} s windows")
    if agent:
        label, count, usage = agent[-1]
        print(f"footprint: agent RSS with {count} pods / {AGENT_RSS_LIMIT_MIB} MiB: "
              f"{usage.rss_mib / AGENT_RSS_LIMIT_MIB:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="sampling window (fewer for a quick run)")
    parser.add_argument("--settle", type=float, default=10.0, help="wait before sampling")
    parser.add_argument("--no-fill", dest="fill", action="store_false", help="do not fill the node to 110 pods")
    parser.add_argument("--no-agent", dest="agent", action="store_false")
    parser.add_argument("--no-server", dest="server", action="store_false")
    parser.add_argument("--server-pods", type=int, default=10000)
    parser.add_argument("--namespace", default="k-footprint")
    parser.add_argument("--node", default="")
    parser.add_argument("--kubeconfig", default=KUBECONFIG)
    parser.add_argument("--containerd", default="unix:///run/containerd/containerd.sock")
    parser.add_argument("--timeout", type=float, default=600.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
