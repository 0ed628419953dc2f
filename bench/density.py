"""Density: one node fills up to 110 pods (kubelet's default maxPods), then empties again.

Ours: `kubectl scale deployment --replicas=N` (110 bare pods created concurrently when the server has no
apps/v1 Deployments) → every pod Running on a watch; then `--replicas=0` (or deleting the pods) → every
sandbox gone from CRI, every host veth gone and every IPAM entry released. Floor, same run, same
containerd: a raw CRI loop creating the same sandboxes + containers (the configs our agent builds) all at
once — the agent runs every pod worker concurrently, so that is the same concurrency — then stopping and
removing them all at once, timed to the same "nothing left" check.

Needs the cluster from `make up`; works in its own namespace. On a node shared with other pods, N is
capped at the node's free pod capacity (said in the output). Last line: the scale-up ratio ours/floor
(target ≤ 1.5).

    /opt/shipmate/venv/bin/python bench/density.py [--pods 110] [--namespace k-density]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from agent import labels
from agent.container_config import PodContext, container_config
from agent.dns import ResolvConf
from agent.sandbox_config import sandbox_config
from cri.client import CRIClient
from cri.gen import api_pb2
from netns.cni_spec import host_veth_name
from pod_startup import IMAGE, KUBECONFIG, bench_pod, is_running
from result import Figure, write_result
from shipmate.kubeclient import NAMESPACES, NODES, PODS, KubeClient, NotFound, Resource, load_kubeconfig

DEPLOYMENTS = Resource("apps/v1", "deployments")
IPAM_DIR = "/var/lib/shipmate/ipam/shipmate"
AGENT_LOG = "/var/log/shipmate/agent.log"
APP_LABEL = "k-density"
RAW_NAMESPACE = "k-density-raw"      # CRI metadata of the floor's sandboxes (no API object)
CNI_SOCKET = "/run/shipmate/cni.sock"
POLL = 0.1


@dataclass
class Phase:
    """One fill or drain: when it started, when each pod got there, when the last one did."""
    started: float
    done_at: dict[str, float] = field(default_factory=dict)
    finished: float = 0.0

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    def per_pod(self) -> list[float]:
        return sorted(t - self.started for t in self.done_at.values())


# --- what is left of a set of sandboxes ----------------------------------------------------------
def ipam_owners(ipam_dir: str = IPAM_DIR) -> set[str]:
    """Sandbox IDs holding an address (first line of each per-address file)."""
    owners = set()
    for name in os.listdir(ipam_dir):
        if name[0].isdigit():
            try:
                with open(os.path.join(ipam_dir, name)) as entry:
                    owners.add(entry.readline().strip())
            except FileNotFoundError:
                continue
    return owners


async def leftovers(runtime: CRIClient, sandbox_ids: set[str]) -> dict[str, int]:
    """How many of these sandboxes still exist in CRI, still have a host veth, still hold an IP."""
    listed = {s.id for s in await runtime.list_pod_sandbox()}
    links = set(os.listdir("/sys/class/net"))
    owners = await asyncio.to_thread(ipam_owners)
    return {"sandboxes": len(sandbox_ids & listed),
            "veths": sum(host_veth_name(i, "eth0") in links for i in sandbox_ids),
            "ipam": len(sandbox_ids & owners)}


async def wait_gone(runtime: CRIClient, sandbox_ids: set[str], phase: Phase, timeout: float) -> dict[str, int]:
    """Polls until nothing of the sandboxes is left; records when each one was fully gone."""
    deadline = time.perf_counter() + timeout
    while True:
        listed = {s.id for s in await runtime.list_pod_sandbox()}
        links = set(os.listdir("/sys/class/net"))
        owners = await asyncio.to_thread(ipam_owners)
        now = time.perf_counter()
        for sandbox_id in sandbox_ids - set(phase.done_at):
            if sandbox_id not in listed and host_veth_name(sandbox_id, "eth0") not in links \
                    and sandbox_id not in owners:
                phase.done_at[sandbox_id] = now
        if len(phase.done_at) == len(sandbox_ids):
            phase.finished = max(phase.done_at.values(), default=now)
            return {"sandboxes": 0, "veths": 0, "ipam": 0}
        if now > deadline:
            phase.finished = now
            return await leftovers(runtime, sandbox_ids)
        await asyncio.sleep(POLL)


# --- the floor ---------------------------------------------------------------------------------------
class RawFill:
    """The CRI calls kubelet makes for each one-container pod, all pods at once, nothing else."""

    def __init__(self, runtime: CRIClient, node_name: str):
        self.runtime = runtime
        self.node_name = node_name
        self.sandboxes: dict[str, str] = {}     # sandbox id → container id

    async def _start(self, name: str, phase: Phase) -> None:
        pod = bench_pod(name, RAW_NAMESPACE)
        config = sandbox_config(pod, attempt=0, node_name=self.node_name, dns=ResolvConf())
        del config.labels[labels.NODE_NAME]    # not ours: the running agent leaves it alone
        sandbox_id = await self.runtime.run_pod_sandbox(config)
        self.sandboxes[sandbox_id] = ""
        container = container_config(pod, pod["spec"]["containers"][0], restart_count=0,
                                     node_name=self.node_name, context=PodContext())
        del container.labels[labels.NODE_NAME]
        container_id = await self.runtime.create_container(sandbox_id, container, config)
        self.sandboxes[sandbox_id] = container_id
        await self.runtime.start_container(container_id)
        phase.done_at[name] = time.perf_counter()

    async def fill(self, count: int) -> Phase:
        phase = Phase(time.perf_counter())
        await asyncio.gather(*(self._start(f"raw-{i}-{uuid.uuid4().hex[:6]}", phase) for i in range(count)))
        phase.finished = time.perf_counter()
        return phase

    async def _stop(self, sandbox_id: str, container_id: str, grace: int) -> None:
        if container_id:
            await self.runtime.stop_container(container_id, grace)
        await self.runtime.stop_pod_sandbox(sandbox_id)
        await self.runtime.remove_pod_sandbox(sandbox_id)

    async def drain(self, grace: int, timeout: float) -> tuple[Phase, dict[str, int]]:
        ids = set(self.sandboxes)
        phase = Phase(time.perf_counter())
        outcomes = await asyncio.gather(*(self._stop(s, c, grace) for s, c in self.sandboxes.items()),
                                        return_exceptions=True)
        for error in {repr(o) for o in outcomes if isinstance(o, BaseException)}:
            print(f"floor teardown error: {error}", flush=True)
        left = await wait_gone(self.runtime, ids, phase, timeout)
        self.sandboxes.clear()
        return phase, left

    async def remove_leftovers(self) -> int:
        """Sandboxes a killed earlier run left behind (our CRI namespace), removed one at a time."""
        found = [s.id for s in await self.runtime.list_pod_sandbox() if s.metadata.namespace == RAW_NAMESPACE]
        for sandbox_id in found:
            await self.runtime.stop_pod_sandbox(sandbox_id)
            await self.runtime.remove_pod_sandbox(sandbox_id)
        return len(found)


# --- ours -----------------------------------------------------------------------------------------
def pod_template(grace: int) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": APP_LABEL}},
            "spec": {"terminationGracePeriodSeconds": grace, "containers": [
                {"name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}}


class ThroughAPI:
    """Fill and drain through the API server and the agent, watching the namespace's pods."""

    def __init__(self, client: KubeClient, runtime: CRIClient, namespace: str, kubeconfig: str, grace: int,
                 use_deployment: bool):
        self.client, self.runtime = client, runtime
        self.namespace, self.kubeconfig, self.grace = namespace, kubeconfig, grace
        self.use_deployment = use_deployment
        self.running: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.watcher: asyncio.Task[None] | None = None

    @property
    def how(self) -> str:
        return "kubectl scale deployment" if self.use_deployment else "bare pods created concurrently"

    async def start(self) -> None:
        if self.use_deployment:
            await self.client.create(DEPLOYMENTS, {
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": APP_LABEL},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": APP_LABEL}},
                         "template": pod_template(self.grace)}}, self.namespace)
        listed = await self.client.list(PODS, self.namespace)
        self.watcher = asyncio.create_task(self._watch(listed["metadata"]["resourceVersion"]))

    async def _watch(self, resource_version: str) -> None:
        async for event in self.client.watch(PODS, self.namespace, resource_version=resource_version):
            name = event.object.get("metadata", {}).get("name")
            if event.type == "DELETED" or not is_running(event.object):
                self.running.pop(name, None)
            elif name not in self.running:
                self.running[name] = time.perf_counter()
            self.changed.set()

    async def _scale(self, replicas: int) -> None:
        await asyncio.to_thread(subprocess.run, [
            "kubectl", "--kubeconfig", self.kubeconfig, "-n", self.namespace, "scale", "deployment", APP_LABEL,
            f"--replicas={replicas}"], check=True, capture_output=True)

    async def fill(self, count: int, timeout: float) -> Phase:
        phase = Phase(time.perf_counter())
        if self.use_deployment:
            await self._scale(count)
        else:
            template = pod_template(self.grace)
            await asyncio.gather(*(self.client.create(PODS, {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{APP_LABEL}-{i}", **template["metadata"]},
                "spec": template["spec"]}, self.namespace) for i in range(count)))
        deadline = phase.started + timeout
        while len(self.running) < count:
            self.changed.clear()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.running)}/{count} pods Running after {timeout:.0f} s")
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        phase.done_at = {name: at for name, at in self.running.items() if at >= phase.started}
        phase.finished = max(self.running.values())
        return phase

    async def sandbox_ids(self) -> set[str]:
        found = await self.runtime.list_pod_sandbox(api_pb2.PodSandboxFilter(
            label_selector={labels.POD_NAMESPACE: self.namespace}))
        return {s.id for s in found}

    async def drain(self, timeout: float) -> tuple[Phase, dict[str, int]]:
        ids = await self.sandbox_ids()
        phase = Phase(time.perf_counter())
        if self.use_deployment:
            await self._scale(0)
        else:
            pods = (await self.client.list(PODS, self.namespace))["items"]
            await asyncio.gather(*(self.client.delete(PODS, p["metadata"]["name"], self.namespace) for p in pods))
        left = await wait_gone(self.runtime, ids, phase, timeout)
        return phase, left

    async def close(self) -> None:
        if self.watcher:
            self.watcher.cancel()
            await asyncio.gather(self.watcher, return_exceptions=True)


