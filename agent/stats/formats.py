"""A Snapshot in kubelet's two shapes: the Summary API (`/stats/summary`, stats/v1alpha1 JSON) and the
resource metrics endpoint (`/metrics/resource`, Prometheus text with sample timestamps, the [STABLE] families
metrics-server reads); pure."""
from __future__ import annotations

import os
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from agent.stats.provider import ContainerSample, Snapshot

Obj = dict[str, Any]


def _time(ns: int) -> str:
    """RFC 3339 with the nanoseconds Go's metav1.Time drops: whole seconds, UTC."""
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cpu(timestamp_ns: int, cumulative_ns: int, rate: int | None) -> Obj:
    cpu: Obj = {"time": _time(timestamp_ns), "usageCoreNanoSeconds": cumulative_ns}
    if rate is not None:
        cpu["usageNanoCores"] = rate
    return cpu


def _container_memory(sample: ContainerSample) -> Obj:
    usage = sample.usage
    return {"time": _time(sample.timestamp_ns), "usageBytes": usage.memory_usage, "workingSetBytes": usage.working_set,
            "rssBytes": usage.rss, "pageFaults": usage.page_faults, "majorPageFaults": usage.major_page_faults}


def filesystem(path: str) -> Obj | None:
    """FsStats of the filesystem holding `path` (statvfs)."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    capacity, available = stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize
    return {"availableBytes": available, "capacityBytes": capacity,
            "usedBytes": (stat.f_blocks - stat.f_bfree) * stat.f_frsize,
            "inodesFree": stat.f_ffree, "inodes": stat.f_files, "inodesUsed": stat.f_files - stat.f_ffree}


def summary(node_name: str, snapshot: Snapshot, node_fs: Obj | None = None, only_cpu_and_memory: bool = False) -> Obj:
    node = snapshot.node
    node_stats: Obj = {
        "nodeName": node_name, "startTime": _time(node.boot_time_ns),
        "cpu": _cpu(node.timestamp_ns, node.cpu_ns, snapshot.node_nano_cores),
        "memory": {"time": _time(node.timestamp_ns), "availableBytes": node.available, "usageBytes": node.memory_usage,
                   "workingSetBytes": node.working_set},
    }
    if node_fs is not None and not only_cpu_and_memory:
        node_stats["fs"] = dict(node_fs, time=_time(node.timestamp_ns))
    by_pod: dict[tuple[str, str, str], list[ContainerSample]] = defaultdict(list)
    for sample in snapshot.containers:
        by_pod[(sample.namespace, sample.pod, sample.pod_uid)].append(sample)
    pods = []
    for (namespace, name, uid), samples in sorted(by_pod.items()):
        samples.sort(key=lambda s: s.name)
        rates = [snapshot.nano_cores.get(s.id) for s in samples]
        latest = max(s.timestamp_ns for s in samples)
        containers = [{"name": s.name, "startTime": _time(s.start_ns),
                       "cpu": _cpu(s.timestamp_ns, s.usage.cpu_ns, snapshot.nano_cores.get(s.id)),
                       "memory": _container_memory(s)} for s in samples]
        pods.append({
            "podRef": {"name": name, "namespace": namespace, "uid": uid},
            "startTime": _time(min(s.start_ns for s in samples)),
            "containers": containers,
            "cpu": _cpu(latest, sum(s.usage.cpu_ns for s in samples),
                        None if any(r is None for r in rates) else sum(r for r in rates if r is not None)),
            "memory": {"time": _time(latest), "usageBytes": sum(s.usage.memory_usage for s in samples),
                       "workingSetBytes": sum(s.usage.working_set for s in samples),
                       "rssBytes": sum(s.usage.rss for s in samples)},
        })
    return {"node": node_stats, "pods": pods}


# ---------------------------------------------------------------- /metrics/resource
_FAMILIES = (
    ("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the container in core-seconds"),
    ("container_memory_working_set_bytes", "gauge", "Current working set of the container in bytes"),
    ("container_start_time_seconds", "gauge", "Start time of the container since unix epoch in seconds"),
    ("node_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the node in core-seconds"),
    ("node_memory_working_set_bytes", "gauge", "Current working set of the node in bytes"),
    ("pod_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the pod in core-seconds"),
    ("pod_memory_working_set_bytes", "gauge", "Current working set of the pod in bytes"),
    ("resource_scrape_error", "gauge", "1 if there was an error while getting container metrics, 0 otherwise"),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**values: str) -> str:
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in values.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() or abs(value) >= 1e15 else str(int(value))


def resource_metrics(snapshot: Snapshot) -> str:
    lines: dict[str, list[str]] = defaultdict(list)
    node = snapshot.node
    node_ms = node.timestamp_ns // 1_000_000
    pods: dict[tuple[str, str], list[ContainerSample]] = defaultdict(list)
    for sample in sorted(snapshot.containers, key=lambda s: (s.namespace, s.pod, s.name)):
        ms = sample.timestamp_ns // 1_000_000
        where = _labels(container=sample.name, namespace=sample.namespace, pod=sample.pod)
        lines["container_cpu_usage_seconds_total"].append(f"{where} {_number(sample.usage.cpu_ns / 1e9)} {ms}")
        lines["container_memory_working_set_bytes"].append(f"{where} {_number(sample.usage.working_set)} {ms}")
        lines["container_start_time_seconds"].append(f"{where} {_number(sample.start_ns / 1e9)} {ms}")
        pods[(sample.namespace, sample.pod)].append(sample)
    for (namespace, pod), samples in sorted(pods.items()):
        ms = max(s.timestamp_ns for s in samples) // 1_000_000
        where = _labels(namespace=namespace, pod=pod)
        lines["pod_cpu_usage_seconds_total"].append(f"{where} {_number(sum(s.usage.cpu_ns for s in samples) / 1e9)} {ms}")
        lines["pod_memory_working_set_bytes"].append(f"{where} {_number(sum(s.usage.working_set for s in samples))} {ms}")
    lines["node_cpu_usage_seconds_total"].append(f" {_number(node.cpu_ns / 1e9)} {node_ms}")
    lines["node_memory_working_set_bytes"].append(f" {_number(node.working_set)} {node_ms}")
    lines["resource_scrape_error"].append(f" {1 if snapshot.errors else 0}")
    out = []
    for name, kind, text in _FAMILIES:
        out.append(f"# HELP {name} [STABLE] {text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{line}" for line in lines[name])
    return "\n".join(out) + "\n"
