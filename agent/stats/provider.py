"""Samples of the node's and its running containers' CPU and memory, read from cgroups on demand (at most once
per `min_interval`: concurrent scrapes share one collection) and kept only for live containers.

A container's cgroup is found once, from its init process (CRI verbose ContainerStatus `pid` →
/proc/<pid>/cgroup), and cached by container id until the container is gone. usageNanoCores (the Summary API's
rate) is computed against the previous collection, as cAdvisor's between two housekeeping samples.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from cri.client import CRIClient
from cri.errors import CRIError
from cri.gen import api_pb2

from agent import labels
from agent.stats.cgroups import (CGROUP_ROOT, CgroupError, CgroupPaths, Usage, is_unified, paths_of_process,
                                 read_node_cpu_ns, read_node_memory, read_usage)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContainerSample:
    id: str
    name: str
    namespace: str
    pod: str
    pod_uid: str
    start_ns: int            # when the runtime created it
    timestamp_ns: int        # when the figures were read (wall clock)
    usage: Usage


@dataclass(frozen=True)
class NodeSample:
    timestamp_ns: int
    cpu_ns: int
    memory_usage: int
    working_set: int
    available: int
    boot_time_ns: int = 0


@dataclass
class Snapshot:
    node: NodeSample
    containers: list[ContainerSample] = field(default_factory=list)
    nano_cores: dict[str, int] = field(default_factory=dict)    # container id → rate since the previous snapshot
    node_nano_cores: int | None = None
    errors: int = 0                                             # containers whose figures could not be read


def nano_cores(previous_cpu_ns: int, previous_ns: int, cpu_ns: int, timestamp_ns: int) -> int | None:
    """The CPU rate between two cumulative samples, in nanocores (1e9 = one core busy); None when the
    samples cannot give one (no time passed, or the counter went back: another container, or a reset)."""
    elapsed = timestamp_ns - previous_ns
    used = cpu_ns - previous_cpu_ns
    if elapsed <= 0 or used < 0:
        return None
    return used * 1_000_000_000 // elapsed


def _boot_time_ns() -> int:
    try:
        with open("/proc/stat") as handle:
            for line in handle:
                if line.startswith("btime "):
                    return int(line.split()[1]) * 1_000_000_000
    except (OSError, ValueError):
        pass
    return 0


class StatsProvider:
    def __init__(self, runtime: CRIClient, node_name: str, min_interval: float = 1.0,
                 cgroup_root: str = CGROUP_ROOT) -> None:
        self.runtime, self.node_name = runtime, node_name
        self.min_interval, self.cgroup_root = min_interval, cgroup_root
        self._unified: bool | None = None
        self._paths: dict[str, CgroupPaths] = {}       # live container id → its cgroup
        self._last: Snapshot | None = None
        self._last_at = 0.0                            # monotonic
        self._lock = asyncio.Lock()
        self._boot_ns = _boot_time_ns()

    async def snapshot(self) -> Snapshot:
        async with self._lock:
            if self._last is not None and time.monotonic() - self._last_at < self.min_interval:
                return self._last
            snapshot = await self._collect(self._last)
            self._last, self._last_at = snapshot, time.monotonic()
            return snapshot

    async def _running_containers(self) -> list[api_pb2.Container]:
        return await self.runtime.list_containers(api_pb2.ContainerFilter(
            state=api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_RUNNING),
            label_selector={labels.NODE_NAME: self.node_name}))

    async def _cgroup_of(self, container_id: str) -> CgroupPaths | None:
        if container_id in self._paths:
            return self._paths[container_id]
        try:
            status = await self.runtime.container_status(container_id, verbose=True)
            pid = int(json.loads(status.info.get("info") or "{}").get("pid") or 0)
        except (CRIError, ValueError) as error:
            log.debug("no pid for container=%s error=%s", container_id[:13], error)
            return None
        if pid <= 0:
            return None
        if self._unified is None:
            self._unified = await asyncio.to_thread(is_unified, self.cgroup_root)
        try:
            paths = await asyncio.to_thread(paths_of_process, pid, self.cgroup_root, self._unified)
        except CgroupError as error:
            log.debug("no cgroup for container=%s pid=%d error=%s", container_id[:13], pid, error)
            return None
        self._paths[container_id] = paths
        return paths

    async def _collect(self, previous: Snapshot | None) -> Snapshot:
        try:
            containers = await self._running_containers()
        except CRIError as error:
            log.warning("stats: listing containers failed error=%s", error)
            containers = []
        live = {c.id for c in containers}
        for gone in set(self._paths) - live:
            del self._paths[gone]
        found = [(c, await self._cgroup_of(c.id)) for c in containers]
        readable = [(c, p) for c, p in found if p is not None]

        def read_all() -> tuple[NodeSample, list[ContainerSample], int]:
            now = time.time_ns()
            usage, working, available = read_node_memory()
            node = NodeSample(now, read_node_cpu_ns(self.cgroup_root), usage, working, available, self._boot_ns)
            samples, failed = [], 0
            for container, paths in readable:
                try:
                    figures = read_usage(paths)
                except (CgroupError, ValueError):
                    failed += 1          # exited between the listing and now
                    continue
                meta = container.labels
                samples.append(ContainerSample(
                    container.id, meta.get(labels.CONTAINER_NAME, container.metadata.name),
                    meta.get(labels.POD_NAMESPACE, ""), meta.get(labels.POD_NAME, ""), meta.get(labels.POD_UID, ""),
                    container.created_at, time.time_ns(), figures))
            return node, samples, failed

        node, samples, failed = await asyncio.to_thread(read_all)
        snapshot = Snapshot(node, samples, errors=failed + len(found) - len(readable))
        if previous is not None:
            before = {s.id: s for s in previous.containers}
            for sample in samples:
                old = before.get(sample.id)
                if old is not None:
                    rate = nano_cores(old.usage.cpu_ns, old.timestamp_ns, sample.usage.cpu_ns, sample.timestamp_ns)
                    if rate is not None:
                        snapshot.nano_cores[sample.id] = rate
            snapshot.node_nano_cores = nano_cores(previous.node.cpu_ns, previous.node.timestamp_ns, node.cpu_ns,
                                                  node.timestamp_ns)
        return snapshot

    def cgroup_of_cached(self, container_id: str) -> CgroupPaths | None:
        return self._paths.get(container_id)