# --- run ------------------------------------------------------------------------------------------
async def free_capacity(client: KubeClient, node_name: str, namespace: str) -> tuple[int, int]:
    """(pods the node can still take, pods of others on it)."""
    node = await client.get(NODES, node_name)
    capacity = int(node["status"]["allocatable"]["pods"])
    pods = (await client.list(PODS, field_selector=f"spec.nodeName={node_name}"))["items"]
    others = [p for p in pods if p["metadata"]["namespace"] != namespace
              and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
    return capacity - len(others), len(others)


async def fresh_namespace(client: KubeClient, namespace: str, timeout: float = 120.0) -> None:
    """Creates the namespace once an earlier run's copy (maybe still terminating) is gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.get(NAMESPACES, namespace)
        except NotFound:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"namespace {namespace} of an earlier run still there after {timeout:.0f} s")
        await client.delete(NAMESPACES, namespace)
        await asyncio.sleep(1.0)
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})


async def has_deployments(client: KubeClient) -> bool:
    try:
        resources = await client.request("GET", "/apis/apps/v1")
    except NotFound:
        return False
    return any(r.get("name") == "deployments" for r in resources.get("resources", []))


def agent_log_errors(offset: int) -> list[str]:
    try:
        with open(AGENT_LOG, errors="replace") as log:
            log.seek(offset)
            return [line.rstrip() for line in log if " ERROR " in line or "Traceback" in line]
    except FileNotFoundError:
        return []


async def run(args: argparse.Namespace) -> None:
    async with KubeClient(load_kubeconfig(args.kubeconfig)) as client, \
            CRIClient(args.containerd, timeout=args.cri_timeout) as runtime:
        node_name = args.node or (await client.list(NODES))["items"][0]["metadata"]["name"]
        free, others = await free_capacity(client, node_name, args.namespace)
        count = min(args.pods, free)
        if count < 1:
            raise SystemExit(f"node {node_name} has no free pod capacity ({others} pods of others)")
        if not os.path.exists(CNI_SOCKET):
            raise SystemExit(f"no agent on this host ({CNI_SOCKET} missing): CNI would take its slow fallback")
        use_deployment = await has_deployments(client)
        await fresh_namespace(client, args.namespace)
        ours = ThroughAPI(client, runtime, args.namespace, args.kubeconfig, args.grace, use_deployment)
        raw = RawFill(runtime, node_name)
        if removed := await raw.remove_leftovers():
            print(f"removed {removed} sandboxes left by an earlier run", flush=True)
        log_offset = os.path.getsize(AGENT_LOG) if os.path.exists(AGENT_LOG) else 0
        print(f"node {node_name}: {count} pods of ours ({ours.how}) next to {others} pods of others "
              f"(node total {count + others}, allocatable pods {free + others})", flush=True)
        try:
            await runtime.pull_image(IMAGE)
            await ours.start()
            raw_fill = await raw.fill(count)
            raw_drain, raw_left = await raw.drain(args.grace, args.timeout)
            print(f"floor (raw CRI, {count} at once): fill {raw_fill.seconds:.2f} s, drain {raw_drain.seconds:.2f} s"
                  f" (left: {raw_left})", flush=True)
            ours_fill = await ours.fill(count, args.timeout)
            ours_drain, ours_left = await ours.drain(args.timeout)
            print(f"ours ({ours.how}): {count} Running in {ours_fill.seconds:.2f} s, drained in "
                  f"{ours_drain.seconds:.2f} s (left: {ours_left})", flush=True)
        finally:
            await ours.close()
            try:
                await client.delete(NAMESPACES, args.namespace)
            except NotFound:
                pass
            if raw.sandboxes:
                await raw.drain(args.grace, 60)
    errors = agent_log_errors(log_offset)
    print(f"agent.log: {len(errors)} ERROR/Traceback lines during the run" +
          "".join(f"\n  {line[:200]}" for line in errors[:5]))
    clean = not any(ours_left.values())
    fill_ratio, drain_ratio = ours_fill.seconds / raw_fill.seconds, ours_drain.seconds / raw_drain.seconds
    write_result("density", [
        Figure(f"{count} pods to Running ({ours.how})", ours_fill.seconds, raw_fill.seconds, "s", "≤ 1.5"),
        Figure(f"{count} pods to 0: no sandbox, veth or IP left", ours_drain.seconds, raw_drain.seconds, "s",
               "clean", met=clean),
    ], series={"ours fill: pod Running after (s)": ours_fill.per_pod(),
               "floor fill: pod started after (s)": raw_fill.per_pod(),
               "ours drain: sandbox gone after (s)": ours_drain.per_pod(),
               "floor drain: sandbox gone after (s)": raw_drain.per_pod()},
        notes=f"node {node_name}, {others} other pods on it; {ours.how}; agent.log errors {len(errors)}")
    print(f"drain ratio ours/floor: {drain_ratio:.2f}; left behind after drain: {ours_left}")
    print(f"density: {count} pods to Running ratio ours/floor: {fill_ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=110)
    parser.add_argument("--namespace", default="k-density")
    parser.add_argument("--node", default="", help="default: the first node listed")
    parser.add_argument("--kubeconfig", default=KUBECONFIG)
    parser.add_argument("--containerd", default="unix:///run/containerd/containerd.sock")
    parser.add_argument("--grace", type=int, default=1, help="terminationGracePeriodSeconds (floor: StopContainer)")
    parser.add_argument("--timeout", type=float, default=600.0, help="per phase")
    parser.add_argument("--cri-timeout", type=float, default=120.0, help="per CRI call of the floor")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
